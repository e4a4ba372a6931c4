-- Helpers for busted specs of a project's SQL, run with `busted --lua=db-tool`:
--
--   local testing = require "dbtool.testing"
--   describe("orders", function()
--     local db = testing.suite { patch = true }   -- cluster + template for this describe block
--     it("totals an order", function()
--       db:exec("INSERT INTO shop.orders (customer_id) VALUES (1)")
--       assert.are.equal(4900, db:value("SELECT shop.order_total($1)", 1))
--       db:assert_rows("SELECT code FROM shop.currency ORDER BY code", { { "EUR" }, { "JPY" }, { "USD" } })
--     end)
--   end)
--
-- A suite starts its own PostgreSQL cluster (a copy of db-tool's template cache, so about
-- as fast as `postgres-init`), deploys the project once into a template database
-- (hydrate like `database hydrate`, or the migrations; optionally the test data and a
-- setup function), and gives every test a fresh database cloned from it with
-- CREATE DATABASE … TEMPLATE. Each test's database is dropped after it; at the end of the
-- block (failing tests included) the cluster is stopped and its directory removed. If
-- the process ends without running the teardown, the same cleanup runs when the Lua
-- state closes.
--
-- Outside busted, drive it by hand: s = testing.suite{...}; s:start(); s:fresh(); ...;
-- s:finish(); s:stop().
local core = require "dbtool.core"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

--- Marks an expected SQL NULL in assert_rows rows.
M.null = setmetatable({}, { __tostring = function() return "NULL" end })

M.TEMPLATE = "dbtool_template"

local Suite = {}
Suite.__index = Suite

-- ---------------------------------------------------------------- helpers

local function exists(path)
  return require("posix.sys.stat").stat(path) ~= nil
end

local function rm_rf(path)
  if path and path ~= "" and path ~= "/" then
    local p = require("dbtool.core.proc").spawn { argv = { "rm", "-rf", "--", path } }
    if p then p:wait() end
  end
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (core.getcwd() or ".") .. "/" .. path
end

--- A project root: the first directory from `start` upwards that has db/src, db/db-tool.lua
--- or db/migration. Returns nil when there is none.
function M.find_project(start)
  local dir = absolute(start)
  while true do
    for _, probe in ipairs { "/db/src", "/db/db-tool.lua", "/db/migration" } do
      if exists(dir .. probe) then return dir end
    end
    if dir == "" or dir == "/" then return nil end
    dir = dirname(dir)
    if dir == "" then dir = "/" end
  end
end

-- The directory of the first caller outside this file (the spec file).
local function caller_dir()
  for level = 2, 12 do
    local info = debug.getinfo(level, "S")
    if not info then break end
    local src = info.source
    if src:sub(1, 1) == "@" and not src:find("dbtool/testing%.lua$") and not src:find("^@builtin/") then
      return dirname(src:sub(2))
    end
  end
  return core.getcwd() or "."
end

-- Run fn with env overrides ({NAME = value | false}) in place, then restore them.
local function with_env(vars, fn, ...)
  local saved = {}
  for k, v in pairs(vars) do
    saved[k] = env.raw(k) or false
    if v == false then env.set(k, nil) else env.set(k, v) end
  end
  return errors.finally(function()
    for k, v in pairs(saved) do
      if v == false then env.set(k, nil) else env.set(k, v) end
    end
  end, fn, ...)
end

local function quote_ident(s)
  return require("dbtool.pg").quote_ident(s)
end

-- ---------------------------------------------------------------- where the cluster lives

M.RAM_DIR = "/dev/shm"
M.RAM_MIN_FREE = 1024 * 1024 * 1024

--- Is `dir` a tmpfs mount point according to `mounts` (the text of /proc/mounts)? Pure.
function M.is_tmpfs(mounts, dir)
  for line in (mounts or ""):gmatch("[^\n]+") do
    local point, fstype = line:match("^%S+ (%S+) (%S+)")
    if point == dir and fstype == "tmpfs" then return true end
  end
  return false
