-- database normalize-backup: make a raw backup restore-safe here (see dbtool.backup).
local M = {
  name = "normalize-backup",
  summary = "turn a raw physical backup into a local, restore-safe one",
  usage = "database normalize-backup [-o|--output PATH] [--role R] [--database D] [--admin-role A] [PATH]",
  options = {
    { "-o", "--output", arg = "path",
      help = "output directory (default $LOCAL_DIR/focus/postgresql-backup-normalized)" },
    { "--role", arg = "name", help = "role made LOGIN SUPERUSER (default: your OS user)" },
    { "--database", arg = "name", help = "database to keep/create (default: detected, else PG_DATABASE)" },
    { "--admin-role", arg = "name", help = "superuser of the backup to connect as (default postgres)" },
  },
  positionals = { { "path", optional = true } },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s: unexpected argument %s",
    missing = "%s: %s requires a %s",
  },
  help = [[
PATH is a backup directory (default $LOCAL_DIR/focus/postgresql-backup) and is never
modified. It is unpacked into a temporary cluster that is started with local trust
authentication; there the role is created (or altered) as LOGIN SUPERUSER, the database is
created owned by it when missing (without --database: the first database that is not
postgres or a template), and collation versions are refreshed. The result — pg_hba.conf with
`local all all trust` and `local replication all trust`, no TCP listening, no leftovers of
the source server — is written to the output directory as base.tar.gz and database_name,
replacing an older one only when complete. PG_SHARED_PRELOAD_LIBRARIES applies ("" disables
pg_cron, unlike the original tool, which always forced it).]],
}

function M.run(ctx, opts)
  require("dbtool.backup").normalize(ctx, { input = opts.path, output = opts.output, role = opts.role,
    database = opts.database, admin_role = opts.admin_role })
  return 0
end

return M
