-- luacheck: no max line length
-- The example project (examples/) end to end, as CI runs it: deploy with its hooks and
-- secrets, its tests and project command, `database check`, scripts/deploy.lua (the
-- migrations give the same schema as the hydrate sources), and its pull_staging override
-- that anonymises e-mails. Its own busted specs (examples/spec) run in `make check` too.
local t = require "testutil"
local pg = require "dbtool.core.pg"

local examples = t.top .. "/examples"

local FAKE_SSH = [[#!/bin/sh
[ "$1" = "--" ] && shift
shift
exec sh -c "$1"
]]

local function envfor(work, extra)
  local e = { LOCAL_DIR = examples, PG_WORKING_DIR = work .. "/pg", PG_SHARED_PRELOAD_LIBRARIES = "",
    PG_DISABLE_LOGGING = "1", DATABASE_DIR = false, MIGRATION_DIR = false, DATABASE_SOURCE = false,
    PATCH_SQL = false, PROFILE_DIR = false, PGURL = false, DB_URL = false, HECTIC_LOG = false,
    HYDRATE_LOG = false, PATCH_LOG = false, PG_LOG_PATH = false, ENVIRONMENT = "development",
    HECTIC_DOTENV_FILE = false, PG_REUSE = false, DB_TOOL_LUA_PATH = false, PG_PORT = "5432",
    PATH = t.build .. ":" .. os.getenv("PATH") }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function run(work, argv, extra)
  return t.run { argv = argv, env = envfor(work, extra), timeout = 300 }
end

