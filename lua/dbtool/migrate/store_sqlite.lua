-- SQLite: the driver part of a store (one connection, BEGIN IMMEDIATE transactions, scripts
-- run statement by statement with sqlite3_prepare, `.read FILE` includes) and the hectic
-- bookkeeping tables of the original migrator: hectic_version (with its version trigger and
-- the ('migrator', '0.0.1') row) and hectic_migration.
--
-- Differences from the original, all readable by it: hectic_migration has no UNIQUE(hash)
-- (byte-identical migrations can both be applied; a table created by the original is
-- rebuilt once, keeping ids, rows and the AUTOINCREMENT counter), and two nullable columns
-- (tree_hash, duration_ms) as on PostgreSQL.
--
-- Scripts: SQL, plus the sqlite3 shell's `.read FILE` (FILE relative to the including file —
-- the original resolved it against the working directory — and quoted with '...' or "..."
-- when it holds spaces). Any other dot-command is an error at file:line. Dot-commands are
-- recognised, as in the sqlite3 shell, only on a line of their own between statements.
local errors = require "dbtool.errors"

local M = {}

local function sqlite()
  local ok, mod = pcall(require, "dbtool.core.sqlite")
  if not ok then
    errors.raise(errors.NO_DEPENDENCY, "SQLite support is not in this build (dbtool.core.sqlite)")
  end
  return mod
end

local function now()
  return require("dbtool.core").now()
end

