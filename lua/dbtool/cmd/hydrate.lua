-- database hydrate: apply the hectic bundle, load secrets, run $DATABASE_SOURCE/entrypoint.sql.
local M = {
  name = "hydrate",
  summary = "build the schema: hectic bundle, secrets, then $DATABASE_SOURCE/entrypoint.sql",
  usage = "database hydrate [-H|--no-hook] [-m|--mock]",
  options = {
    { "-H", "--no-hook", help = "do not apply the hectic bundle nor load secrets" },
    { "-m", "--mock", help = "set the psql variable USE_MOCK=1 (for \\if :{?USE_MOCK} in the sources)" },
  },
  messages = { unknown = "%s argument %s does not exist", unexpected = "%s subcommand %s does not exist" },
  help = [[
Steps: the hectic bundle (one transaction, idempotent); secrets from HECTIC_DOTENV_CONTENT,
HECTIC_DOTENV_FILE or $LOCAL_DIR/.env.$ENVIRONMENT (or its encrypted .env.$ENVIRONMENT.enc)
into hectic.secret; then the entrypoint (HYDRATE_ENTRYPOINT, default entrypoint.sql in
DATABASE_SOURCE; an absolute path is taken as is) run as a psql script (\i, \ir, \set,
\if ... work) over one connection, statement by statement as `psql -v ON_ERROR_STOP=1 -f`
does: it stops at the first error, reported as file:line. Output of the scripts goes to
HYDRATE_LOG (or $PG_LOG_PATH/hydrate.stdout.log) when set, else to stdout. Hooks
before_hydrate/after_hydrate of ${DATABASE_DIR}/db-tool.lua run around it.
Database: -u URL, else PGURL, else DB_URL, else the running local cluster (exit 3 if none).
Exit status: 1 on an SQL error or a missing entrypoint, 13 when the hectic bundle cannot be
applied (for example a version mismatch), 3 without a database.]],
}

function M.run(ctx, opts)
  require("dbtool.workflow").hydrate(ctx, { no_hook = opts.no_hook, mock = opts.mock })
  return 0
end

return M
