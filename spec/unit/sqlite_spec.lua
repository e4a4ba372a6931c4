local sqlite = require "dbtool.core.sqlite"
local testutil = require "testutil"

-- The structured error raised by fn(...), or fail the test.
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an error")
  assert.are.equal("table", type(e), "structured error expected, got " .. tostring(e))
  return e
end

local function count(db, sql, ...)
  return db:query(sql, ...)[1][1]
end

describe("dbtool.core.sqlite", function()
  local dir, n = nil, 0
  local function fresh()
    n = n + 1
    local path = dir .. "/db" .. n .. ".sqlite"
    return assert(sqlite.open(path)), path
  end

  setup(function()
    dir = testutil.tmpdir("sqlite")
  end)

  it("reports the library version and completeness of statements", function()
    assert.matches("^3%.%d+%.%d+$", sqlite.version)
    assert.is_true(sqlite.complete("SELECT 1;"))
    assert.is_false(sqlite.complete("SELECT 1"))
    assert.is_false(sqlite.complete("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;"))
    assert.is_true(sqlite.complete("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;"))
  end)

  describe("open", function()
    it("creates the file and persists data across connections", function()
      local db, path = fresh()
      db:exec("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
      db:close()
      assert.is_not_nil(testutil.read(path))
      local again = assert(sqlite.open(path, { create = false }))
      assert.are.equal(42, count(again, "SELECT x FROM t"))
      again:close()
    end)

    it("returns nil, message, code when the file cannot be opened", function()
      local db, msg, code = sqlite.open(dir .. "/no/such/dir/x.db")
      assert.is_nil(db)
      assert.matches("/no/such/dir/x.db: unable to open database file", msg, 1, true)
      assert.are.equal(14, code)                              -- SQLITE_CANTOPEN

      db, msg, code = sqlite.open(dir .. "/absent.db", { create = false })
      assert.is_nil(db)
      assert.matches("unable to open database file", msg, 1, true)
      assert.are.equal(14, code)
      assert.is_nil(testutil.read(dir .. "/absent.db"))      -- not created

      db, msg, code = sqlite.open(dir .. "/absent.db", { readonly = true })
      assert.is_nil(db)
      assert.are.equal(dir .. "/absent.db: unable to open database file", msg)
      assert.are.equal(14, code)
      assert.has_error(function() sqlite.open(dir .. "/nul\0.db") end)
    end)

    it("reports a file that is not a database at open time", function()
      local path = testutil.write(dir .. "/garbage.db", string.rep("not a database\n", 100))
      local db, msg, code = sqlite.open(path)
      assert.is_nil(db)
      assert.are.equal(path .. ": file is not a database", msg)
      assert.are.equal(26, code)                              -- SQLITE_NOTADB
    end)

    it("opens read-only: writes fail with SQLITE_READONLY", function()
      local db, path = fresh()
      db:exec("CREATE TABLE t(x)")
      db:close()
      local ro = assert(sqlite.open(path, { readonly = true }))
      assert.are.equal(0, count(ro, "SELECT count(*) FROM t"))
      local e = err_of(ro.exec, ro, "INSERT INTO t VALUES (1)")
      assert.are.equal(8, e.code & 0xff)
      assert.matches("^SQLITE_READONLY", e.code_name)
      assert.matches("readonly", e.msg)
      ro:close()
    end)

    it("accepts URIs when asked to", function()
      local path = dir .. "/uri.db"
      local db = assert(sqlite.open("file:" .. path .. "?mode=rwc", { uri = true }))
      db:exec("CREATE TABLE t(x)")
      db:close()
      assert.is_not_nil(testutil.read(path))
    end)

    it("rejects unknown or mistyped options", function()
      assert.has_error(function() sqlite.open(dir .. "/o.db", { read_only = true }) end,
        "sqlite.open: unknown option 'read_only'")
      assert.has_error(function() sqlite.open(dir .. "/o.db", { create = "no" }) end,
        "sqlite.open: option 'create' must be a boolean")
      assert.has_error(function() sqlite.open(dir .. "/o.db", { busy_timeout_ms = -1 }) end,
        "sqlite.open: busy_timeout_ms must be a non-negative integer")
    end)
  end)

  describe("exec", function()
    it("runs every statement: triggers, comments with ';', quoted identifiers and strings", function()
      local db = fresh()
      db:exec([[
-- a comment; with a semicolon
CREATE TABLE "semi;colon" (id INTEGER PRIMARY KEY, "v;al" TEXT, n INTEGER DEFAULT 0);
CREATE TABLE log (msg TEXT);
/* a block comment; another one */
CREATE TRIGGER "trg;1" AFTER INSERT ON "semi;colon"
BEGIN
  INSERT INTO log VALUES ('inserted; ' || new."v;al");
  UPDATE "semi;colon" SET n = n + 1 WHERE id = new.id;
END;
INSERT INTO "semi;colon"("v;al") VALUES ('a;b'), ('it''s; fine');;
;
INSERT INTO "semi;colon"("v;al") VALUES ('last') -- no final semicolon]])
      local rows = db:query('SELECT id, "v;al", n FROM "semi;colon" ORDER BY id')
      assert.are.equal(3, #rows)
      assert.are.same({ "a;b", "it's; fine", "last" }, { rows[1]["v;al"], rows[2]["v;al"], rows[3]["v;al"] })
      for _, r in ipairs(rows) do assert.are.equal(1, r.n) end
      local log = db:query("SELECT msg FROM log ORDER BY rowid")
      assert.are.equal("inserted; a;b", log[1].msg)
      assert.are.equal("inserted; last", log[3].msg)
      db:close()
    end)

    it("accepts an empty script or one with only comments", function()
      local db = fresh()
      db:exec("")
      db:exec("  -- nothing here;\n /* nor; here */ ;; \n")
      db:close()
    end)

    it("raises a structured syntax error with offsets and the failing statement", function()
      local db = fresh()
      local script = "CREATE TABLE a(x);\n-- first; comment\nINSERT INTO a VALUES (1);\n" ..
        "  SELEC x FROM a;\nINSERT INTO a VALUES (2);\n"
      local e = err_of(db.exec, db, script)
      assert.are.equal(1, e.exit)
      assert.are.equal('near "SELEC": syntax error', e.msg)
      assert.are.equal(1, e.code)
      assert.are.equal("SQLITE_ERROR", e.code_name)
      local start = script:find("SELEC x", 1, true) - 1
      assert.are.equal(start, e.offset)
      assert.are.equal(start, e.error_offset)
      assert.are.equal("SELEC x FROM a;", e.statement)
      assert.are.equal(4, e.line)
      assert.are.equal(3, e.column)
      assert.are.equal("dbtool.error", getmetatable(e).__name)
      -- statements before the error are applied, those after are not
      assert.are.same({ 1 }, { count(db, "SELECT sum(x) FROM a") })
      db:close()
    end)

    it("points error_offset at the offending token inside the statement", function()
      local db = fresh()
      db:exec("CREATE TABLE t(a)")
      local script = "SELECT 1;\n/* c; */ SELECT a, nocol FROM t; SELECT 2;"
      local e = err_of(db.exec, db, script)
      assert.are.equal("no such column: nocol", e.msg)
      assert.are.equal(script:find("SELECT a,", 1, true) - 1, e.offset)
      assert.are.equal(script:find("nocol", 1, true) - 1, e.error_offset)
      assert.are.equal("SELECT a, nocol FROM t;", e.statement)
      db:close()
    end)

    it("gives the whole trigger as the failing statement when its body does not compile", function()
      local db = fresh()
      local script = "CREATE TABLE t(a);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n" ..
        "  INSERT INTO missing VALUES (1);\n  SELEC 2;\nEND;\nSELECT 3;"
      local e = err_of(db.exec, db, script)
      assert.matches("syntax error", e.msg)
      assert.are.equal(script:find("CREATE TRIGGER", 1, true) - 1, e.offset)
      assert.are.equal(script:find("SELEC 2", 1, true) - 1, e.error_offset)
      assert.are.equal("CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO missing VALUES (1);\n" ..
        "  SELEC 2;\nEND;", e.statement)
      assert.are.equal(0, #db:query("SELECT name FROM sqlite_schema WHERE type = 'trigger'"))
      db:close()
    end)

    it("raises constraint errors with the extended code; earlier statements stay applied", function()
      local db = fresh()
      db:exec("CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL)")
      local script = "INSERT INTO u(email) VALUES ('a@x');\nINSERT INTO u(email) VALUES ('b@x');\n" ..
        "INSERT INTO u(email) VALUES ('a@x');\nINSERT INTO u(email) VALUES ('c@x');\n"
      local e = err_of(db.exec, db, script)
      assert.are.equal(1, e.exit)
      assert.are.equal("UNIQUE constraint failed: u.email", e.msg)
      assert.are.equal(2067, e.code)                           -- SQLITE_CONSTRAINT_UNIQUE
      assert.are.equal("SQLITE_CONSTRAINT_UNIQUE", e.code_name)
      assert.are.equal(script:find("INSERT INTO u(email) VALUES ('a@x');\nINSERT INTO u(email) VALUES ('c",
        1, true) - 1, e.offset)
      assert.is_nil(e.error_offset)
      assert.are.equal("INSERT INTO u(email) VALUES ('a@x');", e.statement)
      assert.are.equal(3, e.line)
      local rows = db:query("SELECT email FROM u ORDER BY id")
      assert.are.same({ "a@x", "b@x" }, { rows[1].email, rows[2].email })
      assert.are.equal(2, #rows)

      e = err_of(db.exec, db, "INSERT INTO u(email) VALUES (NULL)")
      assert.are.equal("SQLITE_CONSTRAINT_NOTNULL", e.code_name)
      assert.are.equal(0, e.offset)
      db:close()
    end)

    it("leaves transactions to the caller", function()
      local db = fresh()
      db:exec("CREATE TABLE t(x UNIQUE)")
      assert.is_false(db:in_transaction())
      err_of(db.exec, db, "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);")
      assert.is_true(db:in_transaction())
      db:exec("ROLLBACK")
      assert.is_false(db:in_transaction())
      assert.are.equal(0, count(db, "SELECT count(*) FROM t"))
      db:close()
    end)
  end)

  describe("query", function()
    it("binds parameters and converts column types", function()
      local db = fresh()
      db:exec("CREATE TABLE v(i INTEGER, r REAL, t TEXT, b BLOB, z)")
      db:query("INSERT INTO v VALUES (?, ?, ?, ?, ?)", 9007199254740993, 2.5, "héllo", "a\0b", nil)
      local rows, cols = db:query("SELECT i, r, t, b, z, typeof(b) AS tb FROM v")
      assert.are.same({ "i", "r", "t", "b", "z", "tb" }, cols)
      local r = rows[1]
      assert.are.equal(9007199254740993, r.i)
      assert.are.equal("integer", math.type(r.i))
      assert.are.equal(2.5, r.r)
      assert.are.equal("float", math.type(r[2]))
      assert.are.equal("héllo", r.t)
      assert.are.equal("a\0b", r.b)
      assert.are.equal("text", r.tb)                         -- strings are bound as TEXT
      assert.is_nil(r.z)
      assert.is_nil(r[5])
      assert.are.equal(r.i, r[1])
      assert.are.equal(r.t, r[3])

      local t = db:query("SELECT typeof(?1), typeof(?2), typeof(?3), typeof(?4), ?3 + ?4, ?5",
        true, false, 3.0, 7, nil)[1]
      assert.are.same({ "integer", "integer", "real", "integer" }, { t[1], t[2], t[3], t[4] })
      assert.are.equal(10.0, t[5])
      assert.are.equal("float", math.type(t[5]))
      assert.are.equal(1, count(db, "SELECT ? = 1", true))
      assert.are.equal(1, count(db, "SELECT ? = 0", false))
      -- named parameters are bound by position, in order of appearance
      assert.are.equal("xy", count(db, "SELECT :a || @b", "x", "y"))
      db:close()
    end)

    it("returns an empty array when there are no rows", function()
      local db = fresh()
      db:exec("CREATE TABLE e(x)")
      local rows, cols = db:query("SELECT x FROM e")
      assert.are.same({}, rows)
      assert.are.same({ "x" }, cols)
      db:close()
    end)

    it("counts changes and the last rowid", function()
      local db = fresh()
      db:exec("CREATE TABLE c(id INTEGER PRIMARY KEY, x)")
      db:query("INSERT INTO c(x) VALUES (?), (?), (?)", 1, 2, 3)
      assert.are.equal(3, db:changes())
      assert.are.equal(3, db:last_insert_rowid())
      db:query("UPDATE c SET x = x + 1 WHERE x > ?", 1)
      assert.are.equal(2, db:changes())
      db:close()
    end)

    it("rejects wrong parameter counts, unbindable values and several statements", function()
      local db = fresh()
      local e = err_of(db.query, db, "SELECT ?, ?", 1)
      assert.are.equal("statement has 2 parameters, 1 value given", e.msg)
      e = err_of(db.query, db, "SELECT 1", 1, 2)
      assert.are.equal("statement has 0 parameters, 2 values given", e.msg)
      assert.has_error(function() db:query("SELECT ?", {}) end,
        "bad argument #2 to 'query' (cannot bind a table value as parameter 1)")
      e = err_of(db.query, db, "SELECT 1; SELECT 2")
      assert.matches("only one statement allowed", e.msg)
      e = err_of(db.query, db, "-- nothing")
      assert.are.equal("no SQL statement to run", e.msg)
      -- a trailing semicolon and comment are fine
      assert.are.equal(1, count(db, "SELECT 1; -- done"))
      db:close()
    end)

    it("raises structured errors with offsets relative to the statement", function()
      local db = fresh()
      local e = err_of(db.query, db, "  SELECT nocol")
      assert.are.equal("no such column: nocol", e.msg)
      assert.are.equal(2, e.offset)
      assert.are.equal(9, e.error_offset)
      assert.are.equal("SELECT nocol", e.statement)
      db:exec("CREATE TABLE k(x PRIMARY KEY)")
      db:query("INSERT INTO k VALUES (?)", "a")
      e = err_of(db.query, db, "INSERT INTO k VALUES (?)", "a")
      assert.are.equal("SQLITE_CONSTRAINT_PRIMARYKEY", e.code_name)
      assert.are.equal("INSERT INTO k VALUES (?)", e.statement)
      db:close()
    end)

    it("waits busy_timeout_ms for a lock, then raises SQLITE_BUSY", function()
      local db, path = fresh()
      db:exec("CREATE TABLE l(x)")
      local other = assert(sqlite.open(path, { busy_timeout_ms = 100 }))
      db:exec("BEGIN EXCLUSIVE; INSERT INTO l VALUES (1);")
      local t0 = os.time()
      local e = err_of(other.query, other, "SELECT count(*) FROM l")
      assert.are.equal(5, e.code & 0xff)
      assert.matches("^SQLITE_BUSY", e.code_name)
      assert.is_true(os.time() - t0 <= 2)
      db:exec("COMMIT")
      other:busy_timeout(1000)
      assert.are.equal(1, count(other, "SELECT count(*) FROM l"))
      other:close()
      db:close()
    end)
  end)

  describe("rows", function()
    it("iterates rows like query", function()
      local db = fresh()
      db:exec("CREATE TABLE r(id INTEGER PRIMARY KEY, v); INSERT INTO r(v) VALUES ('a'), (NULL), ('c');")
      local seen = {}
      for row in db:rows("SELECT id, v FROM r WHERE id >= ? ORDER BY id", 1) do
        seen[#seen + 1] = tostring(row.id) .. "=" .. tostring(row.v) .. "/" .. tostring(row[2])
      end
      assert.are.same({ "1=a/a", "2=nil/nil", "3=c/c" }, seen)
      db:close()
    end)

    it("finalizes the statement when the loop breaks", function()
      local db = fresh()
      db:exec("CREATE TABLE r(x); INSERT INTO r VALUES (1), (2), (3);")
      for row in db:rows("SELECT x FROM r") do
        if row.x == 1 then break end
      end
      -- an unfinalized SELECT on r would make this fail with "database table is locked"
      db:exec("DROP TABLE r")
      db:close()
    end)

    it("raises a structured error from a failing row and finalizes", function()
      local db = fresh()
      db:exec("CREATE TABLE r(x); INSERT INTO r VALUES (1), (2), (3);")
      local got = {}
      local e = err_of(function()
        for row in db:rows("SELECT CASE WHEN x = 2 THEN abs(x - 9223372036854775807 - 3) ELSE x END AS y " ..
                           "FROM r") do
          got[#got + 1] = row.y
        end
      end)
      assert.are.same({ 1 }, got)
      assert.are.equal("integer overflow", e.msg)
      assert.matches("^SELECT CASE", e.statement)
      db:exec("DROP TABLE r")
      db:close()
    end)

    it("refuses to continue after the database was closed", function()
      local db = fresh()
      db:exec("CREATE TABLE r(x); INSERT INTO r VALUES (1), (2);")
      assert.has_error(function()
        for _ in db:rows("SELECT x FROM r") do db:close() end
      end, "attempt to use a closed database")
    end)
  end)

  describe("close", function()
    it("is idempotent and later use raises", function()
      local db = fresh()
      assert.is_true(db:close())
      assert.is_true(db:close())
      assert.matches("closed", tostring(db))
      for _, m in ipairs { "exec", "query", "rows", "changes", "last_insert_rowid", "busy_timeout",
                           "in_transaction" } do
        assert.has_error(function() db[m](db, "SELECT 1") end, "attempt to use a closed database")
      end
    end)

    it("closes a <close> variable at the end of its scope, also on error", function()
      local _, path = fresh()
      local escaped
      do
        local db <close> = assert(sqlite.open(path))
        db:exec("CREATE TABLE w(x); INSERT INTO w VALUES (1);")
        escaped = db
      end
      assert.has_error(function() escaped:exec("SELECT 1") end, "attempt to use a closed database")
      local ok = pcall(function()
        local db <close> = assert(sqlite.open(path))
        escaped = db
        db:exec("BEGIN; INSERT INTO w VALUES (2); SELEC;")
      end)
      assert.is_false(ok)
      assert.has_error(function() escaped:exec("SELECT 1") end, "attempt to use a closed database")
      -- closing with an open transaction rolled it back
      local db <close> = assert(sqlite.open(path))
      assert.are.equal(1, count(db, "SELECT count(*) FROM w"))
    end)

    it("lets the garbage collector close forgotten handles", function()
      local _, path = fresh()
      for _ = 1, 50 do
        local db = assert(sqlite.open(path))
        db:query("SELECT 1")
      end
      collectgarbage()
      collectgarbage()
      local db = assert(sqlite.open(path))
      db:exec("CREATE TABLE after_gc(x)")
      db:close()
    end)
  end)
end)
