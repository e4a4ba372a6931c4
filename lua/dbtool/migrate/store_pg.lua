-- PostgreSQL: the driver part of a store (connection, session advisory lock polled to a
-- timeout, migration transactions, running psql scripts through dbtool.sqlrun) and the hectic
-- bookkeeping table hectic.migration, installed by the hectic bundle (dbtool.bundle).
--
-- hectic.migration is the original's table (id, name UNIQUE, hash, applied_at), without
-- UNIQUE(hash) (the bundle drops it), plus two nullable columns added idempotently by
-- `ensure` and ignored by the original migrator, which inserts (name, hash) only:
--   tree_hash    sha256 over every file of up/ for multi-file migrations (dbtool.migrate.checksum)
--   duration_ms  how long the up script took
local pg = require "dbtool.pg"
local errors = require "dbtool.errors"

local M = {}

-- Advisory lock keys (the two-int4 form shows up readably in pg_locks as classid/objid):
-- classid = "migr" in ASCII, objid = which bookkeeping table.
M.LOCK_CLASS = 0x6d696772
M.LOCK_HECTIC = 1
M.LOCK_RICKDB = 2

local function now()
  return require("dbtool.core").now()
end

-- ---------------------------------------------------------------- driver

local Driver = {}
Driver.__index = Driver
M.Driver = Driver

--- A driver over connection target `target` (URL or conninfo). opts.log: logger.
function M.driver(target, opts, class)
  opts = opts or {}
  local log = opts.log or require("dbtool.log").ns("migrate")
  local conn = pg.connect(target, { log = log })
  return setmetatable({ conn = conn, log = log, engine = "postgresql", target = target,
    lock_key = M.LOCK_HECTIC }, class or Driver)
end

function Driver:exec(sql, ...)
  return self.conn:exec(sql, ...)
end

function Driver:close()
  if self.conn then self.conn:close() end
end
Driver.__close = Driver.close

-- ---------------------------------------------------------------- the migration lock
--
-- One run at a time per database, two ways (policy `lock`):
--   "session": a session advisory lock (classid "migr", objid the store), polled with
--              pg_try_advisory_lock. It belongs to the server connection, which a
--              transaction-pooling PgBouncer hands to another client after each transaction:
--              unusable behind one (two runs could both hold it).
--   "table":   a row in a lock table (hectic.migration_lock; "_migration_lock" for rickdb)
--              with its owner and an expiry, taken and released in transactions of their own
--              (safe through any pooler). Every migration transaction starts by extending the
--              expiry — an UPDATE that finds no row when the lock is no longer ours, and that
--              keeps the row locked until the transaction ends, so a long migration cannot
--              lose it — and extends it again with its COMMIT; a migration without a
--              transaction extends it before it starts. A run killed while holding it blocks
--              the next run until the expiry (policy lock_expiry, default 300 s), no longer.
--   "auto" (default): "table" when a pooler is between us and the server, else "session".
--              A pooler is recognised by the backend pid: libpq keeps the pid announced at
--              connection start, and a pooler announces one of its own (PgBouncer in every
--              pool mode), so it differs from the server's pg_backend_pid().

M.LOCK_EXPIRY = 300

--- Is a connection pooler between us and the server? (asked once per connection)
function Driver:pooled()
  if self._pooled == nil then
    local pid = self.conn:exec("SELECT pg_backend_pid() AS pid")[1].pid
    self._pooled = pid ~= self.conn:backend_pid()
  end
  return self._pooled
end

function M.lost()
  errors.raise(errors.GENERIC, "the migration lock is no longer held by this run (it expired, and "
    .. "another run took it)", { hint = "the migration that was about to start did not run; raise "
    .. "lock_expiry above the longest migration without a transaction, then run again" })
end

