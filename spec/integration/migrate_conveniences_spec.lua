-- What users of other migration tools expect (issue 19), end to end with `migrator` on real
-- PostgreSQL databases: `baseline NAME`, repeatable migrations (new, unchanged, changed,
-- deleted), `status --exit-code`, `migrate --dry-run --sql`, and `--wait` for a server that
-- starts 2 s later or never.
local t = require "testutil"
local proc = require "dbtool.core.proc"

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function project(tag)
  local dir = t.tmpdir(tag)
  local m = dir .. "/m"
  t.write(m .. "/20250101000001-a/up.sql", "CREATE TABLE a (x int) INHERITS (hectic.created_at);\n")
  t.write(m .. "/20250101000001-a/down.sql", "DROP TABLE a;\n")
  t.write(m .. "/20250101000002-b/up.sql", "CREATE TABLE b (x int) INHERITS (hectic.created_at);\n"
    .. "\\set v 42\nINSERT INTO b (x) VALUES (:v);\nCOPY b (x) FROM stdin;\n7\n8\n\\.\n")
  t.write(m .. "/20250101000002-b/down.sql", "DROP TABLE b;\n")
  t.write(m .. "/20250101000003-c/up.sql", "CREATE TABLE c (x int) INHERITS (hectic.created_at);\n")
  t.write(m .. "/20250101000003-c/down.sql", "DROP TABLE c CASCADE;\n")
  return dir, m
end

local function migrator(m, url, ...)
  local r = t.run { argv = { "migrator", "-d", m, ... },
    env = { DB_URL = url, NO_COLOR = "1", MIGRATION_DIR = false, PGURL = false, DATABASE_URL = false,
      LOCAL_DIR = false, DATABASE_DIR = false } }
  r.out = r.stdout .. r.stderr
  return r
end

local function value(url, sql, ...)
  local c <close> = t.connect(url)
  local r = c:exec(sql, ...)
  return r[1] and r[1][1]
end