end

--- The directory under which a suite makes its cluster: opts.tmpdir, else
--- DB_TOOL_TESTING_TMPDIR, else /dev/shm when it is a writable tmpfs with 1 GB free (a
--- database per test is mostly creating and deleting files: ~10x cheaper in memory than on
--- a journaling file system under load), else TMPDIR, else /tmp.
function M.workdir(opts)
  local explicit = (opts and opts.tmpdir) or env.get("DB_TOOL_TESTING_TMPDIR")
  if explicit then return explicit end
  local f = io.open("/proc/mounts", "r")
  local mounts = f and f:read("a")
  if f then f:close() end
  if M.is_tmpfs(mounts, M.RAM_DIR) and require("posix.unistd").access(M.RAM_DIR, "w") then
    local ok, v = pcall(require("posix.sys.statvfs").statvfs, M.RAM_DIR)
    if ok and v and v.f_bavail * v.f_frsize >= M.RAM_MIN_FREE then return M.RAM_DIR end
  end
  return env.get("TMPDIR", "/tmp")
end

-- ---------------------------------------------------------------- the suite

local top_up   -- (below) start cloning the next tests' databases

--- A suite for the enclosing describe block (or, outside busted, for manual use).
--- opts:
---   dir        project root (default LOCAL_DIR, else found upwards from the spec file)
---   deploy     "hydrate" (default: bundle, secrets, db/src/entrypoint.sql, as `database
---              hydrate`), "migrations" (hectic bundle + migrations up all), or false
---   mock       hydrate with USE_MOCK=1
---   patch      also apply the test data (test-data.sql) to the template
---   setup      function(db) run on the template after the deploy (db: query helpers)
---   env        extra environment during the deploy ({ENVIRONMENT = "development"})
---   settings   PostgreSQL settings for the cluster ({name = value})
---   tmpdir     where the cluster goes (default: DB_TOOL_TESTING_TMPDIR, else /dev/shm when it
---              is a tmpfs with 1 GB free, else TMPDIR; see M.workdir)
---   strategy   CREATE DATABASE strategy on PostgreSQL 15+: "file_copy" (default) or "wal_log"
---   keep       keep each test's database (dropped with the cluster at the end)
---   isolation  "database" (default): every test gets a database of its own;
---              "transaction": every test runs in one transaction on a shared database,
---              rolled back after it (as pg_prove does) — cheaper, but weaker: a test
---              that commits (or uses db:connect()) is seen by the next ones, sequences
---              are not rolled back
---   ready      how many test databases are kept cloned ahead, in the background
---              (default 2; 1 = only the next one)
---   prefetch   false: create each test's database when the test starts (default: the
---              next ones are cloned in the background while the current test runs)
---   vacuum     VACUUM FULL the template after the deploy (~10% cheaper clones; worth it
---              for suites of many tests)
---   verbose    show the deploy's log (default: kept in a file, shown when the deploy fails)
---   busted     false: do not register busted hooks even when running under busted
function M.suite(opts)
  opts = opts or {}
  local s = setmetatable({
    opts = opts,
    dir = opts.dir and absolute(opts.dir) or env.get("LOCAL_DIR") or M.find_project(caller_dir()),
    counter = 0,
    created = {},
    inflight = {},   -- {conn =, name =}: clones being made, oldest first
    idle = {},       -- creator connections without a clone to make
    to_drop = {},    -- used databases, oldest first, dropped one test later
    log = log.ns("testing"),
  }, Suite)
  local iso = opts.isolation or "database"
  if iso ~= "database" and iso ~= "transaction" then
    errors.raise(errors.GENERIC, "dbtool.testing: isolation must be \"database\" or \"transaction\", not "
      .. tostring(iso))
  end
  s.isolation = iso
  -- the last resort: clean up when the Lua state closes (busted exits with close = true)
  s.sentinel = setmetatable({}, { __gc = function() pcall(Suite.stop, s) end })
  local busted = opts.busted ~= false and package.loaded["busted.core"] and package.loaded["busted"]
  if busted then
    busted.lazy_setup(function() s:start() end)
    busted.before_each(function() s:fresh() end)
    busted.after_each(function() s:finish() end)
    busted.lazy_teardown(function() s:stop() end)
  end
  return s
