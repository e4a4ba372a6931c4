-- PostgreSQL connections for the library: the C binding (dbtool.core.pg) plus what every
-- caller wants — notices routed to the log, helpful hints on connection failures, quoting
-- helpers and a transaction wrapper.
local core = require "dbtool.core.pg"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = setmetatable({}, { __index = core })

local NOTICE_LEVEL = { WARNING = "warn", NOTICE = "info", INFO = "info", LOG = "debug", DEBUG = "debug" }

--- Route notices of `conn` to logger `l` (a dbtool.log namespace); levels by severity.
function M.log_notices(conn, l, min_level)
  conn:on_notice(function(n)
    local level = NOTICE_LEVEL[n.severity] or "info"
    if min_level and log.LEVELS[level] < log.LEVELS[min_level] then level = min_level end
    l[level](l, "%s: %s", n.severity or "NOTICE", n.msg)
  end)
end

-- ---------------------------------------------------------------- secrets of targets

--- Register the passwords of a connection target (URL, conninfo or keyword table) with the
--  log redaction before libpq or anything else sees it — also the raw text of a malformed
--  URL's password (see log.connection_spans). Returns the password spans.
function M.register_secrets(target)
  return log.add_connection(target)
end

-- Did libpq read the password(s) of `target` where the spans say? When it did not (it could
-- not parse the string, or an unencoded '/', '@', blank … moved its split), its messages may
-- quote pieces of the password as a port, host or database name.
local function read_as_written(target, spans)
  local parsed = core.parse_conninfo(target)
  if not parsed then return false end
  for _, sp in ipairs(spans) do
    if parsed.password ~= sp.value then return false end
  end
  return true
end

--- Redact an error raised about connection target `target`, in place: its message, detail,
--  hint and context lose every password of the target, and — when libpq did not read the
--  target as written — every quoted piece that overlaps a password. Returns e.
function M.redact_error(e, target, spans)
  if type(e) ~= "table" then return e end
  if type(target) == "string" then
    spans = spans or log.connection_spans(target)
    local pieces = #spans > 0 and not read_as_written(target, spans)
    for _, k in ipairs { "msg", "detail", "hint", "context" } do
      if type(e[k]) == "string" then
        e[k] = pieces and log.redact_connection(e[k], target, spans) or log.redact(e[k])
      end
    end
    e.url = log.redact_spans(target, spans)
  else
    for _, k in ipairs { "msg", "detail", "hint", "context" } do
      if type(e[k]) == "string" then e[k] = log.redact(e[k]) end
    end
  end
  return e
end

--- Parse a conninfo string or URL → {keyword = value} | nil, message (redacted).
function M.parse_conninfo(target)
  local spans = M.register_secrets(target)
  local parsed, err = core.parse_conninfo(target)
  if parsed then return parsed end
  return nil, log.redact_connection(err, target, spans)
end

-- The hint for a failed connection. `source` says where the target came from ("-u",
-- "PGURL", "DB_URL", "cluster" or nil): only the local cluster gets "start the local cluster".
local function connect_hint(msg, source)
  local down = msg:find("No such file or directory", 1, true) or msg:find("Connection refused", 1, true)
  if down then
    if source == "cluster" then
      return "is the server running? start the local cluster: `database init` or `. postgres-init`"
    end
    return "is the server running? check the host and port of the connection string"
  elseif msg:find("password authentication failed", 1, true) then
    return "check the user name and password of the connection string (or ~/.pgpass, PGPASSWORD)"
  elseif msg:find("does not exist", 1, true) then
    return "create it, or check the database name in the URL"
  end
end

--- Connect to a URL/conninfo/keyword table; raises a structured error with a hint.
--  opts.log: logger for notices (default namespace "db"); opts.quiet: drop notices;
--  opts.source: where the target came from ("-u", "PGURL", "DB_URL", "cluster"), for hints.
--  The target's passwords are registered with the log redaction first, and the error of a
--  failed connection never quotes them (see redact_error).
function M.connect(target, opts)
  opts = opts or {}
  local spans = M.register_secrets(target)
  local ok, conn = pcall(core.connect, target)
  if not ok then
    local e = conn
    if errors.is(e) then
      M.redact_error(e, target, spans)
      if e.kind == "connection" and not e.hint then e.hint = connect_hint(e.msg, opts.source) end
    end
    error(e, 0)
  end
  if not opts.quiet then M.log_notices(conn, opts.log or log.ns("db")) end
  return conn
end

--- PQping of a target (its passwords registered first): "ok", "reject", "no_response",
--  "no_attempt".
function M.ping(target)
  M.register_secrets(target)
  return core.ping(target)
end

--- Quote an identifier (no connection needed): "we""ird".
function M.quote_ident(s)
  return '"' .. tostring(s):gsub('"', '""') .. '"'
end

--- Quote a schema-qualified name given as "schema.table" or "table".
function M.quote_qualified(s)
  local schema, name = tostring(s):match("^([^.]+)%.(.+)$")
  if schema then return M.quote_ident(schema) .. "." .. M.quote_ident(name) end
  return M.quote_ident(s)
end

--- Quote a literal for standard_conforming_strings = on (the default since 9.1).
function M.quote_literal(s)
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end

--- Is `s` a PostgreSQL URL (postgresql:// or postgres://)?
function M.is_url(s)
  return type(s) == "string" and (s:match("^postgresql://") or s:match("^postgres://")) ~= nil
end

--- Run fn(conn) inside BEGIN … COMMIT; ROLLBACK and re-raise on error.
function M.transaction(conn, fn, ...)
  conn:exec("BEGIN")
  local res = table.pack(xpcall(fn, errors.handler, conn, ...))
  if res[1] then
    conn:exec("COMMIT")
    return table.unpack(res, 2, res.n)
  end
  if not conn:closed() and conn:transaction_status() ~= "idle" then pcall(conn.exec, conn, "ROLLBACK") end
  error(res[2], 0)
end

return M
