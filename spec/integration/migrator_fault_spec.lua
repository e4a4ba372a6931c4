-- Faults: `kill -9` of a migrating `migrator` at random moments never leaves a migration
-- applied but unrecorded or recorded but unapplied (PostgreSQL and SQLite), and two
-- concurrent `migrate up all` on one database apply each migration exactly once.
local t = require "testutil"
local proc = require "dbtool.core.proc"
local core = require "dbtool.core"
local sqlite = require "dbtool.core.sqlite"

local N = 30

-- N migrations: #1 creates the log table; each one creates its table, fills it a little and
-- appends its name to the log (so a double application would show as a duplicate).
local function write_migrations(mdir, engine)
  for i = 1, N do
    local name = string.format("20250101%06d-m%02d", i, i)
    local up = {}
    if i == 1 then
      up[#up + 1] = engine == "pg" and "CREATE TABLE applied_log (name text) INHERITS (hectic.created_at);"
        or "CREATE TABLE applied_log (name TEXT);"
    end
    if engine == "pg" then
      up[#up + 1] = string.format("CREATE TABLE t%02d (id int, v text) INHERITS (hectic.created_at);", i)
      up[#up + 1] = string.format(
        "INSERT INTO t%02d (id, v) SELECT g, md5(g::text) FROM generate_series(1, 300) g;", i)
      up[#up + 1] = string.format("CREATE INDEX t%02d_v ON t%02d (v);", i, i)
    else
      up[#up + 1] = string.format("CREATE TABLE t%02d (id INTEGER, v TEXT);", i)
      up[#up + 1] = string.format([[WITH RECURSIVE g(n) AS
        (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300)
        INSERT INTO t%02d (id, v) SELECT n, hex(randomblob(16)) FROM g;]], i)
      up[#up + 1] = string.format("CREATE INDEX t%02d_v ON t%02d (v);", i, i)
    end
    up[#up + 1] = string.format("INSERT INTO applied_log (name) VALUES ('%s');", name)
    t.write(mdir .. "/" .. name .. "/up.sql", table.concat(up, "\n") .. "\n")
    t.write(mdir .. "/" .. name .. "/down.sql", string.format("DROP TABLE t%02d;\n", i))
  end
end

local function spawn(dir, url, ...)
  local p = assert(proc.spawn { argv = { t.build .. "/migrator", ... }, cwd = dir,
    env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), DB_URL = url },
    stdin = "null", stdout = "null",
    stderr = { path = t.watch_output(dir .. "/stderr." .. math.random(1e9)) } })
  return p
end

-- PostgreSQL state: {tables = {i = true}, rows = {i = true}, log = {name = count}}
local function pg_state(url)
  local c <close> = t.connect(url)
  local s = { tables = {}, rows = {}, log = {}, installed = false }
  local r = c:exec([[SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9][0-9]$'
    AND relnamespace = 'public'::regnamespace]])
  for i = 1, r.n do s.tables[tonumber(r[i].relname:sub(2))] = true end
  if c:exec("SELECT to_regclass('hectic.migration') IS NOT NULL AS ok")[1].ok then
    s.installed = true
    r = c:exec("SELECT name::text AS name FROM hectic.migration")
    for i = 1, r.n do s.rows[tonumber(r[i].name:match("%-m(%d+)$"))] = true end
  end
  if c:exec("SELECT to_regclass('applied_log') IS NOT NULL AS ok")[1].ok then
    r = c:exec("SELECT name, count(*)::int AS n FROM applied_log GROUP BY name")
    for i = 1, r.n do s.log[r[i].name] = r[i].n end
  end
  return s
end

local function sqlite_state(path)
  local db <close> = assert(sqlite.open(path))
  local s = { tables = {}, rows = {}, log = {} }
  local sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9][0-9]'"
  for _, r in ipairs(db:query(sql)) do
    s.tables[tonumber(r.name:sub(2))] = true
  end
  if #db:query("SELECT 1 AS x FROM sqlite_master WHERE name = 'hectic_migration'") > 0 then
    for _, r in ipairs(db:query("SELECT name FROM hectic_migration")) do
      s.rows[tonumber(r.name:match("%-m(%d+)$"))] = true
    end
  end
  if #db:query("SELECT 1 AS x FROM sqlite_master WHERE name = 'applied_log'") > 0 then
    for _, r in ipairs(db:query("SELECT name, count(*) AS n FROM applied_log GROUP BY name")) do
      s.log[r.name] = r.n
    end
  end
  return s
end

-- The invariant: table i exists ⇔ row i recorded; the applied ones are a prefix; every
-- migration's body ran at most once.
local function check(s, label)
  local k = 0
  for i = 1, N do
    assert(s.tables[i] == s.rows[i], string.format("%s: migration %d: table %s, row %s", label, i,
      tostring(s.tables[i]), tostring(s.rows[i])))
    if s.rows[i] then
      assert(k == i - 1, label .. ": applied migrations are not a prefix")
      k = i
    end
  end
  for name, n in pairs(s.log) do assert(n == 1, label .. ": " .. name .. " ran " .. n .. " times") end
  return k