end

--- The environment of the project for the deploy: LOCAL_DIR and what derives from it.
function Suite:project_env()
  local vars = {}
  if self.dir then
    vars.LOCAL_DIR = self.dir
    if self.opts.dir then
      -- an explicit project: its own layout, not the caller's DATABASE_DIR & co.
      for _, k in ipairs { "DATABASE_DIR", "DATABASE_SOURCE", "MIGRATION_DIR", "PATCH_SQL",
        "PROFILE_DIR" } do
        vars[k] = false
      end
    end
  end
  vars.HYDRATE_LOG = self.work .. "/hydrate.log"
  vars.PATCH_LOG = self.work .. "/patch.log"
  for k, v in pairs(self.opts.env or {}) do vars[k] = v end
  return vars
end

--- Start the cluster and build the template database (once; lazy_setup under busted).
function Suite:start()
  if self.cluster then return self end
  local unistd = require "posix.unistd"
  if unistd.geteuid() == 0 then
    errors.raise(errors.AMBIGUOUS, "dbtool.testing: PostgreSQL refuses to run as root",
      { hint = "run the specs as an unprivileged user" })
  end
  local base = M.workdir(self.opts)
  self.work = assert(require("posix.stdlib").mkdtemp(base .. "/db-tool-testing-XXXXXX"))
  local ok, err = errors.try(function()
    -- no durability in a cluster removed at the end; no autovacuum: its workers would visit
    -- the template, and CREATE DATABASE waits in 100 ms steps for them to leave
    local settings = { fsync = "off", synchronous_commit = "off", full_page_writes = "off",
      max_connections = 50, autovacuum = "off" }
    for k, v in pairs(self.opts.settings or {}) do settings[k] = v end
    self.cluster = require("dbtool.cluster").start {
      dir = self.work .. "/pg", port = 5432, database = "postgres", preload = "", logging = false,
      settings = settings, log = self.log,
    }
    self.admin = require("dbtool.pg").connect(self.cluster.conninfo, { quiet = true })
    self.server_version = self.admin:server_version()
    self:build_template()
    -- the first tests' databases, cloned while the specs get going
    if self.isolation == "database" and self.opts.prefetch ~= false then top_up(self) end
  end)
  if not ok then
    pcall(Suite.stop, self)
    error(err, 0)
  end
  return self
end

