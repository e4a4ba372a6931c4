-- database check: the whole deploy in an isolated, temporary cluster, always removed.
local M = {
  name = "check",
  summary = "run hydrate + patch in an isolated temporary cluster (always removed)",
  usage = "database check [-P|--no-patch] [-H|--no-hydrate] [-m|--mock]",
  options = {
    { "-P", "--no-patch", help = "do not apply the test data" },
    { "-H", "--no-hydrate", help = "do not hydrate" },
    { "-m", "--mock", help = "hydrate with USE_MOCK=1" },
    { "--reuse", help = "accepted for compatibility; a check cluster is always fresh" },
  },
  help = [[
Your own cluster and data are not touched. The temporary cluster is stopped and removed on
success, on failure and on Ctrl-C.]],
}

function M.run(ctx, opts)
  require("dbtool.workflow").check(ctx, { no_patch = opts.no_patch, no_hydrate = opts.no_hydrate,
    mock = opts.mock })
  return 0
end

return M
