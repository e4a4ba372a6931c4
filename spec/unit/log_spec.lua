local log = require "dbtool.log"

describe("dbtool.log", function()
  teardown(function() log.forget_secrets() end)

  it("parses HECTIC_LOG specs", function()
    local d, ns = log.parse_spec("info;db deploy=trace")
    assert.are.equal(log.LEVELS.info, d)
    assert.are.equal(log.LEVELS.trace, ns["db deploy"])
    local bad, msg = log.parse_spec("loud")
    assert.is_nil(bad)
    assert.matches("invalid HECTIC_LOG", msg)
  end)

  it("redacts passwords in URLs, conninfo and query strings", function()
    assert.are.equal("postgresql://bob:***@db.example/x",
      log.redact("postgresql://bob:s3cret@db.example/x"))
    assert.are.equal("host=x password=*** dbname=y", log.redact("host=x password=s3cret dbname=y"))
    assert.are.equal("host=x password=*** dbname=y", log.redact("host=x password='s 3' dbname=y"))
    assert.are.equal("postgresql:///x?host=/s&password=***&port=5",
      log.redact("postgresql:///x?host=/s&password=pw&port=5"))
    assert.are.equal("postgresql://bob@h:5432/db", log.redact("postgresql://bob@h:5432/db"))
  end)

  it("redacts registered secret values", function()
    log.add_secret("hunter2-value")
    assert.are.equal("token is ***", log.redact("token is hunter2-value"))
  end)

  describe("connection strings", function()
    local function values(s)
      local out = {}
      for i, sp in ipairs(log.connection_spans(s)) do out[i] = { s:sub(sp.first, sp.last), sp.value } end
      return out
    end

    it("finds the password of a URL from the first ':' to the last '@', also malformed", function()
      assert.are.same({ { "pw", "pw" } }, values("postgresql://u:pw@h/db"))
      assert.are.same({ { "p%40w", "p@w" } }, values("postgres://u:p%40w@h:5/db?sslmode=disable"))
      assert.are.same({ { "a/b@c", "a/b@c" } }, values("postgresql://u:a/b@c@h/db"))
      assert.are.same({ { "a b#c?d", "a b#c?d" } }, values("postgresql://u:a b#c?d@/db"))
      assert.are.same({ { "Sec%ZZ", "Sec%ZZ" } }, values("postgresql://u:Sec%ZZ@h/db"))
      assert.are.same({}, values("postgresql://u@h/db"))
      assert.are.same({}, values("postgresql://h:5432/db"))
      assert.are.same({ { "x%26y", "x&y" }, { "z", "z" } },
        values("postgresql://u:x%26y@/db?host=/s&password=z"))
      assert.are.same({ { "a&b", "a&b" } }, values("postgresql:///db?password=a&b&port=1"))
    end)

    it("finds conninfo passwords: quoted, unquoted up to the next keyword, and URLs in values", function()
      assert.are.same({ { "s3", "s3" } }, values("host=x password=s3 dbname=y"))
      assert.are.same({ { "'a \\' b'", "a ' b" } }, values("password='a \\' b' host=x"))
      assert.are.same({ { "'open end", "open end" } }, values("host=x password='open end"))
      assert.are.same({ { "two words", "two words" } }, values("host=x password=two words"))
      assert.are.same({ { "two words", "two words" } }, values("password = two words  host = x"))
      assert.are.same({}, values("host=x mypassword=y"))
      assert.are.same({ { "pw", "pw" } }, values("host=x dbname=postgresql://u:pw@h/db"))
    end)

    it("hides the pieces of a password libpq quotes, wherever it cut it", function()
      local url = "postgresql://u:Alpha/Bravo@localhost/db"
      assert.are.equal('invalid integer value "***" for connection option "port"', log.redact_connection(
        'invalid integer value "Alpha" for connection option "port"', url))
      url = "postgresql://u:Alpha@Bravo@localhost/db"
      assert.are.equal('could not translate host name "***@localhost" to address', log.redact_connection(
        'could not translate host name "Bravo@localhost" to address', url))
      -- a piece libpq decoded (not in the string as written)
      url = "postgresql://u:Alp%68a/Bravo@localhost/db"
      assert.are.equal('bad "***"', log.redact_connection('bad "Alpha"', url))
      -- quoted things that are not the password stay
      assert.are.equal('database "db" of user "u" at "localhost"', log.redact_connection(
        'database "db" of user "u" at "localhost"', url))
      assert.are.equal("postgresql://u:***@localhost/db", log.redact_spans(url))
      assert.are.equal("host=x password=*** port=1", log.redact_spans("host=x password=a b port=1"))
    end)

    it("registers passwords of connection strings and arguments with the redaction", function()
      log.add_connection("postgresql://u:Reg1/Reg2@h/db")
      assert.are.equal("see ***", log.redact("see Reg1/Reg2"))
      log.add_connection({ password = "TablePw9" })
      assert.are.equal("*** here", log.redact("TablePw9 here"))
      log.add_connections_from({ "-u", "postgresql://u:Arg1/Arg2@h/db", "--url=host=h password=Arg3 Arg4" })
      assert.are.equal("*** ***", log.redact("Arg1/Arg2 Arg3 Arg4"))
      -- a well-formed one needs no registering: its password is hidden where the URL is shown,
      -- and a word such as "postgres" is not hidden everywhere else
      log.add_connections_from({ "postgresql://postgres:postgres@h/db", "host=h password=Single9" })
      assert.are.equal("postgresql://postgres:***@h/db postgres Single9", log.redact(
        "postgresql://postgres:postgres@h/db postgres Single9"))
      -- a longer secret wins over a pattern that would cut it
      log.add_connection("postgresql://u:Cut1@Cut2@h/db")
      assert.are.equal("postgresql://u:***@h/db", log.redact("postgresql://u:Cut1@Cut2@h/db"))
    end)
  end)

  it("writes `ns> msg` without colour when not on a TTY", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    log.configure { stream = f, level = "info", spec = "" }
    log.ns("db test"):info("hello %s", "world")
    log.ns("db test"):debug("hidden")
    f:close()
    log.configure { stream = io.stderr }
    local out = assert(io.open(path)):read("a")
    os.remove(path)
    assert.are.equal("db test> hello world\n", out)
  end)
end)