--- Take the migration lock: opts.mode "auto" | "session" | "table" (default auto), waiting
--- up to `wait` seconds (polled: a blocking pg_advisory_lock would deadlock with CREATE
--- INDEX CONCURRENTLY run by the holder); opts.expiry: seconds (table mode). Raises exit 1
--- on timeout, naming the holder.
function Driver:lock(wait, log, opts)
  opts = opts or {}
  log = log or self.log
  local mode = opts.mode or "auto"
  if mode == "auto" then mode = self:pooled() and "table" or "session" end
  self.lock_mode = mode
  if mode == "table" then
    log:debug("migration lock: table %s (%s)", self.lock_table,
      opts.mode == "table" and "setting" or "a connection pooler was detected")
    return self:table_lock(wait or 60, log, opts.expiry or M.LOCK_EXPIRY)
  end
  local deadline = now() + (wait or 60)
  local delay, announced = 0.005, false
  while true do
    local r = self.conn:exec("SELECT pg_try_advisory_lock($1::int4, $2::int4) AS ok", M.LOCK_CLASS,
      self.lock_key)
    if r[1].ok then
      self.locked = true
      return
    end
    local holder = self.conn:exec([[
      SELECT l.pid, a.application_name, a.client_addr::text AS addr,
             extract(epoch FROM now() - a.backend_start)::int AS age
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database
             WHERE datname = current_database()) AND l.classid = $1::int4::oid
         AND l.objid = $2::int4::oid AND l.objsubid = 2]], M.LOCK_CLASS, self.lock_key)[1]
    local who = holder and string.format("backend pid %d%s", holder.pid,
      holder.age and (", connected " .. holder.age .. " s ago") or "") or "another session"
    if now() >= deadline then
      errors.raise(errors.GENERIC, string.format(
        "another migration is running on this database (lock held by %s); gave up after %g s", who,
        wait or 60), { hint = "wait for it to finish, or raise the wait with --lock-wait SECONDS" })
    end
    if not announced then
      log:notice("waiting for another migration to finish (lock held by %s)", who)
      announced = true
    end
    require("dbtool.core").sleep(delay)
    delay = math.min(delay * 2, 0.1)
  end
end

--- The lock table's DDL.
function Driver:lock_table_sql()
  return (self.lock_schema and ("CREATE SCHEMA IF NOT EXISTS " .. self.lock_schema .. "; ") or "")
    .. "CREATE TABLE IF NOT EXISTS " .. self.lock_table .. [[ (
  id integer PRIMARY KEY CHECK (id = 1),
  owner text NOT NULL,
  acquired_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
)]]
end

local function owner_id()
  local unistd = require "posix.unistd"
  local na = require "dbtool.core.sodium"
  local host = unistd.gethostname and unistd.gethostname() or "?"
  return string.format("%s pid %d [%s]", host, unistd.getpid(), na.to_hex(na.random(6)))
end

function Driver:table_lock(wait, log, expiry)
  local conn, t = self.conn, self.lock_table
  if not conn:exec("SELECT to_regclass($1) IS NOT NULL AS ok", t)[1].ok then
    -- created on first use under a transaction-level advisory lock (pooler-safe: released
    -- at COMMIT), so that concurrent first runs do not race on CREATE TABLE
    conn:exec("BEGIN")
    local ok, err = errors.try(function()
      conn:exec("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", M.LOCK_CLASS, self.lock_key)
      conn:exec(self:lock_table_sql())
      conn:exec("COMMIT")
    end)
    if not ok then
      pcall(conn.exec, conn, "ROLLBACK")
      error(err, 0)
    end
  end
  self.lock_owner = self.lock_owner or owner_id()
  self.lock_expiry = expiry
  local deadline = now() + wait
  local delay, announced = 0.01, false
  while true do
    -- the holder's migration transaction keeps the row locked: wait for it 1 s at most a try
    conn:exec("BEGIN; SET LOCAL lock_timeout = '1s'")
    local ok, r = errors.try(conn.exec, conn, "INSERT INTO " .. t .. [[ AS l (id, owner, acquired_at,
        expires_at)
      VALUES (1, $1, clock_timestamp(), clock_timestamp() + make_interval(secs => $2))
      ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, acquired_at = EXCLUDED.acquired_at,
        expires_at = EXCLUDED.expires_at
      WHERE l.expires_at < clock_timestamp()
      RETURNING owner]], self.lock_owner, expiry)
    if ok then
      conn:exec("COMMIT")
      if r.n == 1 then
        self.locked = true
        return
      end
    else
      pcall(conn.exec, conn, "ROLLBACK")
      if not (errors.is(r) and r.sqlstate == "55P03") then error(r, 0) end
    end
    local h = conn:exec("SELECT owner, extract(epoch FROM expires_at - clock_timestamp())::int AS left FROM "
      .. t .. " WHERE id = 1")[1]
    local who = h and string.format("%s, expires in %d s", h.owner, math.max(h.left, 0)) or "another run"
    if now() >= deadline then
      errors.raise(errors.GENERIC, string.format(
        "another migration is running on this database (lock held by %s); gave up after %g s", who,
        wait), { hint = "wait for it to finish, or raise the wait with --lock-wait SECONDS; the lock of a "
          .. "run that was killed is released when it expires (lock_expiry)" })
    end
    if not announced then
      log:notice("waiting for another migration to finish (lock held by %s)", who)
      announced = true
    end
    require("dbtool.core").sleep(delay)
    delay = math.min(delay * 2, 0.2)
  end
