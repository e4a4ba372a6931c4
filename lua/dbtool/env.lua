-- The environment contract of the seed: variables, defaults, and clear errors (exit 3,
-- naming the variable) when a required one is missing. Values set in-process with set()
-- (e.g. by `-u URL`) shadow the real environment for this process and for the children we
-- spawn through child_env(); internal state is never read from or exported to the
-- environment.
--
-- Private variables (M.PRIVATE: the secrets private key) are read by us and seen by no
-- child: seal(), called once at start-up, moves them out of the process environment (so
-- that nothing started by any means inherits them: proc.spawn, os.execute or io.popen in a
-- project hook, libpq), and child_env() never passes them on.
local errors = require "dbtool.errors"

local M = {}

--- Variables never inherited by a child process. DB_TOOL_SECRET_KEY is the private key
--- itself. DB_TOOL_SECRET_KEY_FILE is kept: a path is not a secret (a child running as the
--- same user can read the key directory anyway), and a nested db-tool still finds the key.
M.PRIVATE = { DB_TOOL_SECRET_KEY = true }

local overlay = {}   -- name → value, or false for "unset"
local sealed = {}    -- private name → value taken out of the process environment by seal()

--- Take the private variables out of the process environment (they stay readable here).
function M.seal()
  local stdlib = require "posix.stdlib"
  for name in pairs(M.PRIVATE) do
    local v = os.getenv(name)
    if v ~= nil then
      sealed[name] = v
      stdlib.setenv(name, nil)
    end
  end
end

--- Raw value: nil when unset, "" when set but empty.
function M.raw(name)
  local v = overlay[name]
  if v == false then return nil end
  if v ~= nil then return v end
  v = sealed[name]
  if v ~= nil then return v end
  return os.getenv(name)
end

--- Value, or nil when unset or empty.
function M.get(name, default)
  local v = M.raw(name)
  if v == nil or v == "" then return default end
  return v
end

function M.is_set(name)
  return M.raw(name) ~= nil
end

--- Set (or with nil, unset) a variable for this process and its children.
function M.set(name, value)
  if value == nil then overlay[name] = false else overlay[name] = tostring(value) end
end

--- Forget in-process changes and sealed values (tests).
function M.reset()
  overlay = {}
  sealed = {}
end

--- Value of a required variable, or exit 3 naming it.
function M.require(name, why)
  local v = M.get(name)
  if v == nil then
    errors.raise(errors.MISSING, name .. " is not set" .. (why and (" (" .. why .. ")") or ""),
      { hint = "export " .. name .. "=... (see --help for the environment variables)",
        variable = name })
  end
  return v
end

--- Full environment for a child process: the real environment, our overlay, then `extra`
--- (a value of false removes a variable). Private variables (M.PRIVATE) are left out, even
--- when set in-process, unless `extra` names them.
function M.child_env(extra)
  local all = require("posix.stdlib").getenv()
  for k, v in pairs(overlay) do
    if v == false then all[k] = nil else all[k] = v end
  end
  for k in pairs(M.PRIVATE) do all[k] = nil end
  if extra then
    for k, v in pairs(extra) do
      if v == false then all[k] = nil else all[k] = tostring(v) end
    end
  end
  return all
end

local function cwd()
  return require("dbtool.core").getcwd() or "."
end

-- ---------------------------------------------------------------- seed defaults

--- LOCAL_DIR, required unless `optional` (then $PWD).
function M.local_dir(optional)
  if optional then return M.get("LOCAL_DIR") or cwd() end
  return M.require("LOCAL_DIR", "the project root")
end

function M.database_dir()
  return M.get("DATABASE_DIR") or (M.local_dir(true) .. "/db")
end

function M.migration_dir()
  return M.get("MIGRATION_DIR") or (M.database_dir() .. "/migration")
end

function M.database_source()
  return M.get("DATABASE_SOURCE") or (M.database_dir() .. "/src")
end

--- PG_WORKING_DIR, else $LOCAL_DIR/focus/postgresql (LOCAL_DIR then required).
function M.pg_working_dir()
  local wd = M.get("PG_WORKING_DIR")
  if wd then return wd end
  if not M.get("LOCAL_DIR") then
    errors.raise(errors.MISSING, "PG_WORKING_DIR or LOCAL_DIR is required",
      { hint = "export LOCAL_DIR=/path/to/project (the cluster goes to $LOCAL_DIR/focus/postgresql)",
        variable = "LOCAL_DIR" })
  end
  return M.get("LOCAL_DIR") .. "/focus/postgresql"
end

function M.focus_dir()
  return M.local_dir(true) .. "/focus"
end

--- The patch file: PATCH_SQL, else ${PROFILE_DIR:-${LOCAL_DIR:-$PWD}}/test-data.sql.
function M.patch_sql()
  return M.get("PATCH_SQL") or ((M.get("PROFILE_DIR") or M.local_dir(true)) .. "/test-data.sql")
end

function M.pg_database()
  return M.get("PG_DATABASE", "testdb")
end

function M.pg_port()
  local port = M.get("PG_PORT", "5432")
  local n = tonumber(port)
  if not n or n ~= math.floor(n) or n < 1 or n > 65535 then
    errors.raise(errors.GENERIC, "PG_PORT must be a port number (1-65535), not '" .. port .. "'",
      { variable = "PG_PORT" })
  end
  return math.floor(n)
end

--- PG_URL_VAR (default PGURL), validated as a shell variable name.
function M.pg_url_var()
  local v = M.raw("PG_URL_VAR")
  if v == nil or v == "" then return "PGURL" end
  if not v:match("^[A-Za-z_][A-Za-z0-9_]*$") then
    errors.raise(errors.GENERIC, "invalid PG_URL_VAR '" .. v .. "': it must be a shell variable name",
      { hint = "use letters, digits and underscores, not starting with a digit", variable = "PG_URL_VAR" })
  end
  return v
end

function M.default_backup_path()
  return M.get("DEFAULT_BACKUP_PATH") or (M.focus_dir() .. "/postgresql-backup")
end

function M.default_normalized_backup_path()
  return M.get("DEFAULT_NORMALIZED_BACKUP_PATH") or (M.focus_dir() .. "/postgresql-backup-normalized")
end

--- OS user name (the cluster's superuser).
function M.user()
  local pwd = require "posix.pwd"
  local unistd = require "posix.unistd"
  local entry = pwd.getpwuid(unistd.geteuid())
  return entry and entry.pw_name or M.get("USER") or "postgres"
end

--- Cache directory: ${XDG_CACHE_HOME:-~/.cache}/db-tool.
--- A new empty temporary file under $TMPDIR (default /tmp), mode 0600: its path. (os.tmpname
--- ignores TMPDIR.) The caller removes it.
function M.tmpfile()
  local stdlib = require "posix.stdlib"
  local base = M.get("TMPDIR", "/tmp")
  local fd, path = stdlib.mkstemp(base .. "/db-tool-XXXXXX")
  if not fd then
    errors.raise(errors.GENERIC, "cannot create a temporary file in " .. base .. ": " .. tostring(path),
      { hint = "check TMPDIR", variable = "TMPDIR" })
  end
  require("posix.unistd").close(fd)
  return path
end

function M.cache_dir()
  local base = M.get("XDG_CACHE_HOME")
  if not base then
    local home = M.get("HOME")
    if not home then
      local pwd = require "posix.pwd"
      local entry = pwd.getpwuid(require("posix.unistd").geteuid())
      home = entry and entry.pw_dir or "/tmp"
    end
    base = home .. "/.cache"
  end
  return base .. "/db-tool"
end

return M
