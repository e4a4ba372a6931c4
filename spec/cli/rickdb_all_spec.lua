-- `rickdb --all COMMAND`: the command on every database of rickdb.toml ([db], then each
-- [db_<name>] in name order), on real SQLite files; a failing one does not stop the others,
-- the exit code is the first failure's.
local t = require "testutil"
local sqlite = require "dbtool.core.sqlite"

local function run(dir, args)
  local argv = { "rickdb" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return t.run { argv = argv, cwd = dir, env = { RICKDB_CONFIG = false, NO_COLOR = "1", HECTIC_LOG = false,
    DATABASE_DIR = false, LOCAL_DIR = false } }
end

local function names(path)
  local db <close> = assert(sqlite.open(path, { create = false }))
  local out = {}
  for i, r in ipairs(db:query("SELECT name FROM _migration ORDER BY name")) do out[i] = r.name end
  return out
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

describe("rickdb --all", function()
  it("runs a command on every database, [db] first, then by name, and goes on after a failure", function()
    local dir = t.tmpdir("rkall")
    t.write(dir .. "/rickdb.toml", '[db_b]\nengine = "sqlite"\ndb_file = "b.db"\n'
      .. '[db]\nengine = "sqlite"\ndb_file = "a.db"\n'
      .. '[db_c]\nengine = "sqlite"\ndb_file = "c.db"\n')
    t.write(dir .. "/m/001.sql", "CREATE TABLE one (x INTEGER);\n")
    t.write(dir .. "/m/002.sql", "CREATE TABLE two (x INTEGER);\n")
    local r = run(dir, { "--all", "init" })
    assert.are.equal(0, r.code, r.stderr)
    -- [db] first, then the others by name (not in file order)
    assert.are.equal("[db]\nMigration Manager installed sucessfully!\n[db_b]\nMigration Manager installed "
      .. "sucessfully!\n[db_c]\nMigration Manager installed sucessfully!\n", r.stdout)
    has(r.stderr, "rickdb --all init: 3 database(s), 0 failed")
    -- c has a table two already: its 002.sql fails, a and b are migrated all the same
    do
      local db <close> = assert(sqlite.open(dir .. "/c.db", { create = false }))
      db:exec("CREATE TABLE two (y INTEGER)")
    end
    r = run(dir, { "migrate", "m", "--all" })
    assert.are.equal(252, r.code, r.stderr)
    assert.are.same({ "001.sql", "002.sql" }, names(dir .. "/a.db"))
    assert.are.same({ "001.sql", "002.sql" }, names(dir .. "/b.db"))
    assert.are.same({ "001.sql" }, names(dir .. "/c.db"))
    has(r.stdout, "[db_c]\n")
    has(r.stderr, "rickdb --all migrate: 3 database(s), 1 failed: db_c (exit 252)")
    r = run(dir, { "--all", "check", "m", "--exit-code" })
    assert.are.equal(1, r.code, r.stderr)
    has(r.stdout, "[db_c]\nChecking 001.sql... already applied\nChecking 002.sql... new migration\n")
    -- --all with a database name is a usage error
    r = run(dir, { "--all", "c", "list" })
    assert.are.equal(255, r.code)
    has(r.stderr, "--all runs the command on every database")
  end)
end)
