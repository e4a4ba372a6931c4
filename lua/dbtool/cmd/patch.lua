-- database patch: apply the development/test data file.
local M = {
  name = "patch",
  summary = "apply the test data file (PATCH_SQL, default $LOCAL_DIR/test-data.sql)",
  usage = "database patch [-e|--edit]",
  options = {
    { "-e", "--edit", help = "open the file in $EDITOR first, then apply it" },
  },
  help = [[
The file is ${PATCH_SQL:-${PROFILE_DIR:-$LOCAL_DIR}/test-data.sql}; it is created empty when
missing. It runs as a psql script (pg_dump output with COPY blocks works). Output goes to
PATCH_LOG (or $PG_LOG_PATH/patch.stdout.log) when set.]],
}

function M.run(ctx, opts)
  require("dbtool.workflow").patch(ctx, { edit = opts.edit })
  return 0
end

return M
