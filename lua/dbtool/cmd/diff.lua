-- database diff: backup + migrations vs current sources, in two temporary clusters
-- (see dbtool.diff). `database diff log` shows the logs of the last run.
local M = {
  name = "diff",
  summary = "compare a backup + all migrations with the schema built from the sources",
  usage = "database diff [--tables a,b] [--ignore-migration-fail] [-m|--mock] [--no-cron] "
    .. "[-o FILE] [BACKUP]\n       database diff log",
  options = {
    { "--tables", arg = "a,b", help = "compare only these tables: their schema and all their rows" },
    { "--ignore-migration-fail", help = "compare even when a migration fails on the backup" },
    { "-m", "--mock", help = "hydrate the sources with USE_MOCK=1" },
    { "--no-cron", help = "ignore pg_cron (lines naming cron.*) in the schema comparison" },
    { "-o", "--output", arg = "FILE", help = "write the diff to FILE (plain text) instead of stdout" },
  },
  positionals = { { "backup", optional = true } },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s: unexpected argument %s",
  },
  help = [[
BACKUP is a backup directory (default $DEFAULT_BACKUP_PATH, i.e. $LOCAL_DIR/focus/postgresql-
backup, as written by `database backup`; `database_name` in it names the database, else
PG_DATABASE). Two isolated temporary clusters are made from the template cache, in a private
directory under $TMPDIR, and always stopped and removed — on success, failure and Ctrl-C:

  backup side  (- lines)  the backup restored, then every migration of $MIGRATION_DIR
  sources side (+ lines)  a fresh database hydrated from $DATABASE_SOURCE (bundle included)

They are compared by `pg_dump --schema-only --no-owner --no-privileges`, without the
run-specific \restrict/\unrestrict lines. Then, under "--- IMMUTABLE TABLE DATA ---", the
rows of every table inheriting hectic.immutable are compared table by table, in primary-key
order, as `INSERT INTO ...;` lines. With --tables only those tables are compared: their
schema, then all their rows under "--- TABLE DATA ---" (a name found on neither side: exit 5).

The diff goes through the pager on a terminal, is plain text when piped, and goes to FILE
with -o. Exit status: 0 identical, 1 differences, 2 trouble (as diff(1): a server, hydrate
or pg_dump failure), 3 no backup, 4 a migration failed (unless --ignore-migration-fail),
5 unknown --tables entry, 9 bad arguments, 127 a missing program, 130 interrupted.

`database diff log` shows the last run's logs, kept in $LOCAL_DIR/focus/database-diff:
summary and timings, the hydrate output, the migration output, both servers' logs and the
report. (The original opened two server log files that nothing wrote.)]],
}

function M.run(ctx, opts)
  local diff = require "dbtool.diff"
  local errors = require "dbtool.errors"
  if opts.backup == "log" then
    return diff.show_log(ctx)
  end
  -- exit 1 means "differences": a generic failure must not look like one
  local ok, res = errors.try(diff.run, ctx, {
    backup = opts.backup,
    tables = opts.tables,
    ignore_migration_fail = opts.ignore_migration_fail,
    mock = opts.mock,
    no_cron = opts.no_cron,
    output = opts.output,
  })
  if ok then return res end
  if res.exit == errors.GENERIC then res.exit = errors.AMBIGUOUS end
  error(res, 0)
end

return M
