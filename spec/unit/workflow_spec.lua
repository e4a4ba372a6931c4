local workflow = require "dbtool.workflow"
local logcmd = require "dbtool.cmd.log"

describe("workflow.tap_summary", function()
  it("counts passes, failures, TODO/SKIP and the plan", function()
    local s = workflow.tap_summary { "1..4", "ok 1 - a", "not ok 2 - b", "not ok 3 - c # TODO later",
      "ok 4 - d # SKIP no db", "# Looks like you failed 1 test of 4" }
    assert.are.equal(4, s.planned)
    assert.are.equal(4, s.run)
    assert.are.equal(1, s.failed)
    assert.are.same({ "not ok 2 - b" }, s.failures)
  end)

  it("does not mistake words starting with ok for results", function()
    local s = workflow.tap_summary { "okay then", "nothing", "ok" }
    assert.are.equal(1, s.run)
  end)
end)

describe("log file selection", function()
  local files = { "postgresql-2026-11-01_100000.log", "postgresql-2026-11-02_100000.log",
    "postgresql-2026-11-02_120000.log" }

  it("takes an exact name, an index, or a unique substring", function()
    assert.are.equal(files[2], logcmd.pick(files, files[2]))
    assert.are.equal(files[3], logcmd.pick(files, "3"))
    assert.are.equal(files[1], logcmd.pick(files, "11-01"))
  end)

  it("explains out of range, missing and ambiguous picks", function()
    local n, why = logcmd.pick(files, "7")
    assert.is_nil(n)
    assert.matches("out of range %(1%-3%)", why)
    n, why = logcmd.pick(files, "11-02")
    assert.is_nil(n)
    assert.matches("ambiguous", why)
    n, why = logcmd.pick(files, "zzz")
    assert.is_nil(n)
    assert.matches("no file name contains 'zzz'", why)
  end)
end)

describe("workflow.test_transaction_rewriter", function()
  local function rewriter()
    local warned = {}
    local l = { warn = function(_, fmt, ...) warned[#warned + 1] = fmt:format(...) end }
    local rw = workflow.test_transaction_rewriter(l)
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

describe("workflow.is_tap_line", function()
  it("recognises pgTAP's lines, and diagnostics once TAP has started", function()
    assert.is_true(workflow.is_tap_line("ok 1 - fine"))
    assert.is_true(workflow.is_tap_line("not ok 12 - broken"))
    assert.is_true(workflow.is_tap_line("1..4"))
    assert.is_true(workflow.is_tap_line("Bail out! no database"))
    assert.is_false(workflow.is_tap_line("# diagnostics", false))
    assert.is_true(workflow.is_tap_line("# diagnostics", true))
    assert.is_false(workflow.is_tap_line("ok"))
    assert.is_false(workflow.is_tap_line("okay 1"))
  end)

  it("counts Bail out! as a failure", function()
    local s = workflow.tap_summary { "1..2", "ok 1 - a", "Bail out! stop" }
    assert.are.equal(1, s.failed)
  end)
end)
