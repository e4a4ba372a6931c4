-- migrator init: install the bookkeeping (PostgreSQL: the hectic bundle; SQLite: its tables).
local M = {
  name = "init",
  summary = "install the bookkeeping (PostgreSQL: the hectic bundle)",
  usage = "migrator init [--dry-run] [--lock-wait SECONDS] [-u URL]",
  options = {
    { "--dry-run", help = "print the SQL instead of running it (no database needed: PostgreSQL's "
      .. "unless the URL names SQLite)" },
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
    require("dbtool.migrator.common").WAIT_OPTION,
  },
  help = [[
Idempotent: running it again changes nothing. On PostgreSQL it applies the hectic bundle
(schema hectic: version, migration, secret, the inheritance rules) in one transaction;
on SQLite it creates hectic_migration and hectic_version.]],
}

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local errors = require "dbtool.errors"
  if opts.dry_run then
    local d = common.url(ctx.globals) and common.database(ctx.globals) or { engine = "postgresql" }
    if d.engine == "postgresql" then
      io.stdout:write(require("dbtool.migrate.store_pg").init_sql())
    else
      local store_sqlite = require "dbtool.migrate.store_sqlite"
      io.stdout:write("BEGIN;\n", store_sqlite.INIT_SQL, "COMMIT;\n")
    end
    return 0
  end
  local store <close> = common.open(ctx, opts, true)
  local policy = require "dbtool.migrate.policy"
  local pol = policy.merge(policy.defaults(), common.project_policy()) or policy.defaults()
  store:lock(common.lock_wait(opts) or 60, ctx.log, { mode = pol.lock, expiry = pol.lock_expiry })
  errors.finally(function() store:unlock() end, function() store:init() end)
  ctx.log:info("%s is ready", store.table)
  return 0
end

return M
