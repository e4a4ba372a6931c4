-- dbtool.testing driven by hand: a database of its own per test (cloned ahead, dropped one
-- test later), and the opt-in isolation = "transaction" (one shared database, each test
-- rolled back), with its documented weakness.
local t = require "testutil"
local testing = require "dbtool.testing"

local function project()
  local dir = t.tmpdir("testing")
  t.write(dir .. "/db/src/entrypoint.sql",
    "CREATE TABLE item (id int PRIMARY KEY) INHERITS (hectic.created_at);\n")
  t.write(dir .. "/test-data.sql", "INSERT INTO item (id) VALUES (1), (2);\n")
  return dir
end

local function databases(s)
  local out = {}
  local rows = s.admin:exec("SELECT datname FROM pg_database WHERE datname LIKE 'test%' ORDER BY oid")
  for _, r in ipairs(rows) do
    out[#out + 1] = r.datname
  end
  return out
end

describe("dbtool.testing", function()
  it("gives every test a database of its own, made ahead, dropped after the next test", function()
    local where = t.tmpdir("testingdir")
    local s = testing.suite { dir = project(), patch = true, busted = false, ready = 2, tmpdir = where }
    finally(function() s:stop() end)
    s:start()
    assert.are.equal(where, s.work:match("^(.*)/db%-tool%-testing%-[^/]+$"))
    -- two clones are being made before the first test asks
    assert.are.equal(2, #s.inflight)
    local seen = {}
    for i = 1, 5 do
      s:fresh()
      assert.is_nil(seen[s.name])
      seen[s.name] = true
      assert.are.equal(2, s:value("SELECT count(*) FROM item"))
      s:exec("INSERT INTO item (id) VALUES (" .. (10 + i) .. ")")
      assert.are.equal(3, s:value("SELECT count(*) FROM item"))
      s:finish()
    end
    -- at most: the last test's database (dropped one test later), the one being dropped,
    -- the clones made ahead
    s.dropper:get_result()
    while s.dropper:get_result() do end
    local left = databases(s)
    assert.is_true(#left <= 4, table.concat(left, " "))
    for _, c in ipairs(s.inflight) do assert.is_nil(seen[c.name]) end
    assert.are.equal(0, s.admin:exec("SELECT count(*) AS n FROM pg_database WHERE datname = 'test_1'")[1].n)
    -- nothing connects to the template: autovacuum is off, and connections are refused
    assert.are.equal("off", s.admin:exec("SHOW autovacuum")[1][1])
    local allow = s.admin:exec("SELECT datallowconn FROM pg_database WHERE datname = $1", testing.TEMPLATE)
    assert.is_false(allow[1][1])
    s:stop()
    assert.is_nil(require("posix.sys.stat").stat(s.work))
  end)

  it('isolation = "transaction": one database, each test rolled back; a COMMIT escapes (warned)', function()
    local s = testing.suite { dir = project(), patch = true, busted = false, isolation = "transaction" }
    finally(function() s:stop() end)
    s:start()
    s:fresh()
    local name = s.name
    s:exec("INSERT INTO item (id) VALUES (3)")
    assert.are.equal(3, s:value("SELECT count(*) FROM item"))
    -- another connection does not see the test's uncommitted rows (documented)
    local other <close> = s:connect()
    assert.are.equal(2, other:exec("SELECT count(*) AS n FROM item")[1].n)
    s:finish()
    s:fresh()
    assert.are.equal(name, s.name)
    assert.are.equal(2, s:value("SELECT count(*) FROM item"))
    -- a test that commits: its rows stay for the next tests, and a warning says so
    s:exec("INSERT INTO item (id) VALUES (4)")
    s:exec("COMMIT")
    local logged = {}
    local saved = s.log
    s.log = { warn = function(_, fmt, ...) logged[#logged + 1] = fmt:format(...) end }
    s:finish()
    s.log = saved
    assert.matches("a test ended its own transaction", logged[1] or "", 1, true)
    s:fresh()
    assert.are.equal(3, s:value("SELECT count(*) FROM item"))
    s:finish()
    -- only the one shared database was made
    assert.are.same({ name }, databases(s))
  end)

  it("refuses an unknown isolation or ready count", function()
    local ok, err = pcall(testing.suite, { isolation = "savepoint", busted = false })
    assert.is_false(ok)
    assert.matches('isolation must be "database" or "transaction", not savepoint', err.msg, 1, true)
    local s = testing.suite { dir = project(), busted = false, deploy = false, ready = 0 }
    finally(function() s:stop() end)
    ok, err = pcall(s.start, s)
    assert.is_false(ok)
    assert.matches("ready must be a count ≥ 1, not 0", err.msg, 1, true)
  end)
end)
