local t = require "testutil"

describe("the db-tool binary", function()
  it("runs Lua with the API loaded (-e)", function()
    local r = t.run { "db-tool", "-e", 'print(require("dbtool").version)' }
    assert.are.equal(0, r.code)
    assert.matches("^%d+%.%d+%.%d+\n$", r.stdout)
  end)

  it("runs a script with arg and ... like lua", function()
    local dir = t.tmpdir()
    local script = t.write(dir .. "/s.lua", 'print(arg[0], arg[1], arg[2], select("#", ...), ...)')
    local r = t.run { "db-tool", script, "a", "b c" }
    assert.are.equal(0, r.code)
    assert.are.equal(script .. "\ta\tb c\t2\ta\tb c\n", r.stdout)
    r = t.run { "db-tool", "run", script, "x" }
    assert.are.equal(script .. "\tx\tnil\t1\tx\n", r.stdout)
  end)

  it("supports -l, -v, - and shebang scripts", function()
    local r = t.run { "db-tool", "-l", "e=dbtool.errors", "-e", "print(e.BUG)" }
    assert.are.equal("13\n", r.stdout)
    r = t.run { "db-tool", "-v" }
    assert.matches("^db%-tool %S+ %(Lua 5%.4; migrator version 0%.0%.1%)\n$", r.stdout)
    r = t.run { argv = { "db-tool", "-", "q" }, stdin = "print('stdin', ...)" }
    assert.are.equal("stdin\tq\n", r.stdout)
    local dir = t.tmpdir()
    local script = t.write(dir .. "/shebang", "#!" .. t.bin .. "\nprint('hello from', arg[0])\n")
    assert(os.execute("chmod +x " .. t.shq(script)))
    r = t.run { script }
    assert.are.equal("hello from\t" .. script .. "\n", r.stdout)
  end)

  it("maps structured errors to their exit code and reports them once", function()
    local r = t.run { "db-tool", "-e",
      'require("dbtool.errors").raise(3, "FOO is not set", {hint = "export FOO=1"})' }
    assert.are.equal(3, r.code)
    assert.are.equal("db-tool> FOO is not set\ndb-tool> hint: export FOO=1\n", r.stderr)
  end)

  it("reports a plain Lua error like lua does (exit 1, traceback)", function()
    local r = t.run { "db-tool", "-e", 'error("boom")' }
    assert.are.equal(1, r.code)
    assert.matches("boom", r.stderr)
    assert.matches("stack traceback", r.stderr)
  end)

  it("reports unexpected errors as bugs: exit 13, traceback with DB_TOOL_DEBUG", function()
    local code = [[
      local errors = require "dbtool.errors"
      local ok, e = errors.try(function() local x = nil; return x.y end)
      os.exit(require("dbtool.cli").report(e))
    ]]
    local r = t.run { "db-tool", "-e", code }
    assert.are.equal(13, r.code)
    assert.matches("internal error: .*attempt to index", r.stderr)
    assert.matches("DB_TOOL_DEBUG=1", r.stderr)
    r = t.run { argv = { "db-tool", "-e", code }, env = { DB_TOOL_DEBUG = "1" } }
    assert.matches("stack traceback", r.stderr)
  end)

  it("reports a failing project command as the project's error (exit 1), naming its file", function()
    local dir = t.tmpdir()
    local file = t.write(dir .. "/db/lua/dbtool/cmd/explode.lua",
      'return { summary = "x", run = function() local x = nil; return x.y end }')
    local r = t.run { argv = { "database", "explode" }, env = { LOCAL_DIR = dir } }
    assert.are.equal(1, r.code)
    assert.matches(file:gsub("%p", "%%%0") .. ":1: command 'explode' failed: attempt to index", r.stderr)
    assert.is_nil(r.stderr:find("internal error", 1, true))
  end)
end)

describe("personalities", function()
  it("database --help lists subcommands and the environment", function()
    local r = t.run { "database", "--help" }
    assert.are.equal(0, r.code)
    assert.matches("Usage: database", r.stdout)
    assert.matches("LOCAL_DIR", r.stdout)
  end)

  it("db-tool <personality> is the same as the link", function()
    local a = t.run { "db-tool", "database", "--help" }
    local b = t.run { "database", "--help" }
    assert.are.equal(b.stdout, a.stdout)
  end)

  it("database: unknown subcommand exits 9 with a hint", function()
    local r = t.run { "database", "nonsense" }
    assert.are.equal(9, r.code)
    assert.matches("unknown subcommand 'nonsense'", r.stderr)
    assert.matches("database %-%-help", r.stderr)
  end)

  it("database: no subcommand exits 1 after the help", function()
    local r = t.run { "database" }
    assert.are.equal(1, r.code)
    assert.matches("no subcommand specified", r.stderr)
  end)

  it("never colours output that is not a terminal, and never with NO_COLOR", function()
    local r = t.run { "database", "nonsense" }
    assert.is_nil(r.stderr:find("\27[", 1, true))
    r = t.run { argv = { "database", "nonsense" }, env = { DB_TOOL_TTY = "1", NO_COLOR = "1" } }
    assert.is_nil(r.stderr:find("\27[", 1, true))
    r = t.run { argv = { "database", "nonsense" }, env = { DB_TOOL_TTY = "1" } }
    assert.truthy(r.stderr:find("\27[", 1, true))
  end)
end)

