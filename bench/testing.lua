-- dbtool.testing: cost of a fresh database per test (goal ≤ 50 ms), against baselines run
-- in the same invocation on the same cluster:
--   * CREATE DATABASE … TEMPLATE template0 (an empty database: the floor of any clone),
--     and the clone with the server's default strategy (wal_log) instead of file_copy;
--   * a full deploy per test (bundle + hydrate of examples/ + test data into an empty
--     database), what a suite without a template would pay.
-- Measurements alternate between ours and the baseline so that load on the machine hits
-- both alike. Run: make bench (or build/db-tool bench/testing.lua as a non-root user).
local bench = dofile((os.getenv("DB_TOOL_TOP") or ".") .. "/bench/lib.lua")
local core = require "dbtool.core"
local testing = require "dbtool.testing"

local N = tonumber(os.getenv("BENCH_N") or "30")
local project = bench.top .. "/examples"

local function median(xs) return bench.median(xs) end

local t0 = core.now()
local suite = testing.suite { dir = project, patch = true, busted = false }
suite:start()
io.stdout:write(string.format("suite start (cluster + deploy of examples/ into the template): %s\n",
  bench.ms(core.now() - t0)))
local sizes = suite.admin:exec("SELECT pg_database_size($1) AS t, pg_database_size('template0') AS z",
  testing.TEMPLATE)[1]
io.stdout:write(string.format("template %.1f MB, template0 %.1f MB\n", sizes.t / 1e6, sizes.z / 1e6))

-- 1. one clone, synchronously, vs CREATE DATABASE from template0 (interleaved)
local ours, base, wal = {}, {}, {}
local k = 0
for i = 1, N + 2 do
  local t = core.now()
  suite:create_database("sync_" .. i)
  local d1 = core.now() - t
  suite:drop_database("sync_" .. i)
  t = core.now()
  suite.admin:exec("CREATE DATABASE wal_" .. i .. " TEMPLATE " .. testing.TEMPLATE
    .. (suite.server_version >= 150000 and " STRATEGY wal_log" or ""))
  local d3 = core.now() - t
  suite.admin:exec("DROP DATABASE wal_" .. i)
  k = k + 1
  t = core.now()
  suite.admin:exec("CREATE DATABASE empty_" .. k .. " TEMPLATE template0" .. suite:strategy_clause())
  local d2 = core.now() - t
  suite.admin:exec("DROP DATABASE empty_" .. k)
  if i > 2 then
    ours[#ours + 1], base[#base + 1], wal[#wal + 1] = d1, d2, d3
  end
end
bench.report("clone of the template (synchronous)", median(ours), median(base),
  "≤ 50 ms; baseline CREATE DATABASE from template0")
bench.report("clone, strategy file_copy vs wal_log", median(ours), median(wal),
  "baseline the server's default strategy")
local sync_median = median(ours)

-- 2. what a database per test adds to a test's time. A test here connects and runs three
-- statements. Measured: whole tests (before_each + body + after_each) with the default
-- prefetch (the next clone runs in the background while a test runs, the drop after it),
-- without prefetch, and the same body on one reused database (the baseline: no fresh
-- database at all). The overhead is the difference.
local function body(s)
  s:value("SELECT shop.order_total(1)")
  s:exec("INSERT INTO shop.customer (email, name) VALUES ('b@example.com', 'Bench')")
  s:assert_rows("SELECT count(*) AS n FROM shop.customer", { { n = 4 } })
end
local reused = suite:handle("reused", suite:create_database("reused"))
local function reused_test()
  local t = core.now()
  reused:close()
  body(reused)
  local d = core.now() - t
  reused:exec("DELETE FROM shop.customer WHERE email = 'b@example.com'")
  return d
end
local function fresh_test(s)
  local t = core.now()
  s:fresh()
  body(s)
  s:finish()
  return core.now() - t
end
local sync_suite = setmetatable({}, { __index = suite })
sync_suite.counter = 100000
sync_suite.opts = setmetatable({ prefetch = false }, { __index = suite.opts })
local with_prefetch, without, plain = {}, {}, {}
for i = 1, N + 2 do
  local a, b, c = fresh_test(suite), reused_test(), fresh_test(sync_suite)
  if i > 2 then
    with_prefetch[#with_prefetch + 1], plain[#plain + 1], without[#without + 1] = a, b, c
  end
end
suite:finish()
reused:close()
local base_body = median(plain)
io.stdout:write(string.format("test body on a reused database (connect + 3 statements): %s\n",
  bench.ms(base_body)))
bench.report("test with a fresh database (prefetch)", median(with_prefetch), base_body,
  string.format("overhead %s, ≤ 50 ms", bench.ms(median(with_prefetch) - base_body)))
bench.report("test with a fresh database (no prefetch)", median(without), base_body,
  string.format("overhead %s", bench.ms(median(without) - base_body)))

-- 3. a full deploy per test instead of a template
local deploys = {}
local workflow = require "dbtool.workflow"
local env = require "dbtool.env"
local M = math.max(3, N // 6)
for i = 1, M do
  local name = "deploy_" .. i
  local t = core.now()
  suite.admin:exec("CREATE DATABASE " .. name .. " TEMPLATE template0" .. suite:strategy_clause())
  local url = suite.cluster:db_url(name)
  env.set("LOCAL_DIR", project)
  env.set("HYDRATE_LOG", "/dev/null")
  env.set("PATCH_LOG", "/dev/null")
  require("dbtool.log").configure { level = "warn" }
  local ctx = { url = url, log = require("dbtool.log").ns("bench") }
  workflow.hydrate(ctx, {})
  workflow.patch(ctx, {})
  deploys[#deploys + 1] = core.now() - t
  suite.admin:exec("DROP DATABASE " .. name .. " WITH (FORCE)")
end
bench.report("clone of the template vs full deploy", sync_median, median(deploys),
  "baseline: new database + hydrate + test data")

local t1 = core.now()
suite:stop()
io.stdout:write(string.format("suite stop (cluster stopped, directory removed): %s\n",
  bench.ms(core.now() - t1)))
