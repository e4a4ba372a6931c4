-- luacheck: no max line length
-- Project extension end to end, with the built binary: module overrides (a replaced
-- subcommand, a wrapped built-in), new subcommands (db-tool.lua and module files), every
-- hook in order with its arguments, settings, broken project files, project scripts
-- (db-tool run and a shebang) and a busted spec that uses dbtool.testing.
local t = require "testutil"
local pg = require "dbtool.core.pg"

local SOURCES = {
  ["db/src/entrypoint.sql"] = [[
\echo hydrating
CREATE TABLE IF NOT EXISTS item (id int PRIMARY KEY, label text NOT NULL) INHERITS (hectic.created_at);
]],
  ["test-data.sql"] = "INSERT INTO item (id, label) VALUES (1, 'one'), (2, 'two');\n",
  ["db/test/test.sql"] = "DO $$ BEGIN ASSERT (SELECT count(*) FROM item) = 2; END $$;\n",
  ["db/migration/20260101000000-first/up.sql"] = [[
CREATE TABLE lt (v text) INHERITS (hectic.created_at);
INSERT INTO lt (v) SELECT current_setting('lock_timeout');
]],
  ["db/migration/20260101000000-first/down.sql"] = "DROP TABLE lt;\n",
  ["db/migration/20260102000000-second/up.sql"] = "CREATE TABLE m2 (x int) INHERITS (hectic.created_at);\n",
  ["db/migration/20260102000000-second/down.sql"] = "DROP TABLE m2;\n",
}