--- Create the template database and deploy the project into it.
function Suite:build_template()
  local o = self.opts
  self.admin:exec("CREATE DATABASE " .. quote_ident(M.TEMPLATE))
  self.template_url = self.cluster:db_url(M.TEMPLATE)
  local deploy = o.deploy
  if deploy == nil then deploy = "hydrate" end
  if deploy or o.patch or o.setup then
    if not self.dir then
      errors.raise(errors.MISSING, "dbtool.testing: no project found",
        { hint = "run from the project (a directory with db/), set LOCAL_DIR, or pass dir = ..." })
    end
    -- the deploy's log goes to a file, shown only when the deploy fails
    local logfile = self.work .. "/deploy.log"
    local lf = assert(io.open(logfile, "w"))
    if not self.opts.verbose then log.configure { stream = lf } end
    local ok, err = errors.try(with_env, self:project_env(), function()
      local project = require "dbtool.project"
      local proj = project.load(env.database_dir() .. "/db-tool.lua")
      local ctx = { url = self.template_url, project = proj, log = log.ns("testing") }
      local workflow = require "dbtool.workflow"
      if deploy == "hydrate" then
        workflow.hydrate(ctx, { mock = o.mock })
      elseif deploy == "migrations" then
        local dbtool = require "dbtool"
        dbtool.migrations.up { url = self.template_url, log = log.ns("testing") }
      elseif deploy then
        errors.raise(errors.GENERIC, "dbtool.testing: deploy must be \"hydrate\", \"migrations\" or "
          .. "false, not " .. tostring(deploy))
      end
      if o.patch then workflow.patch(ctx, {}) end
      if o.setup then
        local h = self:handle(M.TEMPLATE, self.template_url)
        errors.finally(function() h:close() end, o.setup, h)
      end
    end)
    log.configure { stream = io.stderr }
    lf:close()
    if not ok then
      local text = io.open(logfile, "r")
      if text then
        io.stderr:write(text:read("a"))
        text:close()
      end
      -- one self-contained message: busted shows only the message of an error
      err.msg = "dbtool.testing: deploying " .. tostring(self.dir) .. " into the template failed: "
        .. (err.where and (err.where .. ": ") or "") .. err.msg
        .. (err.excerpt and ("\n" .. err.excerpt) or "")
        .. ((err.hint and not err.hint:find(self.work, 1, true)) and ("\nhint: " .. err.hint) or "")
      err.where, err.excerpt, err.hint = nil, nil, nil
      error(err, 0)
    end
  end
  if o.vacuum then
    -- a compact template is cheaper to clone (DDL leaves dead catalog rows behind), but
    -- VACUUM FULL costs more than it saves unless a suite has many tests
    local c <close> = require("dbtool.pg").connect(self.template_url, { quiet = true })
    c:exec("VACUUM FULL")
  end
  self:wait_template_free()
  -- nothing connects to the template any more (not even an autovacuum worker, had the
  -- settings turned it on): CREATE DATABASE … TEMPLATE never waits for a session to leave
  if self.server_version >= 90500 then
    self.admin:exec("ALTER DATABASE " .. quote_ident(M.TEMPLATE) .. " WITH ALLOW_CONNECTIONS false")
    self:wait_template_free()
  end
end

--- " STRATEGY x" for CREATE DATABASE on PostgreSQL 15+ (older servers always copy files).
--- Default file_copy: for a small template on a test cluster (fsync off) its two
--- checkpoints cost less than writing every page to the WAL, as wal_log (the server's
--- default) does — 20-30% faster in bench/testing.lua.
function Suite:strategy_clause()
  if self.server_version < 150000 then return "" end
  local st = self.opts.strategy or "file_copy"
  if st ~= "file_copy" and st ~= "wal_log" then
    errors.raise(errors.GENERIC, "dbtool.testing: strategy must be \"file_copy\" or \"wal_log\", not "
      .. tostring(st))
  end
  return " STRATEGY " .. st
end

local function create_sql(self, name)
  return "CREATE DATABASE " .. quote_ident(name) .. " TEMPLATE " .. quote_ident(M.TEMPLATE)
    .. self:strategy_clause()
end

-- Read every pending result of an async query on `conn`; returns the first error or nil.
local function drain(conn)
  local err
  while true do
    local r = conn:get_result()
    if not r then break end
    if r.status == "FATAL_ERROR" and not err then err = r.error end
  end
  return err
end

