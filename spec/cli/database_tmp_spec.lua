-- `database tmp` end to end: throw-away servers handed out by URL (removed after an idle
-- timeout or by --stop) or around a command (removed when it ends, however it ends), each run
-- with a server of its own, and nothing left under TMPDIR afterwards.
local t = require "testutil"
local d = require "dbproject"
local psignal = require "posix.signal"

-- every server directory of `database tmp` under `tmp` gone, and no process working there
local function assert_nothing_left(tmp)
  d.wait_for(function() return #d.ls(tmp) == 0 and #d.processes(tmp .. "/db-tool-tmp-") == 0 end, 20)
  assert.are.same({}, d.ls(tmp))
  assert.are.same({}, d.processes(tmp .. "/db-tool-tmp-"))
end

local function dir_of(url)
  return (url:match("host=([^&]+)/sock"))
end

describe("database tmp", function()
  it("prints the URL of a fresh server at once; it goes after the idle timeout", function()
    local tmp = t.tmpdir("tmptmp")
    local r = d.database(t.tmpdir("cwd"), { "tmp", "-w", "0.5" }, { LOCAL_DIR = false, TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    local url = r.stdout:match("^(postgresql://%S+)\n$")
    assert.is_truthy(url, r.stdout)
    local dir = dir_of(url)
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/db%-tool%-tmp%-", dir)
    -- psql connects to it (and while it is connected the server stays)
    local out = t.run { argv = { "psql", "-X", "-Atc", "SELECT current_database(), pg_sleep(1.5)", url } }
    assert.are.equal(0, out.code, out.stderr)
    assert.are.equal("testdb|\n", out.stdout)
    -- no client any more: stopped and removed by its watcher
    assert_nothing_left(tmp)
    assert.are.equal(2, t.run { argv = { "psql", "-X", "-Atc", "SELECT 1", url } }.code)
  end)

  it("--stop URL removes it now; a URL that is not ours is refused", function()
    local tmp = t.tmpdir("tmptmp")
    local cwd = t.tmpdir("cwd")
    local env = { LOCAL_DIR = false, TMPDIR = tmp }
    local r = d.database(cwd, { "tmp" }, env)
    assert.are.equal(0, r.code, r.stderr)
    local url = r.stdout:gsub("\n$", "")
    local dir = dir_of(url)
    assert.is_true(d.running(dir))
    assert.are.equal(1, #d.processes("require('dbtool.tmp').watch(\"" .. dir .. "\""))
    -- not ours: the shared cluster of the specs, a directory without the marker
    local other = t.cluster()
    r = d.database(cwd, { "tmp", "--stop", other.url }, env)
    assert.are.equal(1, r.code)
    assert.matches("not the URL of a server started by `database tmp`", r.stderr, 1, true)
    assert.is_true(d.running(other.dir))
    local fake = tmp .. "/db-tool-tmp-fake"
    t.mkdir_p(fake .. "/sock")
    r = d.database(cwd, { "tmp", "--stop", "postgresql:///x?host=" .. fake .. "/sock" }, env)
    assert.are.equal(1, r.code)
    assert.matches("not a server started by `database tmp` as this user", r.stderr, 1, true)
    assert.are.same({ "sock" }, d.ls(fake))
    t.rm_rf(fake)
    -- ours: gone when --stop returns, the watcher too
    r = d.database(cwd, { "tmp", "--stop", url }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({}, d.ls(tmp))
    assert.are.same({}, d.processes(dir))
    r = d.database(cwd, { "tmp", "--stop", url }, env)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("stopped already", r.stderr, 1, true)
  end)

  it("-- CMD gets the server's variables, and its exit code is ours; nothing is left", function()
    local tmp = t.tmpdir("tmptmp")
    local cwd = t.tmpdir("cwd")
    local out = cwd .. "/seen"
    local script = "env | grep -E '^(PGURL|DATABASE_URL|PGHOST|PGPORT|PGDATABASE|PGUSER)=' | sort > " .. out
      .. "; psql -X -Atc 'SELECT current_database(), current_user' >> " .. out .. "; exit 7"
    local r = d.database(cwd, { "tmp", "--", "sh", "-c", script },
      { LOCAL_DIR = false, TMPDIR = tmp, PGHOST = "/nowhere", PGDATABASE = "wrong" })
    assert.are.equal(7, r.code, r.stderr)
    local seen = t.read(out)
    local url = seen:match("PGURL=(%S+)")
    assert.is_truthy(url, seen)
    local user = require("dbtool.env").user()
    assert.are.equal(table.concat({
      "DATABASE_URL=" .. url, "PGDATABASE=testdb", "PGHOST=" .. dir_of(url) .. "/sock", "PGPORT=5432",
      "PGURL=" .. url, "PGUSER=" .. user, "testdb|" .. user, "" }, "\n"), seen)
    assert_nothing_left(tmp)
    -- CMD killed by SIGKILL: 128 + 9, and still nothing left
    r = d.database(cwd, { "tmp", "--", "sh", "-c", "kill -KILL $$" }, { LOCAL_DIR = false, TMPDIR = tmp })
    assert.are.equal(137, r.code, r.stderr)
    assert_nothing_left(tmp)
    -- a command that does not exist
    r = d.database(cwd, { "tmp", "--", "no-such-command-here" }, { LOCAL_DIR = false, TMPDIR = tmp })
    assert.are.equal(127, r.code)
    assert.matches("cannot run no-such-command-here", r.stderr, 1, true)
    assert_nothing_left(tmp)
  end)

  it("removes everything when the run gets SIGINT (CMD gets it too), or is killed itself", function()
    local tmp = t.tmpdir("tmptmp")
    local cwd = t.tmpdir("cwd")
    local mark = cwd .. "/mark"
    local script = "trap 'echo interrupted > " .. mark .. "; exit 3' INT; echo $PGHOST > " .. mark
      .. ".host; while :; do sleep 0.05; done"
    local p, _, errf = d.spawn(cwd, { "tmp", "--", "sh", "-c", script }, { LOCAL_DIR = false, TMPDIR = tmp })
    assert.is_true(d.wait_for(function() return t.read(mark .. ".host") ~= nil end, 60))
    assert.are.equal(1, #d.ls(tmp))
    psignal.kill(p.pid, psignal.SIGINT)   -- to `database tmp` alone: it passes it on
    local how, code = p:wait()
    assert.are.equal("exited", how)
    assert.are.equal(130, code, t.read(errf))
    assert.are.equal("interrupted\n", t.read(mark))
    assert_nothing_left(tmp)
    -- `database tmp` killed with SIGKILL: its watcher removes the server
    os.remove(mark .. ".host")
    p = d.spawn(cwd, { "tmp", "--", "sh", "-c", "echo $PGHOST > " .. mark .. ".host; exec sleep 60" },
      { LOCAL_DIR = false, TMPDIR = tmp })
    assert.is_true(d.wait_for(function() return t.read(mark .. ".host") ~= nil end, 60))
    local dir = dir_of("host=" .. t.read(mark .. ".host"):gsub("\n", ""))
    assert.is_true(d.running(dir))
    psignal.kill(p.pid, psignal.SIGKILL)
    p:wait()
    assert_nothing_left(tmp)
    for _, pid in ipairs(d.processes("sleep 60")) do psignal.kill(pid, psignal.SIGKILL) end
  end)

  it("four concurrent runs get four servers", function()
    local tmp = t.tmpdir("tmptmp")
    local cwd = t.tmpdir("cwd")
    -- each CMD records its server (socket directory, postmaster pid) and waits for the others
    local script = [[
pm=$(head -1 "$PGHOST/../data/postmaster.pid")
echo "$PGHOST $(psql -X -Atc 'SELECT pg_backend_pid() > 0' | head -1) $pm" > "$1/$$"
while [ "$(ls "$1" | wc -l)" -lt 4 ]; do sleep 0.02; done]]
    t.mkdir_p(cwd .. "/seen")
    local procs = {}
    for i = 1, 4 do
      procs[i] = d.spawn(cwd, { "tmp", "--", "sh", "-c", script, "sh", cwd .. "/seen" },
        { LOCAL_DIR = false, TMPDIR = tmp })
    end
    for i = 1, 4 do
      local how, code = procs[i]:wait()
      assert.are.same({ "exited", 0 }, { how, code })
    end
    local hosts, pids = {}, {}
    for _, f in ipairs(d.ls(cwd .. "/seen")) do
      local host, ok, pid = t.read(cwd .. "/seen/" .. f):match("^(%S+) (%S+) (%d+)\n$")
      assert.are.equal("t", ok)
      hosts[host], pids[pid] = true, true
    end
    local function count(s) local n = 0 for _ in pairs(s) do n = n + 1 end return n end
    assert.are.equal(4, count(hosts))
    assert.are.equal(4, count(pids))
    assert_nothing_left(tmp)
  end)

  it("--deploy hydrates the project, --migrate applies MIGRATION_DIR", function()
    local tmp = t.tmpdir("tmptmp")
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "CREATE TABLE item (id int) INHERITS (hectic.created_at);\n"
        .. "\\if :{?USE_MOCK}\nCREATE TABLE mocked () INHERITS (hectic.created_at);\n\\endif\n",
      ["test-data.sql"] = "INSERT INTO item (id) VALUES (42);\n",
      ["db/migration/20240101000000-first/up.sql"] =
        "CREATE TABLE migrated (x int) INHERITS (hectic.created_at);\n",
      ["db/migration/20240101000000-first/down.sql"] = "DROP TABLE migrated;\n",
    }
    local q = "psql -X -Atc \"SELECT coalesce(to_regclass('item')::text, '-'),"
      .. " coalesce(to_regclass('mocked')::text, '-'), coalesce(to_regclass('migrated')::text, '-')\""
    local r = d.database(dir, { "tmp", "--deploy", "-m", "--", "sh", "-c",
      q .. "; psql -X -Atc 'SELECT id FROM item'" }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("item|mocked|-\n42\n", r.stdout)
    r = d.database(dir, { "tmp", "--deploy", "-P", "--", "sh", "-c",
      "psql -X -Atc 'SELECT count(*) FROM item'" }, { TMPDIR = tmp, HYDRATE_LOG = "/dev/null" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("0\n", r.stdout)
    r = d.database(dir, { "tmp", "--migrate", "--", "sh", "-c", q }, { TMPDIR = tmp })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("-|-|migrated\n", r.stdout:match("[^\n]*\n$"))
    -- a failing deploy: its error, and nothing left
    t.write(dir .. "/db/src/entrypoint.sql", "CREATE TABLE item (id int;\n")
    r = d.database(dir, { "tmp", "--deploy", "--", "true" }, { TMPDIR = tmp })
    assert.are.equal(1, r.code)
    assert.matches("entrypoint.sql:1:", r.stderr, 1, true)
    assert_nothing_left(tmp)
  end)

  it("rejects bad arguments (exit 9, 2) before starting anything", function()
    local tmp = t.tmpdir("tmptmp")
    local cwd = t.tmpdir("cwd")
    local env = { LOCAL_DIR = false, TMPDIR = tmp }
    local r = d.database(cwd, { "tmp", "-w", "soon" }, env)
    assert.are.equal(9, r.code)
    assert.matches("-w/--idle must be a number of seconds > 0, not 'soon'", r.stderr, 1, true)
    r = d.database(cwd, { "tmp", "-w", "0" }, env)
    assert.are.equal(9, r.code)
    r = d.database(cwd, { "tmp", "--deploy", "--migrate" }, env)
    assert.are.equal(2, r.code)
    assert.matches("--deploy and --migrate exclude each other", r.stderr, 1, true)
    r = d.database(cwd, { "tmp", "-m" }, env)
    assert.are.equal(9, r.code)
    r = d.database(cwd, { "tmp", "--stop", "postgresql:///x", "--", "true" }, env)
    assert.are.equal(9, r.code)
    r = d.database(cwd, { "tmp", "--help" }, env)
    assert.are.equal(0, r.code)
    assert.matches("Usage: database tmp", r.stdout, 1, true)
    assert.are.same({}, d.ls(tmp))
  end)
end)
