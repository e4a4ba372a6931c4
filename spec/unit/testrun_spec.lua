-- `database test`'s pure parts: reading TAP, judging a file, writing TAP 13 and JUnit XML,
-- the transaction rewriter, which files a directory holds, worker result serialization.
local tap = require "dbtool.tap"
local junit = require "dbtool.junit"
local testrun = require "dbtool.testrun"
local t = require "testutil"

describe("dbtool.tap", function()
  it("recognises pgTAP's lines, and diagnostics once TAP has started", function()
    assert.is_true(tap.is_tap_line("ok 1 - fine"))
    assert.is_true(tap.is_tap_line("not ok 12 - broken"))
    assert.is_true(tap.is_tap_line("1..4"))
    assert.is_true(tap.is_tap_line("Bail out! no database"))
    assert.is_false(tap.is_tap_line("# diagnostics", false))
    assert.is_true(tap.is_tap_line("# diagnostics", true))
    assert.is_false(tap.is_tap_line("ok"))
    assert.is_false(tap.is_tap_line("okay 1"))
  end)

  it("parses test points with their directives, plans, diagnostics and bail-outs", function()
    assert.are.same({ kind = "point", ok = true, number = 1, description = "fine" },
      tap.parse_line("ok 1 - fine"))
    assert.are.same({ kind = "point", ok = false, number = 3, description = "c", directive = "TODO",
      reason = "later" }, tap.parse_line("not ok 3 - c # TODO later"))
    assert.are.same({ kind = "point", ok = true, number = 4, description = "d", directive = "SKIP",
      reason = "no db" }, tap.parse_line("ok 4 - d # skip no db"))
    -- pgTAP escapes '#' in descriptions
    assert.are.same({ kind = "point", ok = true, number = 5, description = "issue #7" },
      tap.parse_line("ok 5 - issue \\#7"))
    assert.are.same({ kind = "point", ok = false, number = 6, description = "" }, tap.parse_line("not ok 6"))
    assert.are.same({ kind = "plan", first = 1, last = 4 }, tap.parse_line("1..4"))
    assert.are.same({ kind = "plan", first = 1, last = 0, skip = "no pgtap" },
      tap.parse_line("1..0 # Skipped: no pgtap"))
    assert.are.same({ kind = "diag", text = "  Failed test 2" }, tap.parse_line("#   Failed test 2"))
    assert.are.same({ kind = "bail", reason = "stop" }, tap.parse_line("Bail out! stop"))
    assert.are.same({ kind = "other", text = "okay then" }, tap.parse_line("okay then"))
  end)

  it("counts failures: not ok without TODO or SKIP", function()
    local points = { { ok = true }, { ok = false }, { ok = false, directive = "TODO" },
      { ok = true, directive = "SKIP" } }
    assert.are.same({ tests = 4, failures = 1, skipped = 1, todo = 1 }, tap.counts(points))
  end)

  it("writes TAP 13 points: a YAML block for a failure, diagnostics as comments", function()
    assert.are.same({ "ok 1 - a \\# b" }, tap.point_lines({ ok = true, description = "a # b" }, 1))
    assert.are.same({ "ok 2 - s # SKIP why" },
      tap.point_lines({ ok = true, description = "s", directive = "SKIP", reason = "why" }, 2))
    assert.are.same({
      "not ok 3 - t/a.sql:4:8",
      "  ---",
      '  message: "relation \\"x\\" does not exist"',
      "  severity: fail",
      "  at:",
      "    file: t/a.sql",
      "    line: 4",
      "    column: 8",
      "  sqlstate: 42P01",
      "  ...",
      "# relation \"x\" does not exist",
    }, tap.point_lines({ ok = false, description = "t/a.sql:4:8", message = 'relation "x" does not exist',
      file = "t/a.sql", line = 4, column = 8, sqlstate = "42P01",
      diag = { 'relation "x" does not exist' } }, 3))
  end)
end)

