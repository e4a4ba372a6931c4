-- Our programs, and other migration tools, live together on a database that carries the
-- hectic bundle: its created_at rule never rejects their bookkeeping tables (issue 15).
-- End to end with the built binaries: `database deploy` then `rickdb init`/`migrate` on the
-- same database, and the SQL dbmate runs against a hydrated database.
local t = require "testutil"
local d = require "dbproject"

local function rickdb(dir, args)
  local argv = { "rickdb" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return t.run { argv = argv, cwd = dir, env = { RICKDB_CONFIG = false, NO_COLOR = "1", HECTIC_LOG = false,
    PGHOST = false, PGPORT = false, PGDATABASE = false, PGUSER = false, PGPASSWORD = false } }
end

describe("the hectic bundle beside other migration tools", function()
  it("lets `rickdb init` and `rickdb migrate` run on a database made by `database deploy`", function()
    local dir = d.project({ ["db/src/entrypoint.sql"] =
      "CREATE TABLE public.item (id int PRIMARY KEY) INHERITS (hectic.created_at);\n" }, "neighbours")
    local r = d.database(dir, { "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    local url = "postgresql:///testdb?host=" .. dir .. "/focus/postgresql/sock&port=5432"
    t.write(dir .. "/rickdb.toml", string.format(
      '[db]\nengine = "pgsql"\nhost = "%s/focus/postgresql/sock"\nport = 5432\ndbname = "testdb"\n', dir))
    -- a user table of a rickdb migration still follows the rule
    t.write(dir .. "/m/001.sql", "CREATE TABLE public.page (id int) INHERITS (hectic.created_at);\n")
    t.write(dir .. "/m/002.sql", "CREATE TABLE public.plain (id int);\n")
    r = rickdb(dir, { "init" })
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("Migration Manager installed sucessfully!", r.stdout, 1, true)
    assert.is_true(d.has(url, "public._migration"))
    r = rickdb(dir, { "migrate", "m" })
    assert.are.equal(252, r.code, r.stdout .. r.stderr)
    assert.matches("Executing 001.sql... success", r.stdout, 1, true)
    assert.matches("must INHERITS (hectic.created_at)", r.stdout .. r.stderr, 1, true)
    assert.is_true(d.has(url, "public._migration_checksum"))
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM public._migration"))
    r = d.database(dir, { "cleanup" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("lets dbmate create and fill schema_migrations after `database hydrate`", function()
    local dir = d.project({ ["db/src/entrypoint.sql"] = "SELECT 1;\n" }, "neighbours")
    local url = t.fresh_db("dbmate")
    local r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    -- what dbmate 2 runs (pkg/driver/postgres: CreateMigrationsTable, InsertMigration), in
    -- the schema its URL names and in the default one
    local sql = [[
      create table if not exists public.schema_migrations (version varchar(255) primary key);
      insert into public.schema_migrations (version) values ('20250101000000');
      create schema if not exists tools;
      create table if not exists tools.schema_migrations (version varchar(255) primary key);
    ]]
    r = d.database(dir, { "sql", "-c", sql }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("20250101000000", d.value(url, "SELECT version FROM public.schema_migrations"))
    -- a second hydrate (bundle applied again) keeps it working, and the rule still holds
    r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    r = d.database(dir, { "sql", "-c", "create table public.users (id int);" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("hectic: table public.users must INHERITS (hectic.created_at)", r.stderr, 1, true)
  end)
end)
