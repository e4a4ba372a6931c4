-- Which database a command works on: `-u URL`, else PGURL, else DB_URL, else the local
-- cluster in PG_WORKING_DIR (when its socket exists). A command that needs a database and
-- has none exits 3 with a message that says how to get one.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

--- URL of the local cluster (whether or not it runs), or nil when there is no working dir.
function M.local_url()
  local ok, wd = pcall(env.pg_working_dir)
  if not ok then return nil end
  local port = env.pg_port()
  return string.format("postgresql:///%s?host=%s/sock&port=%d", env.pg_database(), wd, port),
    wd .. "/sock/.s.PGSQL." .. port
end

--- The connection target and where it came from: url, source ("-u", "PGURL", "DB_URL",
--- "cluster"), or nil.
--- Its passwords are registered with the log redaction (log.add_connection) before anything
--- can print it or an error about it.
function M.url(ctx)
  local url, source
  if ctx and ctx.url then
    url, source = ctx.url, "-u"
  elseif env.get("PGURL") then
    url, source = env.get("PGURL"), "PGURL"
  elseif env.get("DB_URL") then
    url, source = env.get("DB_URL"), "DB_URL"
  else
    local socket
    url, socket = M.local_url()
    if not (url and require("posix.sys.stat").stat(socket)) then return nil end
    source = "cluster"
  end
  require("dbtool.log").add_connection(url)
  return url, source
end

--- The URL, or exit 3 explaining how to provide one.
function M.require_url(ctx)
  local url, source = M.url(ctx)
  if not url then
    local ok, wd = pcall(env.pg_working_dir)
    errors.raise(errors.MISSING, "no database to connect to: PGURL and DB_URL are not set, and "
      .. (ok and ("no local cluster is running in " .. wd) or "neither PG_WORKING_DIR nor LOCAL_DIR is set"),
      { hint = "pass -u URL, export PGURL/DB_URL, or start the local cluster with `database init`",
        variable = "PGURL" })
  end
  return url, source
end

--- Connect to the command's database (see url()); opts as dbtool.pg.connect.
function M.connect(ctx, opts)
  local url, source = M.require_url(ctx)
  local o = { source = source }
  for k, v in pairs(opts or {}) do o[k] = v end
  if not o.log and ctx and ctx.log then o.log = ctx.log end
  return require("dbtool.pg").connect(url, o)
end

return M
