-- migrator migrate up|down|to: apply or revert migrations.
local M = {
  name = "migrate",
  summary = "apply or revert migrations: up [N|all], down [N|all], to NAME",
  synopsis = "up|down|to ...",
  usage = "migrator migrate up [N|all|latest|head] | down [N|all] | to NAME|PREFIX|latest|head|last "
    .. "[options]",
  options = {
    { "--dry-run", help = "print the plan (files, directions), change nothing" },
    { "-f", "--force", help = "go on although the applied history does not match the files (warns)" },
    { "--allow-modified", help = "go on although applied migrations changed on disk (warns)" },
    { "--single-transaction", help = "all migrations of the run in one transaction" },
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
    { "--lock-timeout", arg = "DURATION",
      help = "lock_timeout for migration statements (default 10s; 0 = off)" },
    { "--json", help = "print one JSON document at the end: the migrations run, their timings, the error" },
  },
  rest = "DIRECTION [ARGS]",
  pass_unknown = true, -- reported with the direction (exit 1), as the original did
  help = [[
Directions (the words may come in any order, as in the original):
  up [N|all|latest|head]                 apply the next N (default 1) or all pending
  down [N|all]                           revert the last N (default 1), or all applied
  to NAME|PREFIX|latest|head|last        go up or down to a migration: a full name, a
                                         unique prefix (the timestamp) or description

Each migration runs in one transaction with its bookkeeping row (unless its first line is
`-- db-tool: no-transaction`); the project's hooks (db-tool.lua) run around each one.
--json prints one JSON document on stdout at the end (README "Machine-readable results"):
`steps` are the migrations run (name, direction, outcome, duration_ms; the failing one last
with ok false), `plan` the plan, `done` how many ran, `error` the error as data.]],
}

--- Completion of the words after `migrate`: the directions, then the migration names for `to`.
function M.complete(ctx, words)
  local common = require "dbtool.migrator.common"
  local dir
  for _, w in ipairs(words) do
    if w == "up" or w == "down" or w == "to" then dir = w end
  end
  if dir == nil then return common.DIRECTIONS end
  if dir == "up" then return { "all", "latest", "head" } end
  if dir == "down" then return { "all" } end
  local out = { "latest", "head", "last" }
  for _, n in ipairs(common.names(common.migration_dir(ctx.globals))) do out[#out + 1] = n end
  return out
end

function M.run(ctx, opts)
  if opts.json then
    return require("dbtool.report").run("migrator migrate",
      function(doc) return M.migrate(ctx, opts, doc) end)
  end
  return M.migrate(ctx, opts)
end

--- The run; `doc`: the --json document to fill, or nil.
function M.migrate(ctx, opts, doc)
  local common = require "dbtool.migrator.common"
  local errors = require "dbtool.errors"
  local target = common.migrate_target(opts.args, opts.unknown)
  local vars = common.vars(ctx.globals.set)
  local store <close> = common.open(ctx, opts, not opts.dry_run)
  local migrate = require "dbtool.migrate"
  local policy = common.policy(opts)
  local steps_done = doc and require("dbtool.report").record_migrations(doc, policy)
  local eng = migrate.new { store = store, layout = "dirs", dir = common.migration_dir(ctx.globals),
    policy = policy, vars = vars, log = ctx.log, force = opts.force,
    allow_modified = opts.allow_modified, dry_run = opts.dry_run }
  if opts.force then ctx.log:warn("--force: the migration history check is skipped") end
  local ok, err = errors.try(eng.migrate, eng, target)
  if doc then
    steps_done()
    if ok then
      doc.plan = require("dbtool.report").plan(err.plan)
      doc.done = err.done
      doc.dry_run = opts.dry_run or false
    end
  end
  if not ok then
    -- the original's "no migrations found" when the directory itself is missing: say where
    if errors.is(err) and err.msg == "no migrations found" and eng.dir_missing then
      err.hint = "migration directory not found: " .. eng.dir
    end
    error(err, 0)
  end
  return 0
end

return M
