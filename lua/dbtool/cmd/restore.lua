-- database restore: a physical backup into PG_WORKING_DIR (see dbtool.backup).
local M = {
  name = "restore",
  summary = "replace the local cluster by a backup and start it",
  usage = "database restore [--archive] [PATH]",
  options = {
    { "--archive", help = "PATH is a tar file (any compression) holding a backup directory" },
  },
  positionals = { { "path", optional = true } },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s subcommand %s does not exist",
  },
  help = [[
PATH is a backup directory (default $DEFAULT_BACKUP_PATH, i.e. $LOCAL_DIR/focus/postgresql-
backup) holding base.tar.gz and optionally pg_wal.tar.gz; its database_name file (written by
`backup` and `normalize-backup`) names the database, else PG_DATABASE (default testdb).

The backup is unpacked next to PG_WORKING_DIR/data while the current cluster still runs (a
bad backup never stops it); only then is that cluster stopped and the backup swapped in and
started (PG_PORT, PG_SHARED_PRELOAD_LIBRARIES — "" disables pg_cron —, PG_DISABLE_LOGGING,
PG_LOG_PATH apply). If the restored cluster does not start, the previous
one is put back (stopped) and the error says why; the backup itself is never modified. The
cluster needs a superuser role named after your OS user: run `database normalize-backup` on
backups from other machines first.]],
}

function M.run(ctx, opts)
  require("dbtool.backup").restore(ctx, { path = opts.path, archive = opts.archive })
  return 0
end

return M
