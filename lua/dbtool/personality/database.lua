-- `database`: the development workflow. A command group of the engine (dbtool.command): its
-- subcommands are the modules dbtool.cmd.<name> (built in, or a project file under
-- ${DATABASE_DIR}/lua/, or a command of ${DATABASE_DIR}/db-tool.lua).
local errors = require "dbtool.errors"

local M = {
  name = "database",
  summary = "PostgreSQL development database tool: local cluster, hydrate, patch, tests, migrations, "
    .. "diffs, staging pulls, backups and secrets",
  description = [[
PostgreSQL development database tool: local cluster, hydrate, patch, tests,
migrations, diffs, staging pulls, backups and secrets.]],
  usage = "database [-u URL] [-i TABLE]... <subcommand> [options]",
  commands = "dbtool.cmd.",
  project_key = "",
  help_words = { "help", "?", "-?" },
  namespace = function(path)
    return (path:gsub("^database", "db"))
  end,
}

-- -u/--url and -i/--inherits are accepted anywhere on the line (as the original did);
-- the others only before the subcommand.
M.options = {
  { "-u", "--url", arg = "URL", anywhere = true,
    help = "connection URL (sets PGURL and DB_URL for this run)" },
  { "-i", "--inherits", arg = "TABLE", multi = true, anywhere = true,
    help = "check that TABLE exists before running (exit 5 if not); repeatable" },
  { "--verbose", help = "debug logging; says which file handled the command",
    on = function() require("dbtool.log").configure { level = "debug" } end },
  { "-q", "--quiet", help = "only warnings and errors",
    on = function() require("dbtool.log").configure { level = "warn" } end },
}

M.environment = {
  { "LOCAL_DIR", "project root (required by most subcommands)" },
  { "DB_URL", "connection URL used by `migrator` (default: PGURL)" },
  { "PGURL", "connection URL of the database to work on" },
  { "PG_WORKING_DIR", "local cluster directory (default: $LOCAL_DIR/focus/postgresql)" },
  { "DATABASE_DIR", "database files (default: $LOCAL_DIR/db); lua/ and db-tool.lua extend the tool" },
  { "MIGRATION_DIR", "migrations (default: $DATABASE_DIR/migration)" },
  { "DATABASE_SOURCE", "hydrate sources (default: $DATABASE_DIR/src)" },
  { "HYDRATE_ENTRYPOINT", "hydrate's entry file in DATABASE_SOURCE (default: entrypoint.sql)" },
  { "PG_DATABASE, PG_PORT", "database and port of the local cluster (default: testdb, 5432)" },
  { "PG_REUSE", "reuse the existing cluster and its data (set, even empty)" },
  { "PG_URL_VAR, PG_LOG_PATH, PG_CONF_FILE", "the local cluster, as for postgres-init" },
  { "PG_SHARED_PRELOAD_LIBRARIES, PG_DISABLE_LOGGING", "the local cluster, as for postgres-init" },
  { "PG_BINDIR, PGCTLTIMEOUT, NO_TTY", "the local cluster, as for postgres-init (see postgres-init --help)" },
  { "HECTIC_DOTENV_FILE, HECTIC_DOTENV_CONTENT, ENVIRONMENT", "secrets loaded by hydrate" },
  { "PATCH_SQL, PROFILE_DIR", "test data (default: ${PROFILE_DIR:-$LOCAL_DIR}/test-data.sql)" },
  { "PATCH_LOG, HYDRATE_LOG", "where the output of the test data / sources goes (default: stdout)" },
  { "STAGING_SSH_HOST, STAGING_DB_URL, STAGING_DUMP_TABLES, STAGING_DUMP_FLAGS", "pull_staging" },
  { "DEFAULT_BACKUP_PATH, DEFAULT_NORMALIZED_BACKUP_PATH", "backup, restore, diff, normalize-backup" },
  { "DB_TOOL_SECRET_KEY, DB_TOOL_SECRET_KEY_FILE", "private key of encrypted dotenv files" },
  { "DB_TOOL_LUA_PATH", "extra Lua module directories (after the project's, before the built-ins)" },
  { "HECTIC_LOG", "log levels: level[;namespace=level]..." },
  { "NO_COLOR, FORCE_COLOR, TERM", "colour (see --color)" },
  { "DB_TOOL_PAGER, PAGER", "pager of long output on a terminal (default: less -FRX)" },
  { "DB_TOOL_DEBUG", "tracebacks of internal errors" },
}

