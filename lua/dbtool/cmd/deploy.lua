-- database deploy: (re)create the local cluster, hydrate, patch.
local M = {
  name = "deploy",
  summary = "start the local cluster, hydrate the sources and apply the test data",
  usage = "database deploy [-c|--cleanup] [-P|--no-patch] [-H|--no-hydrate] [-m|--mock] [--reuse] [--json]",
  options = {
    { "-c", "--cleanup", help = "stop the cluster after a successful deploy" },
    { "-P", "--no-patch", help = "do not apply the test data" },
    { "-H", "--no-hydrate", help = "do not hydrate" },
    { "-m", "--mock", help = "hydrate with USE_MOCK=1" },
    { "--reuse", help = "reuse the existing cluster and its data (implies -P -H)" },
    { "--json", help = "print one JSON document with the steps, timings and the URL at the end" },
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
${DATABASE_DIR}/db-tool.lua run around it.
--json prints one JSON document on stdout when the deploy ends (script output goes to
stderr): schema_version, ok, exit_code, steps with their duration, url, and on failure the
error as data (message, file, line, column, sqlstate, exit code).]],
}

function M.run(ctx, opts)
  local env = require "dbtool.env"
  local errors = require "dbtool.errors"
  local workflow = require "dbtool.workflow"
  local reuse = opts.reuse or env.is_set("PG_REUSE")
  local function go(doc)
    local ph = workflow.phases(ctx.log, "deploy")
    local ok, handle = errors.try(workflow.deploy, ctx, {
      cleanup = opts.cleanup,
      no_patch = opts.no_patch or opts.reuse,
      no_hydrate = opts.no_hydrate or opts.reuse,
      mock = opts.mock,
      reuse = reuse,
      phases = ph,
    })
    if doc then
      doc.steps = require("dbtool.report").steps(ph)
      doc.failed_step = ph.failed and ph.failed.name
      if ok then
        doc.url = require("dbtool.log").redact(handle.url)
        doc.cluster = { dir = handle.dir, port = handle.port, database = handle.database,
          reused = handle.reused, running = not opts.cleanup }
      end
    end
    if not ok then error(handle, 0) end
    return 0
  end
  if not opts.json then return go() end
  return require("dbtool.report").run("database deploy", go)
end

return M
