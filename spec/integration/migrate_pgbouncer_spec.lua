-- Migrations through a real PgBouncer in pool_mode = transaction (started by testutil on a
-- unix socket): the pooler is detected and the migration lock is a row of
-- hectic.migration_lock taken in transactions of its own; four concurrent runs apply every
-- migration exactly once; a run killed with -9 holds the lock until its expiry, no longer;
-- no session setting of a run is left on the server connection the next client gets.
local t = require "testutil"
local proc = require "dbtool.core.proc"
local core = require "dbtool.core"

local N = 12

local function write_migrations(mdir)
  for i = 1, N do
    local name = string.format("20250101%06d-m%02d", i, i)
    local up = {}
    if i == 1 then up[1] = "CREATE TABLE applied_log (name text, pid int) INHERITS (hectic.created_at);" end
    up[#up + 1] = string.format("CREATE TABLE t%02d (id int) INHERITS (hectic.created_at);", i)
    up[#up + 1] = string.format("INSERT INTO applied_log (name, pid) VALUES ('%s', pg_backend_pid());", name)
    t.write(mdir .. "/" .. name .. "/up.sql", table.concat(up, "\n") .. "\n")
    t.write(mdir .. "/" .. name .. "/down.sql", string.format("DROP TABLE t%02d;\n", i))
  end
end

-- a project whose db-tool.lua sets the migration policy
local function project(dir, settings)
  t.write(dir .. "/db/db-tool.lua", "return { settings = { migration = " .. settings .. " } }\n")
  return dir
end

local function spawn(dir, url, args, tag)
  local argv = { t.build .. "/migrator", "-d", dir .. "/migration" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local errf = dir .. "/stderr." .. tag
  local p = assert(proc.spawn { argv = argv, cwd = dir,
    env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), DB_URL = url, LOCAL_DIR = dir,
      NO_COLOR = "1" },
    stdin = "null", stdout = "null", stderr = { path = errf } })
  return p, errf
end

local function value(url, sql, ...)
  local c <close> = t.connect(url)
  local r = c:exec(sql, ...)
  return r[1] and r[1][1]
end

describe("migrations through PgBouncer (pool_mode = transaction)", function()
  local bouncer
  setup(function() bouncer = t.pgbouncer { pool_mode = "transaction", pool_size = 2 } end)

  it("four concurrent `migrate up all` apply every migration exactly once (table lock)", function()
    local dir = t.tmpdir("pgb4")
    write_migrations(dir .. "/migration")
    local direct, db = t.fresh_db("pgb4")
    local via = bouncer.url(db)
    local ps = {}
    for k = 1, 4 do ps[k] = { spawn(dir, via, { "migrate", "up", "all" }, k) } end
    for k = 1, 4 do
      local how, code = ps[k][1]:wait(120)
      assert.are.same({ "exited", 0 }, { how, code }, t.read(ps[k][2]))
    end
    assert.are.equal(N, value(direct, "SELECT count(*)::int FROM hectic.migration"))
    assert.are.equal(N, value(direct, "SELECT count(*)::int FROM applied_log"))
    assert.are.equal(N, value(direct, "SELECT count(DISTINCT name)::int FROM applied_log"))
    -- the pooler was detected: the lock table was used, and every run released it
    assert.is_true(value(direct, "SELECT to_regclass('hectic.migration_lock') IS NOT NULL"))
    assert.are.equal(0, value(direct, "SELECT count(*)::int FROM hectic.migration_lock"))
    -- no advisory lock of ours was taken on the server
    assert.are.equal(0, value(direct, "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory'"))
    -- on a direct connection the same run uses the session advisory lock (no lock table)
    local direct2 = t.fresh_db("pgbdirect")
    local p, errf = spawn(dir, direct2, { "migrate", "up", "all" }, "direct")
    assert.are.same({ "exited", 0 }, { p:wait(120) }, t.read(errf))
    assert.is_false(value(direct2, "SELECT to_regclass('hectic.migration_lock') IS NOT NULL"))
  end)

  it("a run killed with -9 while holding the lock blocks the next one until the expiry only", function()
    local dir = project(t.tmpdir("pgbkill"), "{ lock_expiry = 5 }")
    write_migrations(dir .. "/migration")
    -- migration 3 takes a while: the run is killed inside it
    local slow = string.format("%s/migration/20250101%06d-m%02d/up.sql", dir, 3, 3)
    t.write(slow, "SELECT pg_sleep(1.5);\n" .. t.read(slow))
    local direct, db = t.fresh_db("pgbkill")
    local via = bouncer.url(db)
    local victim = spawn(dir, via, { "migrate", "up", "all" }, "victim")
    local deadline = core.now() + 60
    local running = "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1.5)%'"
    while (value(direct, running) or 0) == 0 do
      assert(core.now() < deadline, "the migration did not start")
      core.sleep(0.02)
    end
    victim:kill("KILL")
    victim:wait(10)
    local owner = value(direct, "SELECT owner FROM hectic.migration_lock")
    assert.is_string(owner) -- the killed run's lock is still there
    -- a run that waits less than the expiry gives up, naming the holder
    local p, errf = spawn(dir, via, { "migrate", "up", "all", "--lock-wait", "0.5" }, "short")
    assert.are.same({ "exited", 1 }, { p:wait(60) }, t.read(errf))
    local err = t.read(errf)
    assert.matches("another migration is running on this database", err)
    assert.truthy(err:find(owner, 1, true), err)
    -- a run that waits long enough proceeds once the lock expired
    p, errf = spawn(dir, via, { "migrate", "up", "all", "--lock-wait", "30" }, "next")
    assert.are.same({ "exited", 0 }, { p:wait(60) }, t.read(errf))
    assert.matches("waiting for another migration to finish", t.read(errf))
    assert.are.equal(N, value(direct, "SELECT count(*)::int FROM hectic.migration"))
    assert.are.equal(N, value(direct, "SELECT count(DISTINCT name)::int FROM applied_log"))
    assert.are.equal(N, value(direct, "SELECT count(*)::int FROM applied_log"))
    assert.are.equal(0, value(direct, "SELECT count(*)::int FROM hectic.migration_lock"))
  end)

  it("leaves no session setting on the server connection for the pool's next client", function()
    local single = t.pgbouncer { pool_mode = "transaction", pool_size = 1 } -- one server connection
    local dir = project(t.tmpdir("pgbleak"), "{ lock_timeout = '7s', statement_timeout = '9s' }")
    write_migrations(dir .. "/migration")
    t.write(dir .. "/migration/20250101000099-nosync/up.sql", "-- db-tool: no-transaction\nSELECT 1;\n")
    local direct, db = t.fresh_db("pgbleak")
    local via = single.url(db)
    local p, errf = spawn(dir, via, { "migrate", "up", "all" }, "run")
    assert.are.same({ "exited", 0 }, { p:wait(120) }, t.read(errf))
    -- another client of the pool: the same server backend the migrations ran on
    local c <close> = t.connect(via)
    local pid = c:exec("SELECT pg_backend_pid() AS p")[1].p
    assert.are.equal(1, value(direct, "SELECT count(DISTINCT pid)::int FROM applied_log"))
    assert.are.equal(pid, value(direct, "SELECT min(pid) FROM applied_log"))
    -- the settings are the server's defaults, as a new direct connection sees them
    local q = [[SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st,
      current_setting('synchronous_commit') AS sc,
      coalesce(current_setting('hectic.migration_mode', true), '') AS mm]]
    local function settings(conn)
      local r = conn:exec(q)[1]
      return { lt = r.lt, st = r.st, sc = r.sc, mm = r.mm }
    end
    local d <close> = t.connect(direct)
    assert.are.same(settings(d), settings(c))
    assert.are.same({ lt = "0", st = "0", mm = "" }, { lt = settings(c).lt, st = settings(c).st,
      mm = settings(c).mm })
    assert.are.equal(0, c:exec("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' "
      .. "AND pid = pg_backend_pid()")[1].n)
    assert.are.equal("idle", c:transaction_status())
  end)
end)
