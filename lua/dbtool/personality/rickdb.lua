-- `rickdb`: rick_db's forward-only migration manager, on the shared migration engine.
--
--   rickdb [--config FILE] [database] <command> [args]
--
-- A command group of the engine (dbtool.command): the commands are the modules
-- dbtool.rickdb.cmd.<name> (init, list, check, migrate, flatten, dto, help), overridable and
-- extensible from a project like `database`'s. Compatible with rick_db's CLI
-- (reference/rickdb-upstream.md): rickdb.toml and RICKDB_CONFIG, [db] / [db_<name>]
-- sections, the `_migration` table, the lines scripts read, its messages and exit codes
-- (255 usage/configuration, 254 unknown database, 253 engine/connection, 252 command
-- failed). Shared pieces are in dbtool.rickdb.common, configuration in dbtool.rickdb.config.
local common = require "dbtool.rickdb.common"
local config = require "dbtool.rickdb.config"

local M = {
  name = "rickdb",
  summary = "rick_db-compatible forward-only migrations (rickdb.toml, _migration)",
  usage = "rickdb [--config FILE] [database] <command> [args]",
  commands = "dbtool.rickdb.cmd.",
  project_key = "rickdb ",
  interspersed = true,
  leading = "database",
  namespace = "rickdb",
  usage_exit = config.EXIT_USAGE,
  help_hint = false, -- the messages say "try 'rickdb help'"
  messages = {
    unknown = function(_, a) return "invalid option '" .. a .. "'; try 'rickdb help'" end,
    scope = function(name, flag) return "option " .. flag .. " does not apply to '" .. name .. "'" end,
    missing = function(_, flag, metavar) return "option " .. flag .. " needs a value (" .. metavar .. ")" end,
    novalue = function(_, flag) return "option " .. flag .. " takes no value" end,
    unknown_global = function(_, a) return "invalid option '" .. a .. "'; try 'rickdb help'" end,
  },
}

M.options = {
  { "--config", arg = "FILE", anywhere = true, complete = "file", help = "configuration file" },
  { "-v", "--verbose", anywhere = true, help = "more logging (or HECTIC_LOG=debug)" },
  { "--no-color", anywhere = true, help = "no colour (also NO_COLOR=1; colour is used only on a terminal)",
    on = function() require("dbtool.ui").set_color("never") end },
  { "--all", anywhere = true, help = "the command on every database of the configuration ([db], then "
    .. "each [db_<name>] by name), one after the other; each one's output follows a line [db_<name>]; "
    .. "a failure does not stop the others; exit: the first failure's code" },
}

M.environment = {
  { "RICKDB_CONFIG", "the configuration file (default: ./rickdb.toml; --config wins)" },
  { "HECTIC_LOG", "log levels (default: warnings only; -v: debug)" },
  { "NO_COLOR, FORCE_COLOR, TERM", "colour (see --color)" },
}

M.exit_codes = {
  { 0, "ok" },
  { 1, "new migrations pending (check --exit-code)" },
  { 130, "interrupted" },
  { 252, "command failed" },
  { 253, "engine or connection error" },
  { 254, "database not in the configuration file" },
  { 255, "configuration or usage error (unknown command or option, missing value)" },
}

M.files = {
  { "./rickdb.toml", "the configuration: [db], [db_<name>], [rickdb] settings" },
  { "$DATABASE_DIR/lua/dbtool/rickdb/cmd/<name>.lua", "a project's own or overriding rickdb command" },
}

M.GENERAL_HELP = [[
Usage: rickdb [--config FILE] [database] <command> [args]      (rickdb help <command>)

The database is [db] of the configuration file, or [db_<name>] when <name> comes first.
Configuration: --config FILE, else $RICKDB_CONFIG, else ./rickdb.toml:

  [db]                          # the default database
  engine = "pgsql"              # pgsql, pg, postgres | sqlite, sqlite3, sql3
  host = "localhost"            # host, port, user, password, dbname (or database),
  port = 5432                   # sslmode, connect_timeout: any libpq keyword
  user = "me"
  dbname = "app"
  passfile = "secrets/db.pw"    # first line is the password (relative to this file)

  [db_test]                     # rickdb test <command>
  engine = "sqlite"
  db_file = "/tmp/test.db"      # relative to the working directory

  [rickdb]                      # optional settings of this implementation
  checksum = "warn"             # applied files that changed: warn | verify (fail) | off
  lock_wait = 60                # seconds to wait for a concurrent migration
  lock_timeout = "10s"          # lock_timeout of migration statements (PostgreSQL)
  dto_template = "dbtool.rickdb.dto_python"   # module, or a .lua file (relative to this file)
]]

M.GENERAL_NOTES = [[
Migrations are the *.sql files of a directory, applied once each in byte order of their
names, recorded in the table _migration. Each file runs in one transaction together with
its row (a first line `-- db-tool: no-transaction` runs it outside one, for CREATE INDEX
CONCURRENTLY), one migration run at a time per database.

Exit codes: 0 ok, 1 new migrations pending (check --exit-code), 252 command failed,
253 engine or connection error, 254 database not in the configuration file,
255 configuration or usage error, 130 interrupted.
]]

