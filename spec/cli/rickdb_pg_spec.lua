-- The `rickdb` binary end to end on PostgreSQL (a real cluster from testutil): every
-- command and message, several databases of both engines in one configuration, passfiles
-- with real password authentication, the advisory lock, atomic files, the no-transaction
-- cases, dto output compared with expected files, and databases rick_db itself set up.
local t = require "testutil"
local proc = require "dbtool.core.proc"

local ENV = { RICKDB_CONFIG = false, NO_COLOR = false, DB_TOOL_TTY = false, HECTIC_LOG = false,
  DATABASE_DIR = false, LOCAL_DIR = false, PGPASSWORD = false, PGPASSFILE = false, PGHOST = false,
  PGPORT = false, PGDATABASE = false, PGUSER = false }

local function run(dir, args, env)
  local e = {}
  for k, v in pairs(ENV) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  local argv = { "rickdb" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return t.run { argv = argv, cwd = dir, env = e }
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function rows(url, sql)
  local c <close> = t.connect(url)
  local r = c:exec(sql)
  local out = {}
  for i = 1, r.n do out[i] = r[i] end
  return out
end

--- A [key] section for database `dbname` of the shared cluster.
local function pg_section(key, dbname, extra, engine)
  local c = t.cluster()
  return string.format('[%s]\nengine = "%s"\nhost = "%s"\nport = %d\n%s\n%s\n', key, engine or "pgsql",
    c.host, c.port, dbname, extra or "")
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

describe("rickdb (CLI, PostgreSQL)", function()
  it("runs every command on PostgreSQL and SQLite databases of one configuration", function()
    local url, name = t.fresh_db("rk")
    local url2, name2 = t.fresh_db("rkapp")
    local dir = t.tmpdir("rkpg")
    t.write(dir .. "/rickdb.toml", "# three databases, two engines\n"
      .. pg_section("db", 'dbname = "' .. name .. '"', "sslmode = \"disable\"\nconnect_timeout = 5")
      .. pg_section("db_app", 'database = "' .. name2 .. '"', nil, "postgres")
      .. '[db_lite]\nengine = "sqlite"\ndb_file = "lite.db"\n')
    t.write(dir .. "/m/001.sql", "CREATE TABLE users (id_user serial PRIMARY KEY, name text);\n")
    t.write(dir .. "/m/002.sql", "CREATE TABLE page (id_page serial PRIMARY KEY, title text);\n"
      .. "INSERT INTO page (title) VALUES ('a;b');\n")
    t.write(dir .. "/m/003.sql", "\n   \n")

    local r = run(dir, { "list" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : Migration Manager is not installed\n  hint: run `rickdb init` first\n",
      r.stderr)
    r = run(dir, { "init" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Migration Manager installed sucessfully!\n", r.stdout)
    r = run(dir, { "init" })
    assert.are.equal(0, r.code)
    assert.are.equal("Warning : Migration Manager is already installed\n", r.stdout)
    -- _migration exactly as rick_db creates it
    local cols = rows(url, [[SELECT column_name, data_type, is_nullable, column_default
      FROM information_schema.columns WHERE table_name = '_migration' ORDER BY ordinal_position]])
    assert.are.same({ "id_migration", "integer", "NO" }, { cols[1].column_name, cols[1].data_type,
      cols[1].is_nullable })
    assert.matches("^nextval%('_migration_id_migration_seq'", cols[1].column_default)
    assert.are.same({ "applied", "timestamp with time zone", "YES" }, { cols[2].column_name,
      cols[2].data_type,
      cols[2].is_nullable })
    assert.are.same({ "name", "text", "NO" }, { cols[3].column_name, cols[3].data_type, cols[3].is_nullable })
    assert.are.equal(3, #cols)

    -- the argument errors, on this engine too
    local errs = {
      { { "check" }, "Error : missing path to migration files\n" },
      { { "migrate" }, "Error : missing path to migration files\n" },
      { { "check", "rickdb.toml" }, "Error : migration path must be a directory\n" },
      { { "migrate", "nowhere" }, "Error : migration path must be a directory\n" },
      { { "flatten" }, "Error : missing name for flattened migration to be inserted\n" },
      { { "dto" }, "Error : Missing table name\n" },
      { { "dto", "page" }, "Error : Missing output file\n" },
      { { "dto", "nope", "nope.py" }, "Error : Database object 'nope' not found\n" },
    }
    for _, c in ipairs(errs) do
      r = run(dir, c[1])
      assert.are.equal(252, r.code, table.concat(c[1], " "))
      assert.are.equal(c[2], r.stderr:match("^[^\n]*\n"), table.concat(c[1], " "))
    end
    r = run(dir, { "check", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Checking 001.sql... new migration\nChecking 002.sql... new migration\n"
      .. "Checking 003.sql... empty migration\n", r.stdout)
    r = run(dir, { "check", "m", "--exit-code" })
    assert.are.equal(1, r.code)
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr)
    assert.are.equal("Executing 001.sql... success\nExecuting 002.sql... success\n"
      .. "Executing 003.sql... skipping, empty migration\n", r.stdout)
    assert.are.equal("a;b", rows(url, "SELECT title FROM page")[1].title)
    r = run(dir, { "list" })
    local l = lines_of(r.stdout)
    assert.are.equal(2, #l)
    assert.matches("^%d%d/%d%d/%d%d%d%d %d%d:%d%d:%d%d\t001%.sql$", l[1])
    assert.matches("^%d%d/%d%d/%d%d%d%d %d%d:%d%d:%d%d\t002%.sql$", l[2])
    -- the applied day is today's (server clock, session time zone)
    local today = rows(url, "SELECT to_char(now(), 'DD/MM/YYYY') AS d")[1].d
    assert.are.equal(today, l[1]:sub(1, 10))
    r = run(dir, { "list", "--json" })
    assert.matches('^{"database":"db","engine":"postgresql","migrations":%[{"applied":"[^"]+",'
      .. '"checksum":"%x+",'
      .. '"id":1,"name":"001%.sql"}', r.stdout)

    -- a failing file: nothing of it stays, the run stops, earlier files stay
    t.write(dir .. "/m/004.sql", "CREATE TABLE half (x int);\nINSERT INTO nope VALUES (1);\n")
    t.write(dir .. "/m/005.sql", "CREATE TABLE later (x int);\n")
    r = run(dir, { "migrate", "m" })
    assert.are.equal(252, r.code)
    assert.are.equal("Executing 001.sql... skipping, already applied\n"
      .. "Executing 002.sql... skipping, already applied\n"
      .. "Executing 003.sql... skipping, empty migration\nExecuting 004.sql... error\n", r.stdout)
    assert.matches('^Error : relation "nope" does not exist\n  at m/004%.sql:2:13\n', r.stderr)
    has(r.stderr, "  sqlstate: 42P01\n")
    has(r.stderr, "INSERT INTO nope VALUES (1);")
    assert.are.equal(0, #rows(url, "SELECT 1 FROM pg_tables WHERE tablename IN ('half', 'later')"))
    assert.are.equal(0, #rows(url, "SELECT 1 FROM _migration WHERE name >= '004.sql'"))
    os.remove(dir .. "/m/004.sql")
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    has(r.stdout, "Executing 005.sql... success\n")

    -- the other databases of the file are separate
    r = run(dir, { "app", "check", "m" })
    assert.are.equal(252, r.code)
    assert.are.equal(0, run(dir, { "app", "init" }).code)
    r = run(dir, { "app", "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... success\nExecuting 002.sql... success\n"
      .. "Executing 003.sql... skipping, empty migration\nExecuting 005.sql... success\n", r.stdout)
    assert.are.equal(3, #rows(url2, "SELECT * FROM _migration"))
    assert.are.equal(0, run(dir, { "lite", "init" }).code)
    r = run(dir, { "lite", "list" })
    assert.are.equal("", r.stdout)

    -- flatten: one transaction; rick_db's messages
    r = run(dir, { "flatten" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : missing name for flattened migration to be inserted\n", r.stderr)
    r = run(dir, { "flatten", "schema.sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Flattening all migrations to schema.sql... success\n", r.stdout)
    local all = rows(url, "SELECT name FROM _migration")
    assert.are.same({ "schema.sql" }, { all[1].name })
    assert.are.equal(1, #all)
    r = run(dir, { "list" })
    assert.matches("^%d%d/%d%d/%d%d%d%d %d%d:%d%d:%d%d\tschema%.sql\n$", r.stdout)
    assert.are.equal(3, #rows(url2, "SELECT * FROM _migration"))
    r = run(dir, { "lite", "flatten", "x.sql" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : no migrations inserted yet, cannot flatten\n", r.stderr)
  end)

  it("takes an advisory lock: a concurrent run waits, gives up with a clear message, never applies twice",
    function()
      local url, name = t.fresh_db("rklock")
      local dir = t.tmpdir("rklock")
      t.write(dir .. "/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"'))
      t.write(dir .. "/m/001.sql", "SELECT pg_sleep(0.6);\nCREATE TABLE a (x int);\n")
      t.write(dir .. "/m/002.sql", "CREATE TABLE b (x int);\n")
      assert.are.equal(0, run(dir, { "init" }).code)
      -- someone holds rickdb's lock
      local store_pg = require "dbtool.migrate.store_pg"
      do
        local holder <close> = t.connect(url)
        holder:exec("SELECT pg_advisory_lock($1::int4, $2::int4)", store_pg.LOCK_CLASS, store_pg.LOCK_RICKDB)
        local r = run(dir, { "migrate", "m", "--lock-wait", "0.3" })
        assert.are.equal(252, r.code)
        assert.are.equal("", r.stdout)
        assert.matches("^Error : another migration is running on this database "
          .. "%(lock held by backend pid %d+",
          r.stderr)
        assert.are.equal(0, #rows(url, "SELECT * FROM _migration"))
        r = run(dir, { "flatten", "x.sql", "--lock-wait", "0.2" })
        assert.are.equal(252, r.code)
        has(r.stderr, "another migration is running")
      end
      -- two runs at once: each file applied once
      local outs = {}
      local procs = {}
      for i = 1, 2 do
        outs[i] = dir .. "/out" .. i
        local env = require("posix.stdlib").getenv()
        env.RICKDB_CONFIG = nil
        procs[i] = assert(proc.spawn { argv = { t.build .. "/rickdb", "migrate", "m" }, cwd = dir, env = env,
          stdout = { path = t.watch_output(outs[i]) },
          stderr = { path = t.watch_output(outs[i] .. ".err") } })
      end
      for i = 1, 2 do
        local how, code = procs[i]:wait(60)
        assert.are.equal("exited", how)
        assert.are.equal(0, code, t.read(outs[i] .. ".err"))
      end
      local both = t.read(outs[1]) .. t.read(outs[2])
      local _, n1 = both:gsub("Executing 001%.sql%.%.%. success", "")
      local _, n2 = both:gsub("Executing 002%.sql%.%.%. success", "")
      assert.are.equal(1, n1, both)
      assert.are.equal(1, n2, both)
      assert.are.same({ "001.sql", "002.sql" }, (function()
        local names = {}
        for i, row in ipairs(rows(url,
          "SELECT name FROM _migration ORDER BY name")) do names[i] = row.name end
        return names
      end)())
    end)

  it("reads the password from a passfile relative to the configuration, over password", function()
    local c = t.cluster()
    local hba = c.dir .. "/data/pg_hba.conf"
    local old = t.read(hba)
    if not old:find("rick_pw", 1, true) then
      t.write(hba, "local all rick_pw scram-sha-256\n" .. old)
      local admin <close> = t.connect()
      admin:exec("SELECT pg_reload_conf()")
      admin:exec("CREATE ROLE rick_pw LOGIN PASSWORD 'pw: s3cret'")
    end
    local _, name = t.fresh_db("rkpw")
    do
      local admin <close> = t.connect()
      admin:exec('ALTER DATABASE "' .. name .. '" OWNER TO rick_pw')
    end
    local dir = t.tmpdir("rkpw")
    t.write(dir .. "/conf/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"',
      'user = "rick_pw"\npassword = "wrong"\npassfile = "secrets/pw"'))
    t.write(dir .. "/conf/secrets/pw", "pw: s3cret\nnot this line\n")
    os.execute("chmod 600 " .. dir .. "/conf/secrets/pw")
    t.mkdir_p(dir .. "/elsewhere")
    -- the reload is asynchronous: wait until the password is really asked for
    local r
    for _ = 1, 50 do
      t.write(dir .. "/conf/secrets/bad", "nope\n")
      os.execute("chmod 600 " .. dir .. "/conf/secrets/bad")
      t.write(dir .. "/conf/bad.toml", pg_section("db", 'dbname = "' .. name .. '"',
        'user = "rick_pw"\npassfile = "secrets/bad"'))
      r = run(dir .. "/elsewhere", { "--config", "../conf/bad.toml", "list" })
      if r.code == 253 then break end
      require("dbtool.core").sleep(0.1)
    end
    assert.are.equal(253, r.code)
    assert.matches('^Error: .*password authentication failed for user "rick_pw"', r.stderr)
    r = run(dir .. "/elsewhere", { "--config", "../conf/rickdb.toml", "init" }, { HECTIC_LOG = "debug" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Migration Manager installed sucessfully!\n", r.stdout)
    assert.is_nil(r.stderr:find("s3cret", 1, true))
    assert.is_nil(r.stderr:find("Warning", 1, true))
    -- RICKDB_CONFIG works the same way; a readable passfile is warned about
    os.execute("chmod 644 " .. dir .. "/conf/secrets/pw")
    r = run(dir .. "/elsewhere", { "list" }, { RICKDB_CONFIG = dir .. "/conf/rickdb.toml" })
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "Warning : passfile '" .. dir .. "/conf/secrets/pw' has group or world access; permissions "
      .. "should be u=rw (0600) or less")
    -- a missing passfile: rick_db's message, exit 255
    os.remove(dir .. "/conf/secrets/pw")
    r = run(dir, { "--config", "conf/rickdb.toml", "list" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error : could not open passfile 'conf/secrets/pw'")
  end)

  it("reports init failures (252), and migrates with a role that may not create tables", function()
    local url, name = t.fresh_db("rklim")
    do
      local admin <close> = t.connect(url)
      admin:exec([[DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rick_lim') THEN
          CREATE ROLE rick_lim LOGIN;
        END IF;
      END $$]])
    end
    local dir = t.tmpdir("rklim")
    t.write(dir .. "/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"', 'user = "rick_lim"'))
    t.write(dir .. "/m/001.sql", "INSERT INTO t VALUES (1);\n")
    local r = run(dir, { "init" })
    assert.are.equal(252, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("^Error : permission denied for schema public\n", r.stderr)
    assert.are.equal(0, #rows(url, "SELECT 1 FROM pg_tables WHERE tablename LIKE '_migration%'"))
    do -- a DBA installed rick_db's table and gave the role what it needs
      local admin <close> = t.connect(url)
      admin:exec([[CREATE TABLE "_migration" (id_migration SERIAL NOT NULL PRIMARY KEY,
        applied TIMESTAMP WITH TIME ZONE, name TEXT NOT NULL);
        GRANT SELECT, INSERT, DELETE ON "_migration" TO rick_lim;
        GRANT USAGE ON SEQUENCE "_migration_id_migration_seq" TO rick_lim;
        CREATE TABLE t (x int); GRANT SELECT, INSERT ON t TO rick_lim]])
    end
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... success\n", r.stdout)
    has(r.stderr,
      "checksums are not kept: cannot create _migration_checksum: permission denied for schema public")
    assert.are.equal(1, #rows(url, "SELECT * FROM t"))
    assert.are.equal(1, #rows(url, "SELECT * FROM _migration"))
  end)

  it("runs CREATE INDEX CONCURRENTLY with the no-transaction marker or autocommit = true", function()
    local url, name = t.fresh_db("rkconc")
    local dir = t.tmpdir("rkconc")
    t.write(dir .. "/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"')
      .. pg_section("db_auto", 'dbname = "' .. name .. '"', "autocommit = true"))
    t.write(dir .. "/m/001.sql", "CREATE TABLE t (x int);\n")
    t.write(dir .. "/m/002.sql", "CREATE INDEX CONCURRENTLY t_x ON t (x);\n")
    assert.are.equal(0, run(dir, { "init" }).code)
    local r = run(dir, { "migrate", "m" })
    assert.are.equal(252, r.code)
    has(r.stdout, "Executing 002.sql... error\n")
    has(r.stderr, "Error : CREATE INDEX CONCURRENTLY cannot run inside a transaction block")
    r = run(dir, { "auto", "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... skipping, already applied\nExecuting 002.sql... success\n",
      r.stdout)
    assert.are.equal(1, #rows(url, "SELECT 1 FROM pg_indexes WHERE indexname = 't_x'"))
    t.write(dir .. "/m/003.sql", "-- db-tool: no-transaction\nCREATE INDEX CONCURRENTLY t_x2 ON t (x);\n")
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    has(r.stdout, "Executing 003.sql... success\n")
    assert.are.equal(3, #rows(url, "SELECT * FROM _migration"))
  end)

  it("writes DTOs matching the expected files (schema-qualified table, view, keyword columns)", function()
    local _, name = t.fresh_db("rkdto")
    local dir = t.tmpdir("rkdto")
    t.write(dir .. "/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"'))
    t.write(dir .. "/m/001.sql", [[
CREATE SCHEMA test;
CREATE TABLE page (id_page serial PRIMARY KEY, crawled timestamptz, gone int, url text NOT NULL, type text,
  title text, description text, breadcrumbs text);
ALTER TABLE page DROP COLUMN gone;
CREATE TABLE test.some_page (id_page serial PRIMARY KEY, crawled timestamptz, url text NOT NULL, type text,
  title text, description text, breadcrumbs text);
CREATE VIEW page_titles AS SELECT id_page, title FROM page;
CREATE TABLE users (id_user serial PRIMARY KEY, name text, "select" text, "class" text, "values" int,
  _secret text, "from" text);
CREATE TABLE test.pair (a int, b int, note text, PRIMARY KEY (b, a));
]])
    assert.are.equal(0, run(dir, { "init" }).code)
    local r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    local cases = { { "page", "pg_page.py" }, { "test.some_page", "pg_some_page.py" },
      { "page_titles", "pg_page_titles.py" }, { "users", "pg_users.py" }, { "test.pair", "pg_pair.py" } }
    for _, c in ipairs(cases) do
      r = run(dir, { "dto", c[1], c[2] })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("DTO written to file " .. c[2] .. "\n", r.stdout)
      assert.are.equal(t.read(t.top .. "/spec/fixtures/rickdb/" .. c[2]), t.read(dir .. "/" .. c[2]), c[1])
    end
    r = run(dir, { "dto", "some_page", "x.py" }) -- public by default, as rick_db
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : Database object 'some_page' not found\n")
    r = run(dir, { "dto", "public.page", "p2.py" })
    assert.are.equal(0, r.code)
    has(t.read(dir .. "/p2.py"), "@fieldmapper(tablename='page', schema='public', pk='id_page')\n")
    r = run(dir, { "dto", "page", "pg_page.py" })
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : Output file already exists\n")
  end)

  it("works on databases rick_db set up, and keeps them readable by it", function()
    local url, name = t.fresh_db("rkold")
    do -- what rick_db's install() and register() leave behind
      local c <close> = t.connect(url)
      c:exec("SET TimeZone = 'UTC'")
      c:exec([[CREATE TABLE "_migration" (id_migration SERIAL NOT NULL PRIMARY KEY,
        applied TIMESTAMP WITH TIME ZONE, name TEXT NOT NULL)]])
      c:exec([[INSERT INTO "_migration" (applied, name) VALUES ('2021-12-14T18:28:56.123456', '001.sql'),
        ('2021-12-15T19:32:58.5', '002.sql')]])
      c:exec("CREATE TABLE one (x int); CREATE TABLE two (x int)")
    end
    local dir = t.tmpdir("rkold")
    t.write(dir .. "/rickdb.toml", pg_section("db", 'dbname = "' .. name .. '"'))
    t.write(dir .. "/m/001.sql", "CREATE TABLE one (x int);\n")
    t.write(dir .. "/m/002.sql", "CREATE TABLE two (x int);\n")
    t.write(dir .. "/m/003.sql", "CREATE TABLE three (x int);\n")
    local r = run(dir, { "list" }, { PGTZ = "UTC" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("14/12/2021 18:28:56\t001.sql\n15/12/2021 19:32:58\t002.sql\n", r.stdout)
    r = run(dir, { "init" })
    assert.are.equal("Warning : Migration Manager is already installed\n", r.stdout)
    r = run(dir, { "check", "m" })
    assert.are.equal("Checking 001.sql... already applied\nChecking 002.sql... already applied\n"
      .. "Checking 003.sql... new migration\n", r.stdout)
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... skipping, already applied\n"
      .. "Executing 002.sql... skipping, already applied\n"
      .. "Executing 003.sql... success\n", r.stdout)
    -- what rick_db's list() reads: every row, ordered by applied
    local all = rows(url, [[SELECT id_migration, name, applied IS NOT NULL AS stamped FROM "_migration"
      ORDER BY applied]])
    assert.are.same({ "001.sql", "002.sql", "003.sql" }, { all[1].name, all[2].name, all[3].name })
    assert.is_true(all[3].stamped)
    assert.are.equal(3, all[3].id_migration)
  end)
end)
