local logcmd = require "dbtool.cmd.log"

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
