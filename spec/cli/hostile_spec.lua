-- Hostile inputs (issue 20), one suite: every case runs the built binary as a user would and
-- must end within 10 s (a wall-clock guard kills the child and fails the case: a timeout,
-- not a timed test), with the documented exit code and a clear message — never 13, the code
-- of a db-tool bug — and a peak RSS under 200 MB, measured from the child's rusage (wait4,
-- the `maxrss` of a dbtool.core.proc process).
--
-- Input kinds: db-tool.lua and project modules (the project's code: exit 1), rickdb.toml
-- (rickdb's code for its configuration file, 255), migration directory names, dotenv files
-- and psql scripts (exit 3 for a bad input file).
local t = require "testutil"

local LIMIT_S = 10
local LIMIT_KB = 200 * 1024

--- Run argv (t.run options) under the guard; returns t.run's result.
local function hostile(opts)
  opts.timeout = LIMIT_S
  opts.env = opts.env or {}
  opts.env.NO_COLOR = "1"
  -- under `make asan`: freed memory waits in ASan's quarantine (256 MB by default), which is
  -- not db-tool's; keep it small so that the bound still means something there
  local asan = os.getenv("ASAN_OPTIONS")
  opts.env.ASAN_OPTIONS = (asan and asan ~= "" and (asan .. ":") or "") .. "quarantine_size_mb=8"
  local ok, r = pcall(t.run, opts)
  if not ok then
    error(string.format("did not end within %d s (killed): %s\n%s", LIMIT_S,
      table.concat(opts.argv, " "), tostring(r)), 2)
  end
  assert(r.maxrss, "no rusage for the child")
  assert(r.maxrss < LIMIT_KB, string.format("peak RSS %.1f MB >= 200 MB", r.maxrss / 1024))
  assert(r.code ~= 13, "exit 13 (a db-tool bug):\n" .. r.stderr)
  return r
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text:sub(1, 3000))
end

-- a message quoting a hostile input is shown shortened
local function short(r)
  assert(#r.stderr < 16 * 1024, "stderr is " .. #r.stderr .. " bytes: messages must be shortened")
  has(r.stderr, "more bytes)")
end

--- A project directory with `files` (relative path → content); returns its path.
local function project(files)
  local dir = t.tmpdir("hostile")
  for path, content in pairs(files) do t.write(dir .. "/" .. path, content) end
  return dir
end

local function database(dir, ...)
  return hostile { argv = { "database", ... }, env = { LOCAL_DIR = dir, HECTIC_LOG = false } }
end

-- allocates 1 MB strings until something stops it
local GROW = "local t = {}\nfor i = 1, math.huge do t[i] = string.rep('x', 1000000) .. i end\n"

describe("hostile input", function()
  describe("db-tool.lua (the project's code: exit 1 at file:line)", function()
    it("an error with a multi-megabyte message: --help still works, the message is shortened", function()
      local dir = project { ["db/db-tool.lua"] = "error(string.rep('x', 8 * 1024 * 1024))\n" }
      local r = database(dir, "--help")
      assert.are.equal(0, r.code)
      has(r.stdout, "Usage: database")
      has(r.stderr, "ignoring the project file")
      short(r)
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:1: xxxx")
      short(r)
    end)

    it("allocating without bound while it loads: out of its memory budget, exit 1", function()
      local dir = project { ["db/db-tool.lua"] = GROW }
      local r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua: ran out of memory")
      has(r.stderr, "hint: project code may grow")
    end)

    it("allocating without bound in a command: settings.memory_limit bounds it", function()
      local dir = project { ["db/db-tool.lua"] = "return { settings = { memory_limit = '64MB' },\n"
        .. "commands = { grow = function()\n" .. GROW .. "end } }\n" }
      local r = database(dir, "grow")
      assert.are.equal(1, r.code)
      has(r.stderr, "command 'grow' failed: ran out of memory")
      -- a wrong limit is a problem of the file, at its line
      dir = project { ["db/db-tool.lua"] = "return {\n settings = { memory_limit = 'lots' } }\n" }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:2: setting memory_limit: must be a size")
    end)

    it("tables whose metamethods raise are read raw: the commands work", function()
      local dir = project { ["db/db-tool.lua"] = [[
local boom = function() error("metamethod called") end
local evil = { __index = boom, __newindex = boom, __pairs = boom, __len = boom, __call = boom,
  __tostring = boom, __eq = boom, __concat = boom, __metatable = "locked" }
local hello = setmetatable({ summary = "says hi", run = function() print("hi"); return 0 end }, evil)
return setmetatable({ commands = setmetatable({ hello = hello }, evil),
  settings = setmetatable({ checksum = "warn" }, evil) }, evil)
]] }
      local r = database(dir, "hello")
      assert.are.equal(0, r.code)
      assert.are.equal("hi\n", r.stdout)
      r = database(dir, "--help")
      assert.are.equal(0, r.code)
      has(r.stdout, "says hi")
    end)

    it("a command returning a string: an error message, exit 1 at the command's line", function()
      local dir = project { ["db/db-tool.lua"] = "return { commands = {\n"
        .. "  seed = function() return 'no seed data here' end } }\n" }
      local r = database(dir, "seed")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:2: command 'seed' failed: no seed data here")
      dir = project { ["db/db-tool.lua"] =
        "return { commands = {\n\n  seed = function() return {} end } }\n" }
      r = database(dir, "seed")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:3: command 'seed' returned an empty table "
        .. "(expected nothing, true")
      dir = project { ["db/db-tool.lua"] = "return { commands = { seed = function() return 7 end } }\n" }
      assert.are.equal(7, database(dir, "seed").code)
    end)

    it("raising a table, nil or an object whose __tostring fails: rendered, at the raising line", function()
      local dir = project { ["db/db-tool.lua"] = [[
return { commands = {
  tbl = function() error({ code = 5, reason = "nope", [1] = true }) end,
  none = function()
    error(nil) end,
  obj = function() error(setmetatable({ why = "x" }, { __tostring = function() while true do end end })) end,
  named = function() error(setmetatable({}, { __tostring = function() return "a custom error" end })) end,
} }
]] }
      local file = dir .. "/db/db-tool.lua"
      local r = database(dir, "tbl")
      assert.are.equal(1, r.code)
      has(r.stderr, file .. ":2: command 'tbl' failed: raised a table "
        .. "{ [1] = true, code = 5, reason = \"nope\" }")
      r = database(dir, "none")
      assert.are.equal(1, r.code)
      has(r.stderr, file .. ":4: command 'none' failed: raised nil (an error without a message)")
      r = database(dir, "obj") -- a __tostring that never returns is given up on
      assert.are.equal(1, r.code)
      has(r.stderr, file .. ":5: command 'obj' failed: raised a table { why = \"x\" }")
      r = database(dir, "named")
      assert.are.equal(1, r.code)
      has(r.stderr, file .. ":6: command 'named' failed: raised a custom error")
      assert.is_nil(r.stderr:find("table: 0x", 1, true))
    end)

    it("an error raised in a project object's __gc is reported, exit 1", function()
      local dir = project { ["db/db-tool.lua"] = [[
local kept = setmetatable({}, { __gc = function() error("finalizer at exit") end })
return { commands = {
  drop = function()
    setmetatable({}, { __gc = function() error("finalizer of a dropped object") end })
    return 0
  end,
  keep = function() return kept and 0 end,
} }
]] }
      local r = database(dir, "drop")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:4: a __gc metamethod (finalizer) failed: "
        .. "finalizer of a dropped object")
      r = database(dir, "keep") -- finalized when the Lua state closes
      assert.are.equal(1, r.code)
      has(r.stderr, "finalizer at exit")
    end)

    it("not a regular file, too large, a huge token, deep nesting: exit 1, file named", function()
      local stat = require "posix.sys.stat"
      local dir = project {}
      t.mkdir_p(dir .. "/db")
      assert(stat.mkfifo(dir .. "/db/db-tool.lua", 384)) -- nobody ever writes to it
      local r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua: is not a regular file")
      dir = project { ["db/db-tool.lua"] = "return {}\n--" .. string.rep("x", 5 * 1024 * 1024) }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, "more than a project file may be")
      dir = project { ["db/db-tool.lua"] = "return {\n x = '" .. string.rep("y", 3 * 1024 * 1024) .. "\n}" }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/db-tool.lua:2: unfinished string")
      short(r)
      dir = project { ["db/db-tool.lua"] = "return " .. string.rep("{", 100000) }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, "db-tool.lua: the code is nested too deeply to be parsed")
      dir = project { ["db/db-tool.lua"] = "return { [string.rep('k', 5000000)] = 1 }" }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, "unknown key 'kkkk")
      short(r)
      dir = project { ["db/db-tool.lua"] = "return string.rep('s', 5000000)" }
      r = database(dir, "deploy")
      assert.are.equal(1, r.code)
      has(r.stderr, "db-tool.lua must return a table, not ssss")
      short(r)
    end)

    it("a project module that allocates without bound or raises a table: exit 1 naming it", function()
      local dir = project { ["db/lua/dbtool/cmd/grow.lua"] = GROW,
        ["db/lua/dbtool/cmd/odd.lua"] = "error({ code = 3 })" }
      local r = database(dir, "grow")
      assert.are.equal(1, r.code)
      has(r.stderr, "module dbtool.cmd.grow: ran out of memory")
      r = database(dir, "odd")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/db/lua/dbtool/cmd/odd.lua:1: module dbtool.cmd.odd: raised a table { code = 3 }")
    end)
  end)

  describe("project scripts (db-tool run: the project's code, exit 1)", function()
    it("a string returned is an error message; a table raised or returned is rendered", function()
      local dir = project { ["s/str.lua"] = "return 'the deploy target is missing'\n",
        ["s/tbl.lua"] = "error({ code = 7, why = 'x' })\n", ["s/ret.lua"] = "return {}\n",
        ["s/big.lua"] = "return 300\n", ["s/ok.lua"] = "return 7\n" }
      local function run(f) return hostile { argv = { "db-tool", "run", dir .. "/s/" .. f } } end
      local r = run("str.lua")
      assert.are.equal(1, r.code)
      has(r.stderr, dir .. "/s/str.lua: the script failed: the deploy target is missing")
      r = run("tbl.lua")
      assert.are.equal(1, r.code)
      has(r.stderr, "(error object is a table { code = 7, why = \"x\" })")
      r = run("ret.lua")
      assert.are.equal(1, r.code)
      has(r.stderr, "the script returned an empty table")
      r = run("big.lua")
      assert.are.equal(1, r.code)
      has(r.stderr, "the script returned a number (300)")
      assert.are.equal(7, run("ok.lua").code)
    end)

    it("allocating without bound: stopped at the project's memory_limit, exit 1", function()
      local dir = project { ["db/db-tool.lua"] = "return { settings = { memory_limit = '64MB' } }\n",
        ["grow.lua"] = GROW }
      local r = hostile { argv = { "db-tool", "run", "grow.lua" }, cwd = dir, env = { LOCAL_DIR = dir } }
      assert.are.equal(1, r.code)
      has(r.stderr, "the script ran out of memory")
    end)
  end)

  describe("rickdb.toml (rickdb's configuration error, exit 255)", function()
    local function rickdb(dir, ...)
      return hostile { argv = { "rickdb", ... }, cwd = dir, env = { RICKDB_CONFIG = false } }
    end
    local HEAD = "[db]\nengine = 'sqlite'\ndb_file = 'x.db'\n"

    it("a huge file is refused before it is parsed", function()
      local comment = "# " .. string.rep("c", 98) .. "\n"
      local dir = project { ["rickdb.toml"] = HEAD .. string.rep(comment, 200000) }
      local r = rickdb(dir, "list")
      assert.are.equal(255, r.code)
      has(r.stderr, "rickdb.toml is larger than a configuration file may be (1048576 bytes)")
    end)

    it("deep nesting, a huge key and many keys end with a clear error", function()
      local dir = project { ["rickdb.toml"] = HEAD .. "x = " .. string.rep("[", 100000) }
      local r = rickdb(dir, "list")
      assert.are.equal(255, r.code)
      has(r.stderr, "rickdb.toml:4:")
      has(r.stderr, "nested too deeply")
      dir = project { ["rickdb.toml"] = HEAD .. string.rep("k", 900000) .. " = 1\n" }
      r = rickdb(dir, "list")
      assert.are.equal(253, r.code) -- rickdb: bad engine parameters
      has(r.stderr, "at rickdb.toml:4:1") -- the key's line, not the section's
      has(r.stderr, "'kkkk")
      short(r)
      local keys = {}
      for i = 1, 40000 do keys[i] = "[t" .. i .. "]\nk = 'v'" end
      local deep = "[" .. string.rep("a.", 20000) .. "a]\n"
      dir = project { ["rickdb.toml"] = HEAD .. deep .. table.concat(keys, "\n") }
      r = rickdb(dir, "list")
      assert.are.equal(252, r.code) -- parsed: no migration table yet (sqlite file absent)
    end)
  end)

  describe("migration directory names", function()
    local function put(path, content)
      local f = assert(io.open(path, "wb"))
      f:write(content)
      f:close()
    end

    it("thousands of entries, non-UTF-8 and very long names: listed, applied or refused clearly", function()
      local stat = require "posix.sys.stat"
      local mig = t.tmpdir("hostile-mig") .. "/migration"
      assert(stat.mkdir(mig) == 0)
      for i = 1, 2000 do
        local m = string.format("%s/%014d-m%d", mig, 20240101000000 + i, i)
        assert(stat.mkdir(m) == 0)
        put(m .. "/up.sql", "select 1;\n")
      end
      local long = mig .. "/20250101000001-" .. string.rep("a", 240)
      assert(stat.mkdir(long) == 0)
      put(long .. "/up.sql", "create schema long_one;\n")
      put(long .. "/down.sql", "drop schema long_one;\n")
      local env = { MIGRATION_DIR = mig, DB_URL = false }
      local r = hostile { argv = { "migrator", "list" }, env = env }
      assert.are.equal(0, r.code)
      has(r.stdout, "20240101002000-m2000")
      has(r.stdout, "20250101000001-aaaa")
      env.DB_URL = t.fresh_db("hostile_mig")
      r = hostile { argv = { "migrator", "init" }, env = env }
      assert.are.equal(0, r.code, r.stderr)
      r = hostile { argv = { "migrator", "migrate", "up", "all" }, env = env }
      assert.are.equal(0, r.code, r.stderr:sub(-3000))
      local conn <close> = t.connect(env.DB_URL)
      assert.are.equal(2001, conn:exec("select count(*)::int as n from hectic.migration")[1].n)
      -- a name that is not UTF-8 cannot be stored in hectic.migration: refused before running
      local odd = mig .. "/20250101000002-caf\xe9\xff"
      assert(stat.mkdir(odd) == 0)
      put(odd .. "/up.sql", "create schema odd_one;\n")
      r = hostile { argv = { "migrator", "migrate", "up", "all" }, env = env }
      assert.are.equal(3, r.code)
      has(r.stderr, "migration name 20250101000002-caf\\xE9\\xFF is not valid UTF-8")
      local rows = conn:exec("select count(*)::int as n from pg_namespace where nspname = 'odd_one'")
      assert.are.equal(0, rows[1].n)
    end)
  end)

  describe("migration directory names: a long one through status and migrate down all", function()
    it("status prints it whole, down all reverts it (the original said 'unknown migration: 0')", function()
      local mig = t.tmpdir("hostile-long") .. "/migration"
      local name = "20250101000001-" .. string.rep("b", 240)
      t.write(mig .. "/" .. name .. "/up.sql", "create schema long_two;\n")
      t.write(mig .. "/" .. name .. "/down.sql", "drop schema long_two;\n")
      local env = { MIGRATION_DIR = mig, DB_URL = t.fresh_db("hostile_long") }
      assert.are.equal(0, hostile({ argv = { "migrator", "init" }, env = env }).code)
      assert.are.equal(0, hostile({ argv = { "migrator", "migrate", "up", "all" }, env = env }).code)
      local r = hostile { argv = { "migrator", "status" }, env = env }
      assert.are.equal(0, r.code, r.stderr)
      has(r.stdout, name)
      r = hostile { argv = { "migrator", "migrate", "down", "all" }, env = env }
      assert.are.equal(0, r.code, r.stderr)
      has(r.stderr, "successfully migrated down to clean state")
      local conn <close> = t.connect(env.DB_URL)
      assert.are.equal(0, conn:exec("select count(*)::int as n from hectic.migration")[1].n)
    end)
  end)

  describe("dotenv files (exit 3 at file:line[:col], nothing sent)", function()
    local function hydrate(dir, url, file)
      return hostile { argv = { "database", "hydrate" }, env = { LOCAL_DIR = dir, HECTIC_LOG = false,
        PGURL = url, HECTIC_DOTENV_FILE = dir .. "/" .. file } }
    end

    it("values that expand each other exponentially stop at the expansion output limit", function()
      local lines = { "# db-tool: expand", "A=" .. string.rep("x", 64) }
      for i = 1, 60 do
        local prev = i == 1 and "A" or ("V" .. (i - 1))
        lines[#lines + 1] = string.format("V%d=${%s}${%s}", i, prev, prev)
      end
      local dir = project { ["db/src/entrypoint.sql"] = "select 1;\n",
        [".env.bomb"] = table.concat(lines, "\n") }
      local url = t.fresh_db("hostile")
      local r = hydrate(dir, url, ".env.bomb")
      assert.are.equal(3, r.code, r.stderr)
      has(r.stderr, ".env.bomb:20:5: invalid dotenv: expanding V17 in the value of V18 goes beyond "
        .. "16777216 bytes")
      local c <close> = t.connect(url)
      assert.is_nil(c:exec("select to_regnamespace('hectic')::text as n")[1].n)
    end)

    it("a 100 KB key, which hectic.secret cannot index, and a 20 MB file", function()
      local dir = project { ["db/src/entrypoint.sql"] = "select 1;\n",
        [".env.key"] = "A=1\n" .. string.rep("K", 100 * 1024) .. "=v\n",
        [".env.big"] = "A=" .. string.rep("v", 20 * 1024 * 1024) .. "\n" }
      local url = t.fresh_db("hostile")
      local r = hydrate(dir, url, ".env.key")
      assert.are.equal(3, r.code, r.stderr)
      has(r.stderr, ".env.key:2: the key KKKK")
      has(r.stderr, "is 102400 bytes long; hectic.secret takes keys of at most 1024 bytes")
      assert.is_true(#r.stderr < 2048)
      r = hydrate(dir, url, ".env.big")
      assert.are.equal(3, r.code, r.stderr)
      has(r.stderr, ".env.big: invalid dotenv: the dotenv text is 20971523 bytes; at most 16777216 (16 MiB)")
      local c <close> = t.connect(url)
      assert.is_nil(c:exec("select to_regnamespace('hectic')::text as n")[1].n)
    end)
  end)

  describe("psql scripts (database sql: exit 3 for a bad input file)", function()
    local dir, url

    setup(function()
      t.cluster()
      dir = t.tmpdir("hostile-sql")
      url = t.fresh_db("hostile")
    end)

    local function sql(...)
      return hostile { argv = { "database", "sql", "-u", url, ... }, cwd = dir }
    end

    it("block comments nested 300,000 deep lex in linear time (no limit, as psql and the server)", function()
      local n = 300000
      t.write(dir .. "/nest.sql", "SELECT 1 AS one " .. ("/* "):rep(n) .. ("*/ "):rep(n) .. ";\n" ..
        ("/*\n"):rep(2000) .. ("*/\n"):rep(2000) .. "SELECT 2 AS two;\n")
      local r = sql("-p", "nest.sql")
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("one\n1\n(1 row)\ntwo\n2\n(1 row)\n", r.stdout)
      -- never closed: the server's error at its line, the quoted comment and the excerpt cut short
      t.write(dir .. "/open.sql", "SELECT 1;\nSELECT 2 " .. ("/* "):rep(n) .. "\n")
      r = sql("open.sql")
      assert.are.equal(1, r.code)
      has(r.stderr, "open.sql:2:10: unterminated /* comment at or near")
      assert(#r.stderr < 16 * 1024, #r.stderr .. " bytes of messages")
    end)

    it("\\i /dev/zero stops at its first NUL byte (exit 1); going on after errors at 16 MiB (exit 3)",
      function()
      t.write(dir .. "/zero.sql", "SELECT 1;\n\\i /dev/zero\nSELECT 'never';\n")
      local r = sql("zero.sql")
      assert.are.equal(1, r.code)
      has(r.stderr, "/dev/zero:1:1: NUL byte (\\0) in the statement: it is not sent")
      r = sql("--continue-on-error", "zero.sql")
      assert.are.equal(3, r.code)
      has(r.stderr, "/dev/zero is not a regular file and has more than 16 MiB: stopped reading it")
      has(r.stderr, "in zero.sql:2 (\\i /dev/zero)")
      -- the script itself
      r = sql("/dev/zero")
      assert.are.equal(1, r.code)
      has(r.stderr, "/dev/zero:1:1: NUL byte")
    end)

    it("\\i of a FIFO: empty at once without a writer; an endless writer stops at 16 MiB (exit 3)", function()
      local fifo = dir .. "/fifo"
      assert(require("posix.sys.stat").mkfifo(fifo))
      t.write(dir .. "/fifo.sql", "\\i fifo\nSELECT 'after' AS a;\n")
      local r = sql("-p", "fifo.sql")
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("a\nafter\n(1 row)\n", r.stdout)
      -- an endless writer, holding the FIFO open before database sql starts
      local fcntl = require "posix.fcntl"
      local fd = assert(fcntl.open(fifo, fcntl.O_RDWR))
      local fh = assert(require("posix.stdio").fdopen(fd, "w"))
      local writer = assert(require("dbtool.core.proc").spawn { argv = { "yes", "abc" }, stdout = fh })
      fh:close()
      local ok, res = pcall(sql, "fifo.sql")
      writer:kill("TERM")
      writer:wait()
      assert(ok, res)
      r = res
      assert.are.equal(3, r.code)
      has(r.stderr, "fifo is not a regular file and has more than 16 MiB: stopped reading it")
    end)

    it("includes nested too deep (a file including itself) exit 3 at the include", function()
      t.write(dir .. "/self.sql", "SELECT 1;\n\\ir self.sql\n")
      local r = sql("self.sql")
      assert.are.equal(3, r.code)
      has(r.stderr, "self.sql:2:1: too many nested includes (more than 64): is a file including itself?")
    end)

    it("a pg_dump custom-format dump given as a script exits 3 and names pg_restore", function()
      t.write(dir .. "/dump.custom", "PGDMP\1\14\0\4\8\1\1\1\0\0\0junk")
      local r = sql("dump.custom")
      assert.are.equal(3, r.code)
      has(r.stderr, "dump.custom is a PostgreSQL custom-format dump, not a psql script")
      has(r.stderr, "pg_restore")
    end)

    it("NUL bytes and invalid UTF-8: psql's outcome, at file:line:col, nothing sent cut short", function()
      t.write(dir .. "/nul.sql", "CREATE TABLE d (id int);\nINSERT INTO d VALUES (1), (2);\n" ..
        "DELETE FROM d\0 WHERE id = 1;\n")
      local r = sql("nul.sql")
      assert.are.equal(1, r.code)
      has(r.stderr, "nul.sql:3:14: NUL byte (\\0) in the statement: it is not sent")
      -- the statement was not sent cut at the NUL (that would have deleted both rows)
      local conn <close> = t.connect(url)
      assert.are.equal(2, conn:exec("SELECT count(*) FROM d")[1][1])
      t.write(dir .. "/bad.sql", "SELECT 'a\255b';\n")
      r = sql("bad.sql")
      assert.are.equal(1, r.code)
      has(r.stderr, "bad.sql:1:10: invalid byte sequence for encoding \"UTF8\": 0xff (SQLSTATE 22021)")
    end)
  end)
end)
