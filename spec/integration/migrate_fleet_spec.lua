-- `migrator migrate … --targets` over many real databases (dbtool.migrate.fleet): 20
-- databases, one failing in the middle, with --jobs 4 and --fail-fast; results, exit code,
-- summary, --json, kept logs; targets from db-tool.lua; Ctrl-C stops starting new targets and
-- leaves every target consistent. The target files' parsing is unit-tested at the end.
local t = require "testutil"
local proc = require "dbtool.core.proc"
local core = require "dbtool.core"
local fleet = require "dbtool.migrate.fleet"

local N_MIG = 5

local function migrations(m, sleep)
  for i = 1, N_MIG do
    local name = string.format("20250101%06d-m%d", i, i)
    t.write(string.format("%s/%s/up.sql", m, name), string.format("%sCREATE TABLE t%d (x int) INHERITS "
      .. "(hectic.created_at);\n", sleep and "SELECT pg_sleep(0.3);\n" or "", i))
    t.write(string.format("%s/%s/down.sql", m, name), string.format("DROP TABLE t%d;\n", i))
  end
end

local function value(url, sql)
  local c <close> = t.connect(url)
  local r = c:exec(sql)
  return r[1] and r[1][1]
end

-- tables t1..tN that exist, and migrations recorded: consistent when they are the same set
local function state(url)
  local tables = value(url, [[SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public'
    AND tablename ~ '^t[0-9]+$']])
  local recorded = 0
  if value(url, "SELECT to_regclass('hectic.migration') IS NOT NULL") then
    recorded = value(url, "SELECT count(*)::int FROM hectic.migration")
  end
  return tables, recorded
end