end

--- Table mode: the statement that extends our lock (it returns a row only while it is ours).
function Driver:heartbeat_sql()
  return "UPDATE " .. self.lock_table .. " SET expires_at = clock_timestamp() + make_interval(secs => "
    .. string.format("%d", math.ceil(self.lock_expiry)) .. ") WHERE id = 1 AND owner = "
    .. self.conn:escape_literal(self.lock_owner) .. " RETURNING 1 AS ok"
end

--- Table mode: extend the lock now (before a migration without a transaction), or raise if
--- it is lost.
function Driver:heartbeat()
  if not (self.locked and self.lock_mode == "table") then return end
  if self.conn:exec(self:heartbeat_sql()).n ~= 1 then
    self.locked = false
    M.lost()
  end
end

function Driver:unlock()
  if self.locked and self.conn and not self.conn:closed() then
    if self.conn:transaction_status() ~= "idle" then pcall(self.conn.exec, self.conn, "ROLLBACK") end
    if self.lock_mode == "table" then
      pcall(self.conn.exec, self.conn, "DELETE FROM " .. self.lock_table .. " WHERE id = 1 AND owner = $1",
        self.lock_owner)
    else
      pcall(self.conn.exec, self.conn, "SELECT pg_advisory_unlock($1::int4, $2::int4)", M.LOCK_CLASS,
        self.lock_key)
    end
  end
  self.locked = false
end

local function duration_literal(v)
  if math.type(v) == "integer" then return tostring(v) end
  return "'" .. tostring(v):gsub("'", "''") .. "'"
end

