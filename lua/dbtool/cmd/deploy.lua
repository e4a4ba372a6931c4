-- database deploy: (re)create the local cluster, hydrate, patch.
local M = {
  name = "deploy",
  summary = "start the local cluster, hydrate the sources and apply the test data",
  usage = "database deploy [-c|--cleanup] [-P|--no-patch] [-H|--no-hydrate] [-m|--mock] [--reuse]",
  options = {
    { "-c", "--cleanup", help = "stop the cluster after a successful deploy" },
    { "-P", "--no-patch", help = "do not apply the test data" },
    { "-H", "--no-hydrate", help = "do not hydrate" },
    { "-m", "--mock", help = "hydrate with USE_MOCK=1" },
    { "--reuse", help = "reuse the existing cluster and its data (implies -P -H)" },
  },
  messages = { unknown = "%s: unknown argument %s", unexpected = "%s: unknown argument %s" },
  help = [[
Steps: the cluster in PG_WORKING_DIR (default $LOCAL_DIR/focus/postgresql) is started as
postgres-init does (same environment: PG_PORT, PG_DATABASE, PG_CONF_FILE,
PG_SHARED_PRELOAD_LIBRARIES, PG_DISABLE_LOGGING, PG_LOG_PATH), then `database hydrate`
(the hectic bundle, secrets, $DATABASE_SOURCE/entrypoint.sql) and `database patch` (the
test data) run against it.
Without --reuse (or PG_REUSE in the environment) the cluster is created fresh: its data is
replaced. With --reuse it really is reused and keeps its data (the original tool wiped it
unless PG_REUSE was already exported); like the original, --reuse skips hydrate and patch.
PG_REUSE in the environment reuses the cluster and still hydrates and patches.
On a terminal each phase shows its time; a summary line ends the run. A failing step leaves
the cluster running for inspection. Hooks before_deploy/after_deploy of
${DATABASE_DIR}/db-tool.lua run around it.]],
}

function M.run(ctx, opts)
  local env = require "dbtool.env"
  local reuse = opts.reuse or env.is_set("PG_REUSE")
  require("dbtool.workflow").deploy(ctx, {
    cleanup = opts.cleanup,
    no_patch = opts.no_patch or opts.reuse,
    no_hydrate = opts.no_hydrate or opts.reuse,
    mock = opts.mock,
    reuse = reuse,
  })
  return 0
end

return M
