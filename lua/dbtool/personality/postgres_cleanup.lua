-- `postgres-cleanup`: stop the local cluster. Trap-safe: exits 0 when there is nothing to
-- stop (no working directory, no cluster, a stale pid file) and even when stopping fails
-- (the failure is reported on stderr). It never deletes files (`database cleanup` does).
local args = require "dbtool.args"
local cluster = require "dbtool.cluster"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

local SPEC = {
  name = "postgres-cleanup",
  prog = "postgres-cleanup",
  usage = "postgres-cleanup",
  summary = "Stop the local PostgreSQL cluster started by postgres-init (fast shutdown).",
  help = [[
Environment:
  PG_WORKING_DIR   cluster directory (default: $LOCAL_DIR/focus/postgresql); with neither
                   it nor LOCAL_DIR set there is nothing to stop

Only a server whose pid file names a live postmaster working in $PG_WORKING_DIR/data is
signalled (SIGINT, then SIGQUIT after 60 s); files are never deleted. Meant for traps:
  trap postgres-cleanup EXIT

Exit codes: 0 always (nothing to stop, stale pid file, not a cluster, or a failure that is
reported on stderr), except 9 for an unknown argument.]],
}

function M.main(argv)
  require("dbtool.cli").namespace = "postgres-cleanup"
  local opts = args.parse(SPEC, argv)
  if opts.help then
    io.stdout:write(args.help(SPEC))
    return 0
  end
  local l = log.ns("postgres-cleanup")
  if not env.get("PG_WORKING_DIR") and not env.get("LOCAL_DIR") then
    l:debug("neither PG_WORKING_DIR nor LOCAL_DIR is set: nothing to stop")
    return 0
  end
  local wd = env.pg_working_dir()
  local ok, res = errors.try(cluster.stop, wd, { log = l })
  if not ok then
    l:warn("could not stop the cluster in %s: %s", wd, res.msg)
    if res.hint then l:warn("hint: %s", res.hint) end
  elseif res then
    l:info("stopped the cluster in %s", wd)
  else
    l:debug("no running cluster in %s", wd)
  end
  return 0
end

return M
