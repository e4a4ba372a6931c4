-- The engine with the rickdb parts (flat layout, `_migration` store, rickdb policy), as the
-- rickdb front end uses it: on PostgreSQL and SQLite, through the Lua API.
local t = require "testutil"
local migrate = require "dbtool.migrate"
local store_rickdb = require "dbtool.migrate.store_rickdb"
local sqlite = require "dbtool.core.sqlite"
local log = require "dbtool.log"

local quiet = log.ns("spec rickdb")
log.configure { spec = "spec rickdb=error" }

local function engines()
  return {
    { name = "PostgreSQL", open = function(opts)
      local url = t.fresh_db("rick")
      local d = { engine = "postgresql", target = url }
      return function(o) return store_rickdb.open(d, o or opts) end, function(sql)
        local c <close> = t.connect(url)
        local r = c:exec(sql)
        local out = {}
        for i = 1, r.n do out[i] = r[i] end
        return out
      end
    end },
    { name = "SQLite", open = function(opts)
      local path = t.tmpdir("rick") .. "/r.db"
      local d = { engine = "sqlite", path = path }
      return function(o) return store_rickdb.open(d, o or opts) end, function(sql)
        local db <close> = assert(sqlite.open(path))
        return (db:query(sql))
      end
    end },
  }
end

local function engine(store, dir, extra)
  local o = { store = store, layout = "flat", dir = dir, policy = store_rickdb.POLICY, log = quiet,
    report_errors = false }
  for k, v in pairs(extra or {}) do o[k] = v end
  return migrate.new(o)
end

for _, e in ipairs(engines()) do
  describe("rickdb store on " .. e.name, function()
    it("installs _migration exactly, applies flat files forward-only, skips empty ones", function()
      local open, query = e.open()
      local dir = t.tmpdir("rickm")
      t.write(dir .. "/001.sql", "CREATE TABLE users (id integer PRIMARY KEY, name text);\n")
      t.write(dir .. "/002.sql", "  \n\n")
      t.write(dir .. "/003.sql", "INSERT INTO users (id, name) VALUES (1, 'ann');\n")
      t.write(dir .. "/notes.txt", "not a migration")
      local s <close> = open()
      assert.is_false(s:installed())
      local ok, err = pcall(s.ensure, s)
      assert.is_false(ok)
      assert.are.equal("Migration Manager is not installed", err.msg)
      s:install()
      assert.is_true(s:installed())
      ok, err = pcall(s.install, s)
      assert.is_false(ok)
      assert.are.equal("migration table '_migration' already exists", err.msg)
      local cols = e.name == "SQLite" and query("PRAGMA table_info('_migration')")
        or query([[SELECT column_name AS name, data_type AS type, is_nullable FROM information_schema.columns
          WHERE table_name = '_migration' ORDER BY ordinal_position]])
      local names = {}
      for i, c in ipairs(cols) do names[i] = c.name end
      assert.are.same({ "id_migration", "applied", "name" }, names)

      local seen = {}
      local eng = engine(s, dir, { policy = { history = "set", skip_empty = true, migration_mode = false,
        hooks = { after_each = function(info) seen[#seen + 1] = info.name .. ":" .. info.outcome end } } })
      local res = eng:migrate { kind = "up", n = "all" }
      assert.are.equal(3, res.done)
      assert.are.same({ "001.sql:applied", "002.sql:empty", "003.sql:applied" }, seen)
      local list = s:list()
      assert.are.equal(2, #list)
      assert.are.equal("001.sql", list[1].name)
      assert.are.equal("003.sql", list[2].name)
      assert.is_truthy(list[1].applied)
      -- the empty one is pending again (rickdb's behaviour), nothing else
      local st = eng:status()
      assert.are.same({ applied = 2, pending = 1, modified = 0, missing = 0, total = 3 }, st.counts)
      -- an older file added later is applied (history = "set")
      t.write(dir .. "/000.sql", "CREATE TABLE early (x integer);\n")
      seen = {}
      eng:migrate { kind = "up", n = "all" }
      assert.are.same({ "000.sql:applied", "002.sql:empty" }, seen)
      assert.are.equal(1, #query("SELECT 1 AS x FROM _migration WHERE name = '000.sql'"))
      -- a failing file: no row, no partial schema, the cause is kept
      t.write(dir .. "/004.sql", "CREATE TABLE half (x integer);\nINSERT INTO nope VALUES (1);\n")
      ok, err = pcall(eng.migrate, eng, { kind = "up", n = "all" })
      assert.is_false(ok)
      assert.are.equal(4, err.exit)
      assert.are.equal("migration failed: 004.sql", err.msg)
      assert.matches("nope", err.cause.msg)
      assert.are.equal(0, #query("SELECT 1 AS x FROM _migration WHERE name = '004.sql'"))
      local half = e.name == "SQLite" and query("SELECT 1 AS x FROM sqlite_master WHERE name = 'half'")
        or query("SELECT 1 AS x FROM pg_tables WHERE tablename = 'half'")
      assert.are.equal(0, #half)
      -- forward-only
      ok, err = pcall(eng.migrate, eng, { kind = "down", n = 1 })
      assert.is_false(ok)
      assert.matches("forward%-only", err.msg)
    end)

    it("keeps checksums in a side table and flattens in one transaction", function()
      local open, query = e.open()
      local dir = t.tmpdir("rickc")
      t.write(dir .. "/001.sql", "CREATE TABLE a (x integer);\n")
      t.write(dir .. "/002.sql", "CREATE TABLE b (x integer);\n")
      local s <close> = open({ checksums = true })
      s:install()
      local eng = engine(s, dir)
      eng:migrate { kind = "up", n = "all" }
      local rows = query("SELECT name, checksum FROM _migration_checksum ORDER BY name")
      assert.are.equal(2, #rows)
      assert.are.equal(require("dbtool.migrate.checksum").file(dir .. "/001.sql"), rows[1].checksum)
      t.write(dir .. "/001.sql", "CREATE TABLE a (x integer, y integer);\n")
      t.write(dir .. "/003.sql", "CREATE TABLE c (x integer);\n")
      local ok, err = pcall(eng.migrate, eng, { kind = "up", n = "all" })
      assert.is_false(ok)
      assert.are.equal(2, err.exit)
      assert.matches("001%.sql", err.msg)
      s:flatten("schema.sql", "abc")
      local all = query("SELECT name FROM _migration")
      assert.are.equal(1, #all)
      assert.are.equal("schema.sql", all[1].name)
      assert.are.equal("abc", query("SELECT checksum FROM _migration_checksum")[1].checksum)
    end)
  end)
end
