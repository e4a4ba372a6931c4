local t = require "testutil"
local cluster = require "dbtool.cluster"
local pg = require "dbtool.core.pg"
local core = require "dbtool.core"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

-- A logger that records what the library says.
local function capture_log()
  local lines = {}
  return setmetatable({ lines = lines, text = function() return table.concat(lines, "\n") end }, {
    __index = function(_, level)
      return function(_, fmt, ...)
        lines[#lines + 1] = level .. ": " .. (select("#", ...) > 0 and string.format(fmt, ...) or fmt)
      end
    end,
  })
end

local function workdir(tag)
  local dir = t.tmpdir(tag or "cl") .. "/wd"
  t.at_exit(function() pcall(cluster.remove, dir, { log = capture_log() }) end)
  return dir
end

local function start(dir, opts)
  local o = { dir = dir, preload = "", logging = false, log = capture_log() }
  for k, v in pairs(opts or {}) do o[k] = v end
  return cluster.start(o), o.log
end

local function query(url, sql, ...)
  local c <close> = pg.connect(url)
  return c:exec(sql, ...)
end

local function has_table(url, name)
  return query(url, "SELECT count(*)::int AS n FROM pg_class WHERE relname = $1", name)[1].n == 1
end

local function failure(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_table(e, tostring(e))
  return e
end

local function mode_of(path)
  return stat.stat(path).st_mode & 511
end

describe("dbtool.cluster", function()
  it("starts a fresh cluster: database, layout, settings, URL", function()
    local dir = workdir()
    local h = start(dir, { logging = true })
    assert.are.equal(dir .. "/sock", h.host)
    assert.are.equal(5432, h.port)
    assert.are.equal("testdb", h.database)
    assert.is_false(h.reused)
    assert.are.equal(string.format("postgresql://%s@/testdb?host=%s/sock&port=5432", h.user, dir), h.url)
    local r = query(h.url, "SELECT current_database() AS db, current_user AS u, " ..
      "current_setting('port') AS port, current_setting('listen_addresses') AS la, " ..
      "current_setting('logging_collector') AS lc, current_setting('fsync') AS fsync, " ..
      "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su")[1]
    assert.are.same({ "testdb", h.user, "5432", "", "on", "off", true },
      { r.db, r.u, r.port, r.la, r.lc, r.fsync, r.su })
    assert.are.equal(448, mode_of(dir .. "/sock"))
    assert.truthy(stat.stat(dir .. "/sock/.s.PGSQL.5432"))
    assert.truthy(stat.stat(dir .. "/data/log/postmaster.log"))
    local auto = t.read(dir .. "/data/postgresql.auto.conf")
    assert.matches("port = '5432'", auto, 1, true)
    assert.matches("unix_socket_directories = '" .. dir .. "/sock'", auto, 1, true)
    local st = cluster.status(dir)
    assert.are.equal("running", st.state)
    assert.are.equal(h.pid, st.pid)
    assert.is_true(h:stop())
    assert.are.equal("stopped", cluster.status(dir).state)
    assert.is_nil(stat.stat(dir .. "/data/postmaster.pid"))
    assert.are.equal("no_response", pg.ping(h.url))
  end)

  it("reuse keeps the data and recreates a dropped database; a fresh init discards the data", function()
    local dir = workdir()
    local h = start(dir, { port = 5433 })
    query(h.url, "CREATE TABLE keep(x int); INSERT INTO keep VALUES (42)")
    h:stop()
    local h2, l2 = start(dir, { port = 5433, reuse = true })
    assert.is_true(h2.reused)
    assert.matches("reusing the cluster", l2.text())
    assert.are.equal(42, query(h2.url, "SELECT x FROM keep")[1].x)
    -- drop the database while it runs: the next reuse creates it again, empty
    query(h2:db_url("postgres"), "DROP DATABASE testdb")
    local h3 = start(dir, { port = 5433, reuse = true })
    assert.is_true(h3.created)
    assert.is_false(has_table(h3.url, "keep"))
    query(h3.url, "CREATE TABLE keep(x int)")
    -- without reuse: a new, empty cluster, even while the old one runs
    local h4 = start(dir, { port = 5433 })
    assert.is_false(h4.reused)
    assert.are_not.equal(h3.pid, h4.pid)
    assert.is_false(has_table(h4.url, "keep"))
  end)

  it("ignores a stale pid file (a dead pid, or a live process that is not its server)", function()
    local dir = workdir()
    start(dir):stop()
    t.write(dir .. "/data/postmaster.pid", "99999999\n")
    assert.is_false(cluster.stop(dir))
    assert.are.equal("stopped", cluster.status(dir).state)
    assert.is_true(cluster.status(dir).stale_pidfile)
    -- our own pid: alive, but not a postmaster of this data directory (pid reuse after a reboot)
    t.write(dir .. "/data/postmaster.pid", unistd.getpid() .. "\n" .. dir .. "/data\n")
    assert.is_false(cluster.stop(dir))
    local h = start(dir, { reuse = true })
    assert.is_true(h.reused)
    assert.are.equal("ok", pg.ping(h.url))
  end)

  it("refuses a socket held by another live process: exit 2, nothing touched", function()
    local socket = require "posix.sys.socket"
    local dir = workdir()
    local h = start(dir, { port = 5434 })
    query(h.url, "CREATE TABLE precious(x int)")
    h:stop()
    local path = dir .. "/sock/.s.PGSQL.5434"
    local fd = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0))
    assert(socket.bind(fd, { family = socket.AF_UNIX, path = path }))
    assert(socket.listen(fd, 8))
    t.write(path .. ".lock", unistd.getpid() .. "\n")
    local before = t.read(dir .. "/data/postgresql.auto.conf")
    for _, reuse in ipairs { true, false } do
      local e = failure(start, dir, { port = 5434, reuse = reuse })
      assert.are.equal(2, e.exit)
      assert.matches("socket " .. dir .. "/sock/.s.PGSQL.5434 is in use by another server (pid " ..
        unistd.getpid() .. ")", e.msg, 1, true)
      assert.matches("nothing was changed", e.msg)
    end
    assert.truthy(stat.stat(path))
    assert.truthy(stat.stat(path .. ".lock"))
    assert.are.equal(before, t.read(dir .. "/data/postgresql.auto.conf"))
    assert.is_nil(stat.stat(dir .. "/data/postmaster.pid"))
    unistd.close(fd)
    -- the same files without a listener are stale: removed, and the data is still there
    local h2 = start(dir, { port = 5434, reuse = true })
    assert.is_true(has_table(h2.url, "precious"))
  end)

  it("moves a reused cluster that cannot start aside, never deletes it", function()
    local dir = workdir()
    local h = start(dir)
    query(h.url, "CREATE TABLE lost(x int)")
    h:stop()
    os.remove(dir .. "/data/global/pg_control")
    local h2, l = start(dir, { reuse = true })
    assert.is_string(h2.moved_aside)
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/data%.broken%-%d+%-%d+$", h2.moved_aside)
    assert.truthy(stat.stat(h2.moved_aside .. "/PG_VERSION"))
    assert.truthy(stat.stat(h2.moved_aside .. "/base"))
    local text = l.text()
    assert.matches("reused cluster failed to start", text)
    assert.matches("moved it aside to " .. h2.moved_aside, text, 1, true)
    assert.matches("pg_control", text)
    assert.matches("reinitialized broken cluster at " .. dir, text, 1, true)
    assert.is_false(h2.reused)
    assert.is_false(has_table(h2.url, "lost"))
  end)

  it("with reuse, keeps a data directory that is not a cluster (moved aside)", function()
    local dir = workdir()
    t.write(dir .. "/data", "not a directory\n")
    local h, l = start(dir, { reuse = true })
    assert.are.equal("not a directory\n", t.read(h.moved_aside))
    assert.matches("is not a PostgreSQL data directory", l.text())
    assert.are.equal("ok", pg.ping(h.url))
  end)

  it("refuses a working directory that is a regular file (exit 1), leaving it alone", function()
    local file = t.tmpdir("cl") .. "/wd"
    t.write(file, "mine\n")
    local e = failure(start, file)
    assert.are.equal(1, e.exit)
    assert.matches(file .. " exists and is not a directory", e.msg, 1, true)
    assert.are.equal("mine\n", t.read(file))
  end)

  it("honours a non-default port everywhere", function()
    local dir = workdir()
    local h = start(dir, { port = 6123, database = "other db" })
    assert.truthy(stat.stat(dir .. "/sock/.s.PGSQL.6123"))
    assert.is_nil(stat.stat(dir .. "/sock/.s.PGSQL.5432"))
    assert.matches("&port=6123$", h.url)
    local r = query(h.url, "SELECT current_setting('port') AS p, current_database() AS db")[1]
    assert.are.equal("6123", r.p)
    assert.are.equal("other db", r.db)
    assert.are.equal(6123, cluster.status(dir).port)
  end)

  it("PG_CONF_FILE replaces the generated settings; an unreadable one changes nothing", function()
    local dir = workdir()
    local conf = t.write(t.tmpdir("conf") .. "/pg.conf", "listen_addresses = ''\nwork_mem = '7MB'\n")
    local h = start(dir, { conf_file = conf, preload = "pg_cron", logging = true, port = 5435 })
    local r = query(h.url, "SELECT current_setting('work_mem') AS wm, " ..
      "current_setting('shared_preload_libraries') AS spl, " ..
      "current_setting('logging_collector') AS lc, current_setting('port') AS p")[1]
    assert.are.same({ "7MB", "", "off", "5435" }, { r.wm, r.spl, r.lc, r.p })
    local auto = t.read(dir .. "/data/postgresql.auto.conf")
    assert.is_nil(auto:find("shared_preload_libraries", 1, true))
    assert.is_nil(auto:find("logging_collector", 1, true))
    query(h.url, "CREATE TABLE still_here(x int)")
    local e = failure(start, dir, { conf_file = dir .. "/missing.conf", port = 5435 })
    assert.are.equal(1, e.exit)
    assert.matches("PG_CONF_FILE not readable: " .. dir .. "/missing.conf", e.msg, 1, true)
    assert.is_true(has_table(h.url, "still_here"))
  end)

  it("a missing preload library is exit 127 naming PG_SHARED_PRELOAD_LIBRARIES; pg_cron loads", function()
    local dir = workdir()
    local h = start(dir, { preload = "pg_cron", port = 5436 })
    local r = query(h.url, "SELECT current_setting('shared_preload_libraries') AS spl, " ..
      "current_setting('cron.database_name') AS cdb")[1]
    assert.are.same({ "pg_cron", "testdb" }, { r.spl, r.cdb })
    local e = failure(start, dir, { preload = "pg_cron, no_such_library", port = 5436 })
    assert.are.equal(127, e.exit)
    assert.matches("no_such_library not found", e.msg)
    assert.matches("PG_SHARED_PRELOAD_LIBRARIES=pg_cron,no_such_library", e.msg, 1, true)
    assert.are.equal("PG_SHARED_PRELOAD_LIBRARIES", e.variable)
    assert.are.equal("ok", pg.ping(h.url))       -- the running cluster was not touched
  end)

  it("a server that fails to start is exit 2 with the server's own words", function()
    local dir = workdir()
    local e = failure(start, dir, { settings = { shared_buffers = "lots" } })
    assert.are.equal(2, e.exit)
    assert.matches("the server failed to start", e.msg)
    assert.matches("shared_buffers", e.msg)
    assert.matches(dir .. "/data/log/postmaster.log", e.msg, 1, true)
  end)

  it("stop and remove are idempotent; remove keeps files it did not create", function()
    local dir = workdir()
    local h = start(dir)
    t.write(dir .. "/notes.txt", "keep me\n")
    assert.is_true(cluster.stop(dir))
    assert.is_false(cluster.stop(dir))
    assert.are.equal("no_response", pg.ping(h.url))
    assert.are.same({ "notes.txt" }, cluster.remove(dir))
    assert.are.equal("keep me\n", t.read(dir .. "/notes.txt"))
    assert.is_nil(stat.stat(dir .. "/data"))
    os.remove(dir .. "/notes.txt")
    assert.are.same({}, cluster.remove(dir))
    assert.is_nil(stat.stat(dir))
    assert.are.same({}, cluster.remove(dir))
    assert.is_false(cluster.stop(dir))
    assert.are.equal("none", cluster.status(dir).state)
  end)

  it("rebuilds a stale template and writes server logs to log_dir", function()
    local cache = t.tmpdir("cache")
    local dir = workdir()
    local logs = t.tmpdir("logs") .. "/server"
    local h = start(dir, { cache = cache, database = "postgres", logging = true, log_dir = logs })
    assert.truthy(stat.stat(logs .. "/postmaster.log"))
    assert.are.equal(logs, query(h.url, "SELECT current_setting('log_directory') AS d")[1].d)
    local tpl = cluster.template { bindir = cluster.bindir(), database = "postgres", cache = cache }
    assert.is_nil(tpl.built)
    os.remove(tpl.data .. "/global/pg_control")
    local l = capture_log()
    local tpl2 = cluster.template { bindir = cluster.bindir(), database = "postgres", cache = cache, log = l }
    assert.is_true(tpl2.built)
    assert.matches("incomplete or stale; rebuilding", l.text())
    assert.truthy(stat.stat(tpl2.data .. "/global/pg_control"))
    local h2 = start(dir, { cache = cache, database = "postgres" })
    assert.are.equal("ok", pg.ping(h2.url))
  end)

  it("with spare, the next fresh init takes the copy prepared in the background", function()
    -- A cache of its own: the background job waits up to 60 s for a read lock on its cache,
    -- and in the shared ~/.cache/db-tool a concurrent run building a template holds the
    -- write lock for as long as initdb takes (the spec's deadline then ran out first).
    local cache = t.tmpdir("cache")
    assert.is_true(cluster.template { bindir = cluster.bindir(), database = "testdb", cache = cache,
      log = capture_log() }.built)
    local dir = workdir()
    start(dir, { spare = true, cache = cache })
    local deadline = core.now() + 120
    local spare
    repeat
      core.sleep(0.05)
      for _, name in ipairs(require("posix.dirent").dir(dir)) do
        if name:match("^%.db%-tool%-spare%-%x+$") then spare = name end
      end
    until (spare and not cluster.refill_busy(dir)) or core.now() > deadline
    assert.is_string(spare, "no spare was prepared")
    local h, l = start(dir, { spare = true, cache = cache })
    assert.matches("prepared spare", l.text())
    assert.are.equal("ok", pg.ping(h.url))
    assert.are.equal(1, query(h.url, "SELECT count(*)::int AS n FROM pg_database WHERE datname = $1",
      "testdb")[1].n)
  end)

  it("without spare, a fresh cluster takes a copy from the template's pool, refilled in the background",
    function()
    local cache = t.tmpdir("cache")
    local tpl = cluster.template { bindir = cluster.bindir(), database = "testdb", cache = cache }
    local pool = cluster.pool_dir(tpl)
    local function ready()
      local n = 0
      local ok, names = pcall(require("posix.dirent").dir, pool)   -- (not made yet: an error)
      for _, name in ipairs(ok and names or {}) do
        if name:match("^ready%-") then n = n + 1 end
      end
      return n
    end
    local function wait_filled()
      local deadline = core.now() + 60
      repeat core.sleep(0.05) until (ready() == 1 and not cluster.pool_busy(tpl.dir)) or core.now() > deadline
      assert.are.equal(1, ready(), "the pool was not refilled")
    end
    -- the pool is empty: a copy, then the pool is filled behind us
    local h1, l1 = start(workdir(), { cache = cache })
    assert.not_matches("template's pool", l1.text())
    wait_filled()
    -- the next fresh cluster (another directory) is a rename of that copy
    local h2, l2 = start(workdir(), { cache = cache })
    assert.matches("from the template's pool", l2.text())
    assert.are.equal(1, query(h2.url,
      "SELECT count(*)::int AS n FROM pg_database WHERE datname = 'testdb'")[1].n)
    query(h2.url, "CREATE TABLE only_here (x int)")
    assert.is_false(has_table(h1.url, "only_here"))
    -- the claimed copy is not shared with anyone: the pool is refilled with a new one, and a
    -- third cluster made from it does not see the second one's table
    wait_filled()
    local h3, l3 = start(workdir(), { cache = cache })
    assert.matches("from the template's pool", l3.text())
    assert.is_false(has_table(h3.url, "only_here"))
    wait_filled()   -- the job writing into the cache must be done before the cache is removed
  end)
end)
