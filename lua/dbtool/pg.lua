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

--- Connect to a URL/conninfo/keyword table; raises a structured error with a hint.
--  opts.log: logger for notices (default namespace "db"); opts.quiet: drop notices.
function M.connect(target, opts)
  opts = opts or {}
  local ok, conn = pcall(core.connect, target)
  if not ok then
    local e = conn
    if errors.is(e) and e.kind == "connection" then
      if not e.hint then
        local down = e.msg:find("No such file or directory", 1, true)
          or e.msg:find("Connection refused", 1, true)
        if down then
          e.hint = "is the server running? start the local cluster: `database init` or `. postgres-init`"
        elseif e.msg:find("does not exist", 1, true) then
          e.hint = "create it, or check the database name in the URL"
        end
      end
      e.url = type(target) == "string" and log.redact(target) or nil
    end
    error(e, 0)
  end
  if not opts.quiet then M.log_notices(conn, opts.log or log.ns("db")) end
  return conn
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