--- BEGIN a migration transaction. opts: lock_timeout, statement_timeout (durations or
--- false), migration_mode (SET LOCAL hectic.migration_mode = 'on'), sync (false: this
--- commit may use synchronous_commit = off; a later synchronous commit flushes it).
--- The statements that open a migration transaction (Driver:begin; printed by --dry-run --sql).
function Driver:begin_sql(opts)
  opts = opts or {}
  local sql = { "BEGIN" }
  if opts.lock_timeout and opts.lock_timeout ~= "0" then
    sql[#sql + 1] = "SET LOCAL lock_timeout = " .. duration_literal(opts.lock_timeout)
  end
  if opts.statement_timeout and opts.statement_timeout ~= "0" then
    sql[#sql + 1] = "SET LOCAL statement_timeout = " .. duration_literal(opts.statement_timeout)
  end
  if opts.migration_mode and self.migration_mode then
    sql[#sql + 1] = "SET LOCAL hectic.migration_mode = 'on'"
  end
  return sql
end

--- The bookkeeping statement of migration `m` (what record() queues), for --dry-run --sql.
function Driver:record_sql(m, duration_ms)
  local saved = self.pending
  self.pending = nil
  self:record(m, duration_ms)
  local sql = self.pending
  self.pending = saved
  return sql
end

function Driver:begin(opts)
  opts = opts or {}
  local sql = { "BEGIN" }
  if opts.lock_timeout and opts.lock_timeout ~= "0" then
    sql[#sql + 1] = "SET LOCAL lock_timeout = " .. duration_literal(opts.lock_timeout)
  end
  if opts.statement_timeout and opts.statement_timeout ~= "0" then
    sql[#sql + 1] = "SET LOCAL statement_timeout = " .. duration_literal(opts.statement_timeout)
  end
  if opts.migration_mode and self.migration_mode then
    sql[#sql + 1] = "SET LOCAL hectic.migration_mode = 'on'"
  end
  if opts.sync == false then
    sql[#sql + 1] = "SET LOCAL synchronous_commit = off"
  end
  self.pending = nil
  local table_lock = self.locked and self.lock_mode == "table"
  if table_lock then sql[#sql + 1] = self:heartbeat_sql() end
  local r = self.conn:exec(table.concat(sql, "; "))
  if table_lock and r.n ~= 1 then
    pcall(self.conn.exec, self.conn, "ROLLBACK")
    self.locked = false
    M.lost()
  end
end

--- COMMIT, sending the buffered bookkeeping statement in the same round trip.
function Driver:commit()
  local sql = "COMMIT"
  if self.pending then sql = self.pending .. "; COMMIT" end
  if self.locked and self.lock_mode == "table" then sql = self:heartbeat_sql() .. "; " .. sql end
  self.pending = nil
  self.conn:exec(sql)
  if self.conn:transaction_status() ~= "idle" then
    -- COMMIT of a failed transaction reports ROLLBACK, not an error
    pcall(self.conn.exec, self.conn, "ROLLBACK")
    errors.raise(errors.GENERIC, "the migration transaction was rolled back")
  end
end

--- Make every earlier commit of the session durable: a synchronous commit of a transaction
--- with an xid flushes the WAL up to its commit record, which follows theirs.
function Driver:flush()
  if self.conn:transaction_status() == "idle" then
    self.conn:exec("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
  end
end

function Driver:rollback()
  self.pending = nil
  if self.conn and not self.conn:closed() and self.conn:transaction_status() ~= "idle" then
    pcall(self.conn.exec, self.conn, "ROLLBACK")
  end
end

function Driver:in_transaction()
  local s = self.conn:transaction_status()
  return s == "intrans" or s == "inerror" or s == "active"
end

--- Buffer a statement to send with COMMIT (or run it now outside a transaction).
function Driver:queue(sql)
  if self.pending then self.pending = self.pending .. "; " .. sql else self.pending = sql end
end

function Driver:literal(v)
  if v == nil then return "NULL" end
  if math.type(v) == "integer" then return tostring(v) end
  return self.conn:escape_literal(tostring(v))
end

--- Run the psql script `path` on the connection (dbtool.sqlrun: \i, \ir, \set, \if, :var,
--- COPY ...), with psql variables `vars`, inside the current transaction: the runner issues
--- no BEGIN of its own. Errors carry file:line:col, the excerpt and the SQLSTATE.
function Driver:run(path, vars)
  return require("dbtool.sqlrun").file(self.conn, path,
    { vars = vars, log = self.log, single_transaction = false })
end

-- ---------------------------------------------------------------- hectic.migration

local Hectic = setmetatable({}, { __index = Driver })
Hectic.__index = Hectic
Hectic.__close = Driver.close
M.Hectic = Hectic

--- Connect the hectic store. opts.log: logger.
function M.connect(target, opts)
  local s = M.driver(target, opts, Hectic)
  s.kind = "hectic"
  s.table = "hectic.migration"
  s.lock_schema, s.lock_table = "hectic", "hectic.migration_lock"
  s.migration_mode = true
  return s
end

-- Our nullable extra columns (old migrators insert (name, hash) and never see them).
local EXTRA_COLUMNS = {
  { "tree_hash", "TEXT" },
  { "duration_ms", "INTEGER" },
}

M.EXTRA_SQL = [[
-- db-tool: nullable bookkeeping columns the original migrator ignores
ALTER TABLE hectic.migration ADD COLUMN IF NOT EXISTS tree_hash TEXT;
ALTER TABLE hectic.migration ADD COLUMN IF NOT EXISTS duration_ms INTEGER;
]]

--- The SQL `init` runs (for init --dry-run).
function M.init_sql()
  return require("dbtool.bundle").sql() .. "\n" .. M.EXTRA_SQL
end
Hectic.init_sql = function() return M.init_sql() end

function Hectic:installed()
  if self._installed then return true end
  local r = self.conn:exec("SELECT to_regclass('hectic.migration') IS NOT NULL AS ok")
  self._installed = r[1].ok
  return self._installed
end

--- Which of our extra columns exist.
function Hectic:extras()
  if self._extras then return self._extras end
  if not self:installed() then -- (dry runs) what ensure() would make
    return { tree_hash = true, duration_ms = true }
  end
  local r = self.conn:exec([[
    SELECT attname FROM pg_attribute
     WHERE attrelid = 'hectic.migration'::regclass AND attnum > 0 AND NOT attisdropped]])
  local have = {}
  for i = 1, r.n do have[r[i].attname] = true end
  self._extras = have
  return have
end

function Hectic:ensure_columns()
  local have = self:extras()
  local missing = {}
  for _, c in ipairs(EXTRA_COLUMNS) do
    if not have[c[1]] then missing[#missing + 1] = "ADD COLUMN IF NOT EXISTS " .. c[1] .. " " .. c[2] end
  end
  if #missing > 0 then
    self.conn:exec("ALTER TABLE hectic.migration " .. table.concat(missing, ", "))
    self._extras = nil
  end
end

local function init_failed(self, err, what)
  if errors.is(err) and err.interrupted then error(err, 0) end
  require("dbtool.cli").report(err, self.log.name)
  errors.raise(errors.BUG, "init failed: " .. what)
end

--- `migrator init`: apply the hectic bundle (one transaction), then our extra columns.
function Hectic:init()
  local ok, err = errors.try(require("dbtool.bundle").apply, self.conn)
  if not ok then init_failed(self, err, "hectic bundle apply") end
  self._installed = nil
  ok, err = errors.try(self.ensure_columns, self)
  if not ok then init_failed(self, err, "hectic.migration columns") end
end

--- Before `migrate`: install the bundle on a database that never had it (as the original's
--- implicit init did); otherwise only check its version (cheap, no DDL).
function Hectic:ensure()
  local ok, res = errors.try(require("dbtool.bundle").check_version, self.conn)
  if not ok then init_failed(self, res, "hectic bundle version check") end
  if res.status ~= "ok" then
    if res.status == "missing" then
      self.log:notice("the hectic bundle is not installed: applying it (as `migrator init` does)")
    else
      self.log:notice("the hectic bundle is incomplete (%s): applying it again",
        table.concat(res.missing or {}, ", "))
    end
    self:init()
    return
  end
  if #(res.stale or {}) > 0 then
    -- it works as it is (e.g. the original's event triggers): update it when we may, and
    -- carry on with what is there when we may not (a role that is not a superuser)
    self.log:notice("updating the hectic bundle (%s)", table.concat(res.stale, ", "))
    local aok, aerr = errors.try(require("dbtool.bundle").apply, self.conn, { log = self.log })
    if not aok then
      if errors.is(aerr) and aerr.interrupted then error(aerr, 0) end
      self.log:warn("could not update the hectic bundle, going on with the installed one: %s",
        errors.wrap(aerr).msg)
    end
  end
  self:ensure_columns()
end

local function applied_sql(have)
  return string.format([[
    SELECT id, name::text AS name, hash::text AS hash, %s AS tree_hash, %s AS duration_ms,
           to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS applied_at
      FROM hectic.migration ORDER BY name COLLATE "C"]],
    have.tree_hash and "tree_hash" or "NULL::text", have.duration_ms and "duration_ms" or "NULL::int")
end

-- the result rows are the records (no copy of 10,000 tables)
local function records(r)
  local out = {}
  for i = 1, r.n do out[i] = r[i] end
  return out
end

-- ---------------------------------------------------------------- repeatable migrations

M.REPEATABLE_DDL = [[CREATE TABLE IF NOT EXISTS hectic.migration_repeatable (
  name text PRIMARY KEY,
  hash text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  duration_ms integer
)]]

--- Recorded repeatable migrations: {name = {hash =, applied_at =}} ({} when never used).
function Hectic:repeatable_applied()
  local out = {}
  if not self.conn:exec("SELECT to_regclass('hectic.migration_repeatable') IS NOT NULL AS ok")[1].ok then
    return out
  end
  local r = self.conn:exec([[SELECT name, hash, to_char(applied_at AT TIME ZONE 'UTC',
    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS applied_at FROM hectic.migration_repeatable]])
  for i = 1, r.n do out[r[i].name] = { hash = r[i].hash, applied_at = r[i].applied_at } end
  return out
end

function Hectic:ensure_repeatable()
  if not self.conn:exec("SELECT to_regclass('hectic.migration_repeatable') IS NOT NULL AS ok")[1].ok then
    self.conn:exec(M.REPEATABLE_DDL)
  end
end

--- Record (or re-record) repeatable migration `m`: sent with the COMMIT.
function Hectic:record_repeatable(m, duration_ms)
  self:queue("INSERT INTO hectic.migration_repeatable (name, hash, duration_ms) VALUES ("
    .. self:literal(m.name) .. ", " .. self:literal(m.hash) .. ", " .. self:literal(duration_ms)
    .. ") ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, applied_at = now(), "
    .. "duration_ms = EXCLUDED.duration_ms")
end

function Hectic:forget_repeatable(name)
  self.conn:exec("DELETE FROM hectic.migration_repeatable WHERE name = $1", name)
end

--- The status of a history in which every row is applied and unchanged, made by the server
--- (sent now, collected later; see Engine:status_text): returns a function that waits for
--- {n, names (joined by newlines, byte order), hashes (concatenated), trees (any tree_hash),
--- lines (one status line a migration, joined by newlines)}. `styled`: the state column
--- ("applied" padded, coloured on a terminal); names are padded to `min_width` or the
--- longest (as string.format("%-Ns") does for ASCII).
function Hectic:status_text_async(styled, min_width)
  local conn = self.conn
  local have = self:extras()
  -- one sort (the subquery's order feeds every aggregate: were it ever not kept, the names
  -- would not match and the caller falls back to Engine:status)
  conn:send_query(string.format([[
    SELECT count(*)::int AS n, string_agg(name, E'\n') AS names, string_agg(hash, '') AS hashes,
           bool_or(tree_hash IS NOT NULL) AS trees,
           string_agg(%s || ' ' || name || repeat(' ', (SELECT greatest(%d, max(octet_length(name::text)))
             FROM hectic.migration) - octet_length(name)) || '  ' || coalesce(at, '-')
             || repeat(' ', 27 - length(coalesce(at, '-'))) || ' ' || coalesce(left(hash, 12), '-'), E'\n')
             AS lines
      FROM (SELECT name::text AS name, hash::text AS hash, %s AS tree_hash,
                   to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
              FROM hectic.migration ORDER BY name COLLATE "C") s]], conn:escape_literal(styled), min_width,
    have.tree_hash and "tree_hash" or "NULL::text"))
  return function()
    local res, err
    while true do
      local r = conn:get_result()
      if r == nil then break end
      if r.error then err = err or r.error else res = res or r end
    end
    if err then error(err, 0) end
    return res[1]
  end
end

--- Applied migrations, byte order: {id, name, hash, tree_hash, duration_ms, applied_at}.
function Hectic:applied()
  return records(self.conn:exec(applied_sql(self:extras())))
end

--- The same, sent now and collected later: returns a function that waits for the rows
--- (the server works while the caller reads the migration directory).
function Hectic:applied_async()
  local conn = self.conn
  conn:send_query(applied_sql(self:extras()))
  return function()
    local res, err
    while true do
      local r = conn:get_result()
      if r == nil then break end
      if r.error then err = err or r.error else res = res or r end
    end
    if err then error(err, 0) end
    return records(res)
  end
end

function Hectic:is_applied(name)
  local r = self.conn:exec("SELECT 1 AS x FROM hectic.migration WHERE name = $1", name)
  return r.n > 0
end

--- Record migration `m` (name, hash, tree_hash) as applied; sent with the COMMIT.
function Hectic:record(m, duration_ms)
  local have = self:extras()
  local cols, vals = { "name", "hash" }, { self:literal(m.name), self:literal(m.hash) }
  if have.tree_hash then
    cols[#cols + 1] = "tree_hash"
    vals[#vals + 1] = self:literal(m.tree_hash)
  end
  if have.duration_ms then
    cols[#cols + 1] = "duration_ms"
    vals[#vals + 1] = self:literal(duration_ms)
  end
  self:queue("INSERT INTO hectic.migration (" .. table.concat(cols, ", ") .. ") VALUES ("
    .. table.concat(vals, ", ") .. ")")
end

function Hectic:unrecord(name)
  self:queue("DELETE FROM hectic.migration WHERE name = " .. self:literal(name))
end

return M
