-- `database migrator ARGS...`: the project's `migrator` with its environment, as the original
-- `database` did: MIGRATION_DIR (default $DATABASE_DIR/migration) and DB_URL (-u URL, else
-- DB_URL, PGURL, DATABASE_URL, else the running local cluster, else libpq's environment:
-- dbtool.db.resolve), log lines prefixed `db migrator`.
-- The arguments go to the `migrator` command group itself (dbtool.personality.migrator), so
-- its commands — and a project's overrides of them — are the same; the exit code is migrator's.
local M = {
  name = "migrator",
  summary = "run migrator (migrations) with the project's MIGRATION_DIR and DB_URL",
  usage = "database migrator [migrator arguments...]   (see `database migrator --help`)",
  raw = true,
}

function M.run(ctx, args)
  local env = require "dbtool.env"
  env.set("MIGRATION_DIR", env.migration_dir())
  local url, source = require("dbtool.db").resolve { url = ctx.url, migrator = true, cluster = true }
  if url and source ~= "libpq" then env.set("DB_URL", url) end
  env.set("HECTIC_NAMESPACE", "db migrator")
  local command = require "dbtool.command"
  return command.dispatch(require "dbtool.personality.migrator", args)
end

return M
