-- `migrator`: hectic-compatible migrations on PostgreSQL and SQLite, over dbtool.migrate.
-- A command group of the engine (dbtool.command): the subcommands are the modules
-- dbtool.migrator.cmd.<name> (init, create, list, status, migrate), overridable and
-- extensible from a project like `database`'s. `database migrator` runs this same group.
--
-- Compatible with the original shell tool (reference/migrator-upstream.md): the same layout,
-- tables, exit codes and the messages scripts grep for; options before or after the command;
-- the command is the first word that names one. Its bugs are fixed as its help promised.
local common = require "dbtool.migrator.common"
local errors = require "dbtool.errors"

local function ns_warn(fmt, ...)
  require("dbtool.log").ns(common.namespace()):warn(fmt, ...)
end

local M = {
  name = "migrator",
  summary = "hectic-compatible migrations for PostgreSQL and SQLite",
  description = [[
A database migration tool for PostgreSQL and SQLite: ordered, two-way SQL migrations in
timestamped directories, recorded in hectic.migration (PostgreSQL) or hectic_migration
(SQLite). Compatible with hectic's migrator.]],
  usage = "migrator [OPTIONS] COMMAND [ARGS...]",
  commands = "dbtool.migrator.cmd.",
  commands_title = "Commands",
  project_key = "migrator ",
  aliases = { fetch = "status" },
  order = { init = 1, create = 2, list = 3, status = 4, migrate = 5, baseline = 6 },
  help_words = { "help" },
  interspersed = true,
  command_anywhere = true,
  ambiguous = "ambiguous subcommand, decide %s or %s",
  namespace = common.namespace,
  options_title = "Options (accepted before or after the command)",
  help_hint = "see 'migrator --help'",
  list_hint = "see 'migrator --help' for the commands",
  messages = {
    unknown = "%s argument %s does not exists",
    unexpected = "%s subcommand %s does not exists",
    scope = "%s argument %s does not exists",
    missing = function(_, flag, metavar)
      return "option " .. flag .. " requires a value (" .. metavar .. ")"
    end,
    unknown_global = "argument %s does not exists",
  },
}

M.options = {
  { "-u", "--db-url", key = "url", arg = "URL", anywhere = true,
    help = "database (default: $DB_URL, $PGURL, $DATABASE_URL, else libpq's PGHOST, PGPORT, "
      .. "PGDATABASE, PGUSER, PGSERVICE with PGPASSWORD or .pgpass): postgresql://..., postgres://..., "
      .. "key=value conninfo, sqlite://PATH, or a *.db, *.sqlite, *.sqlite3 path" },
  { "-d", "--migration-dir", key = "dir", arg = "DIR", anywhere = true, complete = "dir",
    help = "migrations directory (default: $MIGRATION_DIR, else $DATABASE_DIR/migration when "
      .. "DATABASE_DIR or LOCAL_DIR is set, else ./migration)" },
  { "-v", "--set", key = "set", arg = "NAME=VALUE", multi = true, anywhere = true,
    help = "psql variable for the scripts (:NAME, :'NAME'); repeatable" },
  { "--inherits", key = "inherits", arg = "TABLE", multi = true, anywhere = true, hidden = true,
    on = function()
      ns_warn("--inherits is deprecated and ignored: "
        .. "hectic schema is auto-exempt from inheritance enforcement")
    end },
  { "--verbose", anywhere = true, help = "more logging (or HECTIC_LOG=debug)",
    on = function() require("dbtool.log").configure { level = "debug" } end },
  { "-q", "--quiet", anywhere = true, help = "less logging (or HECTIC_LOG=warn)",
    on = function() require("dbtool.log").configure { level = "warn" } end },
}

M.help = [[
Migrate directions:
  migrate up [N|all|latest|head]         apply the next N (default 1) or all pending
  migrate down [N|all]                   revert the last N (default 1) or all applied
  migrate to NAME|PREFIX|latest|head|last   go up or down to a migration

Migration layout (MIGRATION_DIR/<YYYYMMDDHHMMSS>-<description>/):
  up.sql, down.sql                      single-file form
  up/entrypoint.sql, down/entrypoint.sql  multi-file form (\ir part.sql; .read on SQLite)
  repeatable/*.sql                      applied again whenever their content changes, in
                                        name order, after the versioned ones, by a run that
                                        leaves all of those applied
  A script whose first line is `-- db-tool: no-transaction` runs outside a transaction
  (CREATE INDEX CONCURRENTLY ...); every other migration runs in one transaction together
  with its bookkeeping row, so a failure leaves neither.

Safety: one migration run at a time per database (PostgreSQL advisory lock, or a row of
hectic.migration_lock with an expiry behind a connection pooler such as PgBouncer; SQLite
write lock); applied names must be the first ones on disk in byte order (else exit 2 with a
report); the SHA-256 of applied scripts is verified (else exit 2).

`migrator <command> --help` shows a command's options.]]

M.environment = {
  { "DB_URL, PGURL, DATABASE_URL", "database URL, in this order (--db-url wins)" },
  { "PGHOST, PGPORT, PGDATABASE, PGUSER, PGSERVICE", "without a URL: libpq's own settings (with "
    .. "PGPASSWORD or .pgpass, pg_service.conf), as psql" },
  { "XDG_CACHE_HOME", "db-tool/checksums/: the checksums of unchanged migration files" },
  { "XDG_STATE_HOME", "db-tool/migrator/: the logs of fleet runs (--targets)" },
  { "MIGRATION_DIR", "migrations directory (-d wins)" },
  { "DATABASE_DIR, LOCAL_DIR", "the project: $DATABASE_DIR/migration is the default directory; "
    .. "$DATABASE_DIR/db-tool.lua the migration policy and hooks" },
  { "HECTIC_LOG", "log levels: level[;namespace=level]..." },
  { "HECTIC_NAMESPACE", "log prefix (default: migrator)" },
  { "NO_COLOR, FORCE_COLOR, TERM", "colour (see --color)" },
  { "DB_TOOL_PAGER, PAGER", "pager of this help on a terminal (default: less -FRX)" },
}

M.exit_codes = {
  { 0, "success" },
  { 1, "error" },
  { 2, "ambiguous arguments, history mismatch, modified migration" },
  { 3, "missing or unsupported database URL, missing direction" },
  { 4, "migration failed (with targets: any target failed)" },
  { 9, "unknown command, argument or direction" },
  { 13, "init failed" },
  { 127, "missing dependency" },
  { 130, "interrupted" },
}

M.files = {
  { "$MIGRATION_DIR/<YYYYMMDDHHMMSS>-<name>/", "a migration: up.sql and down.sql, or up/ and down/ with "
    .. "entrypoint.sql" },
  { "$DATABASE_DIR/db-tool.lua", "migration policy (settings.migration) and hooks" },
  { "$DATABASE_DIR/lua/dbtool/migrator/cmd/<name>.lua", "a project's own or overriding migrator command" },
}

--- No command: the help when there are no arguments at all, else the original's error.
function M.no_command(state, rest)
  if #rest == 0 and not next(state.globals) then
    require("dbtool.ui").page(require("dbtool.command").group_help(M, state))
    return 0
  end
  errors.raise(errors.GENERIC, "no subcommand specified. Use 'migrator help' for usage information.")
end

return M
