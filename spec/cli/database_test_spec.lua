-- luacheck: no max line length
-- `database test` end to end: test files inside BEGIN … ROLLBACK on a fresh database of the
-- shared cluster; plain SQL tests, pgTAP (the real extension, installed by the test setup),
-- directories of files, --tap read by `prove`, --junit checked by xmllint, --jobs with the
-- same verdicts, and the error paths.
local t = require "testutil"
local d = require "dbproject"

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
    assert.are.equal("TAP version 13\nok 1 - " .. f .. ":1 SELECT\nok 2 - " .. f .. ":2 CREATE\n1..2\n", r.stdout)
    t.write(f, "SELECT 1;\nSELECT * FROM nowhere;\nSELECT 2;\n")
    r = d.database(dir, { "test", "--tap" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.are.equal("TAP version 13\nok 1 - " .. f .. ":1 SELECT\nnot ok 2 - " .. f .. ":2:15\n"
      .. "  ---\n  message: \"relation \\\"nowhere\\\" does not exist (SQLSTATE 42P01)\"\n  severity: fail\n"
      .. "  at:\n    file: " .. f .. "\n    line: 2\n    column: 15\n  sqlstate: 42P01\n  ...\n"
      .. "# relation \"nowhere\" does not exist (SQLSTATE 42P01)\n1..2\n", r.stdout)
  end)

  it("prints and judges pgTAP's output", function()
    local url = t.fresh_db("test")
    local dir = project [[
CREATE EXTENSION pgtap;
SELECT plan(2);
SELECT ok(1 + 1 = 2, 'addition');
SELECT is(2 * 2, 4, 'multiplication');
SELECT * FROM finish();
]]
    local r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1..2\nok 1 - addition\nok 2 - multiplication\n", r.stdout)
    assert.matches("all tests passed", r.stderr, 1, true)
    assert.is_false(d.value(url, "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'pgtap'"))
    -- a failing assertion fails the run; its diagnostics are printed; TODO and SKIP do not fail
    t.write(dir .. "/db/test/test.sql", [[
CREATE EXTENSION pgtap;
SELECT plan(4);
SELECT is(1 + 1, 3, 'bad addition');
SELECT ok(true, 'truth');
SELECT todo('later', 1);
SELECT ok(false, 'not yet');
SELECT skip('not here', 1);
]])
    r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.are.equal("1..4\nnot ok 1 - bad addition\n# Failed test 1: \"bad addition\"\n#         have: 2\n"
      .. "#         want: 3\nok 2 - truth\nnot ok 3 - not yet # TODO later\n# Failed (TODO) test 3: \"not yet\"\n"
      .. "ok 4 # SKIP not here\n", r.stdout)
    assert.matches("1 of 4 tests failed", r.stderr, 1, true)
    assert.matches("tests failed", r.stderr, 1, true)
    -- TAP 13: pgTAP's points renumbered, a YAML block for the failure with its file and line
    r = d.database(dir, { "test", "--tap" }, { PGURL = url })
    assert.are.equal(1, r.code)
    local f = dir .. "/db/test/test.sql"
    assert.are.equal("TAP version 13\nnot ok 1 - bad addition\n  ---\n"
      .. "  message: \"Failed test 1: \\\"bad addition\\\"\"\n  severity: fail\n  at:\n    file: " .. f
      .. "\n    line: 3\n  ...\n# Failed test 1: \"bad addition\"\n#         have: 2\n#         want: 3\n"
      .. "ok 2 - truth\nnot ok 3 - not yet # TODO later\n  ---\n  message: \"Failed (TODO) test 3: \\\"not yet\\\"\"\n"
      .. "  severity: todo\n  at:\n    file: " .. f .. "\n    line: 6\n  ...\n# Failed (TODO) test 3: \"not yet\"\n"
      .. "ok 4 # SKIP not here\n1..4\n", r.stdout)
    -- a plan that is not met, no plan at all
    t.write(f, "CREATE EXTENSION pgtap;\nSELECT plan(3);\nSELECT ok(true, 'only one');\n")
    r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("planned 3 tests but ran 1", r.stderr, 1, true)
    t.write(f, "CREATE EXTENSION pgtap;\nSELECT no_plan();\nSELECT ok(true, 'one');\n")
    r = d.database(dir, { "test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("the TAP output has no plan: call plan(n) or finish() from pgTAP", r.stderr, 1, true)
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
    assert.are.equal(1, r.code)
    assert.matches("test file not found: more", r.stderr, 1, true)
    for _, bad in ipairs { "0", "two", "-1" } do
      r = d.database(dir, { "test", "-j", bad }, { PGURL = url })
      assert.are.equal(9, r.code)
      assert.matches("-j/--jobs must be a number of files at a time ≥ 1, not '" .. bad .. "'", r.stderr, 1, true)
    end
  end)

  -- a directory of tests: two pgTAP files (one failing), two plain files (one failing), a
  -- helper included with \ir that is no test itself
  local SUITE = {
    ["db/test/_setup.sql"] = "CREATE EXTENSION IF NOT EXISTS pgtap;\nCREATE TABLE item (id int PRIMARY KEY);\n",
    ["db/test/a_pgtap.sql"] = [[
\ir _setup.sql
SELECT plan(3);
INSERT INTO item VALUES (1);
SELECT ok((SELECT count(*) FROM item) = 1, 'one item');
SELECT is(2 * 2, 5, 'multiplication');
SELECT skip('not today', 1);
SELECT * FROM finish();
]],
    ["db/test/b_plain.sql"] = [[
\ir _setup.sql
INSERT INTO item VALUES (1);
\echo plain <output> & more
DO $$ BEGIN ASSERT (SELECT count(*) FROM item) = 1, 'one row'; END $$;
]],
    ["db/test/sub/c_fail.sql"] = "SELECT 1;\nSELECT * FROM nowhere;\nSELECT 2;\n",
    ["db/test/sub/d_pgtap.sql"] = [[
\ir ../_setup.sql
SELECT plan(2);
INSERT INTO item VALUES (1);
SELECT has_table('public', 'item', 'item exists');
SELECT todo('later', 1);
SELECT ok(false, 'not yet');
SELECT * FROM finish();
]],
  }

  local function xpath(file, expr)
    local r = t.run { argv = { "xmllint", "--xpath", expr, file } }
    assert.are.equal(0, r.code, r.stderr)
    return (r.stdout:gsub("\n$", ""))
  end

  it("runs a directory: each file on its own connection, in name order, helpers left out", function()
    local url = t.fresh_db("test")
    local dir = d.project(SUITE)
    local r = d.database(dir, { "test", "db/test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    local order = {}
    for name in r.stderr:gmatch("db test> running tests from (%S+)") do order[#order + 1] = name end
    assert.are.same({ "db/test/a_pgtap.sql", "db/test/b_plain.sql", "db/test/sub/c_fail.sql",
      "db/test/sub/d_pgtap.sql" }, order)
    -- every file saw an empty table: the others' rows were rolled back
    assert.matches("ok 1 - one item\n", r.stdout, 1, true)
    assert.matches("plain <output> & more\n", r.stdout, 1, true)
    assert.matches("db/test/sub/c_fail.sql:2:15: relation \"nowhere\" does not exist", r.stderr, 1, true)
    assert.matches("tests failed: 2 of 4 files (db/test/a_pgtap.sql, db/test/sub/c_fail.sql)", r.stderr, 1, true)
    assert.is_false(d.has(url, "public.item"))
    -- only the passing ones
    r = d.database(dir, { "test", "db/test/b_plain.sql", "db/test/sub/d_pgtap.sql" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("all tests passed: 2 files, 6 tests", r.stderr, 1, true)
  end)

  it("--tap is TAP that prove accepts, with prove's exit status", function()
    local url = t.fresh_db("test")
    local dir = d.project(SUITE)
    local env = d.env(dir, { PGURL = url, PATH = t.build .. ":" .. os.getenv("PATH") })
    -- prove running `database test --tap` on each file
    local r = t.run { argv = { "prove", "-e", "database test --tap", "--ext", ".sql", "db/test/b_plain.sql",
      "db/test/sub/d_pgtap.sql" }, env = env, cwd = dir }
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("All tests successful.", r.stdout, 1, true)
    assert.matches("Files=2, Tests=6", r.stdout, 1, true)
    r = t.run { argv = { "prove", "-e", "database test --tap", "--ext", ".sql", "db/test/a_pgtap.sql",
      "db/test/sub/c_fail.sql", "db/test/sub/d_pgtap.sql" }, env = env, cwd = dir }
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    assert.matches("db/test/a_pgtap.sql%s+%(Wstat: 256 %(exited 1%) Tests: 3 Failed: 1%)\n%s+Failed test:%s+2", r.stdout)
    assert.matches("db/test/sub/c_fail.sql%s+%(Wstat: 256 %(exited 1%) Tests: 2 Failed: 1%)", r.stdout)
    assert.matches("Result: FAIL", r.stdout, 1, true)
    -- the whole directory as one TAP stream
    r = d.database(dir, { "test", "--tap", "db/test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    local tapfile = t.write(t.tmpdir("tap") .. "/run.tap", r.stdout)
    assert.matches("^TAP version 13\n# db/test/a_pgtap.sql\nok 1 %- db/test/a_pgtap.sql: one item\n", r.stdout)
    assert.matches("# plain <output> & more\n", r.stdout, 1, true)
    local p = t.run { argv = { "prove", "-e", "cat", tapfile } }
    assert.are.equal(1, p.code, p.stdout .. p.stderr)
    assert.matches("Tests: 11 Failed: 2)\n  Failed tests:  2, 9\n", p.stdout, 1, true)
    -- the passing files: prove passes the stream
    r = d.database(dir, { "test", "--tap", "db/test/b_plain.sql", "db/test/sub/d_pgtap.sql" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    t.write(tapfile, r.stdout)
    p = t.run { argv = { "prove", "-e", "cat", tapfile } }
    assert.are.equal(0, p.code, p.stdout .. p.stderr)
  end)

  it("--junit writes JUnit XML: a suite per file, a case per assertion, failures with file:line", function()
    local url = t.fresh_db("test")
    local dir = d.project(SUITE)
    local report = t.tmpdir("junit") .. "/report.xml"
    local r = d.database(dir, { "test", "--junit", report, "db/test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    local lint = t.run { argv = { "xmllint", "--noout", report } }
    assert.are.equal(0, lint.code, lint.stderr)
    assert.are.equal("4", xpath(report, "count(/testsuites/testsuite)"))
    assert.are.equal("11", xpath(report, "count(//testcase)"))
    assert.are.equal('tests="11" failures="2" errors="0" skipped="2"',
      xpath(report, "/testsuites/@tests|/testsuites/@failures|/testsuites/@errors|/testsuites/@skipped")
        :gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " "))
    assert.are.equal("db/test/a_pgtap.sql db/test/b_plain.sql db/test/sub/c_fail.sql db/test/sub/d_pgtap.sql",
      (xpath(report, "/testsuites/testsuite/@name"):gsub('%s*name="([^"]*)"', " %1"):gsub("^ ", "")))
    assert.are.equal('db/test/a_pgtap.sql:5: Failed test 2: "multiplication"',
      xpath(report, "string(//testsuite[@name='db/test/a_pgtap.sql']/testcase[@name='multiplication']/failure/@message)"))
    assert.are.equal("5", xpath(report, "string(//testcase[@name='multiplication']/@line)"))
    assert.are.equal('db/test/sub/c_fail.sql:2:15: relation "nowhere" does not exist (SQLSTATE 42P01)',
      xpath(report, "string(//testsuite[@name='db/test/sub/c_fail.sql']//failure/@message)"))
    assert.are.equal("SQLSTATE 42P01", xpath(report, "string(//testsuite[@name='db/test/sub/c_fail.sql']//failure/@type)"))
    assert.are.equal("2", xpath(report, "count(//skipped)"))
    assert.are.equal("plain <output> & more\n", xpath(report, "string(//testsuite[@name='db/test/b_plain.sql']/system-out)"))
    -- a report that cannot be written: exit 1, said so
    r = d.database(dir, { "test", "--junit", dir .. "/no/such/dir/r.xml", "db/test/b_plain.sql" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("cannot write the JUnit report " .. dir .. "/no/such/dir/r.xml", r.stderr, 1, true)
  end)

  it("--jobs 4 runs files at once in clones of the database, with the same verdicts", function()
    local url, name = t.fresh_db("test")
    local dir = d.project(SUITE)
    local reports = t.tmpdir("junit")
    local serial = d.database(dir, { "test", "--tap", "--junit", reports .. "/1.xml", "db/test" }, { PGURL = url })
    local par = d.database(dir, { "test", "-j", "4", "--tap", "--junit", reports .. "/4.xml", "db/test" },
      { PGURL = url })
    assert.are.equal(1, serial.code)
    assert.are.equal(1, par.code)
    assert.are.equal(serial.stdout, par.stdout)
    local function strip(xml) return (xml:gsub(' time="[^"]*"', ""):gsub(' timestamp="[^"]*"', "")) end
    assert.are.equal(strip(t.read(reports .. "/1.xml")), strip(t.read(reports .. "/4.xml")))
    -- the clones are gone
    assert.are.equal(0, d.value(t.cluster().url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbtool_test_%'"))
    -- each file ran in a database of its own (a file sees its own database name, not the target)
    t.write(dir .. "/db/test/e_where.sql", "DO $$ BEGIN ASSERT current_database() <> '" .. name .. "', "
      .. "'ran in the target'; END $$;\n")
    t.write(dir .. "/db/test/f_where.sql", "SELECT pg_sleep(0.1);\n")
    par = d.database(dir, { "test", "--jobs", "2", "db/test/e_where.sql", "db/test/f_where.sql" }, { PGURL = url })
    assert.are.equal(0, par.code, par.stderr)
    serial = d.database(dir, { "test", "db/test/e_where.sql", "db/test/f_where.sql" }, { PGURL = url })
    assert.are.equal(1, serial.code)
    assert.matches("ran in the target", serial.stderr, 1, true)
    -- another session on the target: no clone, a clear error
    local other <close> = t.connect(url)
    assert.is_truthy(other:exec("SELECT 1"))
    par = d.database(dir, { "test", "-j", "2", "db/test" }, { PGURL = url })
    assert.are.equal(1, par.code)
    assert.matches("cannot clone the database " .. name .. " for parallel tests", par.stderr, 1, true)
    assert.matches("no other session on " .. name, par.stderr, 1, true)
  end)
  it("--jobs: Ctrl-C stops the workers and drops the clones", function()
    local url = t.fresh_db("test")
    local dir = d.project { ["db/test/a.sql"] = "SELECT pg_sleep(60);\n", ["db/test/b.sql"] = "SELECT pg_sleep(60);\n" }
    local p, _, errf = d.spawn(dir, { "test", "-j", "2", "db/test" }, { PGURL = url })
    local busy = "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'dbtool_test_%' AND query LIKE '%pg_sleep%'"
    assert.is_true(d.wait_for(function() return d.value(t.cluster().url, busy) == 2 end, 60), t.read(errf))
    -- Ctrl-C in a terminal: SIGINT to the foreground process group (workers included)
    require("posix.signal").kill(-p.pid, require("posix.signal").SIGINT)
    local how, code = p:wait()
    assert.are.same({ "exited", 130 }, { how, code })
    assert.are.equal(0, d.value(t.cluster().url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbtool_test_%'"))
    assert.are.same({}, d.processes("dbtool.testrun"))
  end)
  it("--json: one document with every file's results; success and failure shapes", function()
    local url = t.fresh_db("test")
    local dir = d.project(SUITE)
    local function jget(text, path) return d.value(t.cluster().url, "SELECT $1::jsonb #>> $2", text, path) end
    local r = d.database(dir, { "test", "--json", "db/test" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("^{.*}\n$", r.stdout)
    -- what would have gone to stdout went to stderr
    assert.matches("ok 1 - one item\n", r.stderr, 1, true)
    assert.are.equal("1", jget(r.stdout, "{schema_version}"))
    assert.are.equal("database test", jget(r.stdout, "{command}"))
    assert.are.equal("false", jget(r.stdout, "{ok}"))
    assert.are.equal("1", jget(r.stdout, "{exit_code}"))
    assert.is_nil(jget(r.stdout, "{error}"))   -- failing tests are no error
    assert.are.equal("false", jget(r.stdout, "{tests,passed}"))
    assert.are.equal("11", jget(r.stdout, "{tests,tests}"))
    assert.are.equal("2", jget(r.stdout, "{tests,failures}"))
    assert.are.equal('["db/test/a_pgtap.sql", "db/test/sub/c_fail.sql"]', jget(r.stdout, "{tests,failed_files}"))
    assert.are.equal("db/test/a_pgtap.sql", jget(r.stdout, "{tests,files,0,file}"))
    assert.are.equal("pgtap", jget(r.stdout, "{tests,files,0,kind}"))
    assert.are.equal("3", jget(r.stdout, "{tests,files,0,planned}"))
    assert.are.equal("false", jget(r.stdout, "{tests,files,0,points,1,ok}"))
    assert.are.equal("multiplication", jget(r.stdout, "{tests,files,0,points,1,description}"))
    assert.are.equal('Failed test 2: "multiplication"', jget(r.stdout, "{tests,files,0,points,1,message}"))
    assert.are.equal("5", jget(r.stdout, "{tests,files,0,points,1,line}"))
    assert.are.equal("SKIP", jget(r.stdout, "{tests,files,0,points,2,directive}"))
    assert.are.equal("plain <output> & more\n", jget(r.stdout, "{tests,files,1,output}"))
    -- the SQL error that stopped a file, as data
    assert.are.equal("42P01", jget(r.stdout, "{tests,files,2,error,sqlstate}"))
    assert.are.equal("db/test/sub/c_fail.sql", jget(r.stdout, "{tests,files,2,error,file}"))
    assert.are.equal("2", jget(r.stdout, "{tests,files,2,error,line}"))
    assert.are.equal("15", jget(r.stdout, "{tests,files,2,error,column}"))
    assert.matches('relation "nowhere" does not exist', jget(r.stdout, "{tests,files,2,error,message}"), 1, true)
    -- success
    r = d.database(dir, { "test", "--json", "db/test/b_plain.sql" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("true", jget(r.stdout, "{ok}"))
    assert.are.equal("0", jget(r.stdout, "{exit_code}"))
    assert.are.equal("true", jget(r.stdout, "{tests,passed}"))
    assert.are.equal("[]", jget(r.stdout, "{tests,failed_files}"))
    -- an error before any test ran: the error as data, and its exit code
    r = d.database(dir, { "test", "--json", "db/test/nope.sql" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.are.equal("false", jget(r.stdout, "{ok}"))
    assert.are.equal("test file not found: db/test/nope.sql", jget(r.stdout, "{error,message}"))
    assert.are.equal("1", jget(r.stdout, "{error,exit_code}"))
    r = d.database(dir, { "test", "--json", "db/test" }, { PGURL = false, PG_WORKING_DIR = dir .. "/none" })
    assert.are.equal(3, r.code)
    assert.are.equal("3", jget(r.stdout, "{exit_code}"))
    assert.matches("no database to connect to", jget(r.stdout, "{error,message}"), 1, true)
    -- --json and --tap both want stdout
    r = d.database(dir, { "test", "--json", "--tap" }, { PGURL = url })
    assert.are.equal(2, r.code)
    assert.matches("--json and --tap both write to stdout", r.stderr, 1, true)
  end)
end)
