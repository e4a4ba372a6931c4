-- rickdb's configuration: where rickdb.toml is, its [db] / [db_<name>] sections, engines,
-- connection parameters and passfiles. Plain functions (values in, values out, errors as
-- structured errors carrying rickdb's exit codes), unit-tested without a database in
-- spec/unit/rickdb_config_spec.lua.
--
-- Compatible with rick_db's CLI (reference/rickdb-upstream.md §1): the same file names,
-- sections, engine names and messages. Differences (its defects, our fixes): `--config FILE`;
-- the "could not locate" message names the file actually looked for; passfile paths are
-- relative to the configuration file; a passfile is read only for the database in use, and
-- a group- or world-readable one is warned about; SQLite sections ignore password/passfile
-- instead of failing; parameters are checked with clear messages.
local errors = require "dbtool.errors"
local toml = require "dbtool.toml"

local M = {}

M.DEFAULT_FILE = "rickdb.toml"
M.ENV = "RICKDB_CONFIG"

-- rick_db's exit codes (it passed -1..-4 to exit(), so the shell sees 255..252)
M.EXIT_USAGE = 255    -- configuration file, usage
M.EXIT_NO_DB = 254    -- the database is not in the configuration file
M.EXIT_ENGINE = 253   -- unknown engine, bad parameters, cannot connect
M.EXIT_FAILED = 252   -- a command failed

M.ENGINES = {
  pgsql = "postgresql", pg = "postgresql", postgres = "postgresql",
  sqlite = "sqlite", sqlite3 = "sqlite", sql3 = "sqlite",
}

-- rick_db also has ClickHouse (no driver in this build)
M.UNSUPPORTED = { clickhouse = true, ch = true }

-- keys rick_db consumes itself (not libpq keywords)
local PG_OWN = { isolation_level = true, autocommit = true, engine = true, passfile = true }

-- Python sqlite3.connect() keywords rick_db passes on
M.SQLITE_KEYS = { db_file = true, timeout = true, isolation_level = true, autocommit = true, uri = true,
  detect_types = true, check_same_thread = true, factory = true, cached_statements = true }

-- our own settings in a [rickdb] table (rick_db ignores tables it does not know)
M.SETTINGS = {
  checksum = { "verify", "warn", "off" },
  lock_wait = "number",
  lock_timeout = "duration",
  dto_template = "string",
}

local function fail(code, msg, fields)
  errors.raise(code, msg, fields)
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end
M.dirname = dirname

--- Which file to read: --config, else $RICKDB_CONFIG, else ./rickdb.toml.
--- Returns path, source ("--config" | "RICKDB_CONFIG" | "default").
function M.locate(flag, getenv)
  getenv = getenv or os.getenv
  if flag and flag ~= "" then return flag, "--config" end
  local env = getenv(M.ENV)
  if env and env ~= "" then return env, M.ENV end
  return M.DEFAULT_FILE, "default"
end

--- The largest configuration file read (bytes): a bound on time and memory.
M.MAX_FILE = 1024 * 1024

local function is_regular(path)
  local st = require("posix.sys.stat").stat(path)
  return st ~= nil and require("posix.sys.stat").S_ISREG(st.st_mode) ~= 0
end

local function section_where(cfg, key)
  local line = cfg.info and cfg.info.where(cfg.raw, key)
  return line and (cfg.file .. ":" .. line) or cfg.file
end

-- file:line:col of the key `k` of section table `s` (else `fallback`: the section's).
local function key_where(cfg, s, k, fallback)
  if not (cfg and cfg.info) then return fallback end
  local line, col = cfg.info.where(s, k)
  return line and string.format("%s:%d:%d", cfg.file, line, col or 1) or fallback
end

--- Check the [rickdb] settings table; returns the settings or raises (exit 255).
function M.settings(t, where)
  local out = {}
  if t == nil then return out end
  if type(t) ~= "table" or toml.is_array(t) then
    fail(M.EXIT_USAGE, "[rickdb] must be a table of settings", { where = where })
  end
  for k, v in pairs(t) do
    local rule = M.SETTINGS[k]
    if rule == nil then
      local known = {}
      for name in pairs(M.SETTINGS) do known[#known + 1] = name end
      table.sort(known)
      fail(M.EXIT_USAGE, "unknown setting '" .. tostring(k) .. "' in [rickdb]",
        { where = where, hint = "known settings: " .. table.concat(known, ", ") })
    end
    local ok
    if type(rule) == "table" then
      ok = false
      for _, allowed in ipairs(rule) do if v == allowed then ok = true end end
      if not ok then
        fail(M.EXIT_USAGE, "[rickdb] " .. k .. " must be one of " .. table.concat(rule, ", "),
          { where = where })
      end
    elseif rule == "number" then
      if type(v) ~= "number" or v < 0 then
        fail(M.EXIT_USAGE, "[rickdb] " .. k .. " must be a number of seconds >= 0", { where = where })
      end
    elseif rule == "duration" then
      if v ~= false and not require("dbtool.migrate.policy").valid_duration(v) then
        fail(M.EXIT_USAGE, "[rickdb] " .. k .. " must be a duration such as \"10s\" or \"500ms\", or false",
          { where = where })
      end
    elseif type(v) ~= rule then
      fail(M.EXIT_USAGE, "[rickdb] " .. k .. " must be a " .. rule, { where = where })
    end
    out[k] = v
  end
  return out
end

--- A TOML error on a `password = …` line must not show the value: its message and hint
--- lose every quoted piece of the value, its excerpt the text after `=` (the value is not
--- known yet, so the log redaction cannot hide it). Changes `e` in place.
function M.hide_password(e, text)
  if not e.line then return end
  local n, line = 0, nil
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if n == e.line then
      line = l
      break
    end
  end
  local key = line and line:match("^%s*[\"']?([%w_-]+)[\"']?%s*=")
  if not key or not key:lower():find("password", 1, true) then return end
  local value = line:match("=(.*)$")
  local function hide(s)
    if type(s) ~= "string" then return s end
    local function piece(q, content)
      if content ~= "" and value:find(content, 1, true) then return q .. "***" .. q end
    end
    return (s:gsub("(')([^']*)'", piece):gsub('(")([^"]*)"', piece))
  end
  e.msg, e.hint = hide(e.msg), hide(e.hint)
  e.excerpt = string.format("%5d | %s ***", e.line, line:match("^[^=]*="))
end

--- Parse configuration text (`path` names it in messages). Returns
--- {file, dir, sections = {[key] = table}, names = {sorted keys}, settings, warnings, raw, info}.
--- Raises (exit 255): TOML errors at file:line:col, a section without engine.
function M.parse(text, path)
  local ok, raw, info = errors.try(toml.parse, text, { name = path, positions = true })
  if not ok then
    local e = raw
    if errors.is(e) and not e.bug then
      e.exit = M.EXIT_USAGE
      M.hide_password(e, text)
    end
    error(e, 0)
  end
  local cfg = { file = path, dir = dirname(path), sections = {}, names = {}, warnings = {}, raw = raw,
    info = info }
  for key, v in pairs(raw) do
    if key == "db" or key:sub(1, 3) == "db_" then
      if type(v) == "table" and getmetatable(v) == nil then
        cfg.sections[key] = v
        cfg.names[#cfg.names + 1] = key
      else
        cfg.warnings[#cfg.warnings + 1] = string.format("%s: '%s' is not a table: ignored",
          section_where(cfg, key), key)
      end
    end
  end
  table.sort(cfg.names)
  -- rick_db checks every section for `engine` when it loads the file
  for _, key in ipairs(cfg.names) do
    if cfg.sections[key].engine == nil then
      fail(M.EXIT_USAGE, string.format("missing 'engine' parameter in database configuration key '%s' in %s",
        key, path), { where = section_where(cfg, key),
        hint = "add engine = \"pgsql\" or engine = \"sqlite\" to [" .. key .. "]" })
    end
  end
  cfg.settings = M.settings(raw.rickdb, section_where(cfg, "rickdb"))
  return cfg
end

--- Read and parse the configuration file at `path`. Raises (exit 255) when it is missing
--- (rick_db's message, naming the file), unreadable or invalid.
function M.load(path)
  if not is_regular(path) then
    fail(M.EXIT_USAGE, "Could not locate configuration file - " .. path, { prefix = "Error:",
      hint = "create " .. path .. " with a [db] section, or point RICKDB_CONFIG or --config at one" })
  end
  local f, msg = io.open(path, "rb")
  if not f then fail(M.EXIT_USAGE, "cannot read " .. tostring(msg)) end
  local text = f:read(M.MAX_FILE + 1) or ""
  f:close()
  if #text > M.MAX_FILE then
    fail(M.EXIT_USAGE, string.format("%s is larger than a configuration file may be (%d bytes)", path,
      M.MAX_FILE), { where = path,
      hint = "rickdb.toml holds [db] sections of a few lines: is it the right file?" })
  end
  return M.parse(text, path)
end

--- The section of database `name` (nil or "db" = the default [db]); raises exit 254.
function M.select(cfg, name)
  if name == nil or name == "db" then
    local s = cfg.sections.db
    if not s then
      fail(M.EXIT_NO_DB, "default database configuration not found in the config file",
        { hint = M.available_hint(cfg, "add a [db] section to " .. cfg.file) })
    end
    return s, "db"
  end
  local key = "db_" .. name
  local s = cfg.sections[key]
  if not s then
    fail(M.EXIT_NO_DB, "database '" .. name .. "' not found in the config file",
      { hint = M.available_hint(cfg, "add a [" .. key .. "] section to " .. cfg.file) })
  end
  return s, key
end

--- "databases in <file>: db, app" (names as typed on the command line), or `fallback`.
function M.available_hint(cfg, fallback)
  local list = {}
  for _, key in ipairs(cfg.names) do
    list[#list + 1] = key == "db" and "(default)" or key:sub(4)
  end
  if #list == 0 then return fallback .. " (it has no [db] or [db_<name>] section)" end
  return fallback .. "; databases in " .. cfg.file .. ": " .. table.concat(list, ", ")
end

--- Resolve `path` against `base` unless absolute.
function M.resolve(path, base)
  if path:sub(1, 1) == "/" or base == nil or base == "." then return path end
  return base .. "/" .. path
end

--- Read a passfile: its first line, trailing CR/LF removed (other whitespace kept).
--- Returns password, warning (when the file has group or world access) or raises (255).
function M.read_passfile(path)
  local stat = require "posix.sys.stat"
  local st = stat.stat(path)
  if not st or stat.S_ISREG(st.st_mode) == 0 then
    fail(M.EXIT_USAGE, "could not open passfile '" .. path .. "'",
      { hint = "passfile paths are relative to the configuration file" })
  end
  local f = io.open(path, "rb")
  if not f then fail(M.EXIT_USAGE, "could not open passfile '" .. path .. "'") end
  local text = f:read("a") or ""
  f:close()
  local line = text:match("^[^\n]*"):gsub("[\r\n]+$", "")
  local warning
  if st.st_mode & 63 ~= 0 then -- S_IRWXG | S_IRWXO
    warning = string.format("passfile '%s' has group or world access; permissions should be u=rw (0600) "
      .. "or less (chmod 600 %s)", path, path)
  end
  return line, warning
end

local ISOLATION = { ["read committed"] = true, ["repeatable read"] = true, serializable = true,
  ["read uncommitted"] = true }

local function param_text(key, v, where)
  local ty = type(v)
  if ty == "string" then return v end
  if math.type(v) == "integer" then return tostring(v) end
  if ty == "number" then return tostring(v) end
  if ty == "boolean" then return v and "1" or "0" end
  fail(M.EXIT_ENGINE, "parameter '" .. key .. "' must be a string or a number, not " .. toml.type(v),
    { where = where })
end

--- The connection of section `s` (key `key` of cfg). Returns
---   {engine = "postgresql", params = {libpq keyword = string}, autocommit = bool, password}
---   {engine = "sqlite", path = db_file, uri = bool, timeout = seconds | nil}
--- and a list of warnings. Raises 253 (engine, parameters) or 255 (passfile).
function M.connection(s, key, cfg)
  local where = cfg and section_where(cfg, key) or nil
  local warnings = {}
  local engine = s.engine
  if type(engine) ~= "string" then
    fail(M.EXIT_ENGINE, "engine '" .. tostring(engine) .. "' is invalid or not supported",
      { where = where, hint = "engine = \"pgsql\" (pg, postgres) or \"sqlite\" (sqlite3, sql3)" })
  end
  local kind = M.ENGINES[engine]
  if not kind then
    local hint = "engine = \"pgsql\" (pg, postgres) or \"sqlite\" (sqlite3, sql3)"
    if M.UNSUPPORTED[engine] then hint = "ClickHouse is not supported by this build; " .. hint end
    fail(M.EXIT_ENGINE, "engine '" .. engine .. "' is invalid or not supported", { where = where,
      hint = hint })
  end
  local base = cfg and cfg.dir or "."

  if kind == "sqlite" then
    local out = { engine = "sqlite" }
    for k in pairs(s) do
      if k == "password" or k == "passfile" then
        warnings[#warnings + 1] = "[" .. key .. "]: '" .. k .. "' is ignored for the sqlite engine"
      elseif k ~= "engine" and not M.SQLITE_KEYS[k] then
        local known = {}
        for name in pairs(M.SQLITE_KEYS) do known[#known + 1] = name end
        table.sort(known)
        fail(M.EXIT_ENGINE, "'" .. k .. "' is not a parameter of the sqlite engine (in [" .. key .. "])",
          { where = key_where(cfg, s, k, where), hint = "known: " .. table.concat(known, ", ") })
      end
    end
    local file = s.db_file
    if file == nil then
      fail(M.EXIT_ENGINE, "missing 'db_file' parameter for the sqlite engine in [" .. key .. "]",
        { where = where, hint = "db_file = \"path/to/database.db\" (relative to the working directory)" })
    end
    if type(file) ~= "string" or file == "" then
      fail(M.EXIT_ENGINE, "db_file must be a non-empty string (in [" .. key .. "])",
        { where = key_where(cfg, s, "db_file", where) })
    end
    out.path = file
    out.uri = (s.uri == true) or file:sub(1, 5) == "file:"
    if s.timeout ~= nil then
      if type(s.timeout) ~= "number" or s.timeout < 0 then
        fail(M.EXIT_ENGINE, "timeout must be a number of seconds (in [" .. key .. "])",
          { where = key_where(cfg, s, "timeout", where) })
      end
      out.timeout = s.timeout
    end
    return out, warnings
  end

  local params = {}
  for k, v in pairs(s) do
    if not PG_OWN[k] then
      local name = k == "database" and "dbname" or k
      if k == "database" and s.dbname ~= nil then
        warnings[#warnings + 1] = "[" .. key .. "]: both dbname and database are set; using dbname"
      else
        params[name] = param_text(k, v, key_where(cfg, s, k, where))
      end
    end
  end
  local out = { engine = "postgresql", params = params, autocommit = s.autocommit == true }
  if s.isolation_level ~= nil then
    local lvl = type(s.isolation_level) == "string" and s.isolation_level:lower():gsub("_", " ")
    if not ISOLATION[lvl] then
      fail(M.EXIT_ENGINE, "isolation_level must be one of read committed, repeatable read, serializable, "
        .. "read uncommitted (in [" .. key .. "])",
        { where = key_where(cfg, s, "isolation_level", where) })
    end
    local opt = "-c default_transaction_isolation=" .. lvl:gsub(" ", "\\ ")
    params.options = params.options and (params.options .. " " .. opt) or opt
  end
  if s.autocommit ~= nil and type(s.autocommit) ~= "boolean" then
    fail(M.EXIT_ENGINE, "autocommit must be true or false (in [" .. key .. "])",
      { where = key_where(cfg, s, "autocommit", where) })
  end
  if s.passfile ~= nil then
    if type(s.passfile) ~= "string" or s.passfile == "" then
      fail(M.EXIT_USAGE, "passfile must be a file name (in [" .. key .. "])",
        { where = key_where(cfg, s, "passfile", where) })
    end
    local path = M.resolve(s.passfile, base)
    local pw, warning = M.read_passfile(path)
    params.password = pw
    if warning then warnings[#warnings + 1] = warning end
  end
  if params.fallback_application_name == nil then params.fallback_application_name = "rickdb" end
  out.password = params.password
  return out, warnings
end

return M
