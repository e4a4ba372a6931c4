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
    { "--sql", help = "with --dry-run: print the statements that would run (PostgreSQL)" },
    require("dbtool.migrator.common").WAIT_OPTION,
    { "--json", help = "print one JSON document at the end: the migrations run, their timings, the "
      .. "error (with --targets: every target's result)" },
    { "--result-file", arg = "FILE",
      help = "write the run's from/to/applied names to FILE (tab-separated)" },
    { "--targets", arg = "FILE", complete = "file",
      help = "migrate every target of FILE (- : standard input): one URL, or NAME=URL, a line" },
    { "--all-targets", help = "migrate every target of db-tool.lua's `targets`" },
    { "-j", "--jobs", arg = "N", help = "with targets: migrate N at once (default 1)" },
    { "--fail-fast", help = "with targets: start no other target after a failure" },
    { "--log-dir", arg = "DIR", complete = "dir",
      help = "with targets: where each target's log is kept (default under $XDG_STATE_HOME)" },
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
`-- db-tool: no-transaction`); the project's hooks (db-tool.lua) run around each one. The
repeatable migrations (MIGRATION_DIR/repeatable/*.sql) new or changed since they were last
applied run after the versioned ones when the run leaves all of those applied.

Fleets: with --targets FILE|- or --all-targets, each target is migrated by a migrator of its
own (the same arguments), --jobs at a time; a line per finished target, then a summary table
(or --json); each target's log is kept. Exit 0 when every target succeeded, 4 when any
failed, 130 interrupted (Ctrl-C: no new target starts; the running ones roll back their
current migration).
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

--- The arguments of each target's migrator (the fleet's own options left out).
function M.child_argv(ctx, opts)
  local g = ctx.globals or {}
  local argv = {}
  if g.dir then argv[#argv + 1] = "--migration-dir=" .. g.dir end
  for _, v in ipairs(g.set or {}) do argv[#argv + 1] = "--set=" .. v end
  if g.verbose then argv[#argv + 1] = "--verbose" end
  if g.quiet then argv[#argv + 1] = "--quiet" end
  argv[#argv + 1] = "migrate"
  for _, w in ipairs(opts.args or {}) do argv[#argv + 1] = w end
  for _, k in ipairs { "dry_run", "force", "allow_modified", "single_transaction" } do
    if opts[k] then argv[#argv + 1] = "--" .. k:gsub("_", "-") end
  end
  for _, k in ipairs { "lock_wait", "lock_timeout" } do
    if opts[k] then argv[#argv + 1] = "--" .. k:gsub("_", "-") .. "=" .. opts[k] end
  end
  if opts.wait then argv[#argv + 1] = opts.wait == true and "--wait" or ("--wait=" .. opts.wait) end
  return argv
end

local function fleet_run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local errors = require "dbtool.errors"
  local fleet = require "dbtool.migrate.fleet"
  common.migrate_target(opts.args, opts.unknown) -- the arguments are checked once, here
  if ctx.globals.url then
    errors.raise(errors.AMBIGUOUS, "--db-url and --targets: one or the other")
  end
  if opts.sql then
    errors.raise(errors.NOT_FOUND, "--dry-run --sql prints one database's statements: use it without targets")
  end
  local jobs = 1
  if opts.jobs then
    jobs = tonumber(opts.jobs)
    if not jobs or jobs < 1 or math.type(jobs) ~= "integer" then
      errors.raise(errors.NOT_FOUND, "--jobs expects a number of targets >= 1, not '" .. opts.jobs .. "'")
    end
  end
  local targets
  if opts.targets then
    local f, text = opts.targets
    if f == "-" then
      text = io.stdin:read("a") or ""
    else
      local h, msg = io.open(f, "rb")
      if not h then errors.raise(errors.MISSING, "cannot read the targets file: " .. tostring(msg)) end
      text = h:read("a") or ""
      h:close()
    end
    targets = fleet.parse(text, f == "-" and "stdin" or f)
  else
    local project = require("dbtool.project").load()
    if not project or project.targets == nil then
      errors.raise(errors.MISSING, "--all-targets: db-tool.lua has no `targets`",
        { hint = "add targets = { ... } (or a function returning them) to ${DATABASE_DIR}/db-tool.lua, "
          .. "or pass --targets FILE" })
    end
    targets = fleet.from_project(project.targets, project.file or "db-tool.lua")
  end
  local log_dir = fleet.log_dir(opts.log_dir)
  local ui = require "dbtool.ui"
  local results, interrupted = fleet.run { targets = targets, argv = M.child_argv(ctx, opts), jobs = jobs,
    fail_fast = opts.fail_fast, log_dir = log_dir, tty = ui.isatty(2), log = ctx.log,
    out = function(line) io.stderr:write(line, "\n") end }
  if opts.json then
    io.stdout:write(fleet.json_doc(results, { jobs = jobs, fail_fast = opts.fail_fast, log_dir = log_dir,
      interrupted = interrupted }), "\n")
  else
    io.stdout:write(table.concat(fleet.summary_lines(results, log_dir), "\n"), "\n")
  end
  return fleet.exit_code(results, interrupted)
end

--- --result-file of one run (read by a fleet's parent): what it did.
local function write_result(opts, res)
  local lines = {}
  if res.from then lines[#lines + 1] = "from\t" .. res.from end
  if res.to then lines[#lines + 1] = "to\t" .. res.to end
  for _, s in ipairs(res.steps) do
    if s.outcome ~= "skipped" then
      local kind = s.repeatable and "repeatable" or (s.direction == "up" and "applied" or "reverted")
      lines[#lines + 1] = kind .. "\t" .. s.name
    end
  end
  if opts.result_file then
    local f = io.open(opts.result_file, "wb")
    if f then
      f:write(table.concat(lines, "\n"), #lines > 0 and "\n" or "")
      f:close()
    end
  end
end

function M.run(ctx, opts)
  if opts.targets or opts.all_targets then return fleet_run(ctx, opts) end
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
  for _, k in ipairs { "jobs", "fail_fast", "log_dir" } do
    if opts[k] then
      errors.raise(errors.NOT_FOUND, "--" .. k:gsub("_", "-") .. " goes with --targets or --all-targets")
    end
  end
  local target = common.migrate_target(opts.args, opts.unknown)
  local vars = common.vars(ctx.globals.set)
  if opts.sql and not opts.dry_run then
    errors.raise(errors.NOT_FOUND, "--sql goes with --dry-run",
      { hint = "migrator migrate up all --dry-run --sql" })
  end
  local store <close> = common.open(ctx, opts, not opts.dry_run)
  local migrate = require "dbtool.migrate"
  local policy = common.policy(opts)
  local steps_done = doc and require("dbtool.report").record_migrations(doc, policy)
  local eng = migrate.new { store = store, layout = "dirs", dir = common.migration_dir(ctx.globals),
    policy = policy, vars = vars, log = ctx.log, force = opts.force,
    allow_modified = opts.allow_modified, dry_run = opts.dry_run, sql = opts.sql }
  if opts.force then ctx.log:warn("--force: the migration history check is skipped") end
  local res = { steps = {} }
  if opts.result_file then
    eng.on_step = function(info) res.steps[#res.steps + 1] = info end
  end
  local ok, err = errors.try(eng.migrate, eng, target)
  if ok and err and err.plan then res.from, res.to = err.plan.from, err.plan.to end
  if opts.result_file then
    res.failed = not ok
    write_result(opts, res)
  end
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
