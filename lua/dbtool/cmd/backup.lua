-- database backup: pg_basebackup into $LOCAL_DIR/focus/postgresql-backup (see dbtool.backup).
local M = {
  name = "backup",
  summary = "physical backup (pg_basebackup) into $LOCAL_DIR/focus/postgresql-backup",
  usage = "database backup",
  options = {},
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s subcommand %s does not exist",
  },
  help = [[
Backs up the whole server of -u URL / PGURL / DB_URL (else the local cluster in
PG_WORKING_DIR) with `pg_basebackup --format=tar --wal-method=stream --gzip
--checkpoint=fast` into $DEFAULT_BACKUP_PATH (default $LOCAL_DIR/focus/postgresql-backup):
base.tar.gz, pg_wal.tar.gz, backup_manifest, and database_name (the database of the URL).
The server must accept replication connections (the local cluster does). The new backup is
written next to the old one and replaces it only when complete: a failed backup leaves the
previous one untouched. A password in the URL is passed in the environment, not on the
command line.]],
}

function M.run(ctx, _opts)
  require("dbtool.backup").backup(ctx, {})
  return 0
end

return M
