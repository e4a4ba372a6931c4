-- database patch: apply the development/test data file.
local M = {
  name = "patch",
  summary = "apply the test data file (PATCH_SQL, default $LOCAL_DIR/test-data.sql)",
  usage = "database patch [-e|--edit]",
  options = {
    { "-e", "--edit", help = "open the file in $EDITOR first, then apply it" },
  },
  messages = { unknown = "%s argument %s does not exist", unexpected = "%s subcommand %s does not exist" },
  help = [[
The file is ${PATCH_SQL:-${PROFILE_DIR:-$LOCAL_DIR}/test-data.sql}; it is created empty when
missing. It runs as a psql script (pg_dump output with COPY blocks works) in one
transaction: on an error nothing of it is kept. With --edit it is applied after the editor
($VISUAL, else $EDITOR, else vi) exits successfully. Output goes to PATCH_LOG (or
$PG_LOG_PATH/patch.stdout.log) when set, else to stdout. Hooks before_patch/after_patch of
${DATABASE_DIR}/db-tool.lua run around it.
Database: -u URL, else PGURL, else DB_URL, else the running local cluster (exit 3 if none).]],
}

function M.run(ctx, opts)
  require("dbtool.workflow").patch(ctx, { edit = opts.edit })
  return 0
end

return M