--- Wait until no session is connected to the template any more (CREATE DATABASE … TEMPLATE
--- refuses a template in use; a hook's connection may still be exiting).
function Suite:wait_template_free()
  local t0 = core.now()
  local busy = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1"
  while self.admin:exec(busy, M.TEMPLATE)[1].n > 0 do
    if core.now() - t0 > 10 then
      errors.raise(errors.GENERIC, "dbtool.testing: something stays connected to the template database",
        { hint = "close connections opened in hooks or in the setup function" })
    end
    self.admin:exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", M.TEMPLATE)
    core.sleep(0.005)
  end
end

--- CREATE DATABASE `name` from the template (synchronously); returns its URL.
function Suite:create_database(name)
  self.admin:exec(create_sql(self, name))
  self.created[name] = true
  return self.cluster:db_url(name)
end

--- DROP DATABASE `name` (its connections are terminated).
function Suite:drop_database(name)
  local force = self.server_version >= 130000 and " WITH (FORCE)" or ""
  self.admin:exec("DROP DATABASE IF EXISTS " .. quote_ident(name) .. force)
  self.created[name] = nil
end

-- The pipeline of test databases. Clones are made ahead, in the background, on `ready`
-- creator connections (CREATE DATABASE … TEMPLATE, asynchronously: the server clones while
-- tests run), and a used database is dropped one test later: right after a test its
-- backend may still be exiting, and DROP DATABASE then sleeps in 100 ms steps until it is
-- gone. So a test waits only for a clone not finished yet (none when tests take longer than
-- a clone) and for its connection.

local function ready_count(self)
  local n = math.tointeger(tonumber(self.opts.ready or 2))
  if not n or n < 1 then
    errors.raise(errors.GENERIC, "dbtool.testing: ready must be a count ≥ 1, not "
      .. tostring(self.opts.ready))
  end
  return n
end

-- Start clones until `ready` are in flight.
function top_up(self)
  local want = ready_count(self)
  while #self.inflight < want do
    local conn = table.remove(self.idle)
    if not conn then
      conn = require("dbtool.pg").connect(self.cluster.conninfo, { quiet = true })
      self.creators = self.creators or {}
      self.creators[#self.creators + 1] = conn
    end
    self.counter = self.counter + 1
    local name = "test_" .. self.counter
    conn:send_query(create_sql(self, name))
    self.inflight[#self.inflight + 1] = { conn = conn, name = name }
  end
end

-- The oldest clone in flight, once made: its name.
local function collect(self)
  if #self.inflight == 0 then top_up(self) end
  local job = table.remove(self.inflight, 1)
  local err = drain(job.conn)
  self.idle[#self.idle + 1] = job.conn
  if err then error(err, 0) end
  self.created[job.name] = true
  return job.name
end

-- Drop used databases in the background, all but the one used last (its backend may still
-- be exiting): one DROP in flight at a time, on the dropper connection, sent when it is
-- free; a test waits for a drop only when more than DROP_BACKLOG are waiting.
local DROP_BACKLOG = 4

local function drop_used(self)
  if #self.to_drop <= 1 then return end
  if not self.dropper then
    self.dropper = require("dbtool.pg").connect(self.cluster.conninfo, { quiet = true })
  end
  if self.dropper:busy() and #self.to_drop <= 1 + DROP_BACKLOG then return end
  local err = drain(self.dropper)
  if err then self.log:warn("dropping a test database failed: %s", err.msg) end
  local force = self.server_version >= 130000 and " WITH (FORCE)" or ""
  local name = table.remove(self.to_drop, 1)
  self.dropper:send_query("DROP DATABASE IF EXISTS " .. quote_ident(name) .. force)
  self.created[name] = nil
end

-- isolation = "transaction": the one shared database, and the test's transaction on it.
local function fresh_transaction(self)
  if not self.shared then
    self.counter = self.counter + 1
    self.shared = "test_" .. self.counter
    self:create_database(self.shared)
  end
  self.name, self.url = self.shared, self.cluster:db_url(self.shared)
  if self.conn and (self.conn:closed() or self.conn:status() == "bad") then self.conn = nil end
  local conn = self:connection()
  conn:exec("BEGIN")
  return self
end

local function finish_transaction(self)
  local conn = self.conn
  if self.name and conn and not conn:closed() and conn:status() ~= "bad" then
    local st = conn:transaction_status()
    if st == "idle" then
      self.log:warn("a test ended its own transaction (COMMIT/ROLLBACK): with isolation = \"transaction\" "
        .. "what it committed stays for the next tests")
    elseif st ~= "unknown" then
      pcall(conn.exec, conn, "ROLLBACK")
    end
  end
  self.name, self.url = nil, nil
end

--- A fresh database for the next test (before_each under busted): sets self.name and
--- self.url. Unless opts.prefetch == false, the databases of the next tests are created in
--- the background while this one runs. With isolation = "transaction": the shared
--- database, inside a new transaction.
function Suite:fresh()
  if not self.cluster then self:start() end
  self:finish()
  if self.isolation == "transaction" then return fresh_transaction(self) end
  local name
  if self.opts.prefetch == false then
    self.counter = self.counter + 1
    name = "test_" .. self.counter
    self:create_database(name)
  else
    name = collect(self)
    top_up(self)
  end
  self.name, self.url = name, self.cluster:db_url(name)
  return self
end

--- End of a test (after_each under busted): close its connection; its database is dropped
--- in the background (one test later). With isolation = "transaction": roll back.
function Suite:finish()
  if self.isolation == "transaction" then return finish_transaction(self) end
  if self.conn then
    pcall(self.conn.close, self.conn)
    self.conn = nil
  end
  if self.name then
    local name = self.name
    self.name, self.url = nil, nil
    if self.opts.keep or not self.admin then return end
    self.to_drop[#self.to_drop + 1] = name
    drop_used(self)
  end
end

--- Stop everything (lazy_teardown under busted; also run when the Lua state closes).
function Suite:stop()
  if self.stopped then return end
  self.stopped = true
  if self.conn then pcall(self.conn.close, self.conn) end
  -- the cluster goes with its databases: no need to wait for clones or drops
  for _, c in ipairs(self.creators or {}) do pcall(c.close, c) end
  if self.dropper then pcall(self.dropper.close, self.dropper) end
  if self.admin then pcall(self.admin.close, self.admin) end
  if self.cluster then pcall(self.cluster.stop, self.cluster, "immediate") end
  if self.work then
    pcall(require("dbtool.cluster").stop, self.work .. "/pg", { mode = "immediate" })
    rm_rf(self.work)
  end
  self.cluster, self.admin, self.conn, self.creators, self.dropper = nil, nil, nil, nil, nil
  self.inflight, self.idle = {}, {}
end

-- ---------------------------------------------------------------- query helpers

local Handle = {}

--- Query helpers on a connection getter: shared by the suite (the current test's
--- database) and by the handle given to opts.setup (the template).
local function install_helpers(T)
  --- Rows of one statement with parameters $1.. (nil → NULL): an array of rows keyed by
  --- column name and by position; .n, .fields.
  function T:query(sql, ...)
    return self:connection():exec(sql, ...)
  end

  --- The first column of the first row (nil when there is no row).
  function T:value(sql, ...)
    local r = self:connection():exec(sql, ...)
    if r.n == 0 then return nil end
    return r[1][1]
  end

  --- Run SQL: with parameters, one statement; without, a script of several statements.
  function T:exec(sql, ...)
    return self:connection():exec(sql, ...)
  end

  --- Run a psql-compatible script (text) or file (opts.file) with dbtool.sqlrun.
  function T:sql(script, opts)
    return require("dbtool.sqlrun").string(self:connection(), script, opts)
  end

  function T:sql_file(path, opts)
    return require("dbtool.sqlrun").file(self:connection(), path, opts)
  end

  --- Number of rows of `table` (a name, quoted as an identifier path "schema.table").
  function T:count(table)
    return self:value("SELECT count(*) FROM " .. require("dbtool.pg").quote_qualified(table))
  end

  --- Assert that the query returns exactly `expected` (an array of rows, in order). A row
  --- is an array (by position) or a table keyed by column name (only those columns are
  --- compared). Use testing.null for an expected NULL. Parameters go between the SQL and
  --- the expected rows: db:assert_rows("SELECT ... WHERE id = $1", 7, {{...}}).
  function T:assert_rows(sql, ...)
    local n = select("#", ...)
    local expected = select(n, ...)
    local rows = self:connection():exec(sql, table.unpack({ ... }, 1, n - 1))
    local actual = {}
    for i = 1, rows.n do
      local want = expected[i]
      local row = rows[i]
      local got = {}
      if type(want) == "table" and #want > 0 then
        for j = 1, #want do
          local v = row[j]
          if v == nil then v = M.null end
          got[j] = v
        end
      elseif type(want) == "table" then
        for k in pairs(want) do
          local v = row[k]
          if v == nil then v = M.null end
          got[k] = v
        end
      else
        for j = 1, #rows.fields do
          local v = row[j]
          if v == nil then v = M.null end
          got[j] = v
        end
      end
      actual[i] = got
    end
    M.assert_same(expected, actual, "rows of: " .. sql)
  end

  --- Assert that running `sql` (with parameters) fails; `pattern` matches the message or
  --- equals the SQLSTATE ("23505"). Returns the error.
  function T:assert_error(pattern, sql, ...)
    local ok, err = pcall(self:connection().exec, self:connection(), sql, ...)
    if ok then M.fail("expected an error from: " .. sql) end
    if pattern and not (err.sqlstate == pattern or tostring(err.msg or err):find(pattern)) then
      M.fail(string.format("expected an error matching %q from: %s\ngot: %s (SQLSTATE %s)", pattern,
        sql, tostring(err.msg or err), tostring(err.sqlstate)))
    end
    if self:connection():transaction_status() == "inerror" then self:connection():exec("ROLLBACK") end
    return err
  end

  --- A new connection to the same database (the caller closes it; dropped with the database).
  function T:connect()
    return require("dbtool.pg").connect(self.url, { quiet = true })
  end
end

install_helpers(Suite)
install_helpers(Handle)

--- The current test's connection (opened on first use, closed after the test).
function Suite:connection()
  if not self.url then
    errors.raise(errors.GENERIC, "dbtool.testing: no test database (call it inside a test, or s:fresh())")
  end
  if not self.conn then self.conn = require("dbtool.pg").connect(self.url, { quiet = true }) end
  return self.conn
end

Handle.__index = Handle
function Handle:connection()
  if not self.conn then self.conn = require("dbtool.pg").connect(self.url, { quiet = true }) end
  return self.conn
end
function Handle:close()
  if self.conn then self.conn:close() end
  self.conn = nil
end

--- A query helper on database `name` of the suite's cluster.
function Suite:handle(name, url)
  return setmetatable({ name = name, url = url or self.cluster:db_url(name) }, Handle)
end

-- ---------------------------------------------------------------- assertions

local function render(v, indent)
  indent = indent or ""
  if v == M.null then return "NULL" end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  local n = #v
  for i = 1, n do parts[#parts + 1] = render(v[i], indent .. "  ") end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. render(v[k], indent .. "  ") end
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #one <= 80 then return one end
  return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end
M.render = render

local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    -- 1 and 1.0 are the same value; numeric strings are not numbers
    return type(a) == "number" and type(b) == "number" and a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Stack level (as seen from the caller of this function's caller) of the first function
-- outside this file: the spec line a failure is reported at.
local function user_level()
  local l = 3
  while true do
    local info = debug.getinfo(l, "S")
    if not info then return 2 end
    if not info.source:find("dbtool/testing%.lua$") then return l - 1 end
    l = l + 1
  end
end

--- Raise a test failure at the spec's line (a busted failure under busted, else an error).
function M.fail(msg)
  local level = user_level()
  local busted = package.loaded["busted.core"] and package.loaded["busted"]
  if busted then busted.fail(msg, level) end
  error(msg, level)
end

--- Assert deep equality with a readable report.
function M.assert_same(expected, actual, what)
  if same(expected, actual) then return true end
  M.fail(string.format("%s\nexpected: %s\nactual:   %s", what or "values differ",
    render(expected, "          "), render(actual, "          ")))
end

return M
