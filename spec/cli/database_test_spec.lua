-- `database test` end to end: $DATABASE_DIR/test/test.sql inside BEGIN … ROLLBACK on a fresh
-- database of the shared cluster; plain SQL tests, --tap, TAP returned by the queries (a small
-- pgTAP stand-in written in SQL, since pgTAP is not installed here), and the error paths.
local t = require "testutil"
local d = require "dbproject"

-- pgTAP's reporting functions, enough of them to write tests the way pgTAP users do
-- (created inside the test transaction, so they are gone afterwards)
local FAKE_PGTAP = [[
CREATE SCHEMA tap;
SET search_path = tap, public;
CREATE TABLE tap.counter (n int);
INSERT INTO tap.counter VALUES (0);
CREATE FUNCTION tap.plan(int) RETURNS text LANGUAGE sql AS $$ SELECT '1..' || $1 $$;
CREATE FUNCTION tap.ok(bool, text) RETURNS text LANGUAGE sql AS $$
  UPDATE tap.counter SET n = n + 1
  RETURNING CASE WHEN $1 THEN '' ELSE 'not ' END || 'ok ' || n || ' - ' || $2
    || CASE WHEN $1 THEN '' ELSE E'\n# Failed test ' || n || ': "' || $2 || '"' END
$$;
CREATE FUNCTION tap.finish() RETURNS SETOF text LANGUAGE sql AS $$ SELECT NULL::text WHERE false $$;
]]

local function project(test_sql)
  return d.project { ["db/test/test.sql"] = test_sql }
end

describe("database test", function()
  it("passes a plain SQL test file and keeps nothing it did", function()
    local url = t.fresh_db("test")
    d.exec(url, "CREATE TABLE counter (n int); INSERT INTO counter VALUES (1)")
    local dir = project [[
-- plain assertions
CREATE TABLE made_by_test (x int);
UPDATE counter SET n = n + 41;
DO $$ BEGIN ASSERT (SELECT n FROM counter) = 42, 'counter moved'; END $$;
\echo checked
]]
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("db test> running tests from " .. dir .. "/db/test/test.sql", r.stderr, 1, true)
    assert.matches("db test> all tests passed", r.stderr, 1, true)
    assert.are.equal("checked\n", r.stdout)
    assert.is_false(d.has(url, "public.made_by_test"))
    assert.are.equal(1, d.value(url, "SELECT n FROM counter"))
  end)

  it("fails (exit 1) with the failing statement's file:line, and still keeps nothing", function()
    local url = t.fresh_db("test")
    local dir = project [[
CREATE TABLE made_by_test (x int);
DO $$ BEGIN ASSERT 1 = 2, 'one is not two'; END $$;
CREATE TABLE never (x int);
]]
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("test.sql:2:1: one is not two", r.stderr, 1, true)
    assert.matches("db test> tests failed", r.stderr, 1, true)
    assert.is_false(d.has(url, "public.made_by_test"))
    assert.is_false(d.has(url, "public.never"))
  end)

  it("keeps a test file's own BEGIN … COMMIT / ROLLBACK inside the test transaction", function()
    local url = t.fresh_db("test")
    local dir = project [[
BEGIN;
CREATE TABLE committed_by_file (x int);
COMMIT;
CREATE TABLE after_commit (x int);
START TRANSACTION;
CREATE TABLE rolled_back (x int);
ROLLBACK;
DO $$ BEGIN ASSERT to_regclass('rolled_back') IS NULL, 'the file''s ROLLBACK undid its part'; END $$;
DO $$ BEGIN ASSERT to_regclass('committed_by_file') IS NOT NULL, 'the file''s COMMIT kept its part'; END $$;
-- ON_ERROR_STOP off: an error inside the file's transaction, then its ROLLBACK recovers
\set ON_ERROR_STOP off
BEGIN;
SELECT 1/0;
ROLLBACK;
\set ON_ERROR_STOP on
CREATE TABLE last_one (x int);
COMMIT;
]]
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("COMMIT without BEGIN ignored", r.stderr, 1, true)
    for _, name in ipairs { "committed_by_file", "after_commit", "rolled_back", "last_one" } do
      assert.is_false(d.has(url, "public." .. name), name)
    end
  end)

  it("--tap prints one test point per statement, and the failure with its message", function()
    local url = t.fresh_db("test")
    local dir = project "SELECT 1;\nCREATE TABLE x (a int);\n"
    local r = d.database(dir, { "test", "--tap" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    local f = dir .. "/db/test/test.sql"
    assert.are.equal("ok 1 - " .. f .. ":1 SELECT\nok 2 - " .. f .. ":2 CREATE\n1..2\n", r.stdout)
    t.write(f, "SELECT 1;\nSELECT * FROM nowhere;\nSELECT 2;\n")
    r = d.database(dir, { "test", "--tap" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.are.equal("ok 1 - " .. f .. ":1 SELECT\nnot ok 2 - " .. f .. ":2:15\n"
      .. "# relation \"nowhere\" does not exist (SQLSTATE 42P01)\n1..2\n", r.stdout)
  end)

  it("prints and judges TAP returned by the tests (pgTAP style)", function()
    local url = t.fresh_db("test")
    local dir = project(FAKE_PGTAP .. [[
SELECT plan(2);
SELECT ok(1 + 1 = 2, 'addition');
SELECT ok(true, 'truth');
SELECT * FROM finish();
]])
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1..2\nok 1 - addition\nok 2 - truth\n", r.stdout)
    assert.matches("all tests passed", r.stderr, 1, true)
    assert.is_false(d.value(url, "SELECT count(*) > 0 FROM pg_namespace WHERE nspname = 'tap'"))
    -- a failing assertion fails the run; its diagnostics are printed
    t.write(dir .. "/db/test/test.sql", FAKE_PGTAP .. [[
SELECT plan(2);
SELECT ok(1 + 1 = 3, 'bad addition');
SELECT ok(true, 'truth');
]])
    r = d.database(dir, { "test", "--tap" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.are.equal("1..2\nnot ok 1 - bad addition\n# Failed test 1: \"bad addition\"\nok 2 - truth\n",
      r.stdout)
    assert.matches("1 of 2 tests failed", r.stderr, 1, true)
    assert.matches("tests failed", r.stderr, 1, true)
    -- a plan that is not met
    t.write(dir .. "/db/test/test.sql", FAKE_PGTAP .. "SELECT plan(3);\nSELECT ok(true, 'only one');\n")
    r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("planned 3 tests but ran 1", r.stderr, 1, true)
  end)

  it("reports a missing test file (exit 1), arguments (exit 9), and runs on DATABASE_DIR", function()
    local url = t.fresh_db("test")
    local dir = d.project {}
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("test file not found: " .. dir .. "/db/test/test.sql", r.stderr, 1, true)
    t.write(dir .. "/other/test/test.sql", "\\echo other dir\n")
    r = d.database(dir, { "test" }, { PGURL = url, DATABASE_DIR = dir .. "/other" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("other dir\n", r.stdout)
    r = d.database(dir, { "test", "--wat" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("test argument --wat does not exist", r.stderr, 1, true)
    r = d.database(dir, { "test", "more" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("test subcommand more does not exist", r.stderr, 1, true)
  end)
end)