end

local function wait_backends_gone(url, db)
  local c <close> = t.connect(t.cluster().url)
  local deadline = core.now() + 10
  while c:exec("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", db)[1].n > 0 do
    assert(core.now() < deadline, "the killed migrator's backend did not go away")
    core.sleep(0.005)
  end
  return url
end

describe("migrator faults", function()
  it("kill -9 at random moments keeps PostgreSQL bookkeeping consistent (20 trials)", function()
    local dir = t.tmpdir("fault")
    write_migrations(dir .. "/migration", "pg")
    -- how long does a full run take?
    local url0, db0 = t.fresh_db("fault")
    local t0 = core.now()
    local p0 = spawn(dir, url0, "migrate", "up", "all")
    assert.are.same({ "exited", 0 }, { p0:wait(60) })
    local full = core.now() - t0
    wait_backends_gone(url0, db0)
    assert.are.equal(N, check(pg_state(url0), "full run"))
    local seen = {}
    for trial = 1, 20 do
      local url, db = t.fresh_db("fault")
      local delay = math.random() * full * 1.1
      local p = spawn(dir, url, "migrate", "up", "all")
      core.sleep(delay)
      p:kill("KILL")
      p:wait()
      wait_backends_gone(url, db)
      local k = check(pg_state(url), string.format("trial %d (kill after %.0f ms)", trial, delay * 1000))
      seen[#seen + 1] = k
      if trial % 5 == 0 then
        -- and it recovers: the next run finishes the job
        local r = t.run { argv = { "migrator", "migrate", "up", "all" }, cwd = dir, env = { DB_URL = url } }
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal(N, check(pg_state(url), "recovery"))
      end
    end
    -- the kills landed at different points (not all before or all after the run)
    local distinct = {}
    for _, k in ipairs(seen) do distinct[k] = true end
    local nd = 0
    for _ in pairs(distinct) do nd = nd + 1 end
    assert.is_true(nd >= 4, "kills did not spread over the run: " .. table.concat(seen, ","))
  end)

  it("kill -9 at random moments keeps SQLite bookkeeping consistent (20 trials)", function()
    local dir = t.tmpdir("faultsq")
    write_migrations(dir .. "/migration", "sqlite")
    local db0 = dir .. "/full.db"
    local t0 = core.now()
    assert.are.same({ "exited", 0 }, { spawn(dir, db0, "migrate", "up", "all"):wait(60) })
    local full = core.now() - t0
    assert.are.equal(N, check(sqlite_state(db0), "full run"))
    for trial = 1, 20 do
      local path = string.format("%s/trial%d.db", dir, trial)
      local delay = math.random() * full * 1.1
      local p = spawn(dir, path, "migrate", "up", "all")
      core.sleep(delay)
      p:kill("KILL")
      p:wait()
      if t.read(path) then
        check(sqlite_state(path), string.format("trial %d (kill after %.0f ms)", trial, delay * 1000))
        if trial % 5 == 0 then
          local r = t.run { argv = { "migrator", "migrate", "up", "all" }, cwd = dir,
            env = { DB_URL = path } }
          assert.are.equal(0, r.code, r.stderr)
          assert.are.equal(N, check(sqlite_state(path), "recovery"))
        end
      end
    end
  end)

  it("two concurrent `migrate up all` apply each migration once (PostgreSQL, -1 last round)", function()
    local dir = t.tmpdir("conc")
    write_migrations(dir .. "/migration", "pg")
    for round = 1, 3 do
      local url, db = t.fresh_db("conc")
      local single = round == 3 and "--single-transaction" or nil
      local a = spawn(dir, url, "migrate", "up", "all", single)
      local b = spawn(dir, url, "migrate", "up", "all", single)
      assert.are.same({ "exited", 0 }, { a:wait(60) }, "round " .. round)
      assert.are.same({ "exited", 0 }, { b:wait(60) }, "round " .. round)
      wait_backends_gone(url, db)
      local s = pg_state(url)
      assert.are.equal(N, check(s, "round " .. round))
      local n = 0
      for _ in pairs(s.log) do n = n + 1 end
      assert.are.equal(N, n)
    end
  end)

  it("two concurrent `migrate up all` apply each migration once (SQLite, -1 last round)", function()
    local dir = t.tmpdir("concsq")
    write_migrations(dir .. "/migration", "sqlite")
    for round = 1, 3 do
      local path = string.format("%s/r%d.db", dir, round)
      local single = round == 3 and "--single-transaction" or nil
      local a = spawn(dir, path, "migrate", "up", "all", single)
      local b = spawn(dir, path, "migrate", "up", "all", single)
      assert.are.same({ "exited", 0 }, { a:wait(60) }, "round " .. round)
      assert.are.same({ "exited", 0 }, { b:wait(60) }, "round " .. round)
      local s = sqlite_state(path)
      assert.are.equal(N, check(s, "round " .. round))
      local n = 0
      for _ in pairs(s.log) do n = n + 1 end
      assert.are.equal(N, n)
    end
  end)
end)
