-- database secrets load (and `db-ops secrets load`): the hectic bundle and the secrets.
local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

local M = {
  name = "load",
  usage = "{path} [-u|--url URL] [-f|--dotenv-file PATH]",
  summary = "Apply the hectic bundle and replace hectic.secret with the secrets of a dotenv file.",
  options = {
    { "-u", "--url", arg = "URL", help = "database (default: PGURL, else DB_URL)" },
    { "-f", "--dotenv-file", arg = "PATH",
      help = "dotenv file (encrypted or not); overrides HECTIC_DOTENV_FILE" },
  },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s subcommand %s does not exist",
  },
  help = [[
Like the original `db-ops secrets load`. The dotenv content comes from, first match wins:
HECTIC_DOTENV_CONTENT; --dotenv-file or HECTIC_DOTENV_FILE (must be readable: exit 3, no
fallback); $LOCAL_DIR/.env.$ENVIRONMENT (or .env.$ENVIRONMENT.enc); else exit 3. Encrypted
files are decrypted with the private key. The file is read, decrypted and checked before
connecting; then the bundle and the secrets are applied in one transaction (all secrets are
replaced). An empty file applies the bundle and leaves the secrets as they are.]],
  run = function(ctx, opts)
    local env = require "dbtool.env"
    local url = opts.url or ctx.url or env.get("PGURL") or env.get("DB_URL")
    if not url then
      errors().raise(errors().MISSING, "PGURL or DB_URL is required",
        { hint = "pass -u URL, or export PGURL / DB_URL" })
    end
    local prepared = secrets().prepare(ctx.log, { file = opts.dotenv_file, required = true })
    ctx.log:notice("apply hectic bundle and load secrets")
    local pg = require "dbtool.pg"
    local conn <close> = pg.connect(url, { log = ctx.log })
    pg.transaction(conn, function()
      require("dbtool.bundle").apply(conn, { log = ctx.log })
      if prepared then secrets().load(conn, prepared, ctx.log) end
    end)
    return 0
  end,
}

return M