-- shop's columns: {"table.column type", ...} sorted
local function shape(url)
  local c <close> = pg.connect(url)
  local r = c:exec([[SELECT table_name || '.' || column_name || ' ' || data_type AS d
    FROM information_schema.columns WHERE table_schema = 'shop' ORDER BY 1]])
  local out = {}
  for i = 1, r.n do out[i] = r[i].d end
  local f = c:exec([[SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS d
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'shop' ORDER BY 1]])
  for i = 1, f.n do out[#out + 1] = f[i].d end
  return out
end

describe("the example project", function()
  local work, url

  setup(function()
    work = t.tmpdir("examples")
    t.at_exit(function() pcall(require("dbtool.cluster").stop, work .. "/pg", { mode = "immediate" }) end)
  end)

  it("deploys with its hooks and secrets, passes its tests, and has its own subcommand", function()
    local r = run(work, { "database", "deploy" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("db shop> deploying the example shop", r.stderr)      -- before_deploy hook
    assert.matches("db shop> hydrated: 3 currencies", r.stderr)          -- after_hydrate hook
    assert.matches("loaded 2 secrets from .*/examples/%.env%.development", r.stderr)
    url = r.stderr:match("connect with: psql '([^']+)'")
    assert.is_string(url)
    local c <close> = pg.connect(url)
    local req = c:exec("SELECT shop.payment_request(1)::text AS j")[1].j
    assert.matches('"amount": 4900', req)
    assert.matches('"authorized": true', req)
    assert.matches("sandbox%.payments%.invalid", req)                   -- PAYMENT_ENDPOINT secret
    r = run(work, { "database", "-u", url, "test" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("all tests passed", r.stderr)
    r = run(work, { "database", "-u", url, "stats", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('{"currency": 3, "customer": 3, "order_line": 3, "orders": 2, "product": 3}\n', r.stdout)
    r = run(work, { "database", "--help" })
    assert.matches("\n  stats%s+row counts of the shop schema", r.stdout)
    assert.matches("\n  pull_staging%s+.*e%-mails anonymised", r.stdout)
  end)

  it("scripts/deploy.lua migrates a second database to the same schema as the sources", function()
    assert.is_string(url, "needs the deployed cluster of the previous test")
    local migrated = url:gsub("/testdb%?", "/shop_migrated?")
    local r = run(work, { examples .. "/scripts/deploy.lua", "--create", migrated })  -- the shebang
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("4 migration%(s%) applied", r.stderr)
    assert.matches("loaded 2 secrets from .*%.env%.development", r.stderr)
    assert.are.same(shape(url), shape(migrated))
    r = run(work, { "db-tool", "run", examples .. "/scripts/deploy.lua", migrated })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("0 migration%(s%) applied", r.stderr)
    r = run(work, { "db-tool", "run", examples .. "/scripts/deploy.lua", "--nope" })
    assert.are.equal(9, r.code)
    -- a migration that fails: exit 4, reported by db-tool, nothing half-applied
    local broken = t.tmpdir("exmig")
    assert(os.execute("cp -r " .. t.shq(examples .. "/db/migration") .. " " .. t.shq(broken .. "/")))
    t.write(broken .. "/migration/20260105000000-broken/up.sql",
      "ALTER TABLE shop.customer ADD COLUMN phone text;\nSELECT 1 / 0;\n")
    r = run(work, { "db-tool", "run", examples .. "/scripts/deploy.lua", migrated },
      { MIGRATION_DIR = broken .. "/migration" })
    assert.are.equal(4, r.code, r.stderr)
    assert.matches("migration failed: 20260105000000%-broken", r.stderr)
    local c <close> = pg.connect(migrated)
    assert.are.equal(0, c:exec([[SELECT count(*) AS n FROM information_schema.columns
      WHERE table_schema = 'shop' AND column_name = 'phone']])[1].n)
  end)

  it("pulls staging data with e-mails anonymised by its pull_staging override", function()
    -- a "staging" database with the shop schema (through the migrations) and real-looking rows
    local staging = t.fresh_db("exstaging")
    local r = run(work, { "db-tool", "run", examples .. "/scripts/deploy.lua", staging }, { ENVIRONMENT = false })
    assert.are.equal(0, r.code, r.stderr)
    local s <close> = pg.connect(staging)
    s:exec([[INSERT INTO shop.customer (email, name) VALUES
      ('Alice.Real@corp.example', 'Alice'), ('bob@corp.example', E'Bob\ttab')]])
    t.write(work .. "/bin/ssh", FAKE_SSH)
    assert(os.execute("chmod 755 " .. t.shq(work .. "/bin/ssh")))
    local out = work .. "/pulled.sql"
    local function pull(flags)
      return run(work, { "database", "pull_staging" }, { PATH = work .. "/bin:" .. t.build .. ":" .. os.getenv("PATH"),
        STAGING_SSH_HOST = "staging", STAGING_DB_URL = staging, STAGING_DUMP_TABLES = "shop.customer",
        STAGING_DUMP_FLAGS = flags, PATCH_SQL = out })
    end
    r = pull("--data-only")
    assert.are.equal(0, r.code, r.stderr)
    local text = t.read(out)
    assert.not_matches("corp%.example", text)
    local a1 = text:match("\t1\t(user%-%x+@example%.invalid)\tAlice\n")
    local a2 = text:match("\t2\t(user%-%x+@example%.invalid)\tBob\\ttab\n")
    assert.is_string(a1, text)
    assert.is_string(a2, text)
    assert.are_not.equal(a1, a2)
    -- the same address always gives the same stand-in, whatever the dump format
    r = pull("--data-only --column-inserts")
    assert.are.equal(0, r.code, r.stderr)
    local inserts = t.read(out)
    assert.not_matches("corp%.example", inserts)
    assert.truthy(inserts:find("'" .. a1 .. "'", 1, true), inserts)
    assert.truthy(inserts:find("'" .. a2 .. "'", 1, true))
    -- and the file loads into a database with the schema
    local target = t.fresh_db("expatched")
    r = run(work, { "db-tool", "run", examples .. "/scripts/deploy.lua", target }, { ENVIRONMENT = false })
    assert.are.equal(0, r.code, r.stderr)
    r = run(work, { "database", "-u", target, "patch" }, { PATCH_SQL = out })
    assert.are.equal(0, r.code, r.stderr)
    local c <close> = pg.connect(target)
    assert.are.equal(2, c:exec("SELECT count(*) AS n FROM shop.customer WHERE email LIKE '%@example.invalid'")[1].n)
  end)

  it("passes database check (the whole deploy in a throw-away cluster)", function()
    local r = run(work, { "database", "check" }, { PG_WORKING_DIR = false })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("check: success", r.stderr)
  end)
end)