M.exit_codes = {
  { 0, "ok" },
  { 1, "error" },
  { 2, "ambiguous arguments or state" },
  { 3, "missing argument or environment variable" },
  { 4, "migration failed (database migrator)" },
  { 5, "table does not exist (-i)" },
  { 9, "argument or command not found" },
  { 13, "program bug" },
  { 127, "missing dependency" },
  { 130, "interrupted" },
}

M.files = {
  { "$DATABASE_DIR/db-tool.lua", "the project file: commands, hooks, settings" },
  { "$DATABASE_DIR/lua/", "project modules overriding or adding commands (dbtool/cmd/<name>.lua)" },
  { "$DATABASE_DIR/src/entrypoint.sql", "hydrate's entry file" },
  { "$DATABASE_DIR/migration/", "migrations (migrator)" },
  { "$DATABASE_DIR/test/test.sql", "database test" },
  { "$LOCAL_DIR/focus/postgresql/", "the local cluster (data/, sock/)" },
  { "${XDG_CACHE_HOME:-~/.cache}/db-tool/", "initdb templates of fresh clusters" },
}

--- No subcommand: the help on stderr and exit 1, as the original.
function M.no_command(state)
  io.stderr:write(require("dbtool.command").group_help(M, state))
  require("dbtool.log").ns("db"):error("no subcommand specified. Use '--help' for usage information.")
  return errors.GENERIC
end

--- The context a command receives: ctx.url (-u), ctx.inherits (-i), ctx.verbose.
function M.context(ctx)
  local g = ctx.globals
  ctx.url = g.url
  ctx.inherits = g.inherits or {}
  ctx.verbose = g.verbose
end

-- A table name as given to -i: an SQL name (`public.users`, `"Mixed"`), or, as the original
-- took it, one identifier written as is (`Mixed`).
local INHERITS_SQL = [[
SELECT pg_catalog.to_regclass($1) IS NOT NULL
    OR pg_catalog.to_regclass(pg_catalog.quote_ident($1)) IS NOT NULL AS ok]]

--- `-i TABLE` checks: exit 5 naming every missing table.
function M.check_inherits(ctx, tables)
  local db = require "dbtool.db"
  local conn <close> = db.connect(ctx)
  local missing = {}
  for _, t in ipairs(tables) do
    local ok, res = pcall(conn.exec, conn, INHERITS_SQL, t)
    if not ok then
      if not (errors.is(res) and res.sqlstate) then error(res, 0) end
      local okq, quoted = pcall(conn.exec, conn,
        "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1)) IS NOT NULL AS ok", t)
      if not (okq and quoted[1].ok) then missing[#missing + 1] = t .. " (" .. res.msg .. ")" end
    elseif not res[1].ok then
      missing[#missing + 1] = t
    end
  end
  if #missing > 0 then
    errors.raise(errors.NO_TABLE, "-i/--inherits: table does not exist: " .. table.concat(missing, ", "),
      { hint = "check the -i/--inherits arguments (schema-qualified names are allowed)" })
  end
end

--- Before a command runs: -u sets PGURL and DB_URL; -i checks its tables (exit 5).
function M.before_run(ctx, _, entry)
  local env = require "dbtool.env"
  if ctx.url then
    env.set("PGURL", ctx.url)
    env.set("DB_URL", ctx.url)
  end
  if ctx.verbose then
    ctx.log:debug("handled by %s", entry.origin == "builtin" and ("built-in dbtool.cmd." .. ctx.name)
      or tostring(entry.origin))
  end
  if #ctx.inherits > 0 then M.check_inherits(ctx, ctx.inherits) end
end

return M
