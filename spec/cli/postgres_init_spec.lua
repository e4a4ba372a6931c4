-- postgres-init, postgres-cleanup, `database init` and `database cleanup` as a user runs
-- them: the built binary, its links and the sh shim, sourced in sh (dash) and bash.
local t = require "testutil"
local cluster = require "dbtool.cluster"
local pg = require "dbtool.core.pg"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local init = t.build .. "/postgres-init"

local function workdir()
  local dir = t.tmpdir("pgi") .. "/wd"
  t.at_exit(function() pcall(cluster.remove, dir) end)
  return dir
end

-- environment of a run: the seed variables for `dir`, nothing inherited that matters
local function envfor(dir, extra)
  local e = { PG_WORKING_DIR = dir, PG_PORT = "5471", PG_SHARED_PRELOAD_LIBRARIES = "", LOCAL_DIR = false,
    PG_REUSE = false, PG_URL_VAR = false, PG_DATABASE = false, PG_CONF_FILE = false, PGURL = false,
    PG_DISABLE_LOGGING = false, PG_LOG_PATH = false, HECTIC_LOG = false, NO_COLOR = "1" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function sh(shell, script, env, args)
  local file = t.write(t.tmpdir("sh") .. "/script.sh", script)
  local argv = { shell, file }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return t.run { argv = argv, env = env }
end

-- name=value lines printed by a script → table
local function parse_kv(out)
  local r = {}
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do r[k] = v end
  return r
end

local function has_table(url, name)
  local c <close> = pg.connect(url)
  return c:exec("SELECT count(*)::int AS n FROM pg_class WHERE relname = $1", name)[1].n == 1
end

describe("postgres-init", function()
  it("has help for every entry point, reachable without any environment", function()
    local r = t.run { argv = { init, "--help" }, env = { PG_WORKING_DIR = false, LOCAL_DIR = false } }
    assert.are.equal(0, r.code)
    for _, word in ipairs { "PG_REUSE", "PG_CONF_FILE", "PG_SHARED_PRELOAD_LIBRARIES", "PG_URL_VAR", "NO_TTY",
      "Exit codes", "export NAME='value'" } do
      assert.matches(word, r.stdout, 1, true)
    end
    r = t.run { "postgres-cleanup", "--help" }
    assert.are.equal(0, r.code)
    assert.matches("trap postgres-cleanup EXIT", r.stdout, 1, true)
    r = t.run { "database", "init", "--help" }
    assert.are.equal(0, r.code)
    assert.matches("--reuse", r.stdout, 1, true)
    r = t.run { "database", "cleanup", "-h" }
    assert.are.equal(0, r.code)
    assert.matches("remove", r.stdout, 1, true)
    r = sh("bash", ". " .. init .. " --help >/dev/null; echo \"rc=$? url=${PGURL-unset}\"\n",
      envfor("/nonexistent"))
    assert.are.equal("rc=0 url=unset\n", r.stdout)
  end)

  it("executed, prints only export lines on stdout (eval-able) and messages on stderr", function()
    local dir = workdir()
    local r = t.run { argv = { init }, env = envfor(dir) }
    assert.are.equal(0, r.code, r.stderr)
    local names = {}
    for line in r.stdout:gmatch("([^\n]*)\n") do
      local name = line:match("^export ([A-Z_]+)='[^']*'$")
      assert.is_string(name, "not an export line: " .. line)
      names[#names + 1] = name
    end
    assert.are.same({ "POSTGRESQL_HOST", "POSTGRESQL_PORT", "POSTGRESQL_USER", "POSTGRESQL_DATABASE",
      "PGURL" }, names)
    assert.matches("postgres%-init> cluster ready in " .. dir:gsub("%p", "%%%0"), r.stderr)
    local user = require("dbtool.env").user()
    local e = t.run { argv = { "sh", "-c", 'eval "$1"; echo "url=$PGURL host=$POSTGRESQL_HOST"', "x",
      r.stdout } }
    assert.are.equal(string.format("url=postgresql://%s@/testdb?host=%s/sock&port=5471 host=%s/sock\n",
      user, dir, dir), e.stdout)
    assert.are.equal("ok", pg.ping((e.stdout:match("url=(%S+)"))))
  end)

  for _, shell in ipairs { "sh", "bash" } do
    it("sourced in " .. shell .. ", exports into the caller and leaves nothing else behind", function()
      local dir = workdir()
      local script = [[
set -u
before_path=$PATH
. ]] .. init .. [[

echo "rc=$?"
echo "PGURL=$PGURL"
echo "MY_URL=$MY_URL"
echo "host=$POSTGRESQL_HOST"
echo "port=$POSTGRESQL_PORT"
echo "db=$POSTGRESQL_DATABASE"
echo "args=$*"
echo "reuse=${PG_REUSE-unset}"
echo "leaks=$(set | grep -c '^__dbt')"
[ "$PATH" = "$before_path" ] && echo "path=same"
echo "exported=$(sh -c 'echo "$PGURL"')"
]]
      local r = sh(shell, script, envfor(dir, { PG_URL_VAR = "MY_URL", PG_DATABASE = "appdb" }),
        { "caller", "args" })
      assert.are.equal(0, r.code, r.stderr)
      local v = parse_kv(r.stdout)
      assert.are.equal("0", v.rc)
      assert.matches("^postgresql://[^@]+@/appdb%?host=" .. dir:gsub("%p", "%%%0") .. "/sock&port=5471$",
        v.PGURL)
      assert.are.equal(v.PGURL, v.MY_URL)
      assert.are.equal(v.PGURL, v.exported)
      assert.are.equal(dir .. "/sock", v.host)
      assert.are.equal("5471", v.port)
      assert.are.equal("appdb", v.db)
      assert.are.equal("caller args", v.args)       -- the caller's arguments are not ours
      assert.are.equal("unset", v.reuse)
      assert.are.equal("0", v.leaks)
      assert.are.equal("same", v.path)
      assert.are.equal("ok", pg.ping(v.PGURL))
    end)
  end

  it("sourced, a failure returns its code to the caller's shell, which goes on", function()
    local dir = workdir()
    local r = sh("sh", ". " .. init .. "\necho \"rc=$? url=${PGURL-unset}\"\n",
      envfor(dir, { PG_URL_VAR = "1BAD;rm" }))
    assert.are.equal(0, r.code)
    assert.are.equal("rc=1 url=unset\n", r.stdout)
    assert.matches("invalid PG_URL_VAR '1BAD;rm'", r.stderr, 1, true)
    assert.is_nil(stat.stat(dir), "nothing may be created")
    r = t.run { argv = { init }, env = envfor(dir, { PG_URL_VAR = "A-B" }) }
    assert.are.equal(1, r.code)
    assert.are.equal("", r.stdout)
    assert.is_nil(stat.stat(dir))
  end)

  it("needs PG_WORKING_DIR or LOCAL_DIR (exit 3); LOCAL_DIR gives focus/postgresql", function()
    local r = t.run { argv = { init }, env = envfor(false) }
    assert.are.equal(3, r.code)
    assert.matches("PG_WORKING_DIR or LOCAL_DIR is required", r.stderr, 1, true)
    local proj = t.tmpdir("proj")
    t.at_exit(function() pcall(cluster.remove, proj .. "/focus/postgresql") end)
    r = t.run { argv = { init }, env = envfor(false, { LOCAL_DIR = proj }) }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("host=" .. proj .. "/focus/postgresql/sock", r.stdout, 1, true)
    assert.are.equal("running", cluster.status(proj .. "/focus/postgresql").state)
  end)

  it("refuses a busy socket (exit 2), a missing preload library (127), a file as working dir (1)", function()
    local socket = require "posix.sys.socket"
    local dir = workdir()
    t.mkdir_p(dir .. "/sock")
    local path = dir .. "/sock/.s.PGSQL.5471"
    local fd = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0))
    assert(socket.bind(fd, { family = socket.AF_UNIX, path = path }))
    assert(socket.listen(fd, 8))
    t.write(path .. ".lock", unistd.getpid() .. "\n")
    local r = t.run { argv = { init }, env = envfor(dir, { PG_REUSE = "1" }) }
    unistd.close(fd)
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("is in use by another server (pid " .. unistd.getpid() .. ")", r.stderr, 1, true)
    assert.is_nil(stat.stat(dir .. "/data"))

    r = t.run { argv = { init }, env = envfor(dir, { PG_SHARED_PRELOAD_LIBRARIES = "no_such_lib" }) }
    assert.are.equal(127, r.code)
    assert.matches("PG_SHARED_PRELOAD_LIBRARIES=no_such_lib", r.stderr, 1, true)
    assert.is_nil(stat.stat(dir .. "/data"))

    local file = t.tmpdir("pgi") .. "/file"
    t.write(file, "x")
    r = t.run { argv = { init }, env = envfor(file) }
    assert.are.equal(1, r.code)
    assert.matches("exists and is not a directory", r.stderr, 1, true)
  end)

  it("serialises two concurrent runs on one directory", function()
    local dir = workdir()
    local r = t.run { argv = { "sh", "-c", [[
"$1" >/dev/null 2>"$2.e1" & a=$!
"$1" >/dev/null 2>"$2.e2" & b=$!
wait $a; echo "a=$?"
wait $b; echo "b=$?"
]], "x", init, dir }, env = envfor(dir) }
    assert.are.equal("a=0\nb=0\n", r.stdout, (t.read(dir .. ".e1") or "") .. (t.read(dir .. ".e2") or ""))
    local st = cluster.status(dir)
    assert.are.equal("running", st.state)
    local ps = t.run { "pgrep", "-f", "-c", "postgres -D " .. dir .. "/data " }
    assert.are.equal("1\n", ps.stdout)
    assert.are.equal("ok", pg.ping(string.format("host=%s/sock port=5471 dbname=testdb", dir)))
  end)
end)

