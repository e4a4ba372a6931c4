-- Fresh cluster: `postgres-init` against what the original did (initdb + pg_ctl -w start +
-- createdb), measured in the same invocation. Goal: ≤ 120 ms median and ≥ 5x faster.
--
--   db-tool bench/postgres_init.lua [N]      (as an unprivileged user; bench/run.sh arranges it)
--
-- Cases (all with PG_SHARED_PRELOAD_LIBRARIES='' and PG_DISABLE_LOGGING=1, like the baseline):
--   fresh, same working dir   the everyday `database deploy` loop: the previous cluster is
--                             stopped (untimed), the background copy is ready
--   fresh, new working dir    first init of a directory: a copy from the template's pool
--                             (refilled in the background; waited for, untimed)
--   fresh, new dir, no pool   the same with DB_TOOL_SPARES=0 and an empty pool: an in-process
--                             copy of the cached template
--   reuse                     PG_REUSE=1 of a stopped cluster
--   baseline                  initdb --no-locale -E UTF8 + pg_ctl -w start + createdb testdb
-- and, to tell our overhead from PostgreSQL's own start-up time on this machine:
--   floor                     `postgres -D` on a prepared copy until postmaster.pid says
--                             "ready" (no db-tool at all): no postgres-init can beat it
--   initdb alone              to scale the result to the reference machine of DESIGN.md
--                             (initdb ~600 ms)
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
local cluster = require "dbtool.cluster"
local core = require "dbtool.core"
local stdlib = require "posix.stdlib"

if require("posix.unistd").geteuid() == 0 then
  io.stderr:write("bench/postgres_init.lua: PostgreSQL refuses root; run it through bench/run.sh\n")
  os.exit(2)
end