local function run(dir, args, extra)
  local argv = { "migrator", "-d", dir .. "/m" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = { NO_COLOR = "1", DB_URL = false, PGURL = false, DATABASE_URL = false, MIGRATION_DIR = false,
    XDG_STATE_HOME = dir .. "/state", LOCAL_DIR = dir, DATABASE_DIR = false }
  for k, v in pairs(extra or {}) do env[k] = v end
  return t.run { argv = argv, env = env, cwd = dir, timeout = 300 }
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

describe("migrator fleets", function()
  it("20 databases, one failing in the middle, --jobs 4: every other one migrated, exit 4", function()
    local dir = t.tmpdir("fleet")
    migrations(dir .. "/m")
    local urls, lines = {}, { "# tenants" }
    for i = 1, 20 do
      local url, name = t.fresh_db("fl" .. i)
      urls[i] = url
      lines[#lines + 1] = string.format("tenant%02d=%s", i, url)
      if i == 10 then -- its migration 3 fails: the table exists already
        local c <close> = t.connect(url)
        c:exec("CREATE TABLE t3 (y int)")
      end
      assert(name)
    end
    t.write(dir .. "/targets", table.concat(lines, "\n") .. "\n")
    local r = run(dir, { "migrate", "up", "all", "--targets", dir .. "/targets", "--jobs", "4" })
    assert.are.equal(4, r.code, r.stderr)
    for i = 1, 20 do
      local tables, recorded = state(urls[i])
      if i == 10 then
        assert.are.same({ 3, 2 }, { tables, recorded }) -- t1, t2 + its own t3; t3 not recorded
      else
        assert.are.same({ N_MIG, N_MIG }, { tables, recorded }, "tenant " .. i)
      end
    end
    -- the summary: one line per target, then the counts and where the logs are
    has(r.stdout, "tenant10  failed")
    has(r.stdout, "migration failed: 20250101000003-m3")
    has(r.stdout, "20 target(s): 19 ok, 1 failed, 0 interrupted, 0 not started; logs: " .. dir
      .. "/state/db-tool/migrator/")
    assert.matches("tenant01%s+ok%s+5", r.stdout)
    -- a line per finished target on stderr, and each target's log kept
    local _, finished = r.stderr:gsub("\n(ok) +tenant", "")
    assert.is_true(finished >= 18)
    local log_dir = r.stdout:match("logs: (%S+)")
    has(t.read(log_dir .. "/tenant10.log"), "relation \"t3\" already exists")
    has(t.read(log_dir .. "/tenant01.log"), "successfully migrated to 20250101000005-m5")
    -- again: the 19 are at the latest, tenant10 fails again; --json describes each target
    r = run(dir, { "migrate", "up", "all", "--targets", dir .. "/targets", "-j", "4", "--json" })
    assert.are.equal(4, r.code)
    has(r.stdout, '"schema_version":1')
    has(r.stdout, '"counts":{"failed":1,"interrupted":0,"ok":19,"skipped":0,"total":20}')
    has(r.stdout, '"name":"tenant10","repeatable":0,"status":"failed"')
    has(r.stdout, '"error":"migration failed: 20250101000003-m3"')
  end)

  it("--fail-fast: no target starts after the first failure; targets from db-tool.lua", function()
    local dir = t.tmpdir("fleetff")
    migrations(dir .. "/m")
    local urls = {}
    for i = 1, 20 do
      urls[i] = t.fresh_db("ff" .. i)
      if i == 10 then
        local c <close> = t.connect(urls[i])
        c:exec("CREATE TABLE t1 (y int)")
      end
    end
    -- targets as a function in db-tool.lua
    local list = {}
    for i, u in ipairs(urls) do list[#list + 1] = string.format("{ name = %q, url = %q }", "db" .. i, u) end
    t.write(dir .. "/db/db-tool.lua", "return { targets = function() return { " .. table.concat(list, ", ")
      .. " } end }\n")
    local r = run(dir, { "migrate", "up", "all", "--all-targets", "--jobs", "4", "--fail-fast", "--json" })
    assert.are.equal(4, r.code, r.stderr)
    local skipped = tonumber(r.stdout:match('"skipped":(%d+)'))
    local ok = tonumber(r.stdout:match('"ok":(%d+)'))
    assert.are.equal(1, tonumber(r.stdout:match('"failed":(%d+)')))
    -- at most the 3 others running beside it finish after it: the rest never started
    assert.is_true(ok >= 9 and ok <= 12, r.stdout)
    assert.are.equal(19 - ok, skipped)
    local untouched = 0
    for i = 1, 20 do
      local tables, recorded = state(urls[i])
      if i ~= 10 then
        assert.is_true((tables == N_MIG and recorded == N_MIG) or (tables == 0 and recorded == 0), "db " .. i)
        if recorded == 0 then untouched = untouched + 1 end
      end
    end
    assert.are.equal(skipped, untouched)
    -- options that need a fleet, and a fleet without targets
    r = run(dir, { "migrate", "up", "all", "--jobs", "2" }, { DB_URL = urls[1] })
    assert.are.equal(9, r.code)
    has(r.stderr, "--jobs goes with --targets or --all-targets")
    t.write(dir .. "/empty", "# nothing\n\n")
    r = run(dir, { "migrate", "up", "all", "--targets", dir .. "/empty" })
    assert.are.equal(3, r.code)
    has(r.stderr, "no targets in " .. dir .. "/empty")
  end)

  it("Ctrl-C stops starting new targets and leaves every target consistent", function()
    local dir = t.tmpdir("fleetint")
    migrations(dir .. "/m", true) -- 0.3 s each
    local urls, lines = {}, {}
    for i = 1, 12 do
      urls[i] = t.fresh_db("int" .. i)
      lines[i] = urls[i]
    end
    t.write(dir .. "/targets", table.concat(lines, "\n") .. "\n")
    local env = require("posix.stdlib").getenv()
    env.XDG_STATE_HOME, env.NO_COLOR, env.DB_URL, env.PGURL = dir .. "/state", "1", nil, nil
    local p = assert(proc.spawn { argv = { t.build .. "/migrator", "-d", dir .. "/m", "migrate", "up", "all",
      "--targets", dir .. "/targets", "-j", "3" }, env = env, stdin = "null",
      stdout = { path = dir .. "/out" }, stderr = { path = dir .. "/err" } })
    -- wait until a few targets are migrating, then interrupt the fleet (the parent alone)
    local deadline = core.now() + 60
    local sleeping = "SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
    while value(urls[1], sleeping) < 3 do
      assert(core.now() < deadline, "no target started")
      core.sleep(0.02)
    end
    require("posix.signal").kill(p.pid, require("posix.signal").SIGINT)
    local how, code = p:wait(120)
    assert.are.same({ "exited", 130 }, { how, code }, t.read(dir .. "/err"))
    has(t.read(dir .. "/err"), "interrupted: no new target starts")
    local started = 0
    for i = 1, 12 do
      local tables, recorded = state(urls[i])
      assert.are.equal(tables, recorded, "target " .. i .. " is inconsistent")
      if value(urls[i], "SELECT to_regclass('hectic.migration') IS NOT NULL") then started = started + 1 end
    end
    assert.is_true(started < 12, "every target was started despite the interrupt")
    has(t.read(dir .. "/out"), "interrupted")
    -- no migrator is left running
    assert.are.equal(0, value(urls[1], sleeping))
  end)

  it("parses target files: URLs, NAME=URL, conninfo lines, comments; duplicates are an error", function()
    local list = fleet.parse(table.concat({
      "# tenants", "", "a=postgresql://u@h/one", "postgres://h/two?sslmode=disable",
      "host=/tmp dbname=three user=x", "  b = sqlite:///tmp/b.db  ", "postgresql:///one?host=/s" }, "\n"),
      "f")
    local got = {}
    for i, x in ipairs(list) do got[i] = x.name .. " " .. x.url end
    assert.are.same({ "a postgresql://u@h/one", "two postgres://h/two?sslmode=disable",
      "three host=/tmp dbname=three user=x", "b sqlite:///tmp/b.db", "one postgresql:///one?host=/s" }, got)
    assert.are.equal("f:3", list[1].where)
    local _, ok, e
    ok, e = pcall(fleet.parse, "a=postgresql://h/x\na=postgresql://h/y\n", "f")
    assert.is_false(ok)
    assert.are.equal(2, e.exit)
    assert.matches("f:2: target a is given twice %(first at f:1%)", e.msg)
    _, e = pcall(fleet.parse, "# none\n", "f")
    assert.are.equal(3, e.exit)
    local p = fleet.from_project({ "postgresql:///x", { name = "y", url = "postgresql:///y" },
      z = "postgresql:///z" })
    assert.are.same({ "x", "y", "z" }, { p[1].name, p[2].name, p[3].name })
    _, e = pcall(fleet.from_project, function() error("catalog down") end)
    assert.matches("targets%(%) failed: .*catalog down", e.msg)
    assert.are.equal(0, fleet.exit_code({ { status = "ok" } }))
    assert.are.equal(4, fleet.exit_code({ { status = "ok" }, { status = "skipped" } }))
    assert.are.equal(130, fleet.exit_code({ { status = "ok" } }, true))
  end)
end)
