-- Running as root: every entry point that would start a PostgreSQL server refuses with a
-- clear message (exit 2) before touching anything. `make check` runs this file as root
-- first (spec/support/run-checks.sh), then the whole suite unprivileged, where it is pending.
local t = require "testutil"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local function as_root()
  if unistd.geteuid() ~= 0 then
    pending("only checkable as root; make check runs this file as root before the suite")
    return false
  end
  return true
end

local function project()
  local top = t.tmpdir("root")
  t.mkdir_p(top .. "/db/src")
  t.write(top .. "/db/src/entrypoint.sql", "CREATE TABLE probe (id int);\n")
  return top
end

local function env(top)
  return { LOCAL_DIR = top, PG_WORKING_DIR = false, PG_PORT = "5479", PGURL = false, DB_URL = false,
    PG_SHARED_PRELOAD_LIBRARIES = "", NO_COLOR = "1", PG_REUSE = false }
end

local cases = {
  { "postgres-init", { t.build .. "/postgres-init" } },
  { "database init", { t.build .. "/database", "init" } },
  { "database deploy", { t.build .. "/database", "deploy" } },
  { "database check", { t.build .. "/database", "check" } },
}

describe("as root", function()
  for _, case in ipairs(cases) do
    it(case[1] .. " refuses to start a cluster, exit 2, nothing created", function()
      if not as_root() then return end
      local top = project()
      local r = t.run { argv = case[2], env = env(top) }
      assert.are.equal(2, r.code, r.stderr)
      assert.matches("refusing to run as root", r.stderr, 1, true)
      assert.matches("cannot run as root", r.stderr, 1, true)
      assert.is_nil(stat.stat(top .. "/focus/postgresql/data"))
    end)
  end

  it("--help still works as root", function()
    if not as_root() then return end
    local r = t.run { argv = { t.build .. "/postgres-init", "--help" }, env = env(project()) }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("PG_WORKING_DIR", r.stdout, 1, true)
  end)
end)
