-- `database` itself end to end: help, dispatch, the global -u/--url and -i/--inherits
-- options (anywhere on the line), and the migrator pass-through with MIGRATION_DIR and DB_URL.
local t = require "testutil"
local d = require "dbproject"

local MIGRATION = {
  ["db/migration/20260101000000-first/up.sql"] =
    "CREATE TABLE migrated (id int) INHERITS (hectic.created_at);\n",
  ["db/migration/20260101000000-first/down.sql"] = "DROP TABLE migrated;\n",
}

describe("database", function()
  it("prints help (exit 0) and lists every workflow subcommand, without any environment", function()
    local r = t.run { argv = { "database", "--help" }, env = d.env(nil, { LOCAL_DIR = false }) }
    assert.are.equal(0, r.code, r.stderr)
    for _, name in ipairs { "deploy", "hydrate", "patch", "test", "check", "log", "init", "cleanup",
      "migrator" } do
      assert.matches("\n  " .. name .. " ", r.stdout, 1, true)
    end
    for _, cmd in ipairs { "deploy", "hydrate", "patch", "test", "check", "log", "init", "cleanup" } do
      r = t.run { argv = { "database", cmd, "--help" }, env = d.env(nil, { LOCAL_DIR = false }) }
      assert.are.equal(0, r.code, cmd .. ": " .. r.stderr)
      assert.matches("database " .. cmd, r.stdout, 1, true)
    end
  end)

  it("exits 1 without a subcommand and 9 for an unknown one", function()
    local r = t.run { argv = { "database" }, env = d.env(nil) }
    assert.are.equal(1, r.code)
    assert.matches("no subcommand specified. Use '--help' for usage information.", r.stderr, 1, true)
    r = t.run { argv = { "database", "nonsense" }, env = d.env(nil) }
    assert.are.equal(9, r.code)
    assert.matches("unknown subcommand 'nonsense'", r.stderr, 1, true)
    r = t.run { argv = { "database", "-u" }, env = d.env(nil) }
    assert.are.equal(3, r.code)
    assert.matches("-u requires a value", r.stderr, 1, true)
  end)

  it("-i/--inherits checks that tables exist before running (exit 5 naming them)", function()
    local url = t.fresh_db("glob")
    d.exec(url, [[CREATE SCHEMA app; CREATE TABLE app.users (id int); CREATE TABLE "Mixed" (id int);
      CREATE TABLE plain (id int)]])
    local dir = d.project { ["db/test/test.sql"] = "\\echo ran\n" }
    local r = d.database(dir, { "-i", "plain", "test", "--inherits", "app.users", "-i", "Mixed" },
      { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("ran\n", r.stdout)
    r = d.database(dir, { "test", "-i", "app.nope", "-i", "plain", "--inherits=ghost" }, { PGURL = url })
    assert.are.equal(5, r.code)
    assert.matches("-i/--inherits: table does not exist: app.nope, ghost", r.stderr, 1, true)
    assert.are.equal("", r.stdout) -- the subcommand did not run
    r = d.database(dir, { "test", "-i", "a b c" }, { PGURL = url })
    assert.are.equal(5, r.code)
    assert.matches("table does not exist: a b c (invalid name syntax", r.stderr, 1, true)
    -- without a database to check against: exit 3
    r = d.database(dir, { "test", "-i", "plain" })
    assert.are.equal(3, r.code)
    assert.matches("no database to connect to", r.stderr, 1, true)
  end)

  it("-u/--url is taken anywhere on the line and wins over PGURL and DB_URL", function()
    local a, b = t.fresh_db("glob"), t.fresh_db("glob")
    d.exec(b, "CREATE TABLE only_in_b (id int)")
    local dir = d.project { ["db/test/test.sql"] = "SELECT * FROM only_in_b;\n" }
    local r = d.database(dir, { "test" }, { PGURL = a })
    assert.are.equal(1, r.code)
    r = d.database(dir, { "test", "-u", b }, { PGURL = a, DB_URL = a })
    assert.are.equal(0, r.code, r.stderr)
    r = d.database(dir, { "--url", b, "test" }, { PGURL = a })
    assert.are.equal(0, r.code, r.stderr)
    -- a bad connection string: exit 1, and where it came from
    r = d.database(dir, { "test", "-u", "postgresql://[bad" }, { PGURL = a })
    assert.are.equal(1, r.code)
    assert.matches("IPv6 host address", r.stderr, 1, true)
    assert.matches("the connection string comes from -u/--url", r.stderr, 1, true)
    r = d.database(dir, { "test" }, { PGURL = "not a url" })
    assert.are.equal(1, r.code)
    assert.matches("the connection string comes from PGURL", r.stderr, 1, true)
    r = d.database(dir, { "test" }, { DB_URL = "postgresql:///x?host=" .. dir .. "/nowhere" })
    assert.are.equal(1, r.code)
    assert.matches("is the server running?", r.stderr, 1, true)
    assert.matches("the connection string comes from DB_URL", r.stderr, 1, true)
  end)
end)

describe("database migrator", function()
  it("passes arguments through with MIGRATION_DIR and DB_URL (from -u, DB_URL or PGURL)", function()
    local dir = d.project(MIGRATION)
    local url = t.fresh_db("mig")
    local r = d.database(dir, { "migrator", "migrate", "up", "all" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(url, "public.migrated"))
    assert.are.equal("20260101000000-first", d.value(url, "SELECT name FROM hectic.migration"))
    -- -u sets DB_URL for migrator, wherever it is on the line
    local other = t.fresh_db("mig")
    r = d.database(dir, { "migrator", "migrate", "up", "all", "-u", other }, { PGURL = url, DB_URL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(other, "public.migrated"))
    -- MIGRATION_DIR from the environment, DB_URL before PGURL
    local third = t.fresh_db("mig")
    t.write(dir .. "/elsewhere/20260202000000-second/up.sql", "CREATE TABLE second (id int) "
      .. "INHERITS (hectic.created_at);\n")
    r = d.database(dir, { "migrator", "migrate", "up", "all" },
      { PGURL = url, DB_URL = third, MIGRATION_DIR = dir .. "/elsewhere" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(third, "public.second"))
    assert.is_false(d.has(third, "public.migrated"))
    -- its exit codes and messages come through unchanged
    r = d.database(dir, { "migrator", "no-such-command" }, { PGURL = url })
    local direct = t.run { argv = { "migrator", "no-such-command" }, env = d.env(dir, { DB_URL = url }) }
    assert.are.equal(direct.code, r.code)
    assert.are_not.equal(0, r.code)
    assert.are.equal(9, r.code)
    assert.are.equal((("\n" .. direct.stderr):gsub("\nmigrator> ", "\ndb migrator> "):sub(2)), r.stderr)
    r = d.database(dir, { "migrator", "migrate", "up", "all" })
    assert.are.equal(3, r.code)
  end)

  it("uses the running local cluster when no URL is set", function()
    local dir = d.project(MIGRATION)
    local r = d.database(dir, { "init" })
    assert.are.equal(0, r.code, r.stderr)
    r = d.database(dir, { "migrator", "migrate", "up", "all" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(d.cluster_url(dir), "public.migrated"))
    r = d.database(dir, { "cleanup" })
    assert.are.equal(0, r.code, r.stderr)
  end)
end)