describe("dbtool.testrun.judge", function()
  local function pts(...)
    local out = {}
    for i, ok in ipairs { ... } do out[i] = { ok = ok, description = "p" .. i } end
    return out
  end

  it("passes a pgTAP file whose plan is met and whose assertions pass", function()
    local r = testrun.judge { kind = "pgtap", file = "a.sql", plan = 2, points = pts(true, true) }
    assert.is_true(r.passed)
    assert.are.equal(2, #r.points)
  end)

  it("fails an unmet or missing plan, with a point saying so", function()
    local r = testrun.judge { kind = "pgtap", file = "a.sql", plan = 3, points = pts(true) }
    assert.is_false(r.passed)
    assert.are.equal("planned 3 tests but ran 1", r.points[2].message)
    assert.are.equal("plan", r.points[2].kind)
    r = testrun.judge { kind = "pgtap", file = "a.sql", points = pts(true) }
    assert.is_false(r.passed)
    assert.matches("has no plan", r.problem)
  end)

  it("adds the SQL error that stopped a file as a failing point (an error in a pgTAP file)", function()
    local e = { msg = "boom\nsecond line", where = "a.sql:3:1", file = "a.sql", line = 3, col = 1,
      sqlstate = "P0001" }
    local r = testrun.judge({ kind = "sql", file = "a.sql", points = pts(true) }, e)
    assert.is_false(r.passed)
    assert.are.same({ ok = false, description = "a.sql:3:1", message = "boom\nsecond line",
      sqlstate = "P0001", file = "a.sql", line = 3, column = 1, diag = { "boom", "second line" } },
      r.points[2])
    r = testrun.judge({ kind = "pgtap", file = "a.sql", plan = 1, points = pts(true) }, e)
    assert.are.equal("error", r.points[2].kind)
    assert.is_nil(r.problem)   -- the plan counts pgTAP's own points
  end)
end)

describe("dbtool.testrun.transaction_rewriter", function()
  local function rewriter()
    local warned = {}
    local l = { warn = function(_, fmt, ...) warned[#warned + 1] = fmt:format(...) end }
    local rw = testrun.transaction_rewriter(l)
    return rw, warned
  end

  it("turns the file's own transaction into a savepoint", function()
    local rw = rewriter()
    assert.are.equal("SAVEPOINT dbtool_test_1", rw("BEGIN;", "t.sql:1"))
    assert.is_nil(rw("  begin;", "t.sql:2")) -- nested: PostgreSQL's own warning, no effect
    assert.is_nil(rw("INSERT INTO x VALUES (1);", "t.sql:3"))
    assert.are.equal("RELEASE SAVEPOINT dbtool_test_1", rw("COMMIT;", "t.sql:4"))
    assert.are.equal("SAVEPOINT dbtool_test_2",
      rw("-- a comment\n/* and another */ START TRANSACTION;", "t.sql:5"))
    assert.are.equal("ROLLBACK TO SAVEPOINT dbtool_test_2; RELEASE SAVEPOINT dbtool_test_2",
      rw("rollback;", "t.sql:6"))
  end)

  it("leaves savepoint statements, prepared transactions and other statements alone", function()
    local rw = rewriter()
    rw("BEGIN;", "t.sql:1")
    for _, sql in ipairs { "ROLLBACK TO SAVEPOINT s;", "COMMIT PREPARED 'x';", "ROLLBACK PREPARED 'x';",
      "SAVEPOINT s;", "RELEASE s;", "DO $$ BEGIN NULL; END $$;", "SELECT 'COMMIT';", "ending;" } do
      assert.is_nil(rw(sql, "t.sql:2"), sql)
    end
  end)

  it("ignores COMMIT/ROLLBACK outside the file's own transaction (and warns for COMMIT)", function()
    local rw, warned = rewriter()
    assert.are.equal("SELECT WHERE false", rw("COMMIT;", "t.sql:9"))
    assert.are.equal("SELECT WHERE false", rw("END;", "t.sql:10"))
    assert.are.equal("SELECT WHERE false", rw("ABORT;", "t.sql:11"))
    assert.are.equal(2, #warned)
    assert.matches("^t%.sql:9: COMMIT without BEGIN ignored", warned[1])
  end)
end)

describe("dbtool.testrun.collect", function()
  it("takes files as given and directories' *.sql files in order, without helpers", function()
    local dir = t.tmpdir("collect")
    for _, f in ipairs { "b.sql", "a.sql", "notes.txt", "_helpers.sql", ".hidden.sql", "sub/c.sql",
      "_lib/d.sql", "sub/z/e.sql" } do
      t.write(dir .. "/" .. f, "SELECT 1;\n")
    end
    assert.are.same({ dir .. "/a.sql", dir .. "/b.sql", dir .. "/sub/c.sql", dir .. "/sub/z/e.sql" },
      testrun.collect { dir })
    -- a file named twice runs once; a helper named explicitly runs
    assert.are.same({ dir .. "/b.sql", dir .. "/_helpers.sql", dir .. "/a.sql", dir .. "/sub/c.sql",
      dir .. "/sub/z/e.sql" }, testrun.collect { dir .. "/b.sql", dir .. "/_helpers.sql", dir })
  end)

  it("refuses a missing path and a directory without test files (exit 1)", function()
    local dir = t.tmpdir("collect")
    local ok, err = pcall(testrun.collect, { dir .. "/nope.sql" })
    assert.is_false(ok)
    assert.are.equal(1, err.exit)
    assert.are.equal("test file not found: " .. dir .. "/nope.sql", err.msg)
    ok, err = pcall(testrun.collect, { dir })
    assert.is_false(ok)
    assert.are.equal("no test files (*.sql) in " .. dir, err.msg)
  end)
end)

describe("dbtool.testrun.serialize", function()
  it("round-trips a result (strings with any bytes, numbers, booleans, nesting)", function()
    local r = { name = "a\0b\n\"'\\", points = { { ok = false, line = 3, seconds = 0.125, diag = { "x" } } },
      passed = false, big = 2 ^ 53, neg = -1 }
    assert.are.same(r, testrun.deserialize(testrun.serialize(r)))
    assert.is_nil(testrun.deserialize("return os.exit(3)"))
    assert.is_nil(testrun.deserialize("not lua"))
  end)
end)

describe("dbtool.junit", function()
  it("escapes markup, and replaces what XML 1.0 cannot hold", function()
    assert.are.equal("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;", junit.escape("a <b> & \"c\" 'd'"))
    assert.are.equal("tab\tnl\ncr\r", junit.escape("tab\tnl\ncr\r"))
    assert.are.equal("x\239\191\189y\239\191\189z", junit.escape("x\0y\27z"))
    assert.are.equal("é\239\191\189!", junit.escape("é\255!"))
  end)

  it("writes a suite per file, a case per point, failures with file:line and the message", function()
    local xml = junit.document { name = "database test", seconds = 1.5, timestamp = 0, files = {
      { name = "t/a.sql", file = "t/a.sql", seconds = 0.5, started = 0, output = "hello <world>\n", points = {
        { ok = true, description = "addition", file = "t/a.sql", line = 3 },
        { ok = false, description = "bad", message = "Failed test 2: \"bad\"", file = "t/a.sql", line = 4,
          diag = { "Failed test 2: \"bad\"", "   have: 1" } },
        { ok = true, description = "later", directive = "SKIP", reason = "no time" },
        { ok = false, description = "t/a.sql:9:1", message = "boom", file = "t/a.sql", line = 9, column = 1,
          sqlstate = "P0001", kind = "error" },
      } },
    } }
    assert.matches('^<%?xml version="1.0" encoding="UTF%-8"%?>\n<testsuites name="database test" tests="4" '
      .. 'failures="1" errors="1" skipped="1" time="1.500" timestamp="1970%-01%-01T00:00:00">\n', xml)
    assert.matches('<testsuite name="t/a.sql" id="0" tests="4" failures="1" errors="1" skipped="1" '
      .. 'time="0.500" timestamp="1970-01-01T00:00:00" file="t/a.sql">', xml, 1, true)
    assert.matches('<testcase name="addition" classname="t/a.sql" file="t/a.sql" line="3" time="0.000"/>',
      xml, 1, true)
    assert.matches('<failure message="t/a.sql:4: Failed test 2: &quot;bad&quot;" type="assertion">'
      .. 't/a.sql:4: Failed test 2: &quot;bad&quot;\n   have: 1</failure>',
      xml, 1, true)
    assert.matches('<skipped message="no time"/>', xml, 1, true)
    assert.matches('<error message="t/a.sql:9:1: boom" type="SQLSTATE P0001">t/a.sql:9:1: boom</error>',
      xml, 1, true)
    assert.matches("<system-out>hello &lt;world&gt;\n</system-out>", xml, 1, true)
    assert.matches("</testsuites>\n$", xml)
  end)
end)
