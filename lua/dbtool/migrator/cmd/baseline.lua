-- migrator baseline NAME: an existing database adopts the migrations up to NAME.
local M = {
  name = "baseline",
  summary = "record the migrations up to NAME as applied without running them",
  usage = "migrator baseline NAME|PREFIX|latest [--dry-run] [--lock-wait SECONDS] [--wait[=SECONDS]]",
  options = {
    { "--dry-run", help = "list what would be recorded, change nothing" },
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
    require("dbtool.migrator.common").WAIT_OPTION,
  },
  positionals = { { "name", optional = true, help = "a migration name, a unique prefix, or latest" } },
  help = [[
For a database that already has the schema the migrations make (it was built by hand, or
by another tool): the migrations on disk up to NAME are recorded in hectic.migration with
their checksums, none is run; `migrate` then applies only those after it. Refused (exit 2)
when any migration is recorded already.]],
}

function M.complete(ctx)
  local common = require "dbtool.migrator.common"
  local out = { "latest" }
  for _, n in ipairs(common.names(common.migration_dir(ctx.globals))) do out[#out + 1] = n end
  return out
end

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local errors = require "dbtool.errors"
  if not opts.name then
    errors.raise(errors.MISSING, "baseline: which migration? baseline NAME|PREFIX|latest",
      { hint = "the migrations up to NAME are recorded as applied without running them" })
  end
  local store <close> = common.open(ctx, opts, not opts.dry_run)
  local eng = require("dbtool.migrate").new { store = store, layout = "dirs",
    dir = common.migration_dir(ctx.globals), policy = common.policy(opts), log = ctx.log,
    dry_run = opts.dry_run }
  eng:baseline(opts.name)
  return 0
end

return M
