-- `database log` end to end: the server logs of a real cluster (logging collector on), and a
-- made-up log directory for list/index/name/ambiguous/missing, the pager on a terminal, and
-- the error paths.
local t = require "testutil"
local d = require "dbproject"

local FILES = {
  "postgresql-2026-11-01_100000.log",
  "postgresql-2026-11-02_100000.log",
  "postmaster.log",
}

-- a working directory whose data/log holds FILES (content: "<name> content")
local function logdir()
  local dir = d.project {}
  for _, f in ipairs(FILES) do t.write(dir .. "/wd/data/log/" .. f, f .. " content\n") end
  return dir, { PG_WORKING_DIR = dir .. "/wd" }
end

describe("database log", function()
  it("lists, picks by index, exact name and unique substring; prints everything without argument", function()
    local dir, env = logdir()
    local r = d.database(dir, { "log", "list" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(" 1  " .. FILES[1] .. "\n 2  " .. FILES[2] .. "\n 3  " .. FILES[3] .. "\n", r.stdout)
    r = d.database(dir, { "log", "2" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(FILES[2] .. " content\n", r.stdout)
    r = d.database(dir, { "log", FILES[3] }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(FILES[3] .. " content\n", r.stdout)
    r = d.database(dir, { "log", "11-01" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(FILES[1] .. " content\n", r.stdout)
    r = d.database(dir, { "log" }, env)
    assert.are.equal(0, r.code, r.stderr)
    local all = {}
    for _, f in ipairs(FILES) do all[#all + 1] = "==> " .. f .. " <==\n" .. f .. " content\n" end
    assert.are.equal(table.concat(all), r.stdout)
    -- LOCAL_DIR alone gives $LOCAL_DIR/focus/postgresql
    t.write(dir .. "/focus/postgresql/data/log/only.log", "only\n")
    r = d.database(dir, { "log", "list" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(" 1  only.log\n", r.stdout)
    -- PG_LOG_PATH is where the server logs are
    t.write(dir .. "/serverlogs/x.log", "x\n")
    r = d.database(dir, { "log", "list" }, { PG_LOG_PATH = dir .. "/serverlogs" })
    assert.are.equal(" 1  x.log\n", r.stdout)
  end)

  it("says ambiguous (exit 2) or not found (exit 1), and how to look", function()
    local dir, env = logdir()
    local r = d.database(dir, { "log", "postgresql" }, env)
    assert.are.equal(2, r.code)
    assert.matches("log file not found or ambiguous: postgresql (ambiguous: " .. FILES[1] .. ", "
      .. FILES[2] .. ")", r.stderr, 1, true)
    assert.are.equal("", r.stdout)
    r = d.database(dir, { "log", "nothing-like-it" }, env)
    assert.are.equal(1, r.code)
    assert.matches("log file not found or ambiguous: nothing-like-it", r.stderr, 1, true)
    assert.matches("use 'database log list' to inspect available files", r.stderr, 1, true)
    r = d.database(dir, { "log", "7" }, env)
    assert.are.equal(1, r.code)
    assert.matches("index 7 is out of range (1-3)", r.stderr, 1, true)
  end)

  it("goes through $PAGER on a terminal, plain when piped", function()
    local dir, env = logdir()
    local pager = t.write(dir .. "/pager.sh", "#!/bin/sh\ncat > \"$(dirname \"$0\")/paged\"\n")
    require("posix.sys.stat").chmod(pager, tonumber("755", 8))
    env.PAGER = pager
    env.DB_TOOL_TTY = "1"
    env.LINES = "1" -- only what does not fit the screen is paged
    local r = d.database(dir, { "log", "1" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.are.equal(FILES[1] .. " content\n", t.read(dir .. "/paged"))
    env.DB_TOOL_TTY = "0"
    os.remove(dir .. "/paged")
    r = d.database(dir, { "log", "1" }, env)
    assert.are.equal(FILES[1] .. " content\n", r.stdout)
    assert.is_nil(t.read(dir .. "/paged"))
  end)

  it("handles a missing or empty log directory; help and argument errors need no cluster", function()
    local dir = d.project {}
    local env = { PG_WORKING_DIR = dir .. "/wd" }
    local r = d.database(dir, { "log", "list" }, env)
    assert.are.equal(1, r.code)
    assert.matches("log directory not found: " .. dir .. "/wd/data/log", r.stderr, 1, true)
    r = d.database(dir, { "log", "--help" }, env)
    assert.are.equal(0, r.code)
    assert.matches("list", r.stdout, 1, true)
    r = d.database(dir, { "log", "--wat" }, env)
    assert.are.equal(9, r.code)
    assert.matches("log argument --wat does not exist", r.stderr, 1, true)
    r = d.database(dir, { "log", "1", "2" }, env)
    assert.are.equal(9, r.code)
    t.mkdir_p(dir .. "/wd/data/log")
    r = d.database(dir, { "log", "list" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("no log files in " .. dir .. "/wd/data/log", r.stderr, 1, true)
    r = d.database(dir, { "log" }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    r = d.database(dir, { "log" }, { LOCAL_DIR = false })
    assert.are.equal(3, r.code)
    assert.matches("PG_WORKING_DIR or LOCAL_DIR is required", r.stderr, 1, true)
  end)

  it("shows the server log of a real cluster", function()
    local dir = d.project {}
    local r = d.database(dir, { "init" }, { PG_DISABLE_LOGGING = "0" })
    assert.are.equal(0, r.code, r.stderr)
    local url = r.stdout:match("export PGURL='([^']*)'")
    -- an error the server logs
    pcall(d.exec, url, "SELECT * FROM log_spec_no_such_table")
    r = d.database(dir, { "log", "list" })
    assert.are.equal(0, r.code, r.stderr)
    local first = r.stdout:match("^ 1  (postgresql%-[%d_-]+%.log)\n")
    assert.is_string(first, r.stdout)
    assert.matches("postmaster.log", r.stdout, 1, true)
    assert.is_true(d.wait_for(function()
      r = d.database(dir, { "log", first })
      return r.stdout:find("log_spec_no_such_table", 1, true) ~= nil
    end, 10), r.stdout)
    r = d.database(dir, { "cleanup" })
    assert.are.equal(0, r.code, r.stderr)
  end)
end)
