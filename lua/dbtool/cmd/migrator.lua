-- `database migrator ARGS...`: the project's `migrator` with its environment, as the original
-- `database` did: MIGRATION_DIR (default $DATABASE_DIR/migration) and DB_URL=${DB_URL:-$PGURL}
-- (the global -u of `database` sets both), log lines prefixed `db migrator`. Arguments are
-- passed through untouched and the exit code is migrator's.
local M = {
  name = "migrator",
  summary = "run migrator (migrations) with the project's MIGRATION_DIR and DB_URL",
  usage = "database migrator [migrator arguments...]   (see `database migrator --help`)",
  raw = true,
}

function M.run(_, args)
  local env = require "dbtool.env"
  env.set("MIGRATION_DIR", env.migration_dir())
  local url = env.get("DB_URL") or env.get("PGURL")
  if url then env.set("DB_URL", url) end
  env.set("HECTIC_NAMESPACE", "db migrator")
  return require("dbtool.personality.migrator").main(args)
end

return M
