-- Where the database comes from (dbtool.db.resolve), end to end with the binaries and real
-- databases: DATABASE_URL; the documented order of -u and the URL variables for `database`
-- (PGURL first) and `migrator` (DB_URL first); libpq's own environment (PGHOST, PGPORT,
-- PGDATABASE), a service file (PGSERVICE + PGSERVICEFILE) and a password file (.pgpass via
-- PGPASSFILE, with real password authentication); the message listing the order.
local t = require "testutil"
local d = require "dbproject"

local function has_text(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function marker_db(tag)
  local url, name = t.fresh_db(tag)
  return { url = url, name = name }
end

-- the database a command reached: `migrator init` installs hectic.migration there
local function installed(db)
  return d.value(db.url, "SELECT to_regclass('hectic.migration') IS NOT NULL") == true
end

local function migrator(dir, extra, ...)
  local e = d.env(dir, extra)
  return t.run { argv = { "migrator", ... }, env = e, cwd = dir }
end

local function sql_marker(dir, extra, table_name)
  return d.database(dir, { "sql", "-c", "CREATE TABLE " .. table_name
    .. " (x int) INHERITS (hectic.created_at)" }, extra)
end

describe("where the database comes from", function()
  it("DATABASE_URL, after PGURL and DB_URL (database) or DB_URL and PGURL (migrator)", function()
    local dir = d.project({}, "src")
    local a, b, c = marker_db("srca"), marker_db("srcb"), marker_db("srcc")
    -- DATABASE_URL alone
    local r = migrator(dir, { DATABASE_URL = c.url }, "init")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(c))
    assert.is_false(installed(a))
    -- migrator: DB_URL wins over PGURL and DATABASE_URL; PGURL over DATABASE_URL
    r = migrator(dir, { DB_URL = a.url, PGURL = b.url, DATABASE_URL = c.url }, "init")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(a))
    assert.is_false(installed(b))
    r = migrator(dir, { PGURL = b.url, DATABASE_URL = c.url }, "init")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(b))
    -- database: PGURL wins over DB_URL, DB_URL over DATABASE_URL, -u over all
    r = sql_marker(dir, { PGURL = a.url, DB_URL = b.url, DATABASE_URL = c.url }, "via_pgurl")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(a.url, "via_pgurl"))
    r = sql_marker(dir, { DB_URL = b.url, DATABASE_URL = c.url }, "via_dburl")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(b.url, "via_dburl"))
    r = sql_marker(dir, { DATABASE_URL = c.url }, "via_database_url")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(c.url, "via_database_url"))
    assert.is_false(d.has(a.url, "via_database_url"))
    r = d.database(dir, { "-u", b.url, "sql", "-c",
      "CREATE TABLE via_u (x int) INHERITS (hectic.created_at)" }, { PGURL = a.url })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(b.url, "via_u"))
    -- `database migrator`: DB_URL first, as migrator
    local e = marker_db("srce")
    r = d.database(dir, { "migrator", "init" }, { PGURL = a.url, DATABASE_URL = e.url })
    assert.are.equal(0, r.code, r.stderr)
    r = d.database(dir, { "migrator", "init" }, { DATABASE_URL = e.url })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(e))
  end)

  it("libpq's environment: PGHOST/PGPORT/PGDATABASE, a service file, a password file", function()
    local c = t.cluster()
    local dir = d.project({}, "srclibpq")
    local db1 = marker_db("srcenv")
    local r = migrator(dir, { PGHOST = c.host, PGPORT = tostring(c.port), PGDATABASE = db1.name }, "init")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(db1))
    r = sql_marker(dir, { PGHOST = c.host, PGPORT = tostring(c.port), PGDATABASE = db1.name }, "via_pgenv")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(db1.url, "via_pgenv"))
    -- a service file
    local db2 = marker_db("srcsvc")
    t.write(dir .. "/services.conf", string.format("[other]\nhost=/nonexistent\n\n[spec]\nhost=%s\nport=%d\n"
      .. "dbname=%s\n", c.host, c.port, db2.name))
    r = migrator(dir, { PGSERVICEFILE = dir .. "/services.conf", PGSERVICE = "spec" }, "init")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(installed(db2))
    -- a password file, with real password authentication for this role
    local hba = c.dir .. "/data/pg_hba.conf"
    local old = t.read(hba)
    if not old:find("src_pw", 1, true) then
      t.write(hba, "local all src_pw scram-sha-256\n" .. old)
      local admin <close> = t.connect()
      admin:exec("CREATE ROLE src_pw LOGIN PASSWORD 'pa:ss w0rd'")
      admin:exec("SELECT pg_reload_conf()")
    end
    local db3 = marker_db("srcpw")
    do
      local admin <close> = t.connect()
      admin:exec('ALTER DATABASE "' .. db3.name .. '" OWNER TO src_pw')
    end
    local base = { PGHOST = c.host, PGPORT = tostring(c.port), PGDATABASE = db3.name, PGUSER = "src_pw",
      PGPASSFILE = dir .. "/pgpass" }
    t.write(dir .. "/pgpass", "*:*:*:src_pw:wrong\n")
    os.execute("chmod 600 " .. dir .. "/pgpass")
    -- the reload is asynchronous: wait until the password is really asked for
    assert.is_true(d.wait_for(function()
      return migrator(dir, base, "status").stderr:find("password authentication failed", 1, true) ~= nil
    end, 30))
    t.write(dir .. "/pgpass", "*:*:*:src_pw:pa\\:ss w0rd\n")
    r = migrator(dir, base, "status")
    assert.are.equal(0, r.code, r.stderr)
    has_text(r.stdout, "hectic.migration is not installed")
    r = d.database(dir, { "sql", "-c", "CREATE TABLE via_pgpass (x int)" }, base)
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(db3.url, "via_pgpass"))
    assert.are.equal("src_pw", d.value(db3.url,
      "SELECT tableowner::text FROM pg_tables WHERE tablename = 'via_pgpass'"))
    assert.is_nil((r.stdout .. r.stderr):find("w0rd", 1, true))
  end)

  it("without any, says where it looked (exit 3)", function()
    local dir = d.project({}, "srcnone")
    local r = migrator(dir, {}, "status")
    assert.are.equal(3, r.code)
    assert.matches("no database URL: pass --db-url URL or set DB_URL (looked at --db-url, DB_URL, PGURL, "
      .. "DATABASE_URL, libpq's environment (PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGSERVICE))",
      r.stderr, 1, true)
    r = d.database(dir, { "sql", "-c", "SELECT 1" })
    assert.are.equal(3, r.code)
    assert.matches("looked at -u, PGURL, DB_URL, DATABASE_URL, the running local cluster (PG_WORKING_DIR), "
      .. "libpq's environment", r.stderr, 1, true)
  end)
end)
