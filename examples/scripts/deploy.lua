#!/usr/bin/env db-tool
-- Deploy the example shop to a database the way production would get it: migrations (with
-- the project's policy and hooks from db/db-tool.lua), then the secrets, then a smoke test.
-- A db-tool script: it uses only the public API (`require "dbtool"`, README "Lua API").
--
--   db-tool run scripts/deploy.lua [--dry-run] [--create] [URL]
--   scripts/deploy.lua ...                       (the same, through the shebang)
--
-- URL defaults to DB_URL, then PGURL, then the local cluster. Secrets come from
-- HECTIC_DOTENV_FILE or .env.$ENVIRONMENT, plain or encrypted (as `database hydrate` reads
-- them; see `database secrets --help`). The exit code is 0 on success; errors are reported
-- by db-tool with their own exit code (4 for a failed migration, 3 for a missing URL, ...).
local dbtool = require "dbtool"

local log = dbtool.log.ns("deploy")
local spec = {
  name = "deploy.lua", prog = "scripts/deploy.lua",
  usage = "db-tool run scripts/deploy.lua [--dry-run] [--create] [URL]",
  summary = "apply the example shop's migrations and secrets to a database",
  options = {
    { "-n", "--dry-run", help = "show the migration plan, change nothing" },
    { "--create", help = "create the database first if it does not exist" },
  },
  positionals = {
    { "url", optional = true, help = "target database (default: DB_URL, PGURL, the local cluster)" },
  },
}
local opts = dbtool.args.parse(spec, arg)
if opts.help then
  io.stdout:write(dbtool.args.help(spec))
  return 0
end

-- the project this script belongs to, scripts/.., unless LOCAL_DIR says otherwise: so that
-- it works from any directory
if not dbtool.env.get("LOCAL_DIR") then dbtool.project.use((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/..") end

local url = opts.url or dbtool.env.get("DB_URL") or dbtool.db.require_url()

if opts.create then
  -- connect to the server's maintenance database and create ours when it is missing
  local info = assert(dbtool.pg.parse_conninfo(url))
  local name = info.dbname or dbtool.env.user()
  info.dbname = "postgres"
  local admin <close> = dbtool.connect(info)
  if admin:exec("SELECT 1 FROM pg_database WHERE datname = $1", name).n == 0 then
    admin:exec("CREATE DATABASE " .. dbtool.pg.quote_ident(name))
    log:notice("created database %s", name)
  end
end

local conn <close> = dbtool.connect(url)
local who = conn:info()
log:notice("deploying to database %s (server %d)", who.db, conn:server_version())

-- the secrets, from the same source `database hydrate` uses (plain or encrypted .env file),
-- read first: a bad file or a missing key stops the deploy before anything changed
local secrets = dbtool.secrets.prepare(log)

-- 1. migrations: db/migration, in the directory layout, with the project's policy
local status = dbtool.migrations.status { url = url }
log:info("%d applied, %d pending", status.counts.applied, status.counts.pending)
if opts.dry_run then
  dbtool.migrations.up { url = url, dry_run = true }
  return 0
end
local result = dbtool.migrations.up { url = url }
log:notice("%d migration(s) applied", result.done)

-- 2. the secrets (read and checked before anything changed, see above)
if secrets then
  dbtool.secrets.load(conn, secrets, log)
else
  log:warn("no secrets loaded (set ENVIRONMENT or HECTIC_DOTENV_FILE)")
end

-- 3. smoke test: the reference data is there and the payment function finds its key
local currencies = conn:exec("SELECT count(*) AS n FROM shop.currency")[1].n
if currencies ~= 3 then
  dbtool.errors.raise(dbtool.errors.GENERIC, "smoke test: expected 3 currencies, found " .. currencies)
end
if secrets then
  local ok = conn:exec("SELECT (shop.payment_request(0)->>'authorized')::boolean AS ok")[1].ok
  if not ok then
    dbtool.errors.raise(dbtool.errors.GENERIC, "smoke test: payment_request is not authorized")
  end
end
log:notice("deployed: %s", status.current and ("was at " .. status.current) or "was empty")
return 0
