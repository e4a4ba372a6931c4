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