describe("postgres-cleanup", function()
  it("exits 0 with nothing to do, a stale pid file, or twice in a row", function()
    local r = t.run { argv = { "postgres-cleanup" }, env = envfor(false) }
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout .. r.stderr)
    local stale = t.tmpdir("stale")
    t.write(stale .. "/data/postmaster.pid", "99999999\n")
    r = t.run { argv = { "postgres-cleanup" }, env = envfor(stale) }
    assert.are.equal(0, r.code)
    assert.are.equal("99999999\n", t.read(stale .. "/data/postmaster.pid"))   -- never deletes
    local dir = workdir()
    assert.are.equal(0, t.run { argv = { init }, env = envfor(dir) }.code)
    local url = string.format("host=%s/sock port=5471 dbname=testdb", dir)
    assert.are.equal("ok", pg.ping(url))
    r = t.run { argv = { "postgres-cleanup" }, env = envfor(dir) }
    assert.are.equal(0, r.code)
    assert.matches("stopped the cluster in " .. dir, r.stderr, 1, true)
    assert.are.equal("no_response", pg.ping(url))
    assert.truthy(stat.stat(dir .. "/data/PG_VERSION"))
    r = t.run { argv = { "postgres-cleanup" }, env = envfor(dir) }
    assert.are.equal(0, r.code)
    r = t.run { argv = { "postgres-cleanup", "--bogus" }, env = envfor(dir) }
    assert.are.equal(9, r.code)
  end)
