-- rickdb's bookkeeping table `_migration`, exactly as rick_db creates it, on PostgreSQL or
-- SQLite (the driver part comes from store_pg / store_sqlite):
--   PostgreSQL: id_migration SERIAL NOT NULL PRIMARY KEY, applied TIMESTAMP WITH TIME ZONE,
--               name TEXT NOT NULL
--   SQLite:     id_migration INTEGER PRIMARY KEY AUTOINCREMENT, applied TIMESTAMP WITH TIME
--               ZONE, name TEXT NOT NULL
-- `name` is the bare file name (`001.sql`). rick_db stamps `applied` with the client's local
-- naive time in ISO format; we do the same on SQLite (it stores the text) and use the server
-- clock on PostgreSQL.
--
-- Checksums are kept where they do not disturb `_migration` readers: in a side table
-- `_migration_checksum(name TEXT PRIMARY KEY, checksum TEXT NOT NULL)`, created by
-- ensure_checksums() (opt-in: the rickdb front end decides).
--
-- Used with the `flat` layout and policy {history = "set", skip_empty = true} for rickdb's
-- semantics (every file not yet recorded is applied, in byte order; empty files are skipped
-- and not recorded).
local errors = require "dbtool.errors"
local store_pg = require "dbtool.migrate.store_pg"
local store_sqlite = require "dbtool.migrate.store_sqlite"

local M = {}

M.TABLE = "_migration"

M.PG_DDL = [[CREATE TABLE "_migration" (
  id_migration SERIAL NOT NULL PRIMARY KEY,
  applied TIMESTAMP WITH TIME ZONE,
  name TEXT NOT NULL
)]]

M.SQLITE_DDL = [[CREATE TABLE "_migration" (
  id_migration INTEGER PRIMARY KEY AUTOINCREMENT,
  applied TIMESTAMP WITH TIME ZONE,
  name TEXT NOT NULL
)]]

M.CHECKSUM_DDL = [[CREATE TABLE IF NOT EXISTS "_migration_checksum" (
  name TEXT PRIMARY KEY,
  checksum TEXT NOT NULL
)]]

--- Local naive ISO time with microseconds, like Python's datetime.now().isoformat().
function M.local_iso()
  local t = require("posix.sys.time").gettimeofday()
  return os.date("%Y-%m-%dT%H:%M:%S", t.tv_sec) .. string.format(".%06d", t.tv_usec)
end

-- ---------------------------------------------------------------- PostgreSQL

local Pg = setmetatable({}, { __index = store_pg.Driver })
Pg.__index = Pg
Pg.__close = store_pg.Driver.close

function Pg.init_sql() return M.PG_DDL .. ";\n" end

function Pg:installed()
  return self.conn:exec([[SELECT to_regclass('"_migration"') IS NOT NULL AS ok]])[1].ok
end

--- rick_db's install(): fails when the table exists. One transaction.
function Pg:install()
  if self:installed() then
    errors.raise(errors.GENERIC, "migration table '_migration' already exists")
  end
  require("dbtool.pg").transaction(self.conn, function(c)
    c:exec(M.PG_DDL)
    if self.checksums then c:exec(M.CHECKSUM_DDL) end
  end)
end

function Pg:init()
  if not self:installed() then self:install() end
end

function Pg:ensure()
  if not self:installed() then
    errors.raise(errors.GENERIC, "Migration Manager is not installed")
  end
  if self.checksums then self:ensure_checksums() end
end

--- Checksums are a bonus: a role that may not create the side table still migrates.
local function checksums_unavailable(self, err)
  self.checksums = false
  self.log:warn("checksums are not kept: cannot create _migration_checksum: %s",
    errors.is(err) and err.msg or tostring(err))
end

