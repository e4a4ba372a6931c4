-- `db-ops`: the original's fourth program, `db-ops [-u URL] secrets load [...]`, as a command
-- group of the engine over the same `secrets load` module as `database secrets load`
-- (reference/db-tool-upstream.md §1.16): its messages and exit codes.
local function load_help(state)
  local command = require "dbtool.command"
  return command.help(require "dbtool.cmd.secrets.load", { path = state.path .. " load" })
end

local secrets = {
  name = "secrets",
  summary = "secrets load: apply the hectic bundle and load the secrets of a dotenv file",
  commands = { load = "dbtool.cmd.secrets.load" },
  messages = { unknown_command = function(_, w) return "secrets subcommand " .. w .. " does not exist" end },
  list_hint = "the only one is `load`",
  render_help = load_help,
}

--- `db-ops secrets` alone: the help of `secrets load`, as the original.
function secrets.no_command(state)
  io.stdout:write(load_help(state))
  return 0
end

local M = {
  name = "db-ops",
  summary = "load the secrets of a dotenv file into a database (the hectic bundle and hectic.secret)",
  usage = "db-ops [-u URL] secrets load [-u|--url URL] [-f|--dotenv-file PATH]",
  description = [[
The original db-tool's operations program: `db-ops secrets load` applies the hectic bundle
to PGURL (or DB_URL) and replaces hectic.secret with the secrets of a dotenv file. It is
`database secrets load` (the same module) with the original's command line.]],
  commands = { secrets = secrets },
  namespace = function(path) return (path:gsub("^db%-ops", "db ops")) end,
  messages = {
    unknown_global = function(_, a) return "argument " .. a .. " does not exist" end,
    missing = function(_, flag) return "missing value for " .. flag end,
    unknown_command = function(_, w) return "subcommand " .. w .. " does not exist" end,
  },
  option_hint = "see 'db-ops --help'",
  list_hint = "the only one is `secrets load`",
}

M.options = {
  { "-u", "--url", arg = "URL", help = "database (sets PGURL and DB_URL); default PGURL, else DB_URL" },
}

M.help = [[
secrets load options:
  -u, --url URL            database (default: PGURL, else DB_URL)
  -f, --dotenv-file PATH   dotenv file (encrypted or not); overrides HECTIC_DOTENV_FILE

The dotenv content comes from, first match wins: HECTIC_DOTENV_CONTENT; --dotenv-file or
HECTIC_DOTENV_FILE (must be readable: exit 3, no fallback); $LOCAL_DIR/.env.$ENVIRONMENT
(or .env.$ENVIRONMENT.enc); else exit 3.]]

M.environment = {
  { "PGURL", "the database (-u wins)" },
  { "DB_URL", "the database when PGURL is not set" },
  { "HECTIC_DOTENV_CONTENT", "dotenv text to load instead of a file" },
  { "HECTIC_DOTENV_FILE", "the dotenv file (--dotenv-file wins)" },
  { "LOCAL_DIR, ENVIRONMENT", "the fallback file $LOCAL_DIR/.env.$ENVIRONMENT (or .enc)" },
  { "DB_TOOL_SECRET_KEY, DB_TOOL_SECRET_KEY_FILE", "private key of encrypted dotenv files" },
}

M.exit_codes = {
  { 0, "ok" },
  { 1, "error (the database refused the bundle or the secrets)" },
  { 3, "no URL, no dotenv source, unreadable dotenv file, missing option value" },
  { 9, "unknown subcommand or argument" },
}

--- -u URL: the URL of `secrets load` (its own -u wins).
function M.context(ctx)
  ctx.url = ctx.globals.url
end

function M.before_run(ctx)
  if ctx.url then
    local env = require "dbtool.env"
    env.set("PGURL", ctx.url)
    env.set("DB_URL", ctx.url)
  end
end

return M
