-- The public Lua API (`require "dbtool"`), in process, against a real PostgreSQL.
local t = require "testutil"
local dbtool = require "dbtool"
local env = require "dbtool.env"
local project = require "dbtool.project"

describe("require \"dbtool\"", function()
  after_each(function()
    env.reset()
    project.reset()
  end)

  it("loads modules on first use and returns nil for unknown ones", function()
    assert.are.equal(require("dbtool.cluster"), dbtool.cluster)
    assert.are.equal(require("dbtool.core.proc"), dbtool.proc)
    assert.are.equal(require("dbtool.dotenv"), dbtool.dotenv)
    assert.is_function(dbtool.log.ns)
    assert.is_function(dbtool.testing.suite)
    assert.is_nil(dbtool.no_such_module)
    assert.matches("^%d", dbtool.version)
  end)

  describe("connections and SQL", function()
    it("connects, runs psql-compatible scripts with variables, and files with \\ir", function()
      local url = t.fresh_db("api")
      local conn <close> = dbtool.connect(url)
      local out = {}
      dbtool.sql(conn, "\\set n 3\nCREATE TABLE a (v int);\nINSERT INTO a SELECT generate_series(1, :n);\n"
        .. "\\echo :greeting\n", { vars = { greeting = "hi" }, output = function(s) out[#out + 1] = s end })
      assert.are.equal(3, conn:exec("SELECT count(*) AS n FROM a")[1].n)
      assert.matches("hi", table.concat(out))
      local dir = t.tmpdir("apisql")
      t.write(dir .. "/inc/b.sql", "INSERT INTO a VALUES (42);\n")
      t.write(dir .. "/main.sql", "\\ir inc/b.sql\n")
      local s = dbtool.sql_file(url, dir .. "/main.sql") -- by URL: its own connection
      assert.are.equal(1, s.statements)
      assert.are.equal(42, conn:exec("SELECT max(v) AS m FROM a")[1].m)
    end)

    it("raises structured errors with file:line", function()
      local url = t.fresh_db("apierr")
      local ok, e = pcall(dbtool.sql, url, "SELECT 1;\nSELECT nope;\n", { name = "inline.sql" })
      assert.is_false(ok)
      assert.are.equal(1, e.exit)
      assert.are.equal("42703", e.sqlstate)
      assert.matches("^inline%.sql:2:", e.where)
    end)

    it("uses PGURL when no URL is given", function()
      local url = t.fresh_db("apienv")
      env.set("PGURL", url)
      local c <close> = dbtool.connect()
      assert.are.equal(url:match("^postgresql://[^/]*/([^?]+)"), c:info().db)
    end)
  end)

  describe("processes", function()
    it("runs argv arrays, captures output, feeds stdin, returns exit codes", function()
      local code, out = dbtool.exec({ "sh", "-c", "cat; echo \"$X\"; exit 3" },
        { capture = true, stdin = "in\n", env = { X = "x; rm -rf /" } })
      assert.are.equal(3, code)
      assert.are.equal("in\nx; rm -rf /\n", out)
      local ok, e = pcall(dbtool.exec, { "/nonexistent/program" })
      assert.is_false(ok)
      assert.are.equal(127, e.exit)
    end)
  end)

  describe("migrations", function()
    local function migrations()
      local dir = t.tmpdir("apimig")
      t.write(dir .. "/20260101000000-a/up.sql", "CREATE TABLE ma (v int) INHERITS (hectic.created_at);\n")
      t.write(dir .. "/20260101000000-a/down.sql", "DROP TABLE ma;\n")
      t.write(dir .. "/20260102000000-b/up.sql", "CREATE TABLE mb (v int) INHERITS (hectic.created_at);\n")
      t.write(dir .. "/20260102000000-b/down.sql", "DROP TABLE mb;\n")
      return dir
    end

    it("up, status, down and to, with policy hooks in order", function()
      local url, dir = t.fresh_db("apimig"), migrations()
      local seen = {}
      local hooks = {
        before_each = function(i) seen[#seen + 1] = "before " .. i.name .. " " .. i.direction end,
        after_each = function(i) seen[#seen + 1] = "after " .. i.name .. " " .. i.outcome end,
      }
      local res = dbtool.migrations.up { url = url, dir = dir, policy = { hooks = hooks } }
      assert.are.equal(2, res.done)
      assert.are.same({ "before 20260101000000-a up", "after 20260101000000-a applied",
        "before 20260102000000-b up", "after 20260102000000-b applied" }, seen)
      local st = dbtool.migrations.status { url = url, dir = dir }
      assert.are.equal(2, st.counts.applied)
      assert.are.equal(0, st.counts.pending)
      assert.are.equal(1, dbtool.migrations.down { url = url, dir = dir }.done)
      assert.are.equal(1, dbtool.migrations.status { url = url, dir = dir }.counts.pending)
      assert.are.equal(1, dbtool.migrations.to { url = url, dir = dir, name = "latest" }.done)
      assert.are.equal(2, dbtool.migrations.to { url = url, dir = dir, index = 0 }.done)
      assert.are.equal(0, dbtool.migrations.status { url = url, dir = dir }.counts.applied)
      local ok, e = pcall(dbtool.migrations.to, { url = url, dir = dir, name = "nope" })
      assert.is_false(ok)
      assert.matches("unknown migration: nope", e.msg)
    end)

    it("applies the project's hooks and settings; a failing migration raises exit 4", function()
      local url, dir = t.fresh_db("apimig2"), migrations()
      t.write(dir .. "/20260103000000-c/up.sql",
        "DO $$ BEGIN ASSERT current_setting('lock_timeout') = '2s'; END $$;\nSELECT 1 / 0;\n")
      local proj = t.tmpdir("apiproj")
      t.write(proj .. "/db/db-tool.lua", [[
_G.API_SPEC_SEEN = {}
return { hooks = { after_each_migration = function(i) table.insert(_G.API_SPEC_SEEN, i.name) end },
  settings = { lock_timeout = "2s" } }
]])
      env.set("LOCAL_DIR", proj)
      local ok, e = pcall(dbtool.migrations.up, { url = url, dir = dir, log = dbtool.log.ns("spec") })
      assert.is_false(ok)
      assert.are.equal(4, e.exit)
      assert.are.equal("20260103000000-c", e.migration)
      assert.are.equal("22012", e.cause.sqlstate)
      assert.are.same({ "20260101000000-a", "20260102000000-b" }, _G.API_SPEC_SEEN)
      _G.API_SPEC_SEEN = nil
    end)
  end)

  describe("commands as functions", function()
    it("take argv arrays and named options, return exit codes", function()
      local url = t.fresh_db("apicmd")
      local dir = t.tmpdir("apicmd")
      local pgurl_before = env.raw("PGURL")
      t.write(dir .. "/x.sql", "CREATE TABLE :name (v int);\n")
      assert.are.equal(0, dbtool.commands.sql { dir .. "/x.sql", "-v", "name=t1", url = url })
      assert.are.equal(0, dbtool.commands.sql { file = dir .. "/x.sql", set = { "name=t2" }, url = url })
      assert.are.equal(0, dbtool.command("sql", { command = "CREATE TABLE t3 (v int)", url = url }))
      local c <close> = dbtool.connect(url)
      local n = c:exec("SELECT count(*) AS n FROM pg_tables WHERE tablename IN ('t1', 't2', 't3')")[1].n
      assert.are.equal(3, n)
      -- the URL was for that call only
      assert.are.equal(pgurl_before, env.raw("PGURL"))
      -- a test file that fails: exit code 1, not an error
      t.write(dir .. "/db/test/test.sql", "DO $$ BEGIN ASSERT false, 'nope'; END $$;\n")
      env.set("LOCAL_DIR", dir)
      assert.are.equal(1, dbtool.commands.test { url = url })
    end)

    it("raise structured errors: unknown command or option (9), missing argument (3)", function()
      local function fails(fn, a)
        local ok, e = pcall(fn, a)
        assert.is_false(ok)
        return e
      end
      assert.are.equal(9, fails(dbtool.commands.nosuch, {}).exit)
      local e = fails(dbtool.commands.sql, { nope = true })
      assert.are.equal(9, e.exit)
      assert.matches("unknown option 'nope'", e.msg)
      assert.are.equal(9, fails(dbtool.commands.sql, { "--nope" }).exit)
      local url = t.fresh_db("apimiss")
      assert.are.equal(3, fails(dbtool.commands.sql, { url = url }).exit)
      e = fails(dbtool.commands.sql, { command = "SELECT 1", url = url, inherits = "no_such_table" })
      assert.are.equal(5, e.exit)
      assert.matches("no_such_table", e.msg)
      assert.has_error(function() dbtool.commands.x = 1 end)
    end)

    it("reach the commands of groups: database secrets, database migrator", function()
      local dir = t.tmpdir("apigroups")
      t.write(dir .. "/.env.x", "A=1\nB=2\n")
      t.write(dir .. "/m/20260101000000-one/up.sql", "SELECT 1;\n")
      local code = [[
local dbtool = require "dbtool"
local dir = ...
assert(dbtool.commands.secrets { "list", dir .. "/.env.x" } == 0)
assert(dbtool.commands.migrator { "list", "-r", "-d", dir .. "/m" } == 0)
local ok, e = pcall(dbtool.commands.secrets, { "lsit" })
print(ok, e.exit)
ok, e = pcall(dbtool.commands.secrets, { file = "x" })
print(ok, e.exit)
error(require("dbtool.errors").new(3, "after the calls"))
]]
      local script = t.write(dir .. "/s.lua", code)
      local r = t.run { argv = { "db-tool", script, dir }, env = { LOCAL_DIR = dir, DATABASE_DIR = false } }
      assert.are.equal(3, r.code, r.stderr)
      assert.are.equal("A\nB\n20260101000000-one\nfalse\t9\nfalse\t9\n", r.stdout)
      -- errors after the calls are the script's (db-tool>), not the last command's
      assert.are.equal("db-tool> after the calls\n", r.stderr)
    end)

    it("resolve project commands and list every name", function()
      local dir = t.tmpdir("apinames")
      t.write(dir .. "/db/db-tool.lua", "return { commands = { twice = { options = { { '-n', arg = 'N' } },\n"
        .. "  run = function(_, o) return 2 * o.n end } } }")
      env.set("LOCAL_DIR", dir)
      assert.are.equal(42, dbtool.commands.twice { n = 21 })
      assert.are.equal(8, dbtool.commands.twice { "-n", "4" })
      local names = dbtool.command_names()
      for _, n in ipairs { "deploy", "hydrate", "patch", "test", "check", "sql", "pull_staging", "twice" } do
        local found = false
        for _, m in ipairs(names) do found = found or m == n end
        assert.is_true(found, n)
      end
    end)
  end)
end)