local function style(name, text) return common.style(name, text) end

local function option_lines(list)
  local out = {}
  for _, o in ipairs(list) do
    if not o.hidden then
      local names = table.concat(o, ", ") .. (o.arg and (" " .. o.arg) or "")
      out[#out + 1] = string.format("  %-20s %s", names, o.help or "")
    end
  end
  return out
end

--- rick_db's help: the command listing (no topic or an unknown one), or one command's.
function M.help_text(topic)
  local command = require "dbtool.command"
  local project = nil
  local ok, p = pcall(function() return require("dbtool.project").load() end)
  if ok then project = p end
  local entry = topic and command.lookup(M, topic, project)
  if entry and not command.is_group(entry.module) then return M.command_help(entry.module) end
  local cmds = command.commands(M, project)
  local names = {}
  for name in pairs(cmds) do names[#names + 1] = name end
  table.sort(names)
  local out = { "", "Available commands:", string.rep("=", 19) }
  for _, name in ipairs(names) do
    out[#out + 1] = style("bold", name) .. style("bold", "\t") .. style("green", cmds[name].summary or "")
  end
  out[#out + 1] = ""
  out[#out + 1] = M.GENERAL_HELP
  out[#out + 1] = "Options:"
  local opts = {}
  for _, o in ipairs(M.options) do opts[#opts + 1] = o end
  local seen = {}
  for _, name in ipairs(names) do
    for _, o in ipairs(cmds[name].module.options or {}) do
      if not seen[o[#o]] then
        seen[o[#o]] = true
        opts[#opts + 1] = o
      end
    end
  end
  for _, o in ipairs(command.STANDARD) do opts[#opts + 1] = o end
  for _, l in ipairs(option_lines(opts)) do out[#out + 1] = l end
  out[#out + 1] = "  -h, --help           help"
  out[#out + 1] = ""
  out[#out + 1] = M.GENERAL_NOTES
  return table.concat(out, "\n")
end

--- One command's help, as rick_db printed it: its description (or title) and usage in bold,
--- then our notes.
function M.command_help(c)
  local out = { style("bold", c.title or c.summary or c.name),
    style("bold", "Usage: " .. (c.usage or c.name)) }
  if c.help then out[#out + 1] = "\n" .. c.help:gsub("%s+$", "") end
  return table.concat(out, "\n") .. "\n"
end

function M.render_help()
  return M.help_text(nil)
end

--- No command: help, as rick_db did (without needing a configuration).
function M.no_command()
  common.write(1, M.help_text(nil))
  return 0
end

--- An unknown command: rick_db checks the database first (254) when one was named.
function M.unknown_command(word, state)
  local command = require "dbtool.command"
  if state.leading then
    local cfg = config.load(config.locate(state.globals.config))
    config.select(cfg, state.leading)
  end
  local names = command.names(M, nil)
  common.usage_error("invalid command '" .. word .. "'; try '" .. common.PROG .. " help'",
    command.did_you_mean(word, names))
end

--- Logging: warnings only unless -v or HECTIC_LOG says otherwise.
function M.setup(globals)
  local log = require "dbtool.log"
  if globals.verbose then
    log.configure { level = "debug" }
  elseif not os.getenv("HECTIC_LOG") then
    log.configure { level = "warn" }
  end
end

--- `rickdb --all COMMAND`: the command once per database of the configuration.
function M.around_run(ctx, _, entry, run)
  if not ctx.globals.all or entry.name == "help" then return run() end
  if ctx.globals.database then
    common.usage_error("--all runs the command on every database: name none ('" .. ctx.globals.database
      .. "' given)")
  end
  local cfg = config.load(config.locate(ctx.globals.config))
  if #cfg.names == 0 then
    require("dbtool.errors").raise(config.EXIT_NO_DB, "no database in " .. cfg.file
      .. " (no [db] or [db_<name>] section)")
  end
  local errors = require "dbtool.errors"
  local code, failed = 0, {}
  for _, key in ipairs(cfg.names) do
    common.write(1, "[" .. key .. "]\n")
    ctx.globals.database = key ~= "db" and key:sub(4) or nil
    local ok, res = errors.try(run)
    local c = res
    if not ok then
      if errors.is(res) and res.interrupted then error(res, 0) end
      c = M.report(res)
    end
    io.stdout:flush()
    if c ~= 0 then
      failed[#failed + 1] = key .. " (exit " .. c .. ")"
      if code == 0 then code = c end
    end
  end
  ctx.globals.database = nil
  common.warn(string.format("rickdb --all %s: %d database(s), %d failed%s", entry.name, #cfg.names, #failed,
    #failed > 0 and (": " .. table.concat(failed, ", ")) or ""))
  return code
end

--- Errors as rick_db printed them; library errors mean the command failed (252).
function M.report(e)
  local errors = require "dbtool.errors"
  e = errors.wrap(e)
  if e.bug then return require("dbtool.cli").report(e, "rickdb") end
  if not e.interrupted and e.exit < config.EXIT_FAILED then e.exit = config.EXIT_FAILED end
  common.report(e)
  return e.exit
end

return M
