local t = require "testutil"
local pg = require "dbtool.core.pg"

describe("dbtool.core.pg", function()
  local url

  setup(function()
    url = t.fresh_db("pg")
  end)

  describe("connect", function()
    it("accepts a URL, a conninfo string and a keyword table", function()
      local c = t.cluster()
      local a <close> = pg.connect(url)
      local name = a:info().db
      local b <close> = pg.connect("host=" .. c.host .. " port=5432 dbname=" .. name)
      local d <close> = pg.connect { host = c.host, port = 5432, dbname = name }
      assert.are.equal(name, b:info().db)
      assert.are.equal(name, d:info().db)
      assert.are.equal("5432", d:info().port)
      assert.is_true(a:server_version() >= 150000)
      assert.is_true(a:backend_pid() > 0)
      assert.are.equal("UTF8", a:parameter_status("client_encoding"))
      assert.are.equal("on", a:parameter_status("standard_conforming_strings"))
      assert.is_nil(a:parameter_status("no_such_parameter"))
    end)

    it("raises a structured error when the server is not there", function()
      local ok, e = pcall(pg.connect, "host=/nonexistent-dir port=5432 dbname=x connect_timeout=2")
      assert.is_false(ok)
      assert.are.equal(1, e.exit)
      assert.are.equal("connection", e.kind)
      assert.are.equal("08006", e.sqlstate)
      assert.matches("nonexistent%-dir", e.msg)
      assert.are.equal(e.msg, tostring(e))
    end)

    it("pings", function()
      assert.are.equal("ok", pg.ping(url))
      assert.are.equal("no_response", pg.ping("host=/nonexistent-dir port=5432"))
      assert.are.equal("no_attempt", pg.ping("this is not conninfo"))
    end)

    it("parses conninfo and URLs", function()
      local o = pg.parse_conninfo("postgresql://bob:pw@db.example:6543/app?sslmode=disable")
      assert.are.same({ user = "bob", password = "pw", host = "db.example", port = "6543",
        dbname = "app", sslmode = "disable" }, o)
      local bad, msg = pg.parse_conninfo("host=x nonsense")
      assert.is_nil(bad)
      assert.matches("nonsense", msg)
      assert.is_true(pg.libversion() >= 150000)
    end)
  end)

  describe("exec", function()
    it("returns typed rows keyed by name and position", function()
      local c <close> = pg.connect(url)
      local r = c:exec([[SELECT 1::int2 AS a, 2::int4 AS b, 9007199254740993::int8 AS c, 1.5::float8 AS d,
        true AS e, false AS f, 'x'::text AS g, NULL::text AS h, 12.50::numeric AS i, E'a\tb'::text AS j]])
      assert.are.equal(1, r.n)
      assert.are.equal("TUPLES_OK", r.status)
      assert.are.equal("SELECT 1", r.command)
      local row = r[1]
      assert.are.equal(1, row.a)
      assert.are.equal(math.type(row.a), "integer")
      assert.are.equal(9007199254740993, row.c)
      assert.are.equal(1.5, row.d)
      assert.is_true(row.e)
      assert.is_false(row.f)
      assert.are.equal("x", row.g)
      assert.is_nil(row.h)
      assert.is_nil(row[8])
      assert.are.equal("12.50", row.i)
      assert.are.equal("a\tb", row.j)
      assert.are.equal(2, row[2])
      assert.are.same({ "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" }, r.fields)
    end)

    it("binds parameters: nil, booleans, integers, floats and strings", function()
      local c <close> = pg.connect(url)
      local r = c:exec("SELECT $1::int AS a, $2::bool AS b, $3::float8 AS c, $4::text AS d, $5::text AS e",
        42, true, 0.1, "it's \"quoted\" \\", nil)
      assert.are.equal(42, r[1].a)
      assert.is_true(r[1].b)
      assert.are.equal(0.1, r[1].c)
      assert.are.equal("it's \"quoted\" \\", r[1].d)
      assert.is_nil(r[1].e)
      assert.has_error(function() c:exec("SELECT $1::text", "a\0b") end)
      assert.has_error(function() c:exec("SELECT $1::text", {}) end)
    end)

    it("runs several statements in one simple query and reports counts", function()
      local c <close> = pg.connect(url)
      local r = c:exec("CREATE TABLE m(x int); INSERT INTO m VALUES (1), (2); UPDATE m SET x = x + 1")
      assert.are.equal("UPDATE 2", r.command)
      assert.are.equal(2, r.affected)
      assert.are.equal(2, c:exec("SELECT count(*) AS n FROM m")[1].n)
    end)

    it("raises errors with every diagnostic field", function()
      local c <close> = pg.connect(url)
      c:exec("CREATE TABLE u(id int PRIMARY KEY)")
      c:exec("INSERT INTO u VALUES (1)")
      local ok, e = pcall(c.exec, c, "INSERT INTO u VALUES (1)")
      assert.is_false(ok)
      assert.are.equal(1, e.exit)
      assert.are.equal("23505", e.sqlstate)
      assert.are.equal("ERROR", e.severity)
      assert.matches("duplicate key value violates unique constraint", e.msg)
      assert.are.equal("Key (id)=(1) already exists.", e.detail)
      assert.are.equal("u_pkey", e.constraint)
      assert.are.equal("u", e.table)
      assert.are.equal("public", e.schema)
      assert.is_string(e.source_file)
      assert.is_number(e.source_line)

      ok, e = pcall(c.exec, c, "SELECT 1 FROM WHERE")
      assert.is_false(ok)
      assert.are.equal("42601", e.sqlstate)
      assert.are.equal(15, e.position)

      ok, e = pcall(c.exec, c, [[DO $$ BEGIN RAISE EXCEPTION 'boom' USING HINT = 'try again',
        DETAIL = 'it broke'; END $$]])
      assert.is_false(ok)
      assert.are.equal("boom", e.msg)
      assert.are.equal("try again", e.hint)
      assert.are.equal("it broke", e.detail)
      assert.matches("PL/pgSQL function", e.context)
      -- the connection stays usable
      assert.are.equal(1, c:exec("SELECT 1 AS one")[1].one)
    end)

    it("routes notices to the handler, and survives a failing handler", function()
      local c <close> = pg.connect(url)
      local seen = {}
      c:on_notice(function(n) seen[#seen + 1] = n end)
      c:exec("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$")
      assert.are.equal(2, #seen)
      assert.are.equal("hello 42", seen[1].msg)
      assert.are.equal("NOTICE", seen[1].severity)
      assert.are.equal("WARNING", seen[2].severity)
      c:on_notice(function() error("handler failed") end)
      local ok, e = pcall(c.exec, c, "DO $$ BEGIN RAISE NOTICE 'x'; END $$")
      assert.is_false(ok)
      assert.matches("handler failed", tostring(e))
      c:on_notice(nil)
      c:exec("DO $$ BEGIN RAISE NOTICE 'ignored'; END $$")
    end)

    it("tracks the transaction status", function()
      local c <close> = pg.connect(url)
      assert.are.equal("idle", c:transaction_status())
      c:exec("BEGIN")
      assert.are.equal("intrans", c:transaction_status())
      pcall(c.exec, c, "SELECT 1/0")
      assert.are.equal("inerror", c:transaction_status())
      c:exec("ROLLBACK")
      assert.are.equal("idle", c:transaction_status())
    end)
  end)

  describe("asynchronous queries and COPY", function()
    it("sends a query and drains its results, errors included", function()
      local c <close> = pg.connect(url)
      c:send_query("SELECT 1 AS a; SELECT 2 AS b; SELECT 1/0; SELECT 3")
      local r1, r2, r3 = c:get_result(), c:get_result(), c:get_result()
      assert.are.equal(1, r1[1].a)
      assert.are.equal(2, r2[1].b)
      assert.are.equal("FATAL_ERROR", r3.status)
      assert.are.equal("22012", r3.error.sqlstate)
      assert.is_nil(c:get_result())
    end)

    it("busy() says whether a sent query's result has arrived, without waiting", function()
      local c <close> = pg.connect(url)
      local other <close> = pg.connect(url)
      other:exec("BEGIN")
      other:exec("SELECT pg_advisory_lock(4242)")
      c:send_query("SELECT pg_advisory_lock(4242) AS locked")   -- waits for `other`
      assert.is_true(c:busy())
      assert.is_true(c:busy())
      other:exec("SELECT pg_advisory_unlock(4242)")
      local deadline = require("dbtool.core").now() + 30
      while c:busy() and require("dbtool.core").now() < deadline do require("dbtool.core").sleep(0.005) end
      assert.is_false(c:busy())
      assert.are.equal("TUPLES_OK", c:get_result().status)
      assert.is_nil(c:get_result())
      assert.is_false(c:busy())
    end)

    it("streams COPY FROM STDIN and COPY TO STDOUT in chunks", function()
      local c <close> = pg.connect(url)
      c:exec("CREATE TABLE cp(id int, v text)")
      c:send_query("COPY cp FROM STDIN")
      local r = c:get_result()
      assert.are.equal("COPY_IN", r.status)
      for i = 1, 1000, 100 do
        local chunk = {}
        for j = i, i + 99 do chunk[#chunk + 1] = j .. "\tv" .. j .. "\n" end
        c:put_copy_data(table.concat(chunk))
      end
      c:put_copy_end()
      r = c:get_result()
      assert.are.equal("COMMAND_OK", r.status)
      assert.are.equal("COPY 1000", r.command)
      assert.is_nil(c:get_result())

      c:send_query("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT")
      assert.are.equal("COPY_OUT", c:get_result().status)
      local lines, chunk = 0, c:get_copy_data()
      local first = chunk
      while chunk do
        lines = lines + 1
        chunk = c:get_copy_data()
      end
      assert.are.equal(1000, lines)
      assert.are.equal("1\tv1\n", first)
      assert.are.equal("COMMAND_OK", c:get_result().status)
      assert.is_nil(c:get_result())
    end)

    it("aborts a COPY with an error message", function()
      local c <close> = pg.connect(url)
      c:exec("CREATE TABLE cp2(id int)")
      c:send_query("COPY cp2 FROM STDIN")
      c:get_result()
      c:put_copy_data("1\n")
      c:put_copy_end("bad input at line 2")
      local r = c:get_result()
      assert.are.equal("FATAL_ERROR", r.status)
      assert.matches("bad input at line 2", r.error.msg)
      assert.is_nil(c:get_result())
      assert.are.equal(0, c:exec("SELECT count(*) AS n FROM cp2")[1].n)
    end)

    it("cancels a running query", function()
      local c <close> = pg.connect(url)
      local pid = c:exec("SELECT pg_backend_pid() AS p")[1].p
      c:send_query("SELECT pg_sleep(30)")
      -- a cancel that reaches the backend before the query starts is lost (the server
      -- cancels only a running statement): wait until the query is running
      local watch <close> = pg.connect(url)
      for _ = 1, 2000 do
        local st = watch:exec("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)[1]
        if st and st.state == "active" then break end
        require("dbtool.core").sleep(0.005)
      end
      local ok = c:cancel()
      assert.is_true(ok)
      local r = c:get_result()
      assert.are.equal("57014", r.error.sqlstate)
      assert.is_nil(c:get_result())
    end)
  end)

  describe("quoting and lifetime", function()
    it("escapes literals and identifiers", function()
      local c <close> = pg.connect(url)
      local lit = c:escape_literal("it's \\ here")
      local r = c:exec("SELECT " .. lit .. " AS v")
      assert.are.equal("it's \\ here", r[1].v)
      local id = c:escape_identifier('we"ird name')
      assert.are.equal('"we""ird name"', id)
      c:exec("CREATE TABLE " .. id .. " (x int)")
      assert.are.equal(1, c:exec("SELECT count(*) AS n FROM pg_class WHERE relname = $1", 'we"ird name')[1].n)
    end)

    it("closes idempotently, by <close> and by the collector", function()
      local c = pg.connect(url)
      assert.is_true(c:backend_pid() > 0)
      c:close()
      c:close()
      assert.is_true(c:closed())
      assert.has_error(function() c:exec("SELECT 1") end, "attempt to use a closed connection")
      assert.matches("closed", tostring(c))
      local pid
      do
        local d <close> = pg.connect(url)
        pid = d:backend_pid()
      end
      local probe <close> = pg.connect(url)
      -- the backend of `d` is gone (or going) once it was closed
      local deadline = require("dbtool.core").now() + 5
      local n
      repeat
        n = probe:exec("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1", pid)[1].n
      until n == 0 or require("dbtool.core").now() > deadline
      assert.are.equal(0, n)
      for _ = 1, 20 do pg.connect(url) end
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
