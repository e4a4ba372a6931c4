-- dbtool.tmp's pure parts: the idle argument, the variables a command gets, which URLs
-- name a server of `database tmp`.
local tmp = require "dbtool.tmp"

describe("dbtool.tmp", function()
  it("parses -w/--idle: seconds > 0, fractions allowed; default 60", function()
    assert.are.equal(60, tmp.parse_idle(nil))
    assert.are.equal(300, tmp.parse_idle("300"))
    assert.are.equal(0.25, tmp.parse_idle("0.25"))
    for _, bad in ipairs { "0", "-1", "soon", "", "inf", "nan", "1e999" } do
      local ok, err = pcall(tmp.parse_idle, bad)
      assert.is_false(ok, bad)
      assert.are.equal(9, err.exit)
      assert.matches("-w/--idle must be a number of seconds > 0", err.msg, 1, true)
    end
  end)

  it("gives a command the server as URL and PG* variables, unsets those that redirect libpq", function()
    local e = tmp.client_env { url = "postgresql://me@/testdb?host=/t/db-tool-tmp-x/sock&port=5432",
      host = "/t/db-tool-tmp-x/sock", port = 5432, database = "testdb", user = "me" }
    assert.are.same({
      PGURL = "postgresql://me@/testdb?host=/t/db-tool-tmp-x/sock&port=5432",
      DATABASE_URL = "postgresql://me@/testdb?host=/t/db-tool-tmp-x/sock&port=5432",
      PGHOST = "/t/db-tool-tmp-x/sock", PGPORT = "5432", PGDATABASE = "testdb", PGUSER = "me",
      PGHOSTADDR = false, PGSERVICE = false, PGPASSWORD = false, PGOPTIONS = false,
    }, e)
  end)

  it("recognises the socket directory of a server of ours, nothing else", function()
    assert.are.equal("/tmp/db-tool-tmp-AbC123", tmp.dir_of_host("/tmp/db-tool-tmp-AbC123/sock"))
    assert.are.equal("/tmp/db-tool-tmp-AbC123", tmp.dir_of_host("/tmp/db-tool-tmp-AbC123/sock/"))
    for _, host in ipairs { "/tmp/db-tool-tmp-AbC123", "/home/me/project/focus/postgresql/sock",
      "/tmp/db-tool-check-x/sock", "localhost", "db-tool-tmp-x/sock", "/", "" } do
      assert.is_nil(tmp.dir_of_host(host), host)
    end
    assert.is_nil(tmp.dir_of_host(nil))
  end)
end)
