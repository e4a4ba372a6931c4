-- Migrations, ours against the peers users would pick instead and against the floor, run
-- interleaved in one invocation on a throw-away cluster with PostgreSQL's default
-- durability (fsync and synchronous_commit on: per-migration commits cost what they cost).
-- peers: dbmate sql-migrate sqitch
--
--   1. N tiny migrations (default 1,000; a table and a row each), every case on a fresh
--      database that has the hectic bundle (installed untimed: its event triggers then cost
--      every case alike): `migrator migrate up all` vs `dbmate up`, `sql-migrate up`,
--      `sqitch deploy` (a psql process per change: measured on S changes, default 100, and
--      extrapolated to N as its fixed cost — a deploy with nothing to do — plus N × the cost
--      per change), the original migrator (a psql process per migration, on S, × N/S), and
--      the floors: one psql session running the N transactions with their bookkeeping
--      INSERTs, on a database with the hectic bundle (ours) and on a plain one (the peers:
--      their own tables would be refused by the bundle's event triggers).
--   2. status of 10,000 applied migrations, checksums verified: `migrator status` (cache of
--      unchanged files warm, and cold: its cache removed before each run), `rickdb check`,
--      vs `dbmate status`, `sql-migrate status`, and the floor: psql listing the names.
--      Goals (issue 17): ours ≤ 0.8× dbmate, ≤ 3× the floor.
-- Usage: db-tool bench/migrate.lua [N] [ROUNDS] [S]     (as a non-root user: bench/run.sh)
--   N = 0 skips the first measure; BENCH_STATUS_N (10000) and BENCH_STATUS_ROUNDS (7) size
--   the second, BENCH_STATUS_N=0 skips it.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
local peers = require "peers"
package.path = b.top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local core = require "dbtool.core"
local proc = require "dbtool.core.proc"
local pg = require "dbtool.core.pg"

local N = tonumber(arg[1]) or 1000
local ROUNDS = tonumber(arg[2]) or 3
local S = math.min(tonumber(arg[3]) or 100, N)
local STATUS_N = tonumber(os.getenv("BENCH_STATUS_N") or "10000")
local STATUS_ROUNDS = tonumber(os.getenv("BENCH_STATUS_ROUNDS") or "7")

local bindir = testutil.pg_bindir()
local dir = testutil.tmpdir("bench-migrate")
local PORT = "5433"
local psql = bindir .. "/psql"

-- A cluster with default settings (durable), socket only.
local function start_cluster()
  local data = dir .. "/data"
  local r = testutil.run { argv = { bindir .. "/initdb", "-D", data, "-A", "trust", "--no-locale", "-E",
    "UTF8" } }
  assert(r.code == 0, "initdb failed: " .. r.stderr)
  local p = assert(proc.spawn { argv = { bindir .. "/postgres", "-D", data, "-k", dir, "-p", PORT,
    "-c", "listen_addresses=" }, stdin = "null", stdout = { path = dir .. "/server.log" }, stderr = "stdout",
    detach = true })
  local conninfo = "host=" .. dir .. " port=" .. PORT .. " dbname=postgres"
  local deadline = core.now() + 30
  while pg.ping(conninfo) ~= "ok" do
    assert(core.now() < deadline and not p:wait(0), "postgres did not start")
    core.sleep(0.01)
  end
  testutil.at_exit(function()
    p:kill("INT")
    p:wait(20)
  end)
  return conninfo
end

local admin = start_cluster()
local user = require("posix.unistd").getlogin() or os.getenv("USER") or os.getenv("LOGNAME")
user = user or require("posix.pwd").getpwuid(require("posix.unistd").geteuid()).pw_name
local counter = 0

--- A fresh database: its name and URLs in the forms each tool takes.
local function fresh_db()
  counter = counter + 1
  local name = "bench_" .. counter
  local c <close> = pg.connect(admin)
  c:exec('CREATE DATABASE "' .. name .. '"')
  return {
    name = name,
    url = "postgresql:///" .. name .. "?host=" .. dir .. "&port=" .. PORT,
    dbmate = "postgres://" .. user .. "@/" .. name .. "?socket=" .. dir .. "&port=" .. PORT
      .. "&sslmode=disable",
    conninfo = "host=" .. dir .. " port=" .. PORT .. " dbname=" .. name .. " user=" .. user
      .. " sslmode=disable",
    sqitch = "db:pg://" .. user .. "@/" .. name .. "?host=" .. dir .. "&port=" .. PORT,
  }
end

-- testutil.write runs `mkdir -p` per file: too slow for 50,000 files
local made = {}
local function mkdirs(d)
  if made[d] then return end
  local parent = d:match("^(.*)/[^/]+$")
  if parent and parent ~= "" then mkdirs(parent) end
  require("posix.sys.stat").mkdir(d, 493)
  made[d] = true
end
local function write(path, content)
  mkdirs(path:match("^(.*)/[^/]*$"))
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

local function drop_db(db)
  local c <close> = pg.connect(admin)
  c:exec('DROP DATABASE IF EXISTS "' .. db.name .. '" WITH (FORCE)')
end

local base_env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), LANG = "C.UTF-8" }
local function envp(extra)
  local e = {}
  for k, v in pairs(base_env) do e[k] = v end
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function migrator(db, mdir, ...)
  return b.ok({ b.build .. "/migrator", "-d", mdir, ... }, { env = envp { DB_URL = db.url } })
