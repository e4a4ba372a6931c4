-- `postgres-cleanup`: stop the local cluster. Trap-safe: exits 0 when there is nothing to
-- stop (no working directory, no cluster, a stale pid file) and even when stopping fails
-- (the failure is reported on stderr). It never deletes files (`database cleanup` does).
local cluster = require "dbtool.cluster"
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {
  name = "postgres-cleanup",
  usage = "postgres-cleanup",
  summary = "Stop the local PostgreSQL cluster started by postgres-init (fast shutdown).",
  help = [[
Only a server whose pid file names a live postmaster working in $PG_WORKING_DIR/data is
signalled (SIGINT, then SIGQUIT after 60 s); files are never deleted. Meant for traps:
  trap postgres-cleanup EXIT]],
  environment = {
    { "PG_WORKING_DIR", "cluster directory (default: $LOCAL_DIR/focus/postgresql); with neither it nor "
      .. "LOCAL_DIR set there is nothing to stop" },
  },
  exit_codes = {
    { 0, "always (nothing to stop, stale pid file, not a cluster, or a failure that is reported on stderr)" },
    { 9, "unknown argument" },
  },
}

function M.run(ctx)
  local l = ctx.log
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
