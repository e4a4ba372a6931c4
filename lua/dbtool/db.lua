-- Which database a command works on. One order for every program (README "Which database"):
--   1. -u URL (migrator: --db-url)
--   2. the URL variables: PGURL, DB_URL, DATABASE_URL (dbmate's and most platforms' name) —
--      migrator (and `database migrator`) read DB_URL first: it is the variable the original
--      migrator read, so a PGURL exported by postgres-init never sends migrations elsewhere
--   3. `database` and the Lua API: the running local cluster of PG_WORKING_DIR
--   4. libpq's own environment and files, as psql: when PGHOST, PGHOSTADDR, PGPORT,
--      PGDATABASE, PGUSER or PGSERVICE is set, the empty conninfo — libpq then takes those,
--      PGSERVICE from pg_service.conf (PGSERVICEFILE, ~/.pg_service.conf, PGSYSCONFDIR), the
--      password from PGPASSWORD or .pgpass (PGPASSFILE), as psql would
-- A command that needs a database and has none exits 3 with a message listing this order.
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

M.LIBPQ_VARS = { "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE" }

--- Where the database comes from (the order above): url, source, or nil. `url` = "" is
--- libpq's environment (source "libpq", a conninfo meaning "libpq's defaults"). opts: url
--- (-u), migrator (DB_URL before PGURL), cluster (consider the local cluster).
local function found(url, source)
  -- its passwords are registered with the log redaction before anything can print it or an
  -- error about it
  require("dbtool.log").add_connection(url)
  return url, source
end

function M.resolve(opts)
  opts = opts or {}
  if opts.url then return found(opts.url, "-u") end
  local vars = opts.migrator and { "DB_URL", "PGURL", "DATABASE_URL" }
    or { "PGURL", "DB_URL", "DATABASE_URL" }
  for _, name in ipairs(vars) do
    local v = env.get(name)
    if v and v ~= "" then return found(v, name) end
  end
  if opts.cluster then
    local url, socket = M.local_url()
    if url and require("posix.sys.stat").stat(socket) then return found(url, "cluster") end
  end
  for _, name in ipairs(M.LIBPQ_VARS) do
    local v = env.get(name)
    if v and v ~= "" then return "", "libpq" end
  end
  return nil
end

--- The order, for messages.
function M.order(opts)
  opts = opts or {}
  local vars = opts.migrator and "DB_URL, PGURL, DATABASE_URL" or "PGURL, DB_URL, DATABASE_URL"
  return (opts.migrator and "--db-url" or "-u") .. ", " .. vars
    .. (opts.cluster and ", the running local cluster (PG_WORKING_DIR)" or "")
    .. ", libpq's environment (" .. table.concat(M.LIBPQ_VARS, ", ") .. ")"
end

--- How to describe a source in a message ("-u", "PGURL", ..., "the local cluster", "libpq's
--- environment").
function M.describe(source)
  if source == "cluster" then return "the local cluster" end
  if source == "libpq" then return "libpq's environment (PGHOST, PGSERVICE, ...)" end
  return source
end

--- Wait until the server of `target` accepts connections (PQping "ok"), up to `seconds`.
--- A server still starting ("reject") or not there yet ("no_response") is waited for; a
--- target libpq cannot even try ("no_attempt": a bad URL) is an error at once. Raises exit 1
--- naming the source after the timeout.
function M.wait(target, seconds, source)
  local pg = require "dbtool.core.pg"
  local core = require "dbtool.core"
  local deadline = core.now() + seconds
  local delay = 0.05
  local last
  while true do
    last = pg.ping(target)
    if last == "ok" then return true end
    if last == "no_attempt" then
      errors.raise(errors.MISSING, "cannot wait for the database of " .. M.describe(source or "-u")
        .. ": its connection string is invalid", { hint = "check it with psql" })
    end
    if core.now() >= deadline then
      errors.raise(errors.GENERIC, string.format("the database server of %s did not accept connections "
        .. "within %g s (%s)", M.describe(source or "-u"), seconds,
        last == "reject" and "it is up but refuses connections: still starting?" or "no server answered"),
        { hint = "start it, or wait longer with --wait=SECONDS" })
    end
    core.sleep(math.min(delay, math.max(deadline - core.now(), 0.01)))
    delay = math.min(delay * 1.5, 0.25)
  end
end

--- The connection target and where it came from: url, source ("-u", "PGURL", "DB_URL",
--- "DATABASE_URL", "cluster", "libpq"), or nil.
function M.url(ctx)
  return M.resolve { url = ctx and ctx.url, cluster = true }
end

--- The URL, or exit 3 explaining how to provide one (the order, in full).
function M.require_url(ctx)
  local url, source = M.url(ctx)
  if not url then
    local ok, wd = pcall(env.pg_working_dir)
    errors.raise(errors.MISSING, "no database to connect to: looked at " .. M.order { cluster = true }
      .. (ok and ("; no local cluster is running in " .. wd)
        or "; neither PG_WORKING_DIR nor LOCAL_DIR is set"),
      { hint = "pass -u URL, export PGURL/DB_URL/DATABASE_URL, or start the local cluster with "
        .. "`database init`", variable = "PGURL" })
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