function Pg:ensure_checksums()
  self.checksums = true
  if not self.conn:exec([[SELECT to_regclass('"_migration_checksum"') IS NOT NULL AS ok]])[1].ok then
    local ok, err = errors.try(self.conn.exec, self.conn, M.CHECKSUM_DDL)
    if not ok then
      if err.interrupted then error(err, 0) end
      checksums_unavailable(self, err)
    end
  end
end

function Pg:has_checksums()
  return self.conn:exec([[SELECT to_regclass('"_migration_checksum"') IS NOT NULL AS ok]])[1].ok
end

--- Applied migrations in byte order of name (for planning); list() gives rickdb's order.
function Pg:applied()
  local join = self:has_checksums()
  local r = self.conn:exec(string.format([[
    SELECT m.id_migration AS id, m.name, %s AS hash, m.applied::text AS applied_at
      FROM "_migration" m %s ORDER BY m.name COLLATE "C", m.id_migration]],
    join and "c.checksum" or "NULL::text",
    join and [[LEFT JOIN "_migration_checksum" c ON c.name = m.name]] or ""))
  local out, seen = {}, {}
  for i = 1, r.n do
    local row = r[i]
    if not seen[row.name] then
      seen[row.name] = true
      out[#out + 1] = { id = row.id, name = row.name, hash = row.hash, applied_at = row.applied_at }
    end
  end
  return out
end

--- rick_db's list(): rows ordered by applied (then id): {id, name, applied (text)}.
function Pg:list()
  local r = self.conn:exec([[SELECT id_migration AS id, name,
      to_char(applied, 'DD/MM/YYYY HH24:MI:SS') AS applied
    FROM "_migration" ORDER BY applied, id_migration]])
  local out = {}
  for i = 1, r.n do out[i] = { id = r[i].id, name = r[i].name, applied = r[i].applied } end
  return out
end

function Pg:is_applied(name)
  return self.conn:exec([[SELECT 1 AS x FROM "_migration" WHERE name = $1]], name).n > 0
end

function Pg:record(m)
  self:queue([[INSERT INTO "_migration" (applied, name) VALUES (now(), ]] .. self:literal(m.name) .. ")")
  if self.checksums and m.hash then
    self:queue([[INSERT INTO "_migration_checksum" (name, checksum) VALUES (]] .. self:literal(m.name)
      .. ", " .. self:literal(m.hash) .. ") ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum")
  end
end

function Pg:unrecord(name)
  self:queue([[DELETE FROM "_migration" WHERE name = ]] .. self:literal(name))
end

--- rick_db's flatten, in one transaction: every row replaced by one row named `name`.
function Pg:flatten(name, checksum)
  require("dbtool.pg").transaction(self.conn, function(c)
    c:exec([[DELETE FROM "_migration" WHERE id_migration > 0]])
    c:exec([[INSERT INTO "_migration" (applied, name) VALUES (now(), $1)]], name)
    if self:has_checksums() then
      c:exec([[DELETE FROM "_migration_checksum"]])
      if checksum then
        c:exec([[INSERT INTO "_migration_checksum" (name, checksum) VALUES ($1, $2)]], name, checksum)
      end
    end
  end)
end

-- ---------------------------------------------------------------- SQLite

local Sq = setmetatable({}, { __index = store_sqlite.Driver })
Sq.__index = Sq
Sq.__close = store_sqlite.Driver.close

function Sq.init_sql() return M.SQLITE_DDL .. ";\n" end

local function sq_has(db, tname)
  return #db:query("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", tname) > 0
end

function Sq:installed()
  return self.db ~= nil and sq_has(self.db, "_migration")
end

function Sq:install()
  if self:installed() then
    errors.raise(errors.GENERIC, "migration table '_migration' already exists")
  end
  self.db:exec("BEGIN IMMEDIATE; " .. M.SQLITE_DDL .. ";" .. (self.checksums and (M.CHECKSUM_DDL .. ";")
    or "")
    .. " COMMIT")
end

function Sq:init()
  if not self:installed() then self:install() end
end

function Sq:ensure()
  if not self:installed() then
    errors.raise(errors.GENERIC, "Migration Manager is not installed")
  end
  if self.checksums then self:ensure_checksums() end
end

function Sq:ensure_checksums()
  self.checksums = true
  if not sq_has(self.db, "_migration_checksum") then
    local ok, err = errors.try(self.db.exec, self.db, M.CHECKSUM_DDL)
    if not ok then
      if err.interrupted then error(err, 0) end
      checksums_unavailable(self, err)
    end
  end
end

function Sq:has_checksums()
  return sq_has(self.db, "_migration_checksum")
end

function Sq:applied()
  local join = self:has_checksums()
  local rows = self.db:query(string.format([[
    SELECT m.id_migration AS id, m.name AS name, %s AS hash, m.applied AS applied_at
      FROM "_migration" m %s ORDER BY m.name COLLATE BINARY, m.id_migration]],
    join and "c.checksum" or "NULL", join and [[LEFT JOIN "_migration_checksum" c ON c.name = m.name]] or ""))
  local out, seen = {}, {}
  for _, r in ipairs(rows) do
    local name = tostring(r.name)
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = { id = r.id, name = name, hash = r.hash and tostring(r.hash),
        applied_at = r.applied_at and tostring(r.applied_at) }
    end
  end
  return out
end

function Sq:list()
  local rows = self.db:query([[SELECT id_migration AS id, name, applied FROM "_migration"
    ORDER BY applied, id_migration]])
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = { id = r.id, name = tostring(r.name), applied = r.applied and tostring(r.applied) }
  end
  return out
end

function Sq:is_applied(name)
  return #self.db:query([[SELECT 1 AS x FROM "_migration" WHERE name = ?]], name) > 0
end

function Sq:record(m)
  self.db:query([[INSERT INTO "_migration" (applied, name) VALUES (?, ?)]], M.local_iso(), m.name)
  if self.checksums and m.hash then
    self.db:query([[INSERT OR REPLACE INTO "_migration_checksum" (name, checksum) VALUES (?, ?)]], m.name,
      m.hash)
  end
end

function Sq:unrecord(name)
  self.db:query([[DELETE FROM "_migration" WHERE name = ?]], name)
end

function Sq:flatten(name, checksum)
  self:begin()
  local ok, err = pcall(function()
    self.db:exec([[DELETE FROM "_migration" WHERE id_migration > 0]])
    self.db:query([[INSERT INTO "_migration" (applied, name) VALUES (?, ?)]], M.local_iso(), name)
    if self:has_checksums() then
      self.db:exec([[DELETE FROM "_migration_checksum"]])
      if checksum then
        self.db:query([[INSERT INTO "_migration_checksum" (name, checksum) VALUES (?, ?)]], name, checksum)
      end
    end
  end)
  if not ok then
    self:rollback()
    error(err, 0)
  end
  self:commit()
end

-- ---------------------------------------------------------------- open

--- Open the rickdb store. `d`: {engine = "postgresql", target = conninfo | keyword table} or
--- {engine = "sqlite", path = ...}. opts: log, create, lock_wait, checksums (use the side
--- table).
function M.open(d, opts)
  opts = opts or {}
  local s
  if d.engine == "postgresql" then
    s = store_pg.driver(d.target, opts, Pg)
    s.lock_key = store_pg.LOCK_RICKDB
    s.lock_table = '"_migration_lock"' -- table mode of the lock (store_pg: behind a pooler)
  elseif d.engine == "sqlite" then
    s = store_sqlite.driver(d.path, opts, Sq)
  else
    error("unknown engine " .. tostring(d.engine))
  end
  s.kind = "rickdb"
  s.table = "_migration"
  s.checksums = opts.checksums
  return s
end

--- The policy that gives rickdb's semantics on the engine.
M.POLICY = { history = "set", skip_empty = true, migration_mode = false }

return M
