local backup = require "dbtool.backup"

describe("dbtool.backup helpers", function()
  it("normalises paths lexically", function()
    assert.are.equal("/a/c", backup.clean("/a/./b/../c/"))
    assert.are.equal("/w/x/y", backup.clean("x//y", "/w"))
    assert.are.equal("/", backup.clean("/.."))
  end)

  it("checks input and output of normalize-backup with the original's messages", function()
    assert.are.equal("input and output paths must differ", backup.path_conflict("/b", "/b"))
    assert.are.equal("output path must not be inside input backup", backup.path_conflict("/b", "/b/out"))
    assert.are.equal("input backup must not be inside output path", backup.path_conflict("/o/b", "/o"))
    assert.is_nil(backup.path_conflict("/b", "/bb"))      -- a common prefix is not "inside"
    assert.is_nil(backup.path_conflict("/x/b", "/x/n"))
    assert.is_true(backup.inside("/a/b", "/a"))
    assert.is_false(backup.inside("/ab", "/a"))
  end)

  it("picks the lowest-oid connectable non-template database other than postgres", function()
    assert.are.equal("app", backup.pick_database {
      { datname = "postgres", oid = 5, datallowconn = true, datistemplate = false },
      { datname = "template1", oid = 1, datallowconn = true, datistemplate = true },
      { datname = "zz", oid = 20000, datallowconn = true, datistemplate = false },
      { datname = "closed", oid = 10, datallowconn = false, datistemplate = false },
      { datname = "app", oid = 16384, datallowconn = true, datistemplate = false },
    })
    assert.is_nil(backup.pick_database { { datname = "postgres", oid = 5, datallowconn = true,
      datistemplate = false } })
  end)

  it("writes conninfo strings with quoted values, leaving out what is asked", function()
    assert.are.equal("dbname='a=b' host='/s p' port='5432'",
      backup.conninfo({ host = "/s p", port = "5432", dbname = "a=b", password = "x" }, { password = true }))
    assert.are.equal("user='o\\'k\\\\'", backup.conninfo { user = "o'k\\" })
  end)
end)
