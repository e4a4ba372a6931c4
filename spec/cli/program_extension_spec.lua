-- luacheck: no max line length
-- Every program is a group of command modules a project overrides, wraps or extends the way
-- it does `database`'s (README "Extending"): migrator and rickdb subcommands from
-- ${DATABASE_DIR}/lua/dbtool/{migrator,rickdb}/cmd/ and from db-tool.lua, `database
-- secrets` verbs, and `database migrator` going through the same modules as `migrator`.
-- On SQLite: no server needed.
local t = require "testutil"

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function project(files)
  local dir = t.tmpdir("pext")
  for path, text in pairs(files) do t.write(dir .. "/" .. path, text) end
  return dir
end

local function run(dir, argv, extra)
  local env = { LOCAL_DIR = dir, DATABASE_DIR = false, MIGRATION_DIR = false, DB_URL = "sqlite://" .. dir
    .. "/m.db", PGURL = false, HECTIC_LOG = false, NO_COLOR = "1", RICKDB_CONFIG = false, DB_TOOL_LUA_PATH = false,
    HECTIC_NAMESPACE = false }
  for k, v in pairs(extra or {}) do env[k] = v end
  return t.run { argv = argv, cwd = dir, env = env }
end

local MIGRATIONS = {
  ["db/migration/20260101000000-one/up.sql"] = "CREATE TABLE one (x);\n",
  ["db/migration/20260101000000-one/down.sql"] = "DROP TABLE one;\n",
  ["db/migration/20260102000000-two/up.sql"] = "CREATE TABLE two (x);\n",
  ["db/migration/20260102000000-two/down.sql"] = "DROP TABLE two;\n",
}

local function with(files, more)
  local all = {}
  for k, v in pairs(files) do all[k] = v end
  for k, v in pairs(more or {}) do all[k] = v end
  return all
end