end

local function count(db, sql)
  local c <close> = pg.connect(db.url)
  return c:exec(sql)[1].n
end

-- ---------------------------------------------------------------- the migrations

-- Migration i: a table and a row. On a database with the hectic bundle a table must inherit
-- hectic.created_at (its event triggers say so); the peers run on plain databases (their own
-- bookkeeping tables would be refused there), so they get the same SQL without it.
local function sql_up(tag, i, hectic)
  return string.format("CREATE TABLE %s_%d (id int PRIMARY KEY, v text)%s;\n"
    .. "INSERT INTO %s_%d (id, v) VALUES (1, 'x');\n", tag, i,
    hectic and " INHERITS (hectic.created_at)" or "", tag, i)
end
local function sql_down(tag, i) return string.format("DROP TABLE %s_%d;\n", tag, i) end

--- Write migrations 1..n of `tag` in every tool's layout under root; returns the paths.
local function generate(root, n, tag, with_sqitch)
  local p = { ours = root .. "/ours", dbmate = root .. "/dbmate", sqlmigrate = root .. "/sql-migrate",
    sqitch = root .. "/sqitch", floor = root .. "/floor.sql", floor_plain = root .. "/floor-plain.sql",
    original = {} }
  local floor, floor_plain, plan = {}, {}, { "%syntax-version=1.0.0", "%project=bench", "" }
  for i = 1, n do
    local ts = string.format("2025%010d", i)
    local up, hup, down = sql_up(tag, i), sql_up(tag, i, true), sql_down(tag, i)
    local name = ts .. "-" .. tag .. i
    write(p.ours .. "/" .. name .. "/up.sql", hup)
    write(p.ours .. "/" .. name .. "/down.sql", down)
    write(p.dbmate .. "/" .. ts .. "_" .. tag .. i .. ".sql",
      "-- migrate:up\n" .. up .. "\n-- migrate:down\n" .. down)
    write(p.sqlmigrate .. "/" .. ts .. "_" .. tag .. i .. ".sql",
      "-- +migrate Up\n" .. up .. "\n-- +migrate Down\n" .. down)
    if with_sqitch then
      write(p.sqitch .. "/deploy/" .. tag .. i .. ".sql", "BEGIN;\n" .. up .. "COMMIT;\n")
      write(p.sqitch .. "/revert/" .. tag .. i .. ".sql", "BEGIN;\n" .. down .. "COMMIT;\n")
      plan[#plan + 1] = string.format("%s%d 2025-01-01T00:00:00Z bench <bench@example.com> # %d", tag, i, i)
    end
    floor[#floor + 1] = "BEGIN;\n" .. hup .. string.format(
      "INSERT INTO hectic.migration (name, hash) VALUES ('%s', encode(sha256('%s'::bytea), 'hex'));\n"
      .. "COMMIT;\n", name, name)
    floor_plain[#floor_plain + 1] = "BEGIN;\n" .. up .. string.format(
      "INSERT INTO bookkeeping (name) VALUES ('%s');\nCOMMIT;\n", name)
    p.original[i] = { name = name, file = p.ours .. "/" .. name .. "/up.sql" }
  end
  write(p.floor, table.concat(floor))
  write(p.floor_plain, "CREATE TABLE bookkeeping (name text PRIMARY KEY, at timestamptz "
    .. "DEFAULT now());\n" .. table.concat(floor_plain))
  if with_sqitch then
    write(p.sqitch .. "/sqitch.plan", table.concat(plan, "\n") .. "\n")
    write(p.sqitch .. "/sqitch.conf", "[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n"
      .. "\ttop_dir = .\n[engine \"pg\"]\n\tclient = " .. psql .. "\n")
  end
  return p
end

local dbmate_bin, dbmate_why = peers.dbmate()
local sqlmigrate_bin, sqlmigrate_why = peers["sql-migrate"]()
local sqitch_bin, sqitch_why = peers.sqitch()

local function sqlmigrate_config(path, db, mdir)
  testutil.write(path, "bench:\n  dialect: postgres\n  datasource: " .. db.conninfo .. "\n  dir: " .. mdir
    .. "\n")
end

io.stdout:write(string.format("cluster %s (default durability); dbmate %s, sql-migrate %s, sqitch %s\n",
  dir, dbmate_bin or "-", sqlmigrate_bin or "-", sqitch_bin or "-"))

-- ---------------------------------------------------------------- 1. N tiny migrations

if N > 0 then
  local gen = generate(dir .. "/tiny", N, "m", false)
  local small = generate(dir .. "/tiny-s", S, "s", true)
  local current
  local function fresh(bundle)
    return function()
      if current then drop_db(current) end
      current = fresh_db()
      if bundle then migrator(current, gen.ours, "init", "-q") end -- the bundle: untimed
    end
  end
  local bundled, plain = fresh(true), fresh(false)
  local scale = N / S
  local cases = {
    { name = "migrator migrate up all", kind = "ours", setup = bundled, run = function()
      local t = migrator(current, gen.ours, "migrate", "up", "all", "-q")
      assert(count(current, "SELECT count(*)::int AS n FROM hectic.migration") == N)
      return t
    end },
    { name = "dbmate up", kind = "peer", floor = "one psql, plain database", setup = plain,
      missing = not dbmate_bin and dbmate_why or nil,
      run = function()
        local t = b.ok({ dbmate_bin, "--url", current.dbmate, "--migrations-dir", gen.dbmate,
          "--no-dump-schema", "up" }, { env = envp() })
        assert(count(current, "SELECT count(*)::int AS n FROM schema_migrations") == N)
        return t
      end },
    { name = "sql-migrate up", kind = "peer", floor = "one psql, plain database",
      missing = not sqlmigrate_bin and sqlmigrate_why or nil,
      setup = function()
        plain()
        sqlmigrate_config(dir .. "/dbconfig.yml", current, gen.sqlmigrate)
      end,
      run = function()
        local t = b.ok({ sqlmigrate_bin, "up", "-config=" .. dir .. "/dbconfig.yml", "-env=bench" },
          { env = envp() })
        assert(count(current, "SELECT count(*)::int AS n FROM gorp_migrations") == N)
        return t
      end },
    { name = string.format("sqitch deploy (%d changes, extrapolated)", S), kind = "peer",
      floor = "one psql, plain database", setup = plain, missing = not sqitch_bin and sqitch_why or nil,
      run = function()
        local argv = { sqitch_bin, "deploy", "--target", current.sqitch }
        local o = { env = envp { SQITCH_CONFIG = small.sqitch .. "/sqitch.conf" }, cwd = small.sqitch }
        local t = b.ok(argv, o)
        local idle = b.ok(argv, o) -- nothing left to deploy: its fixed cost
        return idle + (t - idle) * scale
      end },
    { name = string.format("original migrator: a psql per migration (%d, ×%g)", S, scale), kind = "peer",
      setup = bundled,
      run = function()
        local stdin = dir .. "/stdin.sql"
        local t = 0
        for i = 1, S do
          local o = small.original[i]
          testutil.write(stdin, string.format("BEGIN;\n\\i '%s'\nINSERT INTO hectic.migration (name, hash) "
            .. "VALUES ('%s', encode(sha256('%s'::bytea), 'hex'));\nCOMMIT;\n", o.file, o.name, o.name))
          t = t + b.ok({ psql, "-X", "-v", "ON_ERROR_STOP=1", "-q", current.url },
            { stdin = { path = stdin } })
        end
        return t * scale
      end },
    { name = "one psql, hectic bundle", kind = "floor", setup = bundled, run = function()
      return b.ok { psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", current.url, "-f", gen.floor }
    end },
    { name = "one psql, plain database", kind = "floor", setup = plain, run = function()
      return b.ok { psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", current.url, "-f", gen.floor_plain }
    end },
  }
  b.rounds(cases, { rounds = ROUNDS, warm = 0, settle = true })
  if current then drop_db(current) end
  b.table(string.format("%d tiny migrations (a table and a row each), durable cluster", N), cases,
    { goals = { { "floor", 1.5 } },
      note = "floors: one psql session running the same transactions with a bookkeeping INSERT each; "
        .. "ours and the original migrator run on databases with the hectic bundle (its event triggers "
        .. "fire on every CREATE TABLE), the peers on plain ones (÷ floor: against the floor of their "
        .. "kind)" })
end

-- ---------------------------------------------------------------- 2. status of 10,000

if STATUS_N > 0 then
  local root = dir .. "/status"
  local db = fresh_db()
  local names, hashes, dbm, gorp, rick, rick_sums = {}, {}, {}, {}, {}, {}
  local checksum = require "dbtool.migrate.checksum"
  for i = 1, STATUS_N do
    local ts = string.format("2024%010d", i)
    local name = ts .. "-s" .. i
    local up = string.format("SELECT %d;\n", i)
    write(root .. "/ours/" .. name .. "/up.sql", up)
    write(root .. "/ours/" .. name .. "/down.sql", "SELECT 1;\n")
    write(root .. "/dbmate/" .. ts .. "_s" .. i .. ".sql", "-- migrate:up\n" .. up
      .. "\n-- migrate:down\nSELECT 1;\n")
    write(root .. "/sql-migrate/" .. ts .. "_s" .. i .. ".sql", "-- +migrate Up\n" .. up
      .. "\n-- +migrate Down\nSELECT 1;\n")
    write(root .. "/rickdb/" .. ts .. "_s" .. i .. ".sql", up)
    names[i], hashes[i] = name, checksum.string(up)
    dbm[i], gorp[i], rick[i] = ts, ts .. "_s" .. i .. ".sql", ts .. "_s" .. i .. ".sql"
    rick_sums[i] = hashes[i]
  end
  do -- recorded as applied by every tool (applying 10,000 migrations is not what this measures);
    -- the peers' tables first: the hectic bundle's event triggers would refuse them after
    local c <close> = pg.connect(db.url)
    local function arr(t) return "{" .. table.concat(t, ",") .. "}" end
    c:exec("CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)")
    c:exec("INSERT INTO schema_migrations SELECT unnest($1::text[])", arr(dbm))
    c:exec("CREATE TABLE gorp_migrations (id text PRIMARY KEY, applied_at timestamptz)")
    c:exec("INSERT INTO gorp_migrations SELECT unnest($1::text[]), now()", arr(gorp))
    c:exec(require("dbtool.migrate.store_rickdb").PG_DDL)
    c:exec(require("dbtool.migrate.store_rickdb").CHECKSUM_DDL)
    c:exec([[INSERT INTO "_migration" (applied, name) SELECT now(), unnest($1::text[])]], arr(rick))
    c:exec([[INSERT INTO "_migration_checksum" SELECT n, s FROM unnest($1::text[], $2::text[]) AS x(n, s)]],
      arr(rick), arr(rick_sums))
    migrator(db, root .. "/ours", "init", "-q")
    c:exec("INSERT INTO hectic.migration (name, hash) SELECT n, h FROM unnest($1::text[], $2::text[]) "
      .. "AS x(n, h)", arr(names), arr(hashes))
  end
  write(root .. "/rickdb.toml", string.format('[db]\nengine = "pgsql"\nhost = "%s"\nport = %s\n'
    .. 'dbname = "%s"\n[rickdb]\nchecksum = "verify"\n', dir, PORT, db.name))
  sqlmigrate_config(root .. "/dbconfig.yml", db, root .. "/sql-migrate")
  local cache_home = dir .. "/xdg-cache"
  local our_env = envp { DB_URL = db.url, XDG_CACHE_HOME = cache_home }
  local function check_out(argv, env, cwd, pattern)
    local r = testutil.run { argv = argv, env = env, cwd = cwd, clean_env = true }
    assert(r.code == 0 and r.stdout:find(pattern), table.concat(argv, " ") .. ": " .. r.stdout:sub(-300)
      .. r.stderr)
  end
  -- every tool sees 10,000 applied, nothing pending (checked once, untimed)
  check_out({ b.build .. "/migrator", "-d", root .. "/ours", "status" }, our_env, nil,
    STATUS_N .. " applied, 0 modified, 0 pending, 0 missing")
  if dbmate_bin then
    check_out({ dbmate_bin, "--url", db.dbmate, "--migrations-dir", root .. "/dbmate", "status" }, envp(),
      nil,
      "Applied: " .. STATUS_N)
  end
  local cases = {
    { name = "migrator status", kind = "ours", run = function()
      return b.ok({ b.build .. "/migrator", "-d", root .. "/ours", "status" }, { env = our_env })
    end },
    { name = "migrator status, cache removed first", kind = "ours",
      setup = function() testutil.rm_rf(cache_home) end,
      run = function()
        return b.ok({ b.build .. "/migrator", "-d", root .. "/ours", "status" }, { env = our_env })
      end },
    { name = "migrator status --json", kind = "ours", run = function()
      return b.ok({ b.build .. "/migrator", "-d", root .. "/ours", "status", "--json" }, { env = our_env })
    end },
    { name = "rickdb check", kind = "ours", run = function()
      return b.ok({ b.build .. "/rickdb", "--config", root .. "/rickdb.toml", "check", root .. "/rickdb" },
        { env = our_env })
    end },
    { name = "dbmate status", kind = "peer", missing = not dbmate_bin and dbmate_why or nil, run = function()
      return b.ok({ dbmate_bin, "--url", db.dbmate, "--migrations-dir", root .. "/dbmate", "status" },
        { env = envp() })
    end },
    { name = "sql-migrate status", kind = "peer", missing = not sqlmigrate_bin and sqlmigrate_why or nil,
      run = function()
        return b.ok({ sqlmigrate_bin, "status", "-config=" .. root .. "/dbconfig.yml", "-env=bench" },
          { env = envp() })
      end },
    { name = "psql listing the names", kind = "floor", run = function()
      return b.ok { psql, "-X", "-At", "-d", db.url, "-c",
        "SELECT name FROM hectic.migration ORDER BY name COLLATE \"C\"" }
    end },
  }
  b.rounds(cases, { rounds = STATUS_ROUNDS, warm = 1 })
  b.table(string.format("status, %d applied migrations, checksums verified", STATUS_N), cases,
    { goals = { { "dbmate status", 0.8 }, { "floor", 3 } },
      note = "sqitch: not measured here (its status reports the last deployed change, not every one)" })
end
os.exit(0, true)
