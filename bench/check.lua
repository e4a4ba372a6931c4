-- `database check` on the sample project (examples/) against what the original did for the
-- same work, measured in the same invocation. Goal (DESIGN.md §5): ≤ 0.5 s on a machine
-- where initdb takes ~600 ms; the initdb time of this machine is reported to scale by.
--
--   db-tool bench/check.lua [N]      (as an unprivileged user; bench/run.sh arranges it)
--
-- ours       `database check` (a prepared copy of the template from its pool — the previous
--            check's background job refilled it — direct start, one connection per step, the
--            bundle in one transaction, no psql process, immediate stop, removal)
-- baseline   the original's steps: initdb, pg_ctl -w start, createdb, psql -f for each of
--            the four bundle files, psql -f entrypoint.sql, psql -f test-data.sql,
--            pg_ctl stop, rm -rf
-- Both without a preloaded library and without the logging collector.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
local bundle = require "dbtool.bundle"
local cluster = require "dbtool.cluster"
local core = require "dbtool.core"
local stdlib = require "posix.stdlib"

if require("posix.unistd").geteuid() == 0 then
  io.stderr:write("bench/check.lua: PostgreSQL refuses root; run it through bench/run.sh\n")
  os.exit(2)
end

local n = tonumber(arg[1]) or 7
local bindir = cluster.bindir()
local base = assert(stdlib.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/dbtool-bench-check-XXXXXX"))
local project = base .. "/project"

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function must(argv, opts)
  local secs, code = b.time(argv, opts)
  if code ~= 0 then error(table.concat(argv, " ") .. " failed with exit " .. tostring(code), 0) end
  return secs
end

must { "cp", "-R", b.top .. "/examples", project }

local env = require("dbtool.env")
local function envfor(extra)
  local e = env.child_env { LOCAL_DIR = project, TMPDIR = base, PG_SHARED_PRELOAD_LIBRARIES = "",
    PG_DISABLE_LOGGING = "1", PG_REUSE = false, PG_WORKING_DIR = false, DATABASE_DIR = false,
    PGURL = false, DB_URL = false, HECTIC_DOTENV_FILE = false, ENVIRONMENT = false, HYDRATE_LOG = false,
    PATCH_LOG = false, PG_LOG_PATH = false, PG_CONF_FILE = false, PG_PORT = "5491", PG_DATABASE = false,
    DB_TOOL_TTY = false, DB_TOOL_LUA_PATH = false }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- the bundle as the original applied it: four files, one psql each
local files = {}
for i, f in ipairs(bundle.files()) do
  files[i] = base .. "/" .. f.name .. ".sql"
  write(files[i], f.sql)
end

-- The template's pool of prepared copies is refilled in the background after each check:
-- wait for that (untimed), as a user running check again a few seconds later would.
local tpl_dir
local function ours()
  if tpl_dir then
    local deadline = core.now() + 60
    while cluster.pool_busy(tpl_dir) and core.now() < deadline do core.sleep(0.05) end
  end
  local secs = must({ b.build .. "/database", "check" }, { env = envfor(), cwd = project })
  tpl_dir = tpl_dir or cluster.template { bindir = bindir, database = "testdb" }.dir
  return secs
end

local function baseline()
  local t0 = core.now()
  local wd = base .. "/baseline"
  local data, sock = wd .. "/data", wd .. "/sock"
  must { "mkdir", "-p", sock }
  local e = envfor { PGHOST = sock, PGPORT = "5491", PGDATABASE = "testdb", LC_ALL = "C" }
  must({ bindir .. "/initdb", "-D", data, "--no-locale", "-E", "UTF8", "-A", "trust" }, { env = e })
  must({ bindir .. "/pg_ctl", "-D", data, "-w", "-l", wd .. "/server.log", "-o",
    "-k " .. sock .. " -c listen_addresses= -p 5491", "start" }, { env = e })
  must({ bindir .. "/createdb", "testdb" }, { env = e })
  local psql = { bindir .. "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f" }
  local function run_psql(file)
    local argv = {}
    for i, a in ipairs(psql) do argv[i] = a end
    argv[#argv + 1] = file
    must(argv, { env = e, cwd = project })
  end
  for _, f in ipairs(files) do run_psql(f) end
  run_psql(project .. "/db/src/entrypoint.sql")
  run_psql(project .. "/test-data.sql")
  must({ bindir .. "/pg_ctl", "-D", data, "-m", "fast", "-w", "stop" }, { env = e })
  must { "rm", "-rf", wd }
  return core.now() - t0
end

local function initdb()
  local dir = base .. "/initdb"
  local secs = must({ bindir .. "/initdb", "-D", dir, "--no-locale", "-E", "UTF8", "-A", "trust" },
    { env = envfor { LC_ALL = "C" } })
  must { "rm", "-rf", dir }
  return secs
end

local ok, err = pcall(function()
  -- warm-up: the template cache for (this server, testdb), page cache for both sides
  ours()
  baseline()
  local t_ours, t_base, t_initdb = {}, {}, {}
  for i = 1, n do -- interleaved, so that load changes hit both sides alike
    b.settle()
    t_ours[i] = ours()
    b.settle()
    t_base[i] = baseline()
    t_initdb[i] = initdb()
  end
  local mo, mb, mi = b.median(t_ours), b.median(t_base), b.median(t_initdb)
  b.report("database check (examples/)", mo, mb, "≤ 0.5 s")
  io.stdout:write(string.format("%-40s %s (median of %d)\n", "initdb alone on this machine", b.ms(mi), n))
  io.stdout:write(string.format("%-40s %s  %s\n", "check scaled to a 600 ms-initdb machine",
    b.ms(mo * 0.6 / mi), mo * 0.6 / mi <= 0.5 and "(goal met)" or "(goal NOT met)"))
  io.stdout:write(string.format("%-40s %.1fx faster than the original's steps\n", "speed-up", mb / mo))
end)
if not ok then -- a baseline server left running by a failed step
  b.time { bindir .. "/pg_ctl", "-D", base .. "/baseline/data", "-m", "immediate", "stop" }
end
require("dbtool.core.proc").spawn({ argv = { "rm", "-rf", base } }):wait()
if not ok then
  io.stderr:write("bench/check.lua: ", tostring(type(err) == "table" and err.msg or err), "\n")
  os.exit(1)
end