end)

describe("database init / cleanup", function()
  it("init starts, --reuse keeps the data, plain init wipes it, cleanup removes the directory", function()
    local dir = workdir()
    local env = envfor(dir)
    local r = t.run { argv = { "database", "init" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    local url = r.stdout:match("export PGURL='([^']*)'")
    assert.is_string(url)
    do
      local c <close> = pg.connect(url)
      c:exec("CREATE TABLE keep(x int)")
    end
    r = t.run { argv = { "database", "init", "--reuse" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has_table(url, "keep"))
    -- PG_REUSE in the environment reuses too (the original's way)
    r = t.run { argv = { "database", "init" }, env = envfor(dir, { PG_REUSE = "" }) }
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has_table(url, "keep"))
    r = t.run { argv = { "database", "init" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.is_false(has_table(url, "keep"))

    r = t.run { argv = { "database", "cleanup" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("stopping cluster at " .. dir, r.stderr, 1, true)
    assert.matches("removing " .. dir, r.stderr, 1, true)
    assert.is_nil(stat.stat(dir))
    assert.are.equal("no_response", pg.ping(url))
    r = t.run { argv = { "database", "cleanup" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("rejects unknown arguments with exit 9 and the original's wording", function()
    local env = envfor(t.tmpdir("args") .. "/wd")
    local r = t.run { argv = { "database", "init", "--bogus" }, env = env }
    assert.are.equal(9, r.code)
    assert.matches("init argument --bogus does not exist", r.stderr, 1, true)
    r = t.run { argv = { "database", "init", "extra" }, env = env }
    assert.are.equal(9, r.code)
    assert.matches("init: unexpected argument extra", r.stderr, 1, true)
    r = t.run { argv = { "database", "cleanup", "extra" }, env = env }
    assert.are.equal(9, r.code)
    assert.matches("cleanup: unexpected argument extra", r.stderr, 1, true)
  end)
end)
