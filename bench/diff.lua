-- `database diff` on examples/ (a backup at migration 2 of 4, then diffed against the
-- sources), against `database check` of the same project as the baseline, run alternately
-- in the same invocation so that load on the machine hits both alike. diff does strictly
-- more than check (two clusters instead of one, a backup unpacked and recovered, the
-- migrations, two pg_dumps and the row comparison), so the ratio says what that costs.
-- Run: make bench (or build/db-tool bench/diff.lua as a non-root user). BENCH_N=runs.
local bench = dofile((os.getenv("DB_TOOL_TOP") or ".") .. "/bench/lib.lua")
local cluster = require "dbtool.cluster"
local stdlib = require "posix.stdlib"

local N = tonumber(os.getenv("BENCH_N") or "7")
local tmp = assert(stdlib.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/db-tool-bench-diff-XXXXXX"))
local proj = tmp .. "/proj"
assert(os.execute("cp -a " .. bench.top .. "/examples " .. proj))

local env = stdlib.getenv()
env.LOCAL_DIR = proj
env.PG_SHARED_PRELOAD_LIBRARIES = ""
for _, k in ipairs { "DATABASE_DIR", "MIGRATION_DIR", "DATABASE_SOURCE", "PGURL", "DB_URL", "PG_WORKING_DIR",
  "DEFAULT_BACKUP_PATH", "PG_REUSE", "HYDRATE_LOG", "PATCH_LOG", "PG_LOG_PATH" } do
  env[k] = nil
end
local db = bench.build .. "/database"

local origin = cluster.start { dir = tmp .. "/origin", port = 5432, database = "testdb", preload = "",
  logging = false }
local _, code = bench.time({ db, "-u", origin.url, "migrator", "migrate", "up", "2" }, { env = env })
assert(code == 0, "migrate failed")
_, code = bench.time({ db, "-u", origin.url, "backup" }, { env = env })
assert(code == 0, "backup failed")
origin:stop()

local ours, base = {}, {}
for i = 1, N + 1 do
  local d1, c1 = bench.time({ db, "diff" }, { env = env })
  assert(c1 == 0, "diff exited " .. tostring(c1))
  local d2, c2 = bench.time({ db, "check" }, { env = env })
  assert(c2 == 0, "check exited " .. tostring(c2))
  if i > 1 then ours[#ours + 1], base[#base + 1] = d1, d2 end
end
bench.report("database diff of examples/ (median of " .. N .. ")", bench.median(ours), bench.median(base),
  "baseline database check")
local summary = io.open(proj .. "/focus/database-diff/summary.log")
if summary then
  for line in summary:lines() do
    if line:match("^timings:") then io.stdout:write("  last diff ", line, "\n") end
  end
  summary:close()
end
io.stdout:write(string.format("  diff runs: %s\n", table.concat((function()
  local t = {}
  for i, x in ipairs(ours) do t[i] = string.format("%.0f ms", x * 1000) end
  return t
end)(), ", ")))
os.execute("rm -rf " .. tmp)