describe("project overrides", function()
  it("a project module replaces a built-in one and can wrap it", function()
    local dir = t.tmpdir()
    t.write(dir .. "/db/lua/dbtool/errors.lua", [[
      local builtin = require "dbtool.builtin.errors"
      local M = setmetatable({ wrapped = true }, { __index = builtin })
      return M
    ]])
    local code = 'local e = require "dbtool.errors"; '
      .. 'print(e.wrapped, e.BUG, require("dbtool.loader").origin["dbtool.errors"])'
    local r = t.run { argv = { "db-tool", "-e", code },
      env = { LOCAL_DIR = dir } }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("true\t13\t" .. dir .. "/db/lua/dbtool/errors.lua\n", r.stdout)
  end)

  it("DB_TOOL_LUA_PATH comes after the project and before the built-ins", function()
    local dir = t.tmpdir()
    t.write(dir .. "/extra/dbtool/ui.lua", "return { from = 'extra' }")
    local r = t.run { argv = { "db-tool", "-e", 'print(require("dbtool.ui").from)' },
      env = { DB_TOOL_LUA_PATH = dir .. "/extra", LOCAL_DIR = dir } }
    assert.are.equal("extra\n", r.stdout)
  end)
end)

describe("interrupts", function()
  it("Ctrl-C cancels the running query and exits 130", function()
    local c = t.cluster()
    local proc = require "dbtool.core.proc"
    local core = require "dbtool.core"
    local dir = t.tmpdir()
    local script = t.write(dir .. "/sleep.lua", ([[
      local pg = require "dbtool.core.pg"
      local conn <close> = pg.connect(%q)
      io.stdout:write("connected\n"); io.stdout:flush()
      conn:exec("SELECT pg_sleep(60)")
      print("not reached")
    ]]):format(c.url))
    local p = assert(proc.spawn { argv = { t.bin, script }, stdout = "pipe",
      stderr = { path = t.watch_output(dir .. "/err") } })
    assert.are.equal("connected", p.stdout:read("l"))
    local start = core.now()
    core.sleep(0.2)
    p:kill("INT")
    local how, code = p:wait(10)
    assert.are.equal("exited", how)
    assert.are.equal(130, code)
    assert.is_true(core.now() - start < 5)
    assert.matches("interrupted", t.read(dir .. "/err"))
    assert.is_nil(p.stdout:read("a"):find("not reached"))
  end)

  -- the process signals itself: the interrupt is pending from a known point on
  local SELF_INT = 'local S = require("posix.signal"); S.kill(require("posix.unistd").getpid(), S.SIGINT)'

  it("core.uninterruptible holds an interrupt back until its function is done", function()
    local r = t.run { "db-tool", "-e", [[
      local core = require "dbtool.core"
      local done
      local t0 = core.now()
      local ok, e = pcall(core.uninterruptible, function(a, b)
        ]] .. SELF_INT .. [[

        core.sleep(0.3)             -- not cut short
        done = a + b
        return "lost"
      end, 40, 2)
      print(done, ok, e.interrupted, e.exit, core.now() - t0 >= 0.3)
    ]] }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("42\tfalse\ttrue\t130\ttrue\n", r.stdout)
    -- uncaught: exit 130 once the function is done, nothing after it runs
    r = t.run { "db-tool", "-e", [[
      local core = require "dbtool.core"
      core.uninterruptible(function() ]] .. SELF_INT .. [[ io.stdout:write("inside\n") end)
      print("not reached")
    ]] }
    assert.are.equal(130, r.code)
    assert.are.equal("inside\n", r.stdout)
    -- without an interrupt: the results and errors of the function, nested calls
    r = t.run { "db-tool", "-e", [[
      local core = require "dbtool.core"
      print(core.uninterruptible(function(x)
        return x, core.uninterruptible(function() return "in" end)
      end, "out"))
      print(pcall(core.uninterruptible, function() error("boom", 0) end))
      print(pcall(core.uninterruptible, 42))
    ]] }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^out\tin\nfalse\tboom\n"
      .. "false\tbad argument #1 to '[%w.?]*' %(function expected, got number%)\n$", r.stdout)
  end)
end)
