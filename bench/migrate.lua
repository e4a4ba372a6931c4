-- Migrations: `migrator migrate up all` against baselines run in the same invocation, on a
-- throw-away cluster with PostgreSQL's default durability (fsync and synchronous_commit on:
-- per-migration commits cost what they cost in real life).
--   1. N tiny migrations (default 1,000) vs one `psql -X -1 -f` of the same SQL
--      (goal: ratio <= 1.5) — per-migration overhead of our bookkeeping and transactions;
--   2. the same vs one psql process per migration, as the original migrator ran them
--      (BEGIN; \i file; INSERT INTO hectic.migration; COMMIT) — measured on P migrations
--      (default 200) and reported per migration;
--   3. `migrator status` with 10,000 migrations on disk and applied (goal <= 1 s).
-- Usage: db-tool bench/migrate.lua [N] [ROUNDS] [P]     (as a non-root user: bench/run.sh)
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
package.path = b.top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local core = require "dbtool.core"
local proc = require "dbtool.core.proc"
local pg = require "dbtool.core.pg"

local N = tonumber(arg[1]) or 1000
local ROUNDS = tonumber(arg[2]) or 3
local P = tonumber(arg[3]) or 200
local STATUS_N = 10000

local bindir = testutil.pg_bindir()
local dir = testutil.tmpdir("bench-migrate")

-- A cluster with default settings (durable), socket only.
local function start_cluster()
  local data = dir .. "/data"
  local r = testutil.run { argv = { bindir .. "/initdb", "-D", data, "-A", "trust", "--no-locale", "-E",
    "UTF8" } }
  assert(r.code == 0, "initdb failed: " .. r.stderr)
  local p = assert(proc.spawn { argv = { bindir .. "/postgres", "-D", data, "-k", dir, "-p", "5433",
    "-c", "listen_addresses=" }, stdin = "null", stdout = { path = dir .. "/server.log" }, stderr = "stdout",
    detach = true })
  local conninfo = "host=" .. dir .. " port=5433 dbname=postgres"
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
local counter = 0
local function fresh_db()
  counter = counter + 1
  local name = "bench_" .. counter
  local c <close> = pg.connect(admin)
  c:exec('CREATE DATABASE "' .. name .. '"')
  return "postgresql:///" .. name .. "?host=" .. dir .. "&port=5433"
end

local function sh_ok(argv, opts)
  local t, code = b.time(argv, opts)
  assert(code == 0, table.concat(argv, " ") .. " failed (exit " .. tostring(code) .. ")")
  return t
end

local function migrator(url, mdir, ...)
  return sh_ok({ b.build .. "/migrator", "-d", mdir, ... }, { env = { DB_URL = url,
    PATH = os.getenv("PATH") } })
end

local function count(url, sql)
  local c <close> = pg.connect(url)
  return c:exec(sql)[1].n
end

-- N tiny migrations (a table each, one row) and the same SQL as one file.
local function generate(mdir, n, tag)
  local all = {}
  for i = 1, n do
    local name = string.format("2025%010d-%s%d", i, tag, i)
    local sql = string.format(
      "CREATE TABLE %s_%d (id int PRIMARY KEY, v text) INHERITS (hectic.created_at);\n"
      .. "INSERT INTO %s_%d (id, v) VALUES (1, 'x');\n", tag, i, tag, i)
    testutil.write(mdir .. "/" .. name .. "/up.sql", sql)
    testutil.write(mdir .. "/" .. name .. "/down.sql", string.format("DROP TABLE %s_%d;\n", tag, i))
    all[#all + 1] = sql
  end
  testutil.write(dir .. "/" .. tag .. "-all.sql", table.concat(all))
  return dir .. "/" .. tag .. "-all.sql"
end

io.stdout:write(string.format("cluster %s (default durability); %d round(s), medians\n", dir, ROUNDS))

-- 1 and 2 -------------------------------------------------------------------------------
local mdir = dir .. "/migration"
local allfile = generate(mdir, N, "m")
local ours, single = {}, {}
for r = 1, ROUNDS do
  local url = fresh_db()
  migrator(url, mdir, "init")   -- the bundle is installed beforehand in both cases
  ours[r] = migrator(url, mdir, "migrate", "up", "all", "-q")
  assert(count(url, "SELECT count(*)::int AS n FROM hectic.migration") == N)
  url = fresh_db()
  migrator(url, mdir, "init")
  single[r] = sh_ok { bindir .. "/psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", allfile }
  assert(count(url, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename LIKE 'm\\_%'") == N)
end
local o, s = b.median(ours), b.median(single)
b.report(string.format("%d migrations vs psql -1 -f", N), o, s, "<= 1.5x")
io.stdout:write(string.format("%-40s %.3f ms per migration above psql -1\n", "", (o - s) / N * 1000))

local pdir = dir .. "/migration-p"
generate(pdir, P, "p")
local per = {}
for r = 1, math.min(ROUNDS, 2) do
  local url = fresh_db()
  migrator(url, pdir, "init")
  local names = {}
  for i = 1, P do names[i] = string.format("2025%010d-p%d", i, i) end
  local t0 = core.now()
  for _, name in ipairs(names) do
    local file = pdir .. "/" .. name .. "/up.sql"
    local script = string.format(
      "BEGIN;\n\\i '%s'\nINSERT INTO hectic.migration (name, hash) VALUES ('%s', '%s');\n"
      .. "COMMIT;\n", file, name, require("dbtool.migrate.checksum").file(file))
    local stdin = dir .. "/stdin.sql"
    testutil.write(stdin, script)
    local _, code = b.time({ bindir .. "/psql", "-v", "ON_ERROR_STOP=1", "-q", url },
      { stdin = { path = stdin } })
    assert(code == 0, "psql failed")
  end
  per[r] = (core.now() - t0) / P
end
local per_ours = o / N
b.report(string.format("per migration vs a psql process each (%d)", P), per_ours, b.median(per))

-- 3 -------------------------------------------------------------------------------------
local sdir = dir .. "/migration-status"
local checksum = require "dbtool.migrate.checksum"
local url = fresh_db()
migrator(url, sdir, "init")
local names, hashes = {}, {}
for i = 1, STATUS_N do
  local name = string.format("2024%010d-s%d", i, i)
  local file = sdir .. "/" .. name .. "/up.sql"
  testutil.write(file, string.format("SELECT %d;\n", i))
  testutil.write(sdir .. "/" .. name .. "/down.sql", "SELECT 1;\n")
  names[i], hashes[i] = name, checksum.file(file)
end
do -- recorded as applied (applying 10,000 real migrations is not what this measures)
  local c <close> = pg.connect(url)
  c:exec("INSERT INTO hectic.migration (name, hash) "
    .. "SELECT n, h FROM unnest($1::text[], $2::text[]) AS x(n, h)",
    "{" .. table.concat(names, ",") .. "}", "{" .. table.concat(hashes, ",") .. "}")
end
local st = {}
for r = 1, ROUNDS do st[r] = migrator(url, sdir, "status") end
local stj = {}
for r = 1, ROUNDS do stj[r] = migrator(url, sdir, "status", "--json") end
io.stdout:write(string.format("%-40s ours %10s  (goal <= 1 s); --json %s\n",
  string.format("status of %d migrations", STATUS_N), b.ms(b.median(st)), b.ms(b.median(stj))))
os.exit(0, true)
