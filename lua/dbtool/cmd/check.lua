-- database check: the whole deploy in an isolated, temporary cluster, always removed.
local M = {
  name = "check",
  summary = "run hydrate + patch in an isolated temporary cluster (always removed)",
  usage = "database check [-P|--no-patch] [-H|--no-hydrate] [-m|--mock]",
  options = {
    { "-P", "--no-patch", help = "do not apply the test data" },
    { "-H", "--no-hydrate", help = "do not hydrate" },
    { "-m", "--mock", help = "hydrate with USE_MOCK=1" },
    { "--reuse", help = "accepted for compatibility: like the original, implies -P -H" },
  },
  messages = { unknown = "%s: unknown argument %s", unexpected = "%s: unknown argument %s" },
  help = [[
A fresh cluster is started in a temporary directory under TMPDIR (from the template cache,
with the environment of postgres-init: PG_DATABASE, PG_PORT, PG_CONF_FILE,
PG_SHARED_PRELOAD_LIBRARIES; no server logs), then hydrate and patch run against it exactly
as `database deploy` does (the hectic bundle, secrets, $DATABASE_SOURCE/entrypoint.sql, the
test data; HYDRATE_LOG and PATCH_LOG apply). Your own cluster and data are not touched. The
temporary cluster is stopped and removed on success, on failure and on Ctrl-C. Hooks
before_check/after_check of ${DATABASE_DIR}/db-tool.lua run around it.
Exit status: 0 when the deploy completed cleanly, else the failing step's.]],
}

function M.run(ctx, opts)
  require("dbtool.workflow").check(ctx, {
    no_patch = opts.no_patch or opts.reuse,
    no_hydrate = opts.no_hydrate or opts.reuse,
    mock = opts.mock,
  })
  return 0
end

return M