-- ---------------------------------------------------------------- script runner

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- Only whitespace and comments (-- to end of line, /* */) in `s`?
local function all_whitespace(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif s:sub(i, i + 1) == "--" then
      local e = s:find("\n", i + 2, true)
      if not e then return true end
      i = e + 1
    elseif s:sub(i, i + 1) == "/*" then
      local e = s:find("*/", i + 2, true)
      if not e then return false end
      i = e + 2
    else
      return false
    end
  end
  return true
end
M.all_whitespace = all_whitespace

--- Parse the argument of a dot-command line: `.read 'a b.sql'` → "a b.sql".
local function dot_arg(rest)
  rest = rest:match("^%s*(.-)%s*$")
  if rest == "" then return nil end
  local q = rest:sub(1, 1)
  if q == "'" or q == '"' then
    local v = rest:match("^" .. q .. "(.*)" .. q .. "$")
    return v
  end
  if rest:find("%s") then return nil end
  return rest
end

local function where_error(err, path, first_line)
  if not errors.is(err) then return err end
  if err.where then return err end
  local line = (tonumber(err.line) or 1) + first_line - 1
  err.where = string.format("%s:%d:%d", path, line, tonumber(err.column) or 1)
  if err.statement then
    err.excerpt = err.statement:gsub("%s+$", "")
  end
  return err
end

--- Run the SQLite script file `path` on `db` (transactions are the caller's business).
function M.run_file(db, path, depth)
  depth = depth or 0
  if depth > 32 then
    errors.raise(errors.GENERIC, path .. ": .read nested too deeply (more than 32 levels)")
  end
  local f, msg = io.open(path, "rb")
  if not f then errors.raise(errors.GENERIC, "cannot read " .. tostring(msg)) end
  local text = f:read("a")
  f:close()
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
  local buf, buf_first, lineno = {}, 1, 0
  local function flush()
    local chunk = table.concat(buf)
    buf = {}
    if not all_whitespace(chunk) then
      local ok, err = pcall(db.exec, db, chunk)
      if not ok then error(where_error(err, path, buf_first), 0) end
    end
  end
  local sq
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    if line:match("^%s*%.") then
      local chunk = table.concat(buf)
      sq = sq or sqlite()
      if all_whitespace(chunk) or sq.complete(chunk) then
        flush()
        buf_first = lineno + 1
        local cmd, rest = line:match("^%s*%.(%S*)(.*)$")
        if cmd == "read" then
          local file = dot_arg(rest)
          if not file then
            errors.raise(errors.GENERIC, "usage: .read FILE (quote a name with spaces)",
              { where = path .. ":" .. lineno .. ":1" })
          end
          if file:sub(1, 1) ~= "/" then file = dirname(path) .. "/" .. file end
          M.run_file(db, file, depth + 1)
        else
          errors.raise(errors.GENERIC, "unsupported sqlite3 dot-command ." .. cmd
            .. " (only .read FILE is supported in migrations)", { where = path .. ":" .. lineno .. ":1" })
        end
        goto continue
      end
    end
    if #buf == 0 then buf_first = lineno end
    buf[#buf + 1] = line .. "\n"
    ::continue::
  end
  flush()
end

-- ---------------------------------------------------------------- driver

local Driver = {}
Driver.__index = Driver
M.Driver = Driver

--- Open `path`. opts: log, create (default true), lock_wait (busy timeout, seconds), uri
--- (path is a file: URI).
function M.driver(path, opts, class)
  opts = opts or {}
  local log = opts.log or require("dbtool.log").ns("migrate")
  local sq = sqlite()
  local create = opts.create ~= false
  if not create and not opts.uri then
    local st = require("posix.sys.stat").stat(path)
    if not st then
      return setmetatable({ path = path, log = log, engine = "sqlite", absent = true, recheck = true },
        class or Driver)
    end
  end
  local db, msg = sq.open(path, { create = create, uri = opts.uri == true,
    busy_timeout_ms = math.floor((opts.lock_wait or 60) * 1000) })
  if not db then
    errors.raise(errors.GENERIC, "cannot open SQLite database " .. tostring(msg))
  end
  return setmetatable({ db = db, path = path, log = log, engine = "sqlite", recheck = true }, class or Driver)
end

function Driver:close()
  if self.db then self.db:close() end
end
Driver.__close = Driver.close

function Driver:query(sql, ...)
  return self.db:query(sql, ...)
end

--- No run-wide lock on SQLite: every step takes the write lock (BEGIN IMMEDIATE, waiting up
--- to the busy timeout) and re-checks the history under it (recheck = true).
function Driver:lock(wait)
  if self.db and wait then self.db:busy_timeout(math.floor(wait * 1000)) end
end

function Driver:unlock()
  if self.db and self.db:in_transaction() then pcall(self.db.exec, self.db, "ROLLBACK") end
end

function Driver:begin()
  local ok, err = pcall(self.db.exec, self.db, "BEGIN IMMEDIATE")
  if not ok then
    if errors.is(err) and tostring(err.code_name or ""):match("^SQLITE_BUSY") then
      errors.raise(errors.GENERIC, "the database is locked by another writer: " .. self.path,
        { hint = "wait for the other migration to finish, or raise the wait with --lock-wait SECONDS" })
    end
    error(err, 0)
  end
end

function Driver:commit()
  self.db:exec("COMMIT")
end

function Driver:rollback()
  if self.db and self.db:in_transaction() then pcall(self.db.exec, self.db, "ROLLBACK") end
end

function Driver:in_transaction()
  return self.db:in_transaction()
end

--- Run a script; `vars` are psql variables, which SQLite scripts cannot use.
function Driver:run(path, vars)
  if vars and next(vars) and not self.warned_vars then
    self.warned_vars = true
    self.log:warn("--set variables are ignored for SQLite databases")
  end
  M.run_file(self.db, path)
end

-- ---------------------------------------------------------------- hectic_migration

local Hectic = setmetatable({}, { __index = Driver })
Hectic.__index = Hectic
Hectic.__close = Driver.close
M.Hectic = Hectic

M.MIGRATOR_VERSION = "0.0.1"

local NAME_GLOB = string.rep("[0-9]", 14) .. "-*"

M.MIGRATION_TABLE = [[
CREATE TABLE IF NOT EXISTS hectic_migration (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT UNIQUE NOT NULL CHECK (name GLOB ']] .. NAME_GLOB .. [['),
  hash TEXT NOT NULL CHECK (length(hash) = 64 AND hash = lower(hash)),
  applied_at TEXT NOT NULL DEFAULT (datetime('now')),
  tree_hash TEXT,
  duration_ms INTEGER
);
]]

M.INIT_SQL = [[
CREATE TABLE IF NOT EXISTS hectic_version (
  name TEXT PRIMARY KEY,
  version TEXT NOT NULL,
  installed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
]] .. M.MIGRATION_TABLE .. [[
CREATE TRIGGER IF NOT EXISTS hectic_version_check
BEFORE INSERT ON hectic_version
WHEN NEW.name = 'migrator' AND EXISTS (
  SELECT 1 FROM hectic_version WHERE name = 'migrator' AND version <> NEW.version)
BEGIN
  SELECT RAISE(ABORT, 'Incompatible migrator versions');
END;
INSERT OR IGNORE INTO hectic_version (name, version) VALUES ('migrator', ']] .. M.MIGRATOR_VERSION .. [[');
]]

function M.open(path, opts)
  local s = M.driver(path, opts, Hectic)
  s.kind = "hectic"
  s.table = "hectic_migration"
  return s
end

function Hectic.init_sql()
  return "BEGIN;\n" .. M.INIT_SQL .. "COMMIT;"
end

function Hectic:installed()
  if not self.db then return false end
  local rows = self.db:query(
    "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'hectic_migration'")
  return #rows > 0
end

-- Is there a UNIQUE index on exactly (hash)? (the original's table)
local function unique_hash(db)
  for _, idx in ipairs(db:query("PRAGMA index_list('hectic_migration')")) do
    if tonumber(idx.unique) == 1 then
      local cols = db:query("PRAGMA index_info('" .. tostring(idx.name):gsub("'", "''") .. "')")
      if #cols == 1 and cols[1].name == "hash" then return true end
    end
  end
  return false
end

local function columns(db)
  local have = {}
  for _, c in ipairs(db:query("PRAGMA table_info('hectic_migration')")) do have[c.name] = true end
  return have
end

-- Rebuild hectic_migration without UNIQUE(hash), keeping ids, rows and the sequence.
local function rebuild(db, log)
  local have = columns(db)
  local seq = db:query("SELECT seq FROM sqlite_sequence WHERE name = 'hectic_migration'")[1]
  local cols = "id, name, hash, applied_at"
  if have.tree_hash then cols = cols .. ", tree_hash" end
  if have.duration_ms then cols = cols .. ", duration_ms" end
  db:exec("ALTER TABLE hectic_migration RENAME TO hectic_migration_old_unique_hash")
  db:exec(M.MIGRATION_TABLE)
  db:exec("INSERT INTO hectic_migration (" .. cols .. ") SELECT " .. cols
    .. " FROM hectic_migration_old_unique_hash")
  db:exec("DROP TABLE hectic_migration_old_unique_hash")
  if seq then
    db:query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'hectic_migration'", seq.seq)
  end
  log:notice("hectic_migration: dropped UNIQUE(hash) (byte-identical migrations can now both be applied)")
end

--- The DDL in one IMMEDIATE transaction, then upgrades (UNIQUE(hash), extra columns).
function Hectic:init()
  if not self.db then
    errors.raise(errors.GENERIC, "SQLite database does not exist: " .. self.path)
  end
  local ok, err = errors.try(function()
    self:begin()
    local ok2, err2 = pcall(function()
      self.db:exec(M.INIT_SQL)
      if unique_hash(self.db) then rebuild(self.db, self.log) end
      local have = columns(self.db)
      if not have.tree_hash then self.db:exec("ALTER TABLE hectic_migration ADD COLUMN tree_hash TEXT") end
      if not have.duration_ms then
        self.db:exec("ALTER TABLE hectic_migration ADD COLUMN duration_ms INTEGER")
      end
    end)
    if not ok2 then
      self:rollback()
      error(err2, 0)
    end
    self:commit()
  end)
  if not ok then
    -- our own errors (locked database, interrupt) as they are; SQL failures are exit 13
    if errors.is(err) and (err.interrupted or (not err.bug and err.code == nil)) then error(err, 0) end
    require("dbtool.cli").report(err, self.log.name)
    errors.raise(errors.BUG, "init failed")
  end
end

-- SQLite has no bundle: the (idempotent) DDL runs before every migrate, as the original did.
Hectic.ensure = Hectic.init

local function text(v)
  if v == nil then return nil end
  return tostring(v)
end

function Hectic:applied()
  local have = columns(self.db)
  local rows = self.db:query(string.format(
    "SELECT id, name, hash, applied_at, %s AS tree_hash, %s AS duration_ms FROM hectic_migration "
      .. "ORDER BY name COLLATE BINARY",
    have.tree_hash and "tree_hash" or "NULL", have.duration_ms and "duration_ms" or "NULL"))
  local out = {}
  for i, r in ipairs(rows) do
    local at = text(r.applied_at)
    if at and at:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") then at = at:gsub(" ", "T") .. "Z" end
    out[i] = { id = r.id, name = text(r.name), hash = text(r.hash), tree_hash = text(r.tree_hash),
      duration_ms = r.duration_ms, applied_at = at }
  end
  return out
end

function Hectic:is_applied(name)
  return #self.db:query("SELECT 1 AS x FROM hectic_migration WHERE name = ?", name) > 0
end

function Hectic:record(m, duration_ms)
  self.db:query("INSERT INTO hectic_migration (name, hash, tree_hash, duration_ms) VALUES (?, ?, ?, ?)",
    m.name, m.hash, m.tree_hash, duration_ms)
end

function Hectic:unrecord(name)
  self.db:query("DELETE FROM hectic_migration WHERE name = ?", name)
end

-- repeatable migrations (see dbtool.migrate)
M.REPEATABLE_DDL = [[CREATE TABLE IF NOT EXISTS hectic_migration_repeatable (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  duration_ms INTEGER
)]]

function Hectic:repeatable_applied()
  local out = {}
  if not self.db then return out end
  if #self.db:query("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = "
      .. "'hectic_migration_repeatable'") == 0 then
    return out
  end
  for _, r in ipairs(self.db:query("SELECT name, hash, applied_at FROM hectic_migration_repeatable")) do
    out[text(r.name)] = { hash = text(r.hash), applied_at = text(r.applied_at) }
  end
  return out
end

function Hectic:ensure_repeatable()
  self.db:exec(M.REPEATABLE_DDL)
end

function Hectic:record_repeatable(m, duration_ms)
  self.db:query("INSERT OR REPLACE INTO hectic_migration_repeatable (name, hash, duration_ms) "
    .. "VALUES (?, ?, ?)",
    m.name, m.hash, duration_ms)
end

function Hectic:forget_repeatable(name)
  self.db:query("DELETE FROM hectic_migration_repeatable WHERE name = ?", name)
end

M.now = now

return M
