-- The examples of seeds/rickdb-migrations.md, run as written (host, port, database names and
-- file paths adapted to the test cluster), checking every printed line. Where the seed's
-- text is stale (rick_db itself prints "DTO written", `class PageRecord`), we follow rick_db.
local t = require "testutil"

local ENV = { RICKDB_CONFIG = false, NO_COLOR = false, DB_TOOL_TTY = false, HECTIC_LOG = false }

local function run(dir, args)
  local argv = { "rickdb" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return t.run { argv = argv, cwd = dir, env = ENV }
end

local STAMP = "%d%d/%d%d/%d%d%d%d %d%d:%d%d:%d%d"

-- the seed's users need passwords: myuser/mypassword, asked for by the server
local function seed_role()
  local c = t.cluster()
  local hba = c.dir .. "/data/pg_hba.conf"
  local old = t.read(hba)
  if not old:find("myuser", 1, true) then
    t.write(hba, "local all myuser scram-sha-256\n" .. old)
    local admin <close> = t.connect()
    admin:exec("CREATE ROLE myuser LOGIN PASSWORD 'mypassword'")
    admin:exec("SELECT pg_reload_conf()")
  end
end

local function owned_db(prefix)
  local url, name = t.fresh_db(prefix)
  local admin <close> = t.connect()
  admin:exec('ALTER DATABASE "' .. name .. '" OWNER TO myuser')
  return url, name
end

describe("rickdb: the seed's examples", function()
  it("configures several databases, installs, checks, migrates, lists, flattens and writes DTOs", function()
    seed_role()
    local c = t.cluster()
    local _, admin_db = owned_db("seedadmin")
    local _, schema_db = owned_db("myschema")
    local _, app_db = owned_db("appschema")
    local dir = t.tmpdir("seed")
    t.write(dir .. "/run/super_secret_pwd", "mypassword\n")
    os.execute("chmod 600 " .. dir .. "/run/super_secret_pwd")
    -- the seed's single-database [db] and its multiple-database example, in one file
    t.write(dir .. "/rickdb.toml", string.format([[
# single database, no name
[db]
engine = "pgsql"
host = "%s"
port = %d
user = "myuser"
password = "mypassword"
dbname = "%s"

# administration database
[db_admin]
engine = "pgsql"
host = "%s"
port = %d
user = "myuser"
password = "mypassword"
dbname = "%s"

# application database
[db_app]
engine = "pgsql"
host = "%s"
port = %d
user = "myuser"
dbname = "%s"
passfile = "%s/run/super_secret_pwd"

# test database
[db_test]
engine = "sqlite"
db_file = "%s/test.db"
]], c.host, c.port, schema_db, c.host, c.port, admin_db, c.host, c.port, app_db, dir, dir))

    -- Installation
    local r
    for _ = 1, 50 do -- the server reloads pg_hba.conf asynchronously
      r = run(dir, { "init" })
      if r.code == 0 then break end
      require("dbtool.core").sleep(0.1)
    end
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Migration Manager installed sucessfully!\n", r.stdout)
    r = run(dir, { "app", "init" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Migration Manager installed sucessfully!\n", r.stdout)
    assert.are.equal(0, run(dir, { "admin", "init" }).code)
    assert.are.equal(0, run(dir, { "test", "init" }).code)

    -- Creating migrations; applying them
    t.write(dir .. "/migrations/001.sql", [[
CREATE TABLE page (id_page serial PRIMARY KEY, crawled timestamptz, url text NOT NULL, type text,
  title text, description text, breadcrumbs text);
]])
    t.write(dir .. "/migrations/002.sql", "CREATE SCHEMA test;\n")
    r = run(dir, { "migrate", "migrations/" })
    assert.are.equal(0, r.code, r.stderr)
    t.write(dir .. "/migrations/003.sql", [[
CREATE TABLE test.some_page (id_page serial PRIMARY KEY, crawled timestamptz, url text NOT NULL, type text,
  title text, description text, breadcrumbs text);
]])
    r = run(dir, { "check", "migrations/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal([[
Checking 001.sql... already applied
Checking 002.sql... already applied
Checking 003.sql... new migration
]], r.stdout)
    r = run(dir, { "migrate", "migrations/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal([[
Executing 001.sql... skipping, already applied
Executing 002.sql... skipping, already applied
Executing 003.sql... success
]], r.stdout)
    assert.are.equal("", r.stderr)

    -- "use [db] database" / "use [db_app] database"
    r = run(dir, { "list" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^" .. STAMP .. "\t001%.sql\n" .. STAMP .. "\t002%.sql\n" .. STAMP .. "\t003%.sql\n$",
      r.stdout)
    t.write(dir .. "/app_migrations/001_schema.sql", "CREATE TABLE app_user (id serial PRIMARY KEY);\n")
    r = run(dir, { "app", "migrate", "app_migrations" })
    assert.are.equal("Executing 001_schema.sql... success\n", r.stdout)
    r = run(dir, { "app", "list" })
    assert.matches("^" .. STAMP .. "\t001_schema%.sql\n$", r.stdout)

    -- Generating DTOs
    r = run(dir, { "dto", "page", "page.py" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("DTO written to file page.py\n", r.stdout)
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='page', pk='id_page')
class PageRecord:
    id = 'id_page'
    crawled = 'crawled'
    url = 'url'
    type = 'type'
    title = 'title'
    description = 'description'
    breadcrumbs = 'breadcrumbs'
]], t.read(dir .. "/page.py"))
    -- the seed writes page.py a second time: we refuse to overwrite without --force
    r = run(dir, { "dto", "test.some_page", "page.py" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : Output file already exists\n  hint: pass --force to overwrite page.py\n",
      r.stderr)
    r = run(dir, { "dto", "test.some_page", "page.py", "--force" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("DTO written to file page.py\n", r.stdout)
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='some_page', schema='test', pk='id_page')
class SomePageRecord:
    id = 'id_page'
    crawled = 'crawled'
    url = 'url'
    type = 'type'
    title = 'title'
    description = 'description'
    breadcrumbs = 'breadcrumbs'
]], t.read(dir .. "/page.py"))

    -- Flattening migrations
    r = run(dir, { "flatten", "schema.sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Flattening all migrations to schema.sql... success\n", r.stdout)
    r = run(dir, { "list" })
    assert.matches("^" .. STAMP .. "\tschema%.sql\n$", r.stdout)
    r = run(dir, { "app", "list" })
    assert.matches("^" .. STAMP .. "\t001_schema%.sql\n$", r.stdout)
  end)

  it("applies the example project of examples/rickdb (SQLite)", function()
    local dir = t.tmpdir("seedex")
    t.mkdir_p(dir .. "/rickdb")
    t.mkdir_p(dir .. "/focus")
    for _, f in ipairs { "rickdb.toml", "migrations/001_create_users.sql", "migrations/002_create_page.sql",
      "migrations/003_page_view.sql" } do
      t.write(dir .. "/rickdb/" .. f, t.read(t.top .. "/examples/rickdb/" .. f))
    end
    local wd = dir .. "/rickdb"
    assert.are.equal("Migration Manager installed sucessfully!\n", run(wd, { "init" }).stdout)
    local r = run(wd, { "migrate", "migrations/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001_create_users.sql... success\nExecuting 002_create_page.sql... success\n"
      .. "Executing 003_page_view.sql... success\n", r.stdout)
    r = run(wd, { "dto", "page", "page.py" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal([[
from rick_db import fieldmapper


@fieldmapper(tablename='page', pk='id_page')
class PageRecord:
    id = 'id_page'
    url = 'url'
    title = 'title'
    select = 'select'
]], t.read(wd .. "/page.py"))
    r = run(wd, { "dto", "page_titles", "titles.py" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("@fieldmapper%(tablename='page_titles'%)\nclass PageTitlesRecord:\n", t.read(wd
      .. "/titles.py"))
    assert.is_truthy(t.read(dir .. "/focus/rickdb-example.db"))
  end)
end)
