-- `database sql` against psql 15 itself: each meta-command db-tool runs, in a script run by
-- the built binary (-p) and by `psql -X -q -A -F '<tab>'` on twin databases of one server,
-- with and without --continue-on-error: the same standard output, the same files written,
-- the same data left behind; and the cases where db-tool differs on purpose (a failed COPY's
-- data lines, NUL bytes). Statement texts themselves are compared by spec/support/psql_diff.lua.
-- luacheck: no max line length
local testutil = require "testutil"

local function bin(name)
  return testutil.pg_bindir() .. "/" .. name
end

local function value(url, sql)
  local c <close> = testutil.connect(url)
  local r = c:exec(sql)
  return r[1] and r[1][1]
end

-- Run `script` with psql and with `database sql` on fresh databases of their own (o.setup
-- run on both first), each in a directory of its own holding o.files. o.continue: go on
-- after errors; o.vars(who, url) → {name = value} for -v; o.stdin, o.env; o.print = false:
-- db-tool without -p; o.psql = false: db-tool only. Returns the psql run and ours: {code,
-- stdout, stderr, dir, url}.
local function both(script, o)
  o = o or {}
  local runs = {}
  for _, who in ipairs(o.psql == false and { "ours" } or { "psql", "ours" }) do
    local dir = testutil.tmpdir("cmp-" .. who)
    testutil.write(dir .. "/s.sql", script)
    for name, content in pairs(o.files or {}) do testutil.write(dir .. "/" .. name, content) end
    local url = testutil.fresh_db("cmp" .. who)
    if o.setup then
      local c <close> = testutil.connect(url)
      c:exec(o.setup)
    end
    local vars = {}
    for k, v in pairs(o.vars and o.vars(who, url) or {}) do vars[#vars + 1] = "-v"; vars[#vars + 1] = k .. "=" .. v end
    local argv
    if who == "psql" then
      argv = { bin("psql"), "-X", "-q", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=" .. (o.continue and 0 or 1),
        "-d", url }
    else
      argv = { "database", "sql", "-u", url }
      if o.print ~= false then argv[#argv + 1] = "-p" end
      if o.continue then argv[#argv + 1] = "--continue-on-error" end
    end
    for _, a in ipairs(vars) do argv[#argv + 1] = a end
    if who == "psql" then argv[#argv + 1] = "-f" end
    argv[#argv + 1] = o.file or "s.sql"
    local r = testutil.run { argv = argv, cwd = dir, stdin = o.stdin, env = o.env }
    r.dir, r.url = dir, url
    runs[who] = r
  end
  return runs.psql, runs.ours
end

-- psql ends a script stopped by ON_ERROR_STOP with 3, db-tool with 1; both 0 when all ran.
local function stopped(p, d)
  assert.equal(3, p.code, p.stderr)
  assert.equal(1, d.code, d.stderr)
end

local function ok(p, d)
  assert.equal(0, p.code, p.stderr)
  assert.equal(0, d.code, d.stderr)
end

describe("database sql against psql", function()
  setup(function()
    testutil.cluster()
  end)

  describe("\\q", function()
    it("ends the script, also inside an active \\if; the query pending before it is still sent", function()
      local script = "CREATE TABLE q (v text);\nINSERT INTO q VALUES ('pending')\n\\if true\n  \\q\n\\endif\nINSERT INTO q VALUES ('never');\n"
      for _, continue in ipairs { false, true } do
        local p, d = both(script, { continue = continue })
        ok(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.equal("pending", value(p.url, "SELECT string_agg(v, ',') FROM q"))
        assert.equal("pending", value(d.url, "SELECT string_agg(v, ',') FROM q"))
      end
    end)

    it("in an \\i'ed file ends that file only (psql 15), not in a skipped branch", function()
      local files = { ["inc.sql"] = "INSERT INTO q VALUES ('inc');\n\\q\nINSERT INTO q VALUES ('after q');\n" }
      local script = "CREATE TABLE q (v text);\n\\i inc.sql\n\\if false\n\\q\n\\endif\nINSERT INTO q VALUES ('main');\n"
      local p, d = both(script, { files = files })
      ok(p, d)
      assert.equal("inc,main", value(p.url, "SELECT string_agg(v, ',' ORDER BY v) FROM q"))
      assert.equal("inc,main", value(d.url, "SELECT string_agg(v, ',' ORDER BY v) FROM q"))
    end)
  end)

  describe("the query buffer", function()
    it("\\g, \\g FILE, \\g |cmd, \\gx and \\g (options) print as psql; an empty buffer sends the previous query", function()
      local script = table.concat({
        "SELECT 1 AS a, 'x' AS b \\g", "\\g", "SELECT 2 AS c \\g out.txt", "SELECT 3 AS d \\g |cat -n",
        "SELECT 4 AS e, NULL AS f \\gx", "SELECT 5 AS g, 'p,q' AS h \\g (format=csv)",
        "SELECT 6 AS i \\g (tuples_only=on footer=off) t.txt", "SELECT 7 AS j", "\\g", "\\echo done", "" }, "\n")
      for _, continue in ipairs { false, true } do
        local p, d = both(script, { continue = continue })
        ok(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.matches("^a\tb\n1\tx\n%(1 row%)\na\tb\n1\tx\n", d.stdout)
        assert.equal(testutil.read(p.dir .. "/out.txt"), testutil.read(d.dir .. "/out.txt"))
        assert.equal("c\n2\n(1 row)\n", testutil.read(d.dir .. "/out.txt"))
        assert.equal(testutil.read(p.dir .. "/t.txt"), testutil.read(d.dir .. "/t.txt"))
      end
    end)

    it("\\gset stores the one row (NULL unsets, a prefix); a result of 0 or 2 rows stops the script unless --continue-on-error", function()
      local good = "SELECT 5 AS x, NULL AS y, 'a b' AS z \\gset\n\\echo :x :{?y} :'z'\nSELECT 6 AS x \\gset p_\n\\echo :p_x :x\n"
      local p, d = both(good)
      ok(p, d)
      assert.equal("5 FALSE 'a b'\n6 5\n", d.stdout)
      assert.equal(p.stdout, d.stdout)
      local bad = "SELECT 1 AS x UNION SELECT 2 \\gset\n\\echo after :{?x}\nSELECT 1 AS x WHERE false \\gset\n\\echo end\n"
      p, d = both(bad)
      stopped(p, d)
      assert.equal("", d.stdout)
      assert.matches("s.sql:1:30: more than one row returned for \\gset", d.stderr, 1, true)
      p, d = both(bad, { continue = true })
      assert.equal(0, p.code)
      assert.equal(1, d.code)
      assert.equal(p.stdout, d.stdout)
      assert.equal("after FALSE\nend\n", d.stdout)
      assert.matches("no rows returned for \\gset", d.stderr, 1, true)
    end)

    it("\\gexec runs each non-NULL value; a failing one stops the script unless --continue-on-error", function()
      local script = "CREATE TABLE g (v int);\n" ..
        "SELECT format('INSERT INTO g VALUES (%s)', i), NULL FROM generate_series(1, 3) i \\gexec\n" ..
        "SELECT 'SELECT 1/0', 'INSERT INTO g VALUES (99)' \\gexec\n" ..
        "SELECT 'SELECT ''gexec'' AS q' \\gexec\nSELECT count(*) FROM g;\n"
      local p, d = both(script)
      stopped(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.equal(3, value(d.url, "SELECT count(*) FROM g"))
      assert.matches("s.sql:3:50: division by zero", d.stderr, 1, true)
      assert.matches("query (\\gexec): SELECT 1/0", d.stderr, 1, true)
      p, d = both(script, { continue = true })
      assert.equal(p.stdout, d.stdout)
      assert.equal("q\ngexec\n(1 row)\ncount\n4\n(1 row)\n", d.stdout)
      assert.equal(4, value(p.url, "SELECT count(*) FROM g"))
      assert.equal(4, value(d.url, "SELECT count(*) FROM g"))
    end)

    it("\\p shows the buffer as psql builds it (empty lines and meta-command lines left out), \\r resets it", function()
      local script = table.concat({
        "SELECT", "", "  1 +", "\\echo mid", "  1 AS two", "\\p", "\\w w.txt", "\\r", "\\p", "SELECT 3 AS three;",
        "\\p", "\\r", "\\p", "\\g", "SELECT 4 AS four \\r", "SELECT 5 AS five;", "" }, "\n")
      for _, continue in ipairs { false, true } do
        local p, d = both(script, { continue = continue })
        ok(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.matches("^mid\nSELECT\n  1 %+\n  1 AS two\n", d.stdout)
        assert.equal(testutil.read(p.dir .. "/w.txt"), testutil.read(d.dir .. "/w.txt"))
      end
    end)

    it("\\crosstabview pivots the rows, \\gdesc describes the columns without running the query, as psql", function()
      local script = table.concat({
        "SELECT v, h, d FROM (VALUES ('r1','c1','x'),('r2','c2','y'),('r1','c2','z'),(NULL,'c1','n')) t(v,h,d) \\crosstabview",
        "\\pset null N",
        "SELECT v, h, d, s FROM (VALUES ('r1','c1','x',2),('r2','c2','y',1)) t(v,h,d,s) \\crosstabview v h d s",
        "SELECT 1 AS \"V\", 2 AS h, 3 AS d \\crosstabview \"V\" 2 3",
        "SELECT 1 AS a, now() AS b, $$x$$::varchar(3) AS c \\gdesc", "INSERT INTO u VALUES (1) \\gdesc",
        "SELECT count(*) AS n FROM u;",
        "SELECT 1 AS a, 2 AS b \\crosstabview", "SELECT 'a' AS v, 'b' AS h, 1 AS d UNION ALL SELECT 'a','b',2 \\crosstabview",
        "SELECT 1 AS a, 2 AS b, 3 AS c \\crosstabview 1 1", "SELECT 1 AS a, 2 AS b, 3 AS c, 4 AS d \\crosstabview", "" }, "\n")
      local p, d = both(script, { setup = "CREATE TABLE u (v int);", continue = true })
      assert.equal(p.stdout, d.stdout)
      assert.matches("^v\tc1\tc2\nr1\tx\tz\nr2\t\ty\n\tn\t\n%(3 rows%)\n", d.stdout)
      assert.matches("The command has no result, or the result has no columns.\nn\n0\n", d.stdout, 1, true)
      for _, msg in ipairs { "query must return at least three columns",
        'query result contains multiple data values for row "a", column "b"',
        "vertical and horizontal headers must be different columns",
        "data column must be specified when query returns more than three columns" } do
        assert.matches("\\crosstabview: " .. msg, p.stderr, 1, true)
        assert.matches("\\crosstabview: " .. msg, d.stderr, 1, true)
      end
    end)

    it("an unsupported meta-command uses the buffer up as psql does (\\watch sends it once), never glued onto the next statement", function()
      local script = table.concat({
        "CREATE TABLE u (v int);", "INSERT INTO u VALUES (1);", "INSERT INTO u VALUES (2) \\watch 1000", "INSERT INTO u VALUES (3);",
        "INSERT INTO u VALUES (4)", "\\frobnicate", ", (5);", "SELECT string_agg(v::text, ',' ORDER BY v) AS vs FROM u;", "" }, "\n")
      -- (psql itself would repeat the INSERT until killed)
      local _, d = both(script, { continue = true, psql = false })
      assert.equal(1, d.code)
      assert.equal("1,2,3,4,5", value(d.url, "SELECT string_agg(v::text, ',' ORDER BY v) FROM u"))
      assert.equal("vs\n1,2,3,4,5\n(1 row)\n", d.stdout)
      assert.matches("s.sql:3:26: \\watch is a psql meta-command that db-tool does not run (the query ran", d.stderr, 1, true)
      assert.matches("s.sql:6:1: invalid command \\frobnicate", d.stderr, 1, true)
      -- without --continue-on-error the script stops there, after the query ran once
      _, d = both(script, { psql = false })
      assert.equal(1, d.code)
      assert.equal("1,2", value(d.url, "SELECT string_agg(v::text, ',' ORDER BY v) FROM u"))
      -- psql, for the record: the unknown command's line is an error, the buffer stays
      local p = both("CREATE TABLE u (v int);\nINSERT INTO u VALUES (4)\n\\frobnicate\n, (5);\n", { continue = true })
      assert.equal("4,5", value(p.url, "SELECT string_agg(v::text, ',' ORDER BY v) FROM u"))
    end)
  end)

  describe("\\copy", function()
    it("from stdin takes the next lines up to \\. (a data line never runs as SQL), from a file, a program, pstdin; to stdout, a file, a program, pstdout", function()
      local setup = "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('kept'); CREATE TABLE c (a int, b text);"
      local script = table.concat({
        "\\copy c from stdin", "1\tDROP TABLE keep;", "\\.",
        "\\copy c (a, b) from 'data.tsv'",
        "\\copy c from program 'printf \"3\\tprog\\n\"'",
        "\\copy c from pstdin",
        "\\copy c to stdout",
        "\\copy (SELECT a, b FROM c ORDER BY a DESC) to 'out.csv' with (format csv, header)",
        "\\copy c to program 'sort -r'",
        "\\copy c to pstdout",
        "\\copy binary c to 'c.bin'",
        "\\copy c from 'c.bin' with (format binary)",
        "SELECT count(*) AS n, (SELECT count(*) FROM keep) AS kept FROM c;", "" }, "\n")
      for _, continue in ipairs { false, true } do
        local p, d = both(script, { setup = setup, files = { ["data.tsv"] = "2\tfile\n" }, stdin = "4\tstdin\n\\.\n",
          continue = continue })
        ok(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.matches("n\tkept\n8\t1\n%(1 row%)\n$", d.stdout)
        assert.equal(testutil.read(p.dir .. "/out.csv"), testutil.read(d.dir .. "/out.csv"))
        assert.equal(testutil.read(p.dir .. "/c.bin"), testutil.read(d.dir .. "/c.bin"))
        assert.equal("kept", value(d.url, "SELECT v FROM keep"))
      end
    end)

    it("after a COPY … FROM stdin or \\copy that failed, skips its data lines: they never run as SQL (psql runs them)", function()
      local setup = "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('kept');"
      local script = "\\copy nosuch from stdin\nDROP TABLE keep;\n\\.\nCOPY nosuch FROM stdin;\nDROP TABLE keep;\n\\.\nSELECT 'end' AS e;\n"
      local p, d = both(script, { setup = setup, continue = true })
      assert.equal(1, d.code)
      assert.equal("e\nend\n(1 row)\n", d.stdout)
      assert.equal("kept", value(d.url, "SELECT v FROM keep"))
      assert.matches("the COPY data that followed (1 line from line 2) was skipped, not run as SQL", d.stderr, 1, true)
      -- what psql does instead: the data line ran
      assert.equal(0, p.code)
      assert.is_nil(value(p.url, "SELECT to_regclass('keep')::text"))
      -- and without --continue-on-error both stop at the COPY
      p, d = both(script, { setup = setup })
      stopped(p, d)
      assert.equal("kept", value(d.url, "SELECT v FROM keep"))
    end)

    it("reports its parse errors and unreadable files as psql", function()
      local script = "\\copy\n\\copy c frm stdin\n\\copy c from 'nonexistent.tsv'\n\\copy c from '/'\n\\echo end\n"
      local p, d = both(script, { setup = "CREATE TABLE c (a int);", continue = true })
      assert.equal(p.stdout, d.stdout)
      for _, msg in ipairs { "\\copy: arguments required", '\\copy: parse error at "frm"',
        "nonexistent.tsv: No such file or directory", "/: cannot copy from/to a directory" } do
        assert.matches(msg, p.stderr, 1, true)
        assert.matches(msg, d.stderr, 1, true)
      end
    end)
  end)

  describe("\\c", function()
    it("switches databases with psql's reuse of the previous parameters; a failed \\c ends the script", function()
      local targets = {}
      local function vars(who, url)
        local _, name = testutil.fresh_db("ctarget" .. who)
        targets[who] = name
        return { target = name, origin = url:match("^postgresql://[^/]*/([^?]+)"),
          target_url = testutil.db_url(name) }
      end
      local script = table.concat({
        "\\c :target", "SELECT current_database() = :'target' AS moved;", "CREATE TABLE here ();",
        "\\c -", "SELECT to_regclass('here') IS NOT NULL AS same_db;",
        "\\c :origin", "SELECT current_database() = :'origin' AS back;",
        "\\c -reuse-previous=off :target_url", "SELECT current_database() = :'target' AS by_url;",
        "\\c \"\"", "SELECT 'not reached';", "" }, "\n")
      local p, d = both(script, { vars = vars })
      stopped(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.equal("moved\nt\n(1 row)\nsame_db\nt\n(1 row)\nback\nt\n(1 row)\nby_url\nt\n(1 row)\n", d.stdout)
      -- \c "" asks for the database "" (libpq's default: the user's name), as psql
      assert.matches("s.sql:10:1: \\connect: ", d.stderr, 1, true)
      assert.matches('database "' .. (os.getenv("USER") or "dbtool-test") .. '" does not exist', p.stderr, 1, true)
      assert.matches('database "' .. (os.getenv("USER") or "dbtool-test") .. '" does not exist', d.stderr, 1, true)
      assert.matches("the rest of the script did not run", d.stderr, 1, true)
      assert.is_not_nil(value(testutil.db_url(targets.ours), "SELECT to_regclass('here')::text"))
    end)

    it("is refused with -1 (the one transaction is on one connection)", function()
      local url = testutil.fresh_db("c1")
      local r = testutil.run { argv = { "database", "sql", "-u", url, "-1", "-c", "CREATE TABLE t1 ();\n\\c postgres\nSELECT 1;" } }
      assert.equal(1, r.code)
      assert.matches("\\connect is not available here: the script runs in one transaction (-1)", r.stderr, 1, true)
      assert.is_nil(value(url, "SELECT to_regclass('t1')::text"))
    end)

    it("restores pg_dump --create output (CREATE DATABASE, then \\connect to it)", function()
      local url, name = testutil.fresh_db("dumpsrc")
      local c = testutil.connect(url)
      c:exec("CREATE TABLE items (id int PRIMARY KEY, label text); INSERT INTO items VALUES (1, 'one'), (2, 'two');")
      c:close()
      local dir = testutil.tmpdir("create-dump")
      local r = testutil.run { argv = { bin("pg_dump"), "--create", "--no-owner", "-f", dir .. "/d.sql", "-d", url } }
      assert.equal(0, r.code, r.stderr)
      local admin <close> = testutil.connect()
      admin:exec('DROP DATABASE "' .. name .. '"')
      r = testutil.run { argv = { "database", "sql", "-u", testutil.db_url("postgres"), dir .. "/d.sql" } }
      assert.equal(0, r.code, r.stderr)
      assert.equal("one,two", value(url, "SELECT string_agg(label, ',' ORDER BY id) FROM items"))
    end)
  end)

  describe("output", function()
    it("\\o sends rows, \\qecho and COPY TO STDOUT to a file or a command; \\echo stays on stdout", function()
      local script = table.concat({
        "\\o out.txt", "SELECT 1 AS a;", "\\qecho q", "\\echo e", "COPY (SELECT 2) TO STDOUT;",
        "\\o |cat -n", "SELECT 3 AS b;", "\\o", "SELECT 4 AS c;", "" }, "\n")
      local p, d = both(script)
      ok(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.equal(testutil.read(p.dir .. "/out.txt"), testutil.read(d.dir .. "/out.txt"))
      assert.equal("a\n1\n(1 row)\nq\n2\n", testutil.read(d.dir .. "/out.txt"))
      -- without -p rows go where \o sends them, not to stdout
      local _, d2 = both(script, { print = false })
      assert.equal(0, d2.code)
      assert.equal("e\n     1\tb\n     2\t3\n     3\t(1 row)\n", d2.stdout)
      assert.equal("a\n1\n(1 row)\nq\n2\n", testutil.read(d2.dir .. "/out.txt"))
    end)

    it("\\timing prints a Time: line after each statement, as psql", function()
      local script = "\\timing on\nSELECT 1 AS a;\nSELECT 1/0;\n\\timing off\nSELECT 2 AS b;\n\\timing\nSELECT 3 AS c;\n"
      local p, d = both(script, { continue = true })
      local function norm(s) return (s:gsub("Time: [%d.]+ ms", "Time: X ms")) end
      assert.equal(norm(p.stdout), norm(d.stdout))
      assert.equal("a\n1\n(1 row)\nTime: X ms\nTime: X ms\nb\n2\n(1 row)\nc\n3\n(1 row)\nTime: X ms\n", norm(d.stdout))
    end)

    it("\\pset changes what -p prints as it changes psql -A -F '<tab>'; a bare \\pset lists the settings", function()
      local script = table.concat({
        "\\pset", "\\pset null '(null)'", "\\pset fieldsep ','", "SELECT 1 AS a, NULL AS b;",
        "\\pset format csv", "SELECT 'x,y' AS c, 'q\"r' AS d;", "\\pset tuples_only on", "SELECT 1;",
        "\\pset tuples_only off", "\\x", "SELECT 1 AS e, 2 AS f;", "\\x off", "\\pset footer off",
        "\\pset format unaligned", "\\pset title Title", "SELECT 5 AS g;", "\\t", "\\pset recordsep '|'",
        "SELECT 6 AS h UNION ALL SELECT 7;", "\\a", "\\a", "\\f ';'", "\\C", "\\t off", "SELECT 8 AS i, 9 AS j;", "" }, "\n")
      local p, d = both(script)
      ok(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.matches("format                   unaligned\n", d.stdout, 1, true)
    end)

    it("\\echo prints variables in every form", function()
      local script = "\\set v 'it''s'\n\\echo :v :'v' :\"v\" :{?v} :{?none} :none :'none' :\"none\"\n\\echo -n no newline\n\\echo\n\\echo '\\t' \"q\" `echo sh`\n\\qecho :v\n"
      local p, d = both(script)
      ok(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.equal("it's 'it''s' \"it's\" TRUE FALSE :none :'none' :\"none\"\nno newline\n\t \"q\" sh\nit's\n", d.stdout)
    end)
  end)

  describe("transactions", function()
    it("AUTOCOMMIT off sends BEGIN first (not before VACUUM); what is not committed is rolled back at the end", function()
      local script = table.concat({
        "\\set AUTOCOMMIT off", "INSERT INTO ac VALUES (1);", "COMMIT;", "INSERT INTO ac VALUES (2);", "ROLLBACK;",
        "VACUUM ac;", "INSERT INTO ac VALUES (3);", "SELECT count(*) AS n FROM ac;", "" }, "\n")
      for _, continue in ipairs { false, true } do
        local p, d = both(script, { setup = "CREATE TABLE ac (v int);", continue = continue })
        ok(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.equal("n\n2\n(1 row)\n", d.stdout)
        assert.equal("1", value(p.url, "SELECT string_agg(v::text, ',') FROM ac"))
        assert.equal("1", value(d.url, "SELECT string_agg(v::text, ',') FROM ac"))
        assert.matches("the script ended inside a transaction block", d.stderr, 1, true)
      end
      -- a value that is no boolean is refused, as by psql
      local p, d = both("\\set AUTOCOMMIT sometimes\n\\echo :AUTOCOMMIT\n", { continue = true })
      assert.equal(p.stdout, d.stdout)
      assert.equal("on\n", d.stdout)
      assert.matches('unrecognized value "sometimes" for "AUTOCOMMIT": Boolean expected', d.stderr, 1, true)
    end)

    it("ON_ERROR_ROLLBACK on rolls back only the failing statement of a transaction; interactive is off in a script", function()
      local script = table.concat({
        "\\set ON_ERROR_ROLLBACK on", "BEGIN;", "INSERT INTO r VALUES (1);", "INSERT INTO r VALUES ('x');",
        "INSERT INTO r VALUES (2);", "COMMIT;", "\\set ON_ERROR_ROLLBACK interactive", "BEGIN;",
        "INSERT INTO r VALUES (3);", "SELECT 1/0;", "INSERT INTO r VALUES (4);", "COMMIT;",
        "SELECT string_agg(v::text, ',' ORDER BY v) AS vs FROM r;", "" }, "\n")
      local p, d = both(script, { setup = "CREATE TABLE r (v int);", continue = true })
      assert.equal(p.stdout, d.stdout)
      assert.equal("vs\n1,2\n(1 row)\n", d.stdout)
      -- with ON_ERROR_STOP the error still stops the script, the transaction rolled back
      p, d = both(script, { setup = "CREATE TABLE r (v int);" })
      stopped(p, d)
      assert.is_nil(value(d.url, "SELECT string_agg(v::text, ',') FROM r"))
    end)
  end)

  describe("input", function()
    it("drops a UTF-8 byte-order mark at the start of the script and of included files (client encoding UTF8), as psql", function()
      local bom = "\239\187\191"
      local files = { ["inc.sql"] = bom .. "SELECT 'inc' AS i;\n" }
      local script = bom .. "SELECT 'main' AS m;\n\\i inc.sql\n"
      local p, d = both(script, { files = files })
      ok(p, d)
      assert.equal(p.stdout, d.stdout)
      assert.equal("m\nmain\n(1 row)\ni\ninc\n(1 row)\n", d.stdout)
      -- with another client encoding psql keeps the mark: so does db-tool (a syntax error)
      p, d = both(script, { files = files, env = { PGCLIENTENCODING = "LATIN1" } })
      stopped(p, d)
      assert.matches("s.sql:1:1: syntax error", d.stderr, 1, true)
    end)

    it("reads the script from standard input with \\copy data inline", function()
      local url = testutil.fresh_db("stdin")
      local r = testutil.run { argv = { "database", "sql", "-u", url, "-p", "-" },
        stdin = "CREATE TABLE s (v text);\n\\copy s from stdin\nline 1\nline 2\n\\.\nSELECT count(*) AS n FROM s;\n" }
      assert.equal(0, r.code, r.stderr)
      assert.equal("n\n2\n(1 row)\n", r.stdout)
    end)

    it("NUL bytes: the statement is an error at the byte and is never sent cut short (psql sends garbage and fails)", function()
      local setup = "CREATE TABLE d (id int); INSERT INTO d VALUES (1), (2);"
      for _, script in ipairs { "DELETE FROM d\0 WHERE id = 1;\nSELECT 1 AS one;\n", "SELECT 'a\0b' AS x;\nSELECT 2 AS two;\n",
        'SELECT 1 AS "a\0b";\nSELECT 3 AS three;\n' } do
        local p, d = both(script, { setup = setup })
        stopped(p, d)
        assert.equal("", d.stdout)
        assert.equal(2, value(p.url, "SELECT count(*) FROM d"))
        assert.equal(2, value(d.url, "SELECT count(*) FROM d"))
        assert.matches("NUL byte (\\0) in the statement: it is not sent", d.stderr, 1, true)
        assert.not_matches("\0", d.stderr, 1, true)
      end
      -- with --continue-on-error the next statement runs (psql joined it to the broken one)
      local _, d = both("SELECT 'a\0b' AS x;\nSELECT 2 AS two;\n", { setup = setup, continue = true })
      assert.equal(1, d.code)
      assert.equal("two\n2\n(1 row)\n", d.stdout)
      assert.matches("s.sql:1:10: NUL byte", d.stderr, 1, true)
      -- in COPY data the byte goes to the server, which refuses it at its line
      _, d = both("CREATE TABLE cd (v text);\nCOPY cd FROM stdin;\nab\0cd\n\\.\n")
      assert.equal(1, d.code)
      assert.matches("s.sql:3:1: invalid byte sequence for encoding \"UTF8\": 0x00 (SQLSTATE 22021)", d.stderr, 1, true)
    end)

    it("invalid UTF-8 in a literal, an identifier or COPY data: psql's outcome, at the bad byte", function()
      for _, case in ipairs {
        { "SELECT 'a\255b' AS x;\nSELECT 2 AS two;\n", "s.sql:1:10:" },
        { 'SELECT 1 AS "a\255b";\nSELECT 2 AS two;\n', "s.sql:1:15:" },
        { "CREATE TABLE cu (v text);\nCOPY cu FROM stdin;\nab\255cd\n\\.\nSELECT 2 AS two;\n", "s.sql:3:1:" } } do
        local p, d = both(case[1])
        stopped(p, d)
        assert.equal(p.stdout, d.stdout)
        assert.matches('invalid byte sequence for encoding "UTF8": 0xff', p.stderr, 1, true)
        assert.matches(case[2] .. ' invalid byte sequence for encoding "UTF8": 0xff (SQLSTATE 22021)', d.stderr, 1, true)
        p, d = both(case[1], { continue = true })
        assert.equal(p.stdout, d.stdout)
        assert.matches("two\n2\n%(1 row%)\n$", d.stdout)
      end
    end)

    it("cuts the excerpt of an error in a 1.2 MB one-line statement around the error", function()
      local url = testutil.fresh_db("long")
      local dir = testutil.tmpdir("long")
      local f = testutil.write(dir .. "/long.sql", "SELECT '" .. string.rep("x", 1200000) .. "' || nosuchcol;\n")
      local r = testutil.run { argv = { "database", "sql", "-u", url, f } }
      assert.equal(1, r.code)
      assert.matches("long.sql:1:1200014: column \"nosuchcol\" does not exist", r.stderr, 1, true)
      assert.is_true(#r.stderr < 2000, "stderr of " .. #r.stderr .. " bytes")
      local shown, caret = r.stderr:match("\n1 | ([^\n]*)\n  | ( *)%^")
      assert.matches("^…x+' || nosuchcol;$", shown)
      assert.equal("nosuchcol", shown:sub(#caret + 1 + #"…" - 1, #caret + #"…" - 1 + 9))
    end)
  end)
end)

