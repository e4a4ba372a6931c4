-- `migrator migrate --json` and `rickdb migrate --json`: one JSON document on stdout (the
-- migrations run with their timings; on failure the error as data), whatever the scripts
-- print going to stderr. Parsed by PostgreSQL (jsonb).
local t = require "testutil"

local function jget(text, path)
  local c <close> = t.connect()
  return c:exec("SELECT $1::jsonb #>> $2 AS v", text, path)[1].v
end

local function names(text)
  local c <close> = t.connect()
  return c:exec("SELECT string_agg(s->>'name' || ':' || (s->>'ok'), ',') AS v "
    .. "FROM jsonb_array_elements($1::jsonb->'steps') s", text)[1].v
end

describe("--json of the migration front ends", function()
  it("migrator migrate --json: the migrations run and their timings; a failure as data (exit 4)", function()
    local url = t.fresh_db("mjson")
    local dir = t.tmpdir("mjson")
    t.write(dir .. "/migration/20260101000000-first/up.sql",
      "\\echo first says hello\n"
      .. "CREATE TABLE a (x int) INHERITS (hectic.created_at);\n")
    t.write(dir .. "/migration/20260101000000-first/down.sql", "DROP TABLE a;\n")
    t.write(dir .. "/migration/20260102000000-second/up.sql",
      "CREATE TABLE b (x int) INHERITS (hectic.created_at);\n")
    t.write(dir .. "/migration/20260102000000-second/down.sql", "DROP TABLE b;\n")
    local env = { DB_URL = url, MIGRATION_DIR = dir .. "/migration", DATABASE_DIR = false,
      LOCAL_DIR = false, NO_COLOR = "1" }
    local r = t.run { argv = { "migrator", "migrate", "up", "all", "--json" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^{.*}\n$", r.stdout)
    assert.matches("first says hello", r.stderr, 1, true)
    assert.are.equal("1", jget(r.stdout, "{schema_version}"))
    assert.are.equal("migrator migrate", jget(r.stdout, "{command}"))
    assert.are.equal("true", jget(r.stdout, "{ok}"))
    assert.are.equal("2", jget(r.stdout, "{done}"))
    assert.are.equal("20260101000000-first:true,20260102000000-second:true", names(r.stdout))
    assert.are.equal("applied", jget(r.stdout, "{steps,0,outcome}"))
    assert.are.equal("up", jget(r.stdout, "{steps,1,direction}"))
    assert.is_true(tonumber(jget(r.stdout, "{steps,0,duration_ms}")) >= 0)
    assert.are.equal("20260102000000-second", jget(r.stdout, "{plan,to}"))
    -- nothing to do
    r = t.run { argv = { "migrator", "migrate", "up", "all", "--json" }, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("0", jget(r.stdout, "{done}"))
    assert.are.equal("[]", jget(r.stdout, "{steps}"))
    -- a failing migration: exit 4, the error as data, the failing step last
    t.write(dir .. "/migration/20260103000000-third/up.sql",
      "CREATE TABLE c (x int) INHERITS (hectic.created_at);\n"
      .. "SELECT * FROM nowhere;\n")
    t.write(dir .. "/migration/20260103000000-third/down.sql", "DROP TABLE c;\n")
    r = t.run { argv = { "migrator", "migrate", "up", "--json" }, env = env }
    assert.are.equal(4, r.code)
    assert.are.equal("false", jget(r.stdout, "{ok}"))
    assert.are.equal("4", jget(r.stdout, "{exit_code}"))
    assert.are.equal("20260103000000-third:false", names(r.stdout))
    assert.are.equal("20260103000000-third", jget(r.stdout, "{error,step}"))
    -- and people still get the error on stderr
    assert.matches("nowhere", r.stderr, 1, true)
  end)

  it("rickdb migrate --json: each file run, with its outcome; an SQL error as data", function()
    local url, name = t.fresh_db("rjson")
    local dir = t.tmpdir("rjson")
    local c = t.cluster()
    t.write(dir .. "/rickdb.toml", string.format(
      '[db]\nengine = "pgsql"\nhost = "%s"\nport = %d\ndbname = "%s"\n', c.host, c.port, name))
    t.write(dir .. "/m/001.sql", "CREATE TABLE a (x int);\n")
    t.write(dir .. "/m/002.sql", "")
    local env = { RICKDB_CONFIG = false, NO_COLOR = "1", DATABASE_DIR = false, LOCAL_DIR = false }
    assert.are.equal(0, t.run { argv = { "rickdb", "init" }, cwd = dir, env = env }.code)
    local r = t.run { argv = { "rickdb", "migrate", "m", "--json" }, cwd = dir, env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^{.*}\n$", r.stdout)
    assert.matches("Executing 001.sql... success", r.stderr, 1, true)
    assert.are.equal("rickdb migrate", jget(r.stdout, "{command}"))
    assert.are.equal("true", jget(r.stdout, "{ok}"))
    assert.are.equal("001.sql:true,002.sql:true", names(r.stdout))
    assert.are.equal("empty", jget(r.stdout, "{steps,1,outcome}"))
    t.write(dir .. "/m/003.sql", "CREATE TABLE b (x int);\nINSERT INTO b VALUES ('x');\n")
    r = t.run { argv = { "rickdb", "migrate", "m", "--json" }, cwd = dir, env = env }
    assert.are.equal(252, r.code)
    assert.are.equal("false", jget(r.stdout, "{ok}"))
    assert.are.equal("252", jget(r.stdout, "{exit_code}"))
    assert.are.equal("22P02", jget(r.stdout, "{error,sqlstate}"))
    assert.are.equal("2", jget(r.stdout, "{error,line}"))
    assert.matches("003.sql$", jget(r.stdout, "{error,file}"))
    assert.are.equal("003.sql", jget(r.stdout, "{error,step}"))
    local conn <close> = t.connect(url)
    assert.are.equal(0, conn:exec("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'b'")[1].n)
  end)
end)
