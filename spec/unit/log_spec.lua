local log = require "dbtool.log"

describe("dbtool.log", function()
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