describe("migrator commands of a project", function()
  it("a wrapped `status` changes both `migrator status` and `database migrator status`", function()
    local dir = project(with(MIGRATIONS, {
      ["db/lua/dbtool/migrator/cmd/status.lua"] = [[
local builtin = require "dbtool.builtin.migrator.cmd.status"
local M = setmetatable({ summary = "status, with a banner" }, { __index = builtin })
M.options = { { "--json", help = "machine-readable" }, { "--banner", help = "say who we are" } }
function M.run(ctx, opts)
  io.stdout:write("== project status (", ctx.path, ") banner=", tostring(opts.banner), "\n")
  return builtin.run(ctx, opts)
end
return M
]] }))
    local r = run(dir, { "migrator", "migrate", "up" })
    assert.are.equal(0, r.code, r.stderr)
    for _, argv in ipairs { { "migrator", "status", "--banner" }, { "database", "migrator", "status", "--banner" },
      { "migrator", "fetch", "--banner" } } do
      r = run(dir, argv)
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("^== project status %(migrator status%) banner=true\n", r.stdout)
      has(r.stdout, "applied   20260101000000-one")
      has(r.stdout, "pending   20260102000000-two")
    end
    -- its help lists the new option; the group's help its summary
    r = run(dir, { "migrator", "status", "--help" })
    has(r.stdout, "--banner")
    r = run(dir, { "migrator", "--help" })
    has(r.stdout, "status, with a banner")
    -- --verbose (database's) names the file that handled it
    r = run(dir, { "migrator", "status", "--json" })
    assert.matches("^== project status %(migrator status%) banner=nil\n{", r.stdout)
  end)

  it("adds commands from module files and from db-tool.lua; a db-tool.lua command wraps a built-in", function()
    local dir = project(with(MIGRATIONS, {
      ["db/lua/dbtool/migrator/cmd/baseline.lua"] = [[
return {
  name = "baseline", summary = "mark every migration applied (module file)",
  options = { { "--upto", arg = "NAME" } },
  run = function(ctx, opts) io.stdout:write("baseline upto=", tostring(opts.upto), " dir=",
    require("dbtool.migrator.common").migration_dir(ctx.globals), "\n") return 0 end,
}
]],
      ["db/db-tool.lua"] = [[
return { commands = {
  ["migrator count"] = { summary = "count migrations on disk (db-tool.lua)",
    run = function(ctx) local common = require "dbtool.migrator.common"
      io.stdout:write(#common.names(common.migration_dir(ctx.globals)), "\n") return 3 end },
  ["migrator list"] = function(ctx, opts)
    io.stdout:write("wrapped list raw=", tostring(opts.raw), "\n")
    return require("dbtool.builtin.migrator.cmd.list").run(ctx, opts)
  end,
} }
]] }))
    local r = run(dir, { "migrator", "baseline", "--upto", "x" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("baseline upto=x dir=" .. dir .. "/db/migration\n", r.stdout)
    r = run(dir, { "database", "migrator", "-d", dir .. "/elsewhere", "baseline" })
    assert.are.equal("baseline upto=nil dir=" .. dir .. "/elsewhere\n", r.stdout)
    r = run(dir, { "migrator", "count" })
    assert.are.equal(3, r.code) -- the command's own exit code
    assert.are.equal("2\n", r.stdout)
    r = run(dir, { "migrator", "list", "-r" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("wrapped list raw=true\n20260101000000-one\n20260102000000-two\n", r.stdout)
    r = run(dir, { "migrator", "--help" })
    has(r.stdout, "baseline")
    has(r.stdout, "mark every migration applied (module file)")
    has(r.stdout, "count migrations on disk (db-tool.lua)")
    -- a typo of a project command is suggested like a built-in one
    r = run(dir, { "migrator", "baseln" })
    assert.are.equal(9, r.code)
    has(r.stderr, "did you mean 'baseline'?")
  end)
end)

local RICK = {
  ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n\n[db_other]\nengine = "sqlite"\ndb_file = "o.db"\n',
  ["m/001.sql"] = "CREATE TABLE a (x INTEGER);\n",
  ["m/002.sql"] = "CREATE TABLE b (x INTEGER);\n",
}

describe("rickdb commands of a project", function()
  it("a wrapped `migrate` and new commands (module file and db-tool.lua)", function()
    local dir = project(with(RICK, {
      ["db/lua/dbtool/rickdb/cmd/migrate.lua"] = [[
local builtin = require "dbtool.builtin.rickdb.cmd.migrate"
local M = setmetatable({}, { __index = builtin })
function M.run(ctx, opts)
  io.stdout:write("before migrate of ", tostring(ctx.globals.database or "db"), "\n")
  local code = builtin.run(ctx, opts)
  io.stdout:write("after migrate\n")
  return code
end
return M
]],
      ["db/lua/dbtool/rickdb/cmd/count.lua"] = [[
return { name = "count", summary = "count applied migrations", usage = "rickdb [database] count",
  run = function(ctx, opts)
    local common = require "dbtool.rickdb.common"
    common.setup(ctx, opts, 0)
    local s <close> = common.open_store(ctx, false)
    io.stdout:write(#s:list(), " in ", ctx.name_db, "\n")
    return 0
  end }
]],
      ["db/db-tool.lua"] = [[
return { commands = { ["rickdb hello"] = { summary = "say hello (db-tool.lua)", usage = "rickdb hello",
  run = function() io.stdout:write("hello\n") end } } }
]] }))
    assert.are.equal(0, run(dir, { "rickdb", "init" }).code)
    local r = run(dir, { "rickdb", "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("before migrate of db\nExecuting 001.sql... success\nExecuting 002.sql... success\n"
      .. "after migrate\n", r.stdout)
    assert.are.equal(0, run(dir, { "rickdb", "other", "init" }).code)
    r = run(dir, { "rickdb", "other", "migrate", "m" })
    assert.matches("^before migrate of other\n", r.stdout)
    r = run(dir, { "rickdb", "count" })
    assert.are.equal("2 in db\n", r.stdout)
    r = run(dir, { "rickdb", "other", "count" })
    assert.are.equal("2 in other\n", r.stdout)
    r = run(dir, { "rickdb", "hello" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("hello\n", r.stdout)
    r = run(dir, { "rickdb", "help" })
    has(r.stdout, "count\tcount applied migrations")
    has(r.stdout, "hello\tsay hello (db-tool.lua)")
    r = run(dir, { "rickdb", "help", "count" })
    assert.are.equal("count applied migrations\nUsage: rickdb [database] count\n", r.stdout)
  end)
end)

describe("database secrets verbs of a project", function()
  it("a verb is replaced, wrapped or added like a command", function()
    local dir = project {
      [".env.test"] = "A=1\nB=2\n",
      ["db/lua/dbtool/cmd/secrets/list.lua"] = [[
local builtin = require "dbtool.builtin.cmd.secrets.list"
local M = setmetatable({}, { __index = builtin })
function M.run(ctx, opts)
  io.stdout:write("keys of ", tostring(opts.file), ":\n")
  return builtin.run(ctx, opts)
end
return M
]],
      ["db/db-tool.lua"] = [[
return { commands = { ["secrets rotate"] = { summary = "rotate the key (project)",
  run = function(ctx) io.stdout:write("rotating in ", ctx.path, "\n") return 0 end } } }
]],
    }
    local r = run(dir, { "database", "secrets", "list", ".env.test" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("keys of .env.test:\nA\nB\n", r.stdout)
    r = run(dir, { "database", "secrets", "rotate" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("rotating in database secrets rotate\n", r.stdout)
    r = run(dir, { "database", "secrets", "--help" })
    has(r.stdout, "rotate")
    has(r.stdout, "rotate the key (project)")
    r = run(dir, { "database", "secrets", "rotat" })
    assert.are.equal(9, r.code)
    has(r.stderr, "secrets subcommand rotat does not exist")
    has(r.stderr, "did you mean 'rotate'?")
  end)
end)