describe("migrator conveniences", function()
  it("baseline NAME records up to NAME without running them, and refuses a second time", function()
    local _, m = project("base")
    local url = t.fresh_db("base")
    -- the database already has a's schema (made by hand, as an existing database would)
    local r = migrator(m, url, "init")
    assert.are.equal(0, r.code, r.out)
    do
      local c <close> = t.connect(url)
      c:exec("CREATE TABLE a (x int) INHERITS (hectic.created_at)")
    end
    r = migrator(m, url, "baseline", "20250101000001", "--dry-run")
    assert.are.equal(0, r.code, r.out)
    has(r.stdout, "would record 1 migration(s) as applied, up to 20250101000001-a")
    assert.are.equal(0, value(url, "SELECT count(*)::int FROM hectic.migration"))
    r = migrator(m, url, "baseline", "20250101000001")
    assert.are.equal(0, r.code, r.out)
    has(r.stderr, "baseline: 1 migration(s) recorded as applied, up to 20250101000001-a (none was run)")
    assert.are.equal("20250101000001-a", value(url, "SELECT string_agg(name, ',') FROM hectic.migration"))
    -- the recorded hash is the file's: status is clean, the rest is pending
    r = migrator(m, url, "status")
    has(r.stdout, "1 applied, 0 modified, 2 pending, 0 missing")
    r = migrator(m, url, "baseline", "latest")
    assert.are.equal(2, r.code)
    has(r.stderr, "cannot baseline: 1 migration(s) are already recorded (the last: 20250101000001-a)")
    assert.are.equal(1, value(url, "SELECT count(*)::int FROM hectic.migration"))
    r = migrator(m, url, "migrate", "up", "all")
    assert.are.equal(0, r.code, r.out)
    assert.are.equal(3, value(url, "SELECT count(*)::int FROM hectic.migration"))
    -- errors: no name, an unknown one (nothing recorded)
    local url2 = t.fresh_db("base2")
    r = migrator(m, url2, "baseline")
    assert.are.equal(3, r.code)
    r = migrator(m, url2, "baseline", "nope")
    assert.are.equal(1, r.code)
    has(r.stderr, "unknown migration: nope")
  end)

  it("repeatable migrations: applied after the versioned ones, again when changed, forgotten when deleted",
    function()
      local _, m = project("rep")
      local url = t.fresh_db("rep")
      t.write(m .. "/repeatable/10-view.sql", "CREATE OR REPLACE VIEW v AS SELECT x FROM c;\n")
      t.write(m .. "/repeatable/20-fn.sql",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
      -- `up 1` does not reach the end: no repeatable runs
      local r = migrator(m, url, "migrate", "up", "1")
      assert.are.equal(0, r.code, r.out)
      assert.is_false(value(url, "SELECT to_regclass('v') IS NOT NULL"))
      r = migrator(m, url, "status", "--exit-code")
      assert.are.equal(1, r.code)
      has(r.stdout, "pending   repeatable/10-view.sql")
      r = migrator(m, url, "migrate", "up", "all")
      assert.are.equal(0, r.code, r.out)
      has(r.stderr, "(and 2 repeatable migration(s))")
      -- in name order, after the versioned ones (v selects from c, made by the last one)
      assert.is_true(value(url, "SELECT to_regclass('v') IS NOT NULL"))
      assert.are.equal(1, value(url, "SELECT f()"))
      assert.are.equal(2, value(url, "SELECT count(*)::int FROM hectic.migration_repeatable"))
      r = migrator(m, url, "status", "--exit-code")
      assert.are.equal(0, r.code, r.out)
      has(r.stdout, "applied   repeatable/20-fn.sql")
      -- unchanged: nothing runs
      r = migrator(m, url, "migrate", "up", "all")
      assert.are.equal(0, r.code, r.out)
      has(r.stderr, "database already at 20250101000003-c")
      -- changed: applied again (alone)
      t.write(m .. "/repeatable/20-fn.sql",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n")
      r = migrator(m, url, "status", "--exit-code")
      assert.are.equal(1, r.code)
      has(r.stdout, "changed   repeatable/20-fn.sql")
      r = migrator(m, url, "migrate", "up", "all", "--dry-run")
      has(r.stdout, "20-fn.sql")
      assert.is_nil(r.stdout:find("10-view.sql", 1, true))
      r = migrator(m, url, "migrate", "up", "all")
      assert.are.equal(0, r.code, r.out)
      has(r.stderr, "1 repeatable migration(s) applied")
      assert.are.equal(2, value(url, "SELECT f()"))
      local hash = require("dbtool.core.sodium").sha256(t.read(m .. "/repeatable/20-fn.sql"))
      local recorded = "SELECT hash FROM hectic.migration_repeatable WHERE name = '20-fn.sql'"
      assert.are.equal(hash, value(url, recorded))
      -- a failing one: exit 4, rolled back, its record unchanged
      t.write(m .. "/repeatable/20-fn.sql", "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ "
        .. "SELECT 3 $$;\nSELECT no_such_column FROM c;\n")
      r = migrator(m, url, "migrate", "up", "all")
      assert.are.equal(4, r.code, r.out)
      has(r.stderr, "repeatable migration failed: 20-fn.sql")
      assert.are.equal(2, value(url, "SELECT f()"))
      assert.are.equal(hash, value(url, recorded))
      -- deleted: its record goes, nothing runs
      os.remove(m .. "/repeatable/20-fn.sql")
      r = migrator(m, url, "status")
      has(r.stdout, "missing   repeatable/20-fn.sql")
      r = migrator(m, url, "migrate", "up", "all")
      assert.are.equal(0, r.code, r.out)
      has(r.stderr, "repeatable migration 20-fn.sql: its file is gone, its record removed")
      assert.are.equal("10-view.sql",
        value(url, "SELECT string_agg(name, ',') FROM hectic.migration_repeatable"))
      assert.are.equal(2, value(url, "SELECT f()"))
      -- down does not touch them
      r = migrator(m, url, "migrate", "down", "1")
      assert.are.equal(0, r.code, r.out)
      assert.are.equal(1, value(url, "SELECT count(*)::int FROM hectic.migration_repeatable"))
    end)

  it("status --exit-code: 0 when nothing is pending, 1 when something is; --json says so too", function()
    local _, m = project("exit")
    local url = t.fresh_db("exit")
    local r = migrator(m, url, "status", "--exit-code")
    assert.are.equal(1, r.code)
    r = migrator(m, url, "status")
    assert.are.equal(0, r.code)
    assert.are.equal(0, migrator(m, url, "migrate", "up", "all").code)
    r = migrator(m, url, "status", "--exit-code", "--json")
    assert.are.equal(0, r.code, r.out)
    has(r.stdout, '"pending":0')
    t.write(m .. "/20250101000004-d/up.sql", "SELECT 1;\n")
    r = migrator(m, url, "status", "--exit-code", "--json")
    assert.are.equal(1, r.code)
    has(r.stdout, '"pending":1')
    r = migrator(m, url, "list", "--exit-code")
    assert.are.equal(9, r.code)
  end)

  it("migrate --dry-run --sql prints the statements that would run, and runs none", function()
    local _, m = project("sql")
    local url = t.fresh_db("sql")
    assert.are.equal(0, migrator(m, url, "migrate", "up", "1").code)
    t.write(m .. "/repeatable/v.sql", "CREATE OR REPLACE VIEW v AS SELECT x FROM c;\n")
    local r = migrator(m, url, "migrate", "up", "all", "--dry-run", "--sql")
    assert.are.equal(0, r.code, r.out)
    local b_hash = require("dbtool.core.sodium").sha256(t.read(m .. "/20250101000002-b/up.sql"))
    has(r.stdout, "-- 20250101000002-b (up): " .. m .. "/20250101000002-b/up.sql\nBEGIN;\n"
      .. "SET LOCAL lock_timeout = '10s';\nSET LOCAL hectic.migration_mode = 'on';\n"
      .. "CREATE TABLE b (x int) INHERITS (hectic.created_at);\nINSERT INTO b (x) VALUES (42);\n"
      .. "COPY b (x) FROM stdin;\n7\n8\n\\.\n"
      .. "INSERT INTO hectic.migration (name, hash, tree_hash, duration_ms) VALUES ('20250101000002-b', '"
      .. b_hash .. "', NULL, NULL);\nCOMMIT;\n")
    has(r.stdout, "-- repeatable v.sql (up)")
    assert.is_nil(r.stdout:find("20250101000001-a", 1, true)) -- applied already
    -- nothing ran
    assert.is_false(value(url, "SELECT to_regclass('b') IS NOT NULL"))
    assert.are.equal(1, value(url, "SELECT count(*)::int FROM hectic.migration"))
    -- down, and --single-transaction (one BEGIN … COMMIT)
    r = migrator(m, url, "migrate", "down", "1", "--dry-run", "--sql")
    has(r.stdout, "DROP TABLE a;\nDELETE FROM hectic.migration WHERE name = '20250101000001-a';\nCOMMIT;")
    r = migrator(m, url, "migrate", "up", "all", "--dry-run", "--sql", "--single-transaction")
    local _, begins = r.stdout:gsub("BEGIN;", "")
    assert.are.equal(1, begins, r.stdout)
    r = migrator(m, url, "migrate", "up", "all", "--sql")
    assert.are.equal(9, r.code)
    has(r.stderr, "--sql goes with --dry-run")
  end)

  it("--wait: a server that starts 2 s later is waited for; none within the time: a clear error", function()
    local _, m = project("wait")
    local dir = t.tmpdir("waitpg")
    local url = string.format("postgresql:///postgres?host=%s/sock&port=5491", dir)
    -- the server starts 2 s after the command
    local starter = assert(proc.spawn { argv = { t.bin, "-e", string.format([[
      require("dbtool.core").sleep(2)
      require("dbtool.cluster").start { dir = %q, port = 5491, database = "postgres", preload = "",
        logging = false }
    ]], dir) }, stdin = "null", stdout = "null", stderr = { path = dir .. "/starter.log" } })
    t.at_exit(function() pcall(require("dbtool.cluster").stop, dir, { mode = "immediate" }) end)
    local r = migrator(m, url, "status", "--wait=60")
    assert.are.same({ "exited", 0 }, { starter:wait(60) }, t.read(dir .. "/starter.log"))
    assert.are.equal(0, r.code, r.out)
    has(r.stdout, "3 pending")
    -- database sql --wait, the server up
    local sql = t.run { argv = { "database", "-u", url, "sql", "--wait=5", "-p", "-c", "SELECT 40 + 2" },
      env = { NO_COLOR = "1", LOCAL_DIR = false } }
    assert.are.equal(0, sql.code, sql.stderr)
    has(sql.stdout, "42")
    require("dbtool.cluster").stop(dir, { mode = "immediate" })
    sql = t.run { argv = { "database", "-u", url, "sql", "--wait=1", "-c", "SELECT 1" },
      env = { NO_COLOR = "1", LOCAL_DIR = false } }
    assert.are.equal(1, sql.code, sql.stderr)
    has(sql.stderr, "did not accept connections within 1 s")
    -- nothing comes: exit 1 after the wait, saying so
    r = migrator(m, url, "migrate", "up", "all", "--wait=1")
    assert.are.equal(1, r.code, r.out)
    has(r.stderr, "the database server of DB_URL did not accept connections within 1 s (no server answered)")
    r = migrator(m, url, "status", "--wait=soon")
    assert.are.equal(9, r.code)
  end)
end)