local n = tonumber(arg[1]) or 7
local init = b.build .. "/postgres-init"
local bindir = cluster.bindir()
local base_dir = assert(stdlib.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/dbtool-bench-pginit-XXXXXX"))

local function run(argv, env)
  local secs, code = b.time(argv, { env = env })
  if code ~= 0 then error(table.concat(argv, " ") .. " failed with exit " .. tostring(code)) end
  return secs
end

local function envfor(dir, extra)
  local e = require("dbtool.env").child_env { PG_WORKING_DIR = dir, PG_PORT = "5481",
    PG_SHARED_PRELOAD_LIBRARIES = "", PG_DISABLE_LOGGING = "1", PG_REUSE = false, LOCAL_DIR = false,
    PG_CONF_FILE = false, PG_DATABASE = false, PG_URL_VAR = false }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function wait_spare(dir)
  local deadline = core.now() + 60
  repeat
    core.sleep(0.05)
    local ready = false
    for _, name in ipairs(require("posix.dirent").dir(dir)) do
      if name:match("^%.db%-tool%-spare%-%x+$") then ready = true end
    end
    if ready and not cluster.refill_busy(dir) then return end
  until core.now() > deadline
  error("the background copy was not ready after 60 s")
end

-- warm-up: builds the template for (this server, testdb) if the cache has none
local same = base_dir .. "/same"
run({ init }, envfor(same))

local fresh_same = b.sample(n, function()
  cluster.stop(same)
  wait_spare(same)
  b.settle()
  return run({ init }, envfor(same))
end, 0)
cluster.stop(same)

local tpl = cluster.template { bindir = bindir, database = "testdb" }
local function wait_pool()
  local deadline = core.now() + 60
  while cluster.pool_busy(tpl.dir) and core.now() < deadline do core.sleep(0.05) end
end

local k = 0
local function new_dir(extra)
  return function()
    k = k + 1
    local dir = base_dir .. "/new" .. k
    b.settle()
    local secs = run({ init }, envfor(dir, extra))
    cluster.stop(dir)
    cluster.remove(dir)
    wait_pool()
    return secs
  end
end
wait_pool()
local fresh_new = b.sample(n, new_dir(), 0)
local function empty_pool()
  for _, name in ipairs(require("posix.dirent").dir(cluster.pool_dir(tpl)) or {}) do
    if name:match("^ready%-") then cluster.rm_rf(cluster.pool_dir(tpl) .. "/" .. name) end
  end
end
empty_pool()
local fresh_copy = b.sample(n, new_dir { DB_TOOL_SPARES = "0" }, 0)

-- floor: PostgreSQL alone, on a prepared copy of the same template
local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local floor = b.sample(n, function()
  local dir = base_dir .. "/floor"
  cluster.rm_rf(dir)
  cluster.mkdir_p(dir, 448)
  assert(require("dbtool.core.fs").copytree(tpl.data, dir .. "/data"))
  local t0 = core.now()
  local p = assert(require("dbtool.core.proc").spawn { argv = { bindir .. "/postgres", "-D", dir .. "/data",
    "-F", "-c", "port=5483", "-c", "unix_socket_directories=" .. dir, "-c", "listen_addresses=" },
    stdin = "null", stdout = "null", stderr = "null" })
  while true do
    local info = cluster.parse_pidfile(read(dir .. "/data/postmaster.pid"))
    if info and info.pid == p.pid and info.status == "ready" then break end
    if p:wait(0) then error("postgres exited while starting in " .. dir) end
    core.sleep(0.001)
  end
  local secs = core.now() - t0
  p:kill("QUIT")
  p:wait()
  return secs
end, 1)
cluster.rm_rf(base_dir .. "/floor")

run({ init }, envfor(same, { PG_REUSE = "1" }))
local reuse = b.sample(n, function()
  cluster.stop(same)
  return run({ init }, envfor(same, { PG_REUSE = "1" }))
end, 0)
cluster.stop(same)

local initdb_alone = b.sample(n, function()
  local dir = base_dir .. "/initdb"
  local secs = run({ bindir .. "/initdb", "-D", dir, "--no-locale", "-E", "UTF8" },
    require("dbtool.env").child_env { LC_ALL = "C" })
  cluster.rm_rf(dir)
  return secs
end, 0)

local j = 0
local baseline = b.sample(n, function()
  j = j + 1
  local dir = base_dir .. "/base" .. j
  local data, env = dir .. "/data", require("dbtool.env").child_env { PGPORT = "5482" }
  require("dbtool.cluster").mkdir_p(dir, 448)
  b.settle()
  local t0 = core.now()
  run({ bindir .. "/initdb", "-D", data, "--no-locale", "-E", "UTF8" }, env)
  run({ bindir .. "/pg_ctl", "-D", data, "-l", dir .. "/log", "-o", "-F -k " .. dir ..
    " -c listen_addresses= -p 5482", "-w", "start" }, env)
  run({ bindir .. "/createdb", "-h", dir, "-p", "5482", "testdb" }, env)
  local secs = core.now() - t0
  run({ bindir .. "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop" }, env)
  cluster.rm_rf(dir)
  return secs
end, 0)

cluster.remove(same)
cluster.rm_rf(base_dir)

b.report("postgres-init fresh (same dir) vs original", fresh_same, baseline, "<= 120 ms, >= 5x")
b.report("postgres-init fresh (new dir, pool) vs original", fresh_new, baseline)
b.report("postgres-init fresh (new dir, copy) vs original", fresh_copy, baseline)
b.report("postgres-init PG_REUSE vs original", reuse, baseline)
io.stdout:write(string.format("speed-up: %.1fx (same dir), %.1fx (new dir, pool), %.1fx (new dir, copy), "
  .. "%.1fx (reuse); n = %d\n", baseline / fresh_same, baseline / fresh_new, baseline / fresh_copy,
  baseline / reuse, n))
io.stdout:write(string.format("floor: postgres alone until ready %s; fresh (same dir) = floor + %s\n",
  b.ms(floor), b.ms(fresh_same - floor)))
io.stdout:write(string.format("initdb alone %s; fresh (same dir) scaled to a 600 ms-initdb machine: %s %s\n",
  b.ms(initdb_alone), b.ms(fresh_same * 0.6 / initdb_alone),
  fresh_same * 0.6 / initdb_alone <= 0.12 and "(<= 120 ms)" or "(> 120 ms)"))
