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
function M.url(ctx)
  if ctx and ctx.url then return ctx.url, "-u" end
  local v = env.get("PGURL")
  if v then return v, "PGURL" end
  v = env.get("DB_URL")
  if v then return v, "DB_URL" end
  local url, socket = M.local_url()
  if url and require("posix.sys.stat").stat(socket) then return url, "cluster" end
  return nil
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
  local url = M.require_url(ctx)
  opts = opts or {}
  if not opts.log and ctx and ctx.log then opts.log = ctx.log end
  return require("dbtool.pg").connect(url, opts)
end

return M