-- Every hook appends one line to $HOOK_LOG: its name and what it was given.
local HOOKS = [[
local function note(...)
  local f = assert(io.open(os.getenv("HOOK_LOG"), "a"))
  f:write(table.concat({ ... }, " "), "\n")
  f:close()
end
local function count(url, tbl)
  local c <close> = require("dbtool.pg").connect(url, { quiet = true })
  return tostring(c:exec("SELECT count(*) AS n FROM " .. tbl)[1].n)
end
return {
  hooks = {
    before_deploy = function(ctx) note("before_deploy", ctx.name, tostring(ctx.url)) end,
    after_deploy = function(ctx, cluster)
      note("after_deploy", ctx.url == cluster.url and "url=cluster" or "url?", count(ctx.url, "item"))
    end,
    before_hydrate = function(ctx) note("before_hydrate", ctx.url and "url" or "nourl") end,
    after_hydrate = function(ctx) note("after_hydrate", count(ctx.url, "item")) end,
    before_patch = function(ctx) note("before_patch", count(ctx.url, "item")) end,
    after_patch = function(ctx) note("after_patch", count(ctx.url, "item")) end,
    before_check = function(ctx) note("before_check", ctx.name) end,
    after_check = function(ctx) note("after_check", count(ctx.url, "item")) end,
    before_migrate = function(info) note("before_migrate", #info.plan.steps) end,
    before_each_migration = function(i) note("before_each_migration", i.name, i.direction, i.index .. "/" .. i.total) end,
    after_each_migration = function(i) note("after_each_migration", i.name, i.outcome) end,
    after_migrate = function(info) note("after_migrate", info.done) end,
    pull_staging_transform = {
      function(line, st)
        note("transform", st.table, tostring(st.copy), line)
        if line:find("secret", 1, true) then return false end
        return (line:gsub("@corp%.example", "@example.invalid"))
      end,
      function(line) return line .. "" end, -- chained: sees the rewritten line
    },
  },
  settings = { lock_timeout = "4s", checksum = "warn" },
}
]]

local FAKE_SSH = [[#!/bin/sh
[ "$1" = "--" ] && shift
shift
exec sh -c "$1"
]]

local function lines(s)
  local out = {}
  for l in (s or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function project(files)
  local dir = t.tmpdir("ext")
  for path, text in pairs(SOURCES) do t.write(dir .. "/" .. path, text) end
  for path, text in pairs(files or {}) do t.write(dir .. "/" .. path, text) end
  return dir
end

local function envfor(dir, extra)
  local e = { LOCAL_DIR = dir, PG_WORKING_DIR = dir .. "/pg", PG_SHARED_PRELOAD_LIBRARIES = "",
    PG_DISABLE_LOGGING = "1", DATABASE_DIR = false, MIGRATION_DIR = false, DATABASE_SOURCE = false,
    PATCH_SQL = false, PROFILE_DIR = false, PGURL = false, DB_URL = false, HECTIC_LOG = false,
    HYDRATE_LOG = false, PATCH_LOG = false, PG_LOG_PATH = false, ENVIRONMENT = false, PG_REUSE = false,
    HOOK_LOG = dir .. "/hooks.log", DB_TOOL_LUA_PATH = false, PG_PORT = "5432" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function db(dir, argv, extra, opts)
  local a = { "database" }
  for _, v in ipairs(argv) do a[#a + 1] = v end
  return t.run { argv = a, env = envfor(dir, extra), cwd = opts and opts.cwd }
end

local function stop_cluster(dir)
  t.at_exit(function() pcall(require("dbtool.cluster").stop, dir .. "/pg", { mode = "immediate" }) end)
end

describe("project extension", function()
  describe("module overrides", function()
    it("a project module replaces a built-in subcommand; --verbose names the file", function()
      local dir = project {
        ["db/lua/dbtool/cmd/test.lua"] = [[
return { name = "test", summary = "the project's own tests",
  options = { { "--fast", help = "skip slow ones" } },
  run = function(ctx, opts) print("project test fast=" .. tostring(opts.fast)); return 7 end }
]],
      }
      local r = db(dir, { "--verbose", "test", "--fast" })
      assert.are.equal(7, r.code, r.stderr)
      assert.are.equal("project test fast=true\n", r.stdout)
      assert.matches("handled by " .. dir:gsub("%p", "%%%0") .. "/db/lua/dbtool/cmd/test%.lua", r.stderr)
      r = db(dir, { "--help" })
      assert.matches("\n  test%s+the project's own tests\n", r.stdout)
      r = db(dir, { "test", "--help" })
      assert.matches("%-%-fast%s+skip slow ones", r.stdout)
      -- without the project, the built-in is back
      r = db(dir, { "--verbose", "test" }, { LOCAL_DIR = t.tmpdir("empty"), PG_WORKING_DIR = false })
      assert.matches("handled by built%-in dbtool.cmd.test", r.stderr)
    end)

    it("an override wraps the built-in it replaces (require \"dbtool.builtin.cmd.X\")", function()
      local url = t.fresh_db("wrap")
      local dir = project {
        ["db/lua/dbtool/cmd/sql.lua"] = [[
local builtin = require "dbtool.builtin.cmd.sql"
local M = setmetatable({ summary = "sql, announced" }, { __index = builtin })
function M.run(ctx, opts)
  io.stdout:write("before\n"); io.stdout:flush()
  local code = builtin.run(ctx, opts)
  io.stdout:write("after ", tostring(code), "\n")
  return code
end
return M
]],
        ["x.sql"] = "CREATE TABLE wrapped (v int);\n\\echo inside\n",
      }
      local r = db(dir, { "-u", url, "sql", dir .. "/x.sql" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "before", "inside", "after 0" }, lines(r.stdout))
      local c <close> = pg.connect(url)
      assert.is_true(c:exec("SELECT to_regclass('wrapped') IS NOT NULL AS ok")[1].ok)
      r = db(dir, { "--help" })
      assert.matches("\n  sql%s+sql, announced\n", r.stdout)
    end)

    it("a db-tool.lua command named like a built-in wraps it and keeps its options", function()
      local url = t.fresh_db("wrap2")
      local c <close> = pg.connect(url)
      c:exec("CREATE TABLE item (id int); INSERT INTO item VALUES (1), (2)")
      local dir = project {
        ["db/db-tool.lua"] = [[
return { commands = { test = function(ctx, opts)
  print("wrapped tap=" .. tostring(opts.tap))
  return require("dbtool.builtin.cmd.test").run(ctx, opts)
end } }
]],
      }
      local r = db(dir, { "-u", url, "test", "--tap" })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("^wrapped tap=true\nTAP version 13\nok 1 %- [^\n]*test%.sql:1 DO\n1%.%.1\n$", r.stdout)
      r = db(dir, { "test", "--help" })
      assert.matches("%-%-tap", r.stdout)
      c:exec("INSERT INTO item VALUES (3)") -- the built-in test now fails: its exit code comes back
      r = db(dir, { "-u", url, "test" })
      assert.are.equal(1, r.code)
    end)
  end)

  describe("new subcommands", function()
    it("from db-tool.lua and from module files, listed in database --help", function()
      local dir = project {
        ["db/db-tool.lua"] = [[
return { commands = {
  hello = { summary = "say hello (project)", usage = "database hello [--name N]",
    options = { { "-n", "--name", arg = "N", help = "who" } },
    run = function(ctx, opts) print("hello " .. (opts.name or "world") .. " from " .. ctx.name); return 0 end },
  bare = function() print("bare") end,
} }
]],
        ["db/lua/dbtool/cmd/greet.lua"] = [[
return { name = "greet", summary = "greet (module file)", run = function() print("greetings") return 0 end }
]],
      }
      local r = db(dir, { "--help" })
      assert.are.equal(0, r.code)
      assert.matches("\n  hello%s+say hello %(project%)\n", r.stdout)
      assert.matches("\n  greet%s+greet %(module file%)\n", r.stdout)
      assert.matches("\n  bare%s+%(project command%)\n", r.stdout)
      assert.matches("\n  deploy ", r.stdout) -- built-ins still listed
      r = db(dir, { "hello", "-n", "Ada" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hello Ada from hello\n", r.stdout)
      r = db(dir, { "greet" })
      assert.are.equal("greetings\n", r.stdout)
      r = db(dir, { "bare" })
      assert.are.equal(0, r.code)
      assert.are.equal("bare\n", r.stdout)
      r = db(dir, { "hello", "--help" })
      assert.matches("Usage: database hello %[%-%-name N%]", r.stdout)
      r = db(dir, { "hello", "--nope" })
      assert.are.equal(9, r.code)
      r = db(dir, { "nosuch" })
      assert.are.equal(9, r.code)
      assert.matches("unknown subcommand 'nosuch'", r.stderr)
    end)

    it("a project command that fails exits 1 naming the file, not as a db-tool bug", function()
      local dir = project {
        ["db/db-tool.lua"] = "return { commands = { boom = function() local x = nil; return x.y end } }\n",
      }
      local r = db(dir, { "boom" })
      assert.are.equal(1, r.code)
      assert.matches("db%-tool%.lua:1: command 'boom' failed: attempt to index", r.stderr)
      assert.not_matches("bug in db%-tool", r.stderr)
    end)
  end)

  describe("hooks", function()
    it("fire in order around deploy, migrations, test data pulls and check, with their arguments", function()
      local dir = project { ["db/db-tool.lua"] = HOOKS }
      stop_cluster(dir)
      local r = db(dir, { "deploy" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "before_deploy deploy nil",
        "before_hydrate url",
        "after_hydrate 0",
        "before_patch 0",
        "after_patch 2",
        "after_deploy url=cluster 2",
      }, lines(t.read(dir .. "/hooks.log")))

      os.remove(dir .. "/hooks.log")
      local url = "postgresql:///testdb?host=" .. dir .. "/pg/sock&port=5432"
      r = db(dir, { "-u", url, "migrator", "migrate", "up", "all" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "before_migrate 2",
        "before_each_migration 20260101000000-first up 1/2",
        "after_each_migration 20260101000000-first applied",
        "before_each_migration 20260102000000-second up 2/2",
        "after_each_migration 20260102000000-second applied",
        "after_migrate 2",
      }, lines(t.read(dir .. "/hooks.log")))
      -- settings.lock_timeout reached the migration transaction
      local c <close> = pg.connect(url)
      assert.are.equal("4s", c:exec("SELECT v FROM lt")[1].v)

      os.remove(dir .. "/hooks.log")
      r = db(dir, { "-u", url, "migrator", "migrate", "down", "1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "before_migrate 1",
        "before_each_migration 20260102000000-second down 1/1",
        "after_each_migration 20260102000000-second reverted",
        "after_migrate 1",
      }, lines(t.read(dir .. "/hooks.log")))

      -- settings.checksum = "warn": a changed applied migration only warns
      t.write(dir .. "/db/migration/20260101000000-first/up.sql", "SELECT 'changed';\n")
      r = db(dir, { "-u", url, "migrator", "migrate", "up", "all" })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("20260101000000%-first", r.stderr)

      -- the pull_staging transform: chained functions, false drops a line
      local staging = t.fresh_db("hookstaging")
      local s <close> = pg.connect(staging)
      s:exec([[CREATE TABLE users (id int PRIMARY KEY, email text);
        INSERT INTO users VALUES (1, 'ada@corp.example'), (2, 'secret@corp.example'), (3, 'bob@corp.example')]])
      t.write(dir .. "/bin/ssh", FAKE_SSH)
      assert(os.execute("chmod 755 " .. t.shq(dir .. "/bin/ssh")))
      os.remove(dir .. "/hooks.log")
      r = db(dir, { "pull_staging" }, { PATH = dir .. "/bin:" .. os.getenv("PATH"),
        STAGING_SSH_HOST = "staging", STAGING_DB_URL = staging, STAGING_DUMP_TABLES = "users",
        STAGING_DUMP_FLAGS = "--data-only" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        "transform public.users true 1\tada@corp.example",
        "transform public.users true 2\tsecret@corp.example",
        "transform public.users true 3\tbob@corp.example",
      }, lines(t.read(dir .. "/hooks.log")))
      local data = t.read(dir .. "/test-data.sql")
      assert.matches("\n1\tada@example%.invalid\n3\tbob@example%.invalid\n\\%.\n", data)
      assert.not_matches("secret", data)
      assert.not_matches("corp%.example", data)

      -- check: its own hooks around hydrate and patch in a throw-away cluster
      os.remove(dir .. "/hooks.log")
      t.write(dir .. "/test-data.sql", "INSERT INTO item (id, label) VALUES (1, 'one');\n")
      r = db(dir, { "check" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "before_check check", "before_hydrate url", "after_hydrate 0", "before_patch 0",
        "after_patch 1", "after_check 1" }, lines(t.read(dir .. "/hooks.log")))
      r = db(dir, { "cleanup" })
      assert.are.equal(0, r.code, r.stderr)
    end)

    it("a failing hook stops the command (exit 1, named) before the next step", function()
      local url = t.fresh_db("hookfail")
      local dir = project {
        ["db/db-tool.lua"] = [[
return { hooks = {
  before_patch = function() error("no patching today") end,
  after_patch = function() error("must not run") end,
} }
]],
      }
      local r = db(dir, { "-u", url, "patch" })
      assert.are.equal(1, r.code)
      assert.matches("db%-tool%.lua:2: hook before_patch failed: no patching today", r.stderr)
      assert.not_matches("must not run", r.stderr)
      assert.not_matches("bug in db%-tool", r.stderr)
      local c <close> = pg.connect(url)
      assert.is_false(c:exec("SELECT to_regclass('item') IS NOT NULL AS ok")[1].ok) -- nothing applied
    end)
  end)

  describe("settings", function()
    it("log_level sets the default level; HECTIC_LOG and --verbose win", function()
      local url = t.fresh_db("loglevel")
      local dir = project { ["db/db-tool.lua"] = "return { settings = { log_level = 'warn' } }\n" }
      local r = db(dir, { "-u", url, "hydrate" }, { HYDRATE_LOG = dir .. "/h.log" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
      r = db(dir, { "-u", url, "hydrate" }, { HYDRATE_LOG = dir .. "/h.log", HECTIC_LOG = "info" })
      assert.matches("hydrate done", r.stderr)
      r = db(dir, { "--verbose", "-u", url, "hydrate" }, { HYDRATE_LOG = dir .. "/h.log" })
      assert.matches("handled by built%-in", r.stderr)
    end)
  end)

  describe("a broken project file", function()
    it("is an error at file:line, exit 1, and nothing runs", function()
      local dir = project {
        ["db/db-tool.lua"] = "return {\n  hooks = {\n    before_deploy = function(ctx)\n  },\n}\n",
      }
      local r = db(dir, { "deploy" })
      assert.are.equal(1, r.code)
      assert.matches(dir:gsub("%p", "%%%0") .. "/db/db%-tool%.lua:4: ", r.stderr)
      assert.is_nil(require("posix.sys.stat").stat(dir .. "/pg")) -- no cluster was created
      -- help still works, with a warning
      r = db(dir, { "--help" })
      assert.are.equal(0, r.code)
      assert.matches("ignoring the project file: .*db%-tool%.lua:4:", r.stderr)
      r = db(dir, { "deploy", "--help" })
      assert.are.equal(0, r.code)
      assert.matches("Usage: database deploy", r.stdout)
    end)

    it("semantic problems point at the line too (unknown hook, bad setting, runtime error)", function()
      for src, want in pairs {
        ["return {\n hooks = {\n  before_deplyo = print } }\n"] = { 3, "unknown hook 'before_deplyo'" },
        ["return {\n settings = {\n  lock_timeout = 'soon' } }\n"] = { 3, "setting lock_timeout" },
        ["local cfg = nil\nreturn cfg.hooks\n"] = { 2, "attempt to index" },
      } do
        local dir = project { ["db/db-tool.lua"] = src }
        local r = db(dir, { "migrator", "migrate", "up", "all" }, { DB_URL = "postgresql:///nowhere" })
        assert.are.equal(1, r.code, src)
        assert.matches("db%-tool%.lua:" .. want[1] .. ": .*" .. want[2], r.stderr)
      end
    end)

    it("a broken override module is an error at file:line (exit 1), not a bug", function()
      local dir = project { ["db/lua/dbtool/cmd/deploy.lua"] = "return {\n  name = 'deploy',\n  run = function(\n}\n" }
      local r = db(dir, { "deploy" })
      assert.are.equal(1, r.code)
      assert.matches("db/lua/dbtool/cmd/deploy%.lua:4: ", r.stderr)
      assert.not_matches("bug in db%-tool", r.stderr)
      assert.is_nil(require("posix.sys.stat").stat(dir .. "/pg"))
      r = db(dir, { "--help" }) -- listed commands skip it, with a warning
      assert.are.equal(0, r.code)
      assert.matches("deploy%.lua:4:", r.stderr)
    end)
  end)

  describe("project scripts", function()
    local SCRIPT = [[
local dbtool = require "dbtool"
local url = arg[1]
local conn <close> = dbtool.connect(url)
conn:exec("CREATE TABLE IF NOT EXISTS script_runs (n int)")
conn:exec("INSERT INTO script_runs VALUES ($1)", tonumber(arg[2]))
local rows = conn:exec("SELECT sum(n) AS s FROM script_runs")
print("sum " .. rows[1].s .. " args " .. #arg .. " " .. select("#", ...))
local code = dbtool.commands.sql { "-c", "SELECT 1", url = url }
if arg[3] == "fail" then dbtool.commands.nosuch {} end
return code + tonumber(arg[4] or "0")
]]

    it("db-tool run FILE: the API, arg and ..., the return value as exit code, errors reported", function()
      local url = t.fresh_db("script")
      local dir = project { ["scripts/s.lua"] = SCRIPT }
      local r = t.run { argv = { "db-tool", "run", dir .. "/scripts/s.lua", url, "2" }, env = envfor(dir) }
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("^sum 2 args 2 2\n", r.stdout)
      r = t.run { argv = { "db-tool", "run", dir .. "/scripts/s.lua", url, "3", "ok", "5" }, env = envfor(dir) }
      assert.are.equal(5, r.code, r.stderr)
      assert.matches("^sum 5 ", r.stdout)
      r = t.run { argv = { "db-tool", "run", dir .. "/scripts/s.lua", url, "1", "fail" }, env = envfor(dir) }
      assert.are.equal(9, r.code)
      assert.matches("unknown subcommand 'nosuch'", r.stderr)
    end)

    it("dbtool.project.use(dir) makes another directory the project of a script", function()
      local dir = project {
        ["db/db-tool.lua"] = "return { commands = { hello = function() print('hello from the project') end } }\n",
        ["db/lua/dbtool/cmd/greet.lua"] = "return { name = 'greet', run = function() print('greet override') end }\n",
      }
      local script = t.write(t.tmpdir("elsewhere") .. "/use.lua", [[
local dbtool = require "dbtool"
assert(not pcall(dbtool.commands.hello, {}))      -- not the project yet
local p = dbtool.project.use(arg[1])
assert(p and p.commands.hello)
assert(dbtool.commands.hello {} == 0)
assert(dbtool.commands.greet {} == 0)
print(dbtool.env.get("LOCAL_DIR") == arg[1], dbtool.env.database_dir() == arg[1] .. "/db")
]])
      local r = t.run { argv = { "db-tool", "run", script, dir }, cwd = "/",
        env = envfor(dir, { LOCAL_DIR = false, PG_WORKING_DIR = false }) }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hello from the project\ngreet override\ntrue\ttrue\n", r.stdout)
    end)

    it("a #!/usr/bin/env db-tool script runs with the same API", function()
      local url = t.fresh_db("shebang")
      local dir = project { ["scripts/s"] = "#!/usr/bin/env db-tool\n" .. SCRIPT }
      assert(os.execute("chmod 755 " .. t.shq(dir .. "/scripts/s")))
      local r = t.run { argv = { dir .. "/scripts/s", url, "4" },
        env = envfor(dir, { PATH = t.build .. ":" .. os.getenv("PATH") }) }
      assert.are.equal(0, r.code, r.stderr) -- lua semantics: the return value is ignored
      assert.matches("^sum 4 args 2 2\n", r.stdout)
    end)
  end)

  describe("busted specs with dbtool.testing", function()
    it("get a cluster per suite and a fresh database per test, cleaned up even when a test fails", function()
      local dir = project {
        ["spec/item_spec.lua"] = [[
local testing = require "dbtool.testing"
describe("items", function()
  local db = testing.suite { patch = true }
  it("sees the test data", function()
    db:assert_rows("SELECT id, label FROM item ORDER BY id", { { 1, "one" }, { id = 2, label = "two" } })
  end)
  it("changes only its own database", function()
    db:exec("DELETE FROM item")
    assert.are.equal(0, db:count("item"))
  end)
  it("starts again from the template", function()
    assert.are.equal(2, db:value("SELECT count(*) FROM item"))
  end)
  it("reports a failing assertion", function()
    db:assert_rows("SELECT label FROM item ORDER BY id", { { "one" }, { "zwei" } })
  end)
end)
]],
      }
      -- a second suite whose project does not deploy: its tests error, with the SQL error's place
      local broken = project { ["db/src/entrypoint.sql"] = "SELECT 1;\nSELECT * FROM nowhere;\n" }
      t.write(dir .. "/spec/broken_spec.lua", ([[
local testing = require "dbtool.testing"
describe("broken", function()
  local db = testing.suite { dir = %q }
  it("never runs", function() assert(db) end)
end)
]]):format(broken))
      local tmp = t.tmpdir("busted")
      local r = t.run { argv = { "busted", "--lua=" .. t.bin, "-o", "TAP", "spec" }, cwd = dir,
        env = envfor(dir, { TMPDIR = tmp, LOCAL_DIR = false, PG_WORKING_DIR = false }), timeout = 300 }
      assert.are.equal(1, r.code, r.stdout .. r.stderr)
      assert.matches("\nok %d %- items sees the test data", r.stdout)
      assert.matches("\nok %d %- items changes only its own database", r.stdout)
      assert.matches("\nok %d %- items starts again from the template", r.stdout)
      assert.matches("\nnot ok %d %- items reports a failing assertion", r.stdout)
      assert.matches("spec/item_spec%.lua:15: rows of: SELECT label FROM item ORDER BY id\n# expected: "
        .. "{ { \"one\" }, { \"zwei\" } }\n# actual:   { { \"one\" }, { \"two\" } }", r.stdout)
      assert.matches("not ok %d %- broken lazy_setup", r.stdout)
      assert.not_matches("never runs", r.stdout)
      assert.matches("entrypoint%.sql:2:15: relation \"nowhere\" does not exist", r.stdout .. r.stderr)
      -- everything the suite created is gone: no directory, no server left running
      local left = t.run { argv = { "sh", "-c", "ls -A " .. t.shq(tmp) } }
      assert.are.equal("", left.stdout)
      local ps = t.run { argv = { "sh", "-c", "ps -eo args | grep -F " .. t.shq(tmp) .. " | grep -v grep || true" } }
      assert.are.equal("", ps.stdout)
    end)
  end)
end)
