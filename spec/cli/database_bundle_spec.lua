-- The hectic bundle as `database hydrate` installs it, probed with SQL: the cases of the
-- original's `init-hectic-bundle` test (reference/migrator-upstream.md), run end to end with
-- the built binary on a fresh database of the shared cluster.
local t = require "testutil"
local d = require "dbproject"
local pg = require "dbtool.core.pg"

local function fails(url, sql)
  local c <close> = pg.connect(url)
  local ok, e = pcall(c.exec, c, sql)
  assert.is_false(ok, "expected an error from: " .. sql)
  return e
end

describe("the hectic bundle installed by database hydrate", function()
  local dir, url

  setup(function()
    dir = d.project { ["db/src/entrypoint.sql"] = "SELECT 1;\n" }
    url = t.fresh_db("bundle")
    local r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("creates the hectic schema, its six tables and one version row; a second hydrate succeeds", function()
    local n = d.value(url, [[SELECT count(*)::int FROM pg_tables WHERE schemaname = 'hectic'
      AND tablename IN ('version', 'secret', 'migration', 'created_at', 'updated_at', 'immutable')]])
    assert.are.equal(6, n)
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM hectic.version"))
    local r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM hectic.version"))
  end)

  it("rejects a plain CREATE TABLE and accepts one that INHERITS hectic.created_at", function()
    local e = fails(url, "CREATE TABLE public.plain (id int)")
    assert.matches("hectic: table public.plain must INHERITS (hectic.created_at)", e.msg, 1, true)
    d.exec(url, "CREATE TABLE public.good (id int) INHERITS (hectic.created_at)")
    assert.is_true(d.has(url, "public.good"))
    d.exec(url, "INSERT INTO public.good (id) VALUES (1)")
    assert.is_true(d.value(url, "SELECT created_at IS NOT NULL FROM public.good"))
  end)

  it("gives updated_at inheritors the trigger that moves updated_at on UPDATE", function()
    d.exec(url, [[CREATE TABLE public.touched (id int, v text)
      INHERITS (hectic.created_at, hectic.updated_at)]])
    assert.are.equal(1, d.value(url, [[SELECT count(*)::int FROM pg_trigger
      WHERE tgrelid = 'public.touched'::regclass AND tgname = 'hectic_set_updated_at']]))
    d.exec(url, "INSERT INTO public.touched (id, v, updated_at) VALUES (1, 'a', now() - interval '1 day')")
    d.exec(url, "UPDATE public.touched SET v = 'b'")
    assert.is_true(d.value(url, "SELECT updated_at > now() - interval '1 minute' FROM public.touched"))
  end)

  it("exempts schemas listed in hectic.inheritance_extra_excluded_schemas (ALTER DATABASE)", function()
    local name = url:match("postgresql://[^/]*/([^?]+)")
    d.exec(url, "CREATE SCHEMA legacy")
    fails(url, "CREATE TABLE legacy.old (id int)")
    d.exec(url, 'ALTER DATABASE "' .. name
      .. '" SET hectic.inheritance_extra_excluded_schemas = \'legacy, etl\'')
    d.exec(url, "CREATE TABLE legacy.old (id int)") -- a new session sees the setting
    assert.is_true(d.has(url, "legacy.old"))
  end)

  it("exempts declarative partitions (the parent is in an excluded schema)", function()
    local name = url:match("postgresql://[^/]*/([^?]+)")
    d.exec(url, 'ALTER DATABASE "' .. name .. '" SET hectic.inheritance_extra_excluded_schemas = \'parts\'')
    d.exec(url, "CREATE SCHEMA parts")
    d.exec(url, "CREATE TABLE parts.measure (at date, v int) PARTITION BY RANGE (at)")
    d.exec(url, [[CREATE TABLE public.measure_2026 PARTITION OF parts.measure
      FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')]])
    assert.is_true(d.has(url, "public.measure_2026"))
  end)

  it("gives immutable inheritors two triggers that block INSERT/UPDATE/DELETE/TRUNCATE", function()
    d.exec(url, "CREATE TABLE public.frozen (id int, label text) "
      .. "INHERITS (hectic.created_at, hectic.immutable)")
    local triggers = {}
    for _, row in ipairs(d.exec(url, [[SELECT tgname FROM pg_trigger
        WHERE tgrelid = 'public.frozen'::regclass ORDER BY 1]])) do
      triggers[#triggers + 1] = row.tgname
    end
    assert.are.same({ "hectic_block_immutable_dml", "hectic_block_immutable_truncate" }, triggers)
    for _, sql in ipairs {
      "INSERT INTO public.frozen (id, label) VALUES (1, 'x')",
      "UPDATE public.frozen SET label = 'y'",
      "DELETE FROM public.frozen",
      "TRUNCATE public.frozen",
    } do
      local e = fails(url, sql)
      assert.matches("hectic: table public.frozen inherits hectic.immutable; "
        .. "%u+ blocked outside migration_mode", e.msg)
    end
  end)

  it("allows DML under SET LOCAL hectic.migration_mode = 'on', which does not leak past COMMIT", function()
    d.exec(url, "CREATE TABLE public.frozen2 (id int) INHERITS (hectic.created_at, hectic.immutable)")
    local c <close> = pg.connect(url)
    c:exec("BEGIN")
    c:exec("SET LOCAL hectic.migration_mode = 'on'")
    c:exec("INSERT INTO public.frozen2 (id) VALUES (1), (2)")
    c:exec("UPDATE public.frozen2 SET id = 3 WHERE id = 2")
    c:exec("COMMIT")
    assert.are.equal(2, c:exec("SELECT count(*)::int AS n FROM public.frozen2")[1].n)
    local ok = pcall(c.exec, c, "INSERT INTO public.frozen2 (id) VALUES (4)")
    assert.is_false(ok)
    c:exec("BEGIN; SET LOCAL hectic.migration_mode = 'on'; TRUNCATE public.frozen2; COMMIT")
    assert.are.equal(0, c:exec("SELECT count(*)::int AS n FROM public.frozen2")[1].n)
  end)

  it("raises the version mismatch through hydrate (exit 13) and leaves the database as it was", function()
    local other = t.fresh_db("bundle")
    local r = d.database(dir, { "hydrate" }, { PGURL = other })
    assert.are.equal(0, r.code, r.stderr)
    d.exec(other, "UPDATE hectic.version SET version = '9.9.9' WHERE name = 'hectic'")
    r = d.database(dir, { "hydrate" }, { PGURL = other })
    assert.are.equal(13, r.code)
    assert.matches("hectic schema version mismatch: database has 9.9.9, code expects 0.1.0", r.stderr,
      1, true)
    assert.matches("hint: this database was set up by another version", r.stderr, 1, true)
    assert.are.equal("9.9.9", d.value(other, "SELECT version FROM hectic.version WHERE name = 'hectic'"))
  end)
end)
