-- `database init [--reuse]`: start the local cluster like postgres-init (same environment,
-- same checks) and print the same `export NAME='value'` lines, so that
-- `eval "$(database init)"` sets PGURL in the calling shell.
local M = {
  name = "init",
  summary = "start the local cluster (fresh, or --reuse); prints export lines for eval",
  usage = "database init [--reuse]",
  options = {
    { "--reuse", help = "keep the existing cluster and its data (same as PG_REUSE=1)" },
  },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s: unexpected argument %s",
  },
  help = [[
Without --reuse (and without PG_REUSE in the environment) the cluster is fresh: the old
data directory is discarded. With --reuse the data is kept; a cluster that cannot start is
moved aside to data.broken-<timestamp>, never deleted. Unlike the original, --reuse works
whether or not PG_REUSE is exported.

The environment and exit codes are postgres-init's (`postgres-init --help`): PG_WORKING_DIR
(default $LOCAL_DIR/focus/postgresql), PG_DATABASE, PG_PORT, PG_CONF_FILE,
PG_SHARED_PRELOAD_LIBRARIES, PG_DISABLE_LOGGING, PG_LOG_PATH, PG_URL_VAR.]],
}

function M.run(ctx, opts)
  local cluster = require "dbtool.cluster"
  local env = require "dbtool.env"
  cluster.check_root(require("posix.unistd").geteuid(), "database init")
  local url_var = env.pg_url_var()
  local h = cluster.start(cluster.options_from_env {
    reuse = opts.reuse and true or nil, spare = true, log = ctx.log, prog = "database init" })
  io.stdout:write(cluster.export_lines(cluster.exports(h, url_var)))
  ctx.log:info("cluster %s in %s: %s", h.reused and "reused" or "ready", h.dir, h.url)
  return 0
end

return M
