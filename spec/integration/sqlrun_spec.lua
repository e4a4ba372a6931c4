-- dbtool.sqlrun against a real PostgreSQL: psql equivalence on pg_dump output, every
-- meta-command, interpolation edge cases, COPY streaming, error locations, transactions.
-- luacheck: no max line length
local testutil = require "testutil"
local sqlrun = require "dbtool.sqlrun"

local function capture_log()
  local lines = {}
  local l = {}
  for _, lv in ipairs { "trace", "debug", "info", "notice", "warn", "error" } do
    l[lv] = function(_, fmt, ...) lines[#lines + 1] = lv .. ": " .. string.format(fmt, ...) end
  end
  return l, lines
end

local function collector()
  local t = {}
  return function(s) t[#t + 1] = s end, function() return table.concat(t) end
end

local function fresh()
  local url = testutil.fresh_db("sqlrun")
  return testutil.connect(url), url
end

local function value(conn, sql)
  local r = conn:exec(sql)
  return r[1] and r[1][1]
end

local function raises(fn)
  local ok, e = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_table(e, tostring(e))
  return e
end

local function bin(name)
  return testutil.pg_bindir() .. "/" .. name
end

local function strip_restrict(dump)
  return (dump:gsub("\n\\restrict [^\n]*", ""):gsub("\n\\unrestrict [^\n]*", ""))
end

local function dump(url, extra)
  local argv = { bin("pg_dump"), "--no-owner", "-d", url }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local r = testutil.run { argv = argv }
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

describe("sqlrun", function()
  local dir

  setup(function()
    testutil.cluster()
    dir = testutil.tmpdir("sqlrun")
  end)

  describe("pg_dump output", function()
    local src_url, plain, inserts, rows, clean

    setup(function()
      local conn
      conn, src_url = fresh()
      conn:exec([==[
        CREATE SCHEMA "we;ird ""schema""";
        CREATE SEQUENCE counter START 42 INCREMENT 3;
        SELECT nextval('counter'), nextval('counter');
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE items (
          id serial PRIMARY KEY,
          label text,
          raw bytea,
          nums int[],
          words text[],
          doc json,
          docb jsonb,
          amount numeric(12,3),
          at timestamptz,
          ratio float8,
          flag boolean,
          feeling mood,
          "col:on" text,
          "we;ird" text
        );
        INSERT INTO items (label, raw, nums, words, doc, docb, amount, at, ratio, flag, feeling, "col:on", "we;ird")
        VALUES
          (E'tab\there\nnewline\\backslash', '\x00ff5c0a'::bytea, '{1,2,NULL}', '{"a b","c,d","\"q\""}',
           '{"k": "v;\n"}', '{"n": [1, 2.5, null]}', 123.456, '2024-01-02 03:04:05+00', 0.1, true, 'happy',
           ':notavar', $$it's ; $$),
          (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          ('', '', '{}', '{}', '[]', '{}', 0, 'infinity', 'NaN', false, 'sad', '\.', E'\\.'),
          ('unicode: é ü 漢字 😀', '\x', '{-1}', '{"é"}', '"s"', '"s"', -1.5, '1999-12-31 23:59:59.999+02', -0, NULL,
           'ok', '$$ $tag$ /* -- */', E'line1\r\nline2'),
          (E'\\echo not a meta-command\n\\.\nstill data', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, ':''x'' :"y" :{?z}', ';');
        INSERT INTO items (label, amount) SELECT 'row ' || g, g FROM generate_series(1, 3000) g;
        CREATE TABLE "we;ird ""schema""".child (
          id int REFERENCES items(id), note text DEFAULT 'semi;colon', CHECK (id > 0));
        INSERT INTO "we;ird ""schema""".child SELECT id, 'n' || id FROM items WHERE id % 7 = 0;
        CREATE FUNCTION add_one(a integer) RETURNS integer LANGUAGE plpgsql AS $_$
        DECLARE
          b integer := 1;  -- := assignment; and a :notavar
        BEGIN
          b := a + b;
          RETURN $1 + b - a;   -- $1 parameter
        END;
        $_$;
        CREATE FUNCTION std_body(x int) RETURNS int LANGUAGE sql
        BEGIN ATOMIC
          SELECT x + 1;
        END;
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.label := coalesce(NEW.label, '') || ' (touched; ok)';
          RETURN NEW;
        END $$;
        CREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE VIEW labels AS SELECT id, label || ';' AS l, $$x$$::text AS x FROM items WHERE label <> ':v';
        COMMENT ON TABLE items IS 'Items; with ''quotes'' and \backslash';
        CREATE INDEX items_label ON items (lower(label));
        CREATE DOMAIN posint AS int CHECK (VALUE > 0);
        CREATE TABLE part (k posint, v text) PARTITION BY RANGE (k);
        CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM (1) TO (100);
        CREATE TABLE part_2 PARTITION OF part FOR VALUES FROM (100) TO (MAXVALUE);
        INSERT INTO part SELECT g, E'v\t' || g FROM generate_series(1, 300) g;
        CREATE MATERIALIZED VIEW moods AS SELECT feeling, count(*) AS n FROM items GROUP BY feeling;
        ALTER TABLE items ENABLE ROW LEVEL SECURITY;
        CREATE POLICY not_secret ON items USING (label IS DISTINCT FROM 'secret;');
        CREATE RULE no_negative AS ON INSERT TO part WHERE NEW.k > 1000 DO INSTEAD NOTHING;
        SELECT lo_from_bytea(0, convert_to(E'large object; with \\ and \n newline', 'UTF8'));
        SELECT lo_from_bytea(0, decode(repeat('00ff5c0a', 50000), 'hex'));
        DO $$ BEGIN
          EXECUTE format($f$COMMENT ON LARGE OBJECT %s IS 'lo; comment'$f$,
            (SELECT min(oid) FROM pg_largeobject_metadata));
        END $$;
      ]==])
      conn:close()
      plain = testutil.write(dir .. "/plain.sql", dump(src_url))
      inserts = testutil.write(dir .. "/inserts.sql", dump(src_url, { "--column-inserts" }))
      rows = testutil.write(dir .. "/rows.sql", dump(src_url, { "--inserts", "--rows-per-insert=100" }))
      clean = testutil.write(dir .. "/clean.sql", dump(src_url, { "--clean", "--if-exists" }))
    end)

    local function psql_f(url, file)
      local r = testutil.run { argv = { bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", file } }
      assert.equal(0, r.code, r.stderr)
    end

    -- restore `file` with psql and with sqlrun (each over what `before` restored with psql)
    local function restore_both(file, before)
      local _, psql_url = fresh()
      if before then psql_f(psql_url, before) end
      psql_f(psql_url, file)
      local conn <close>, ours_url = fresh()
      if before then psql_f(ours_url, before) end
      local summary = sqlrun.file(conn, file, { log = (capture_log()) })
      assert.is_true(summary.statements > 10)
      return psql_url, ours_url
    end

    it("contains the constructs we claim to handle", function()
      local text = testutil.read(plain)
      assert.truthy(text:find("\nCOPY public.items", 1, true))
      assert.truthy(text:find("\n\\.\n", 1, true))
      assert.truthy(text:find("BEGIN ATOMIC", 1, true))
      assert.truthy(text:find("$_$", 1, true))
      assert.truthy(testutil.read(inserts):find("INSERT INTO public.items (", 1, true))
      assert.truthy(text:find("SELECT pg_catalog.lowrite(0, '\\x", 1, true))
      assert.truthy(text:find("\nCOPY public.part_1 ", 1, true))
      assert.truthy(testutil.read(rows):find("),\n\t(", 1, true))
      assert.truthy(testutil.read(clean):find("DROP TABLE IF EXISTS public.items;", 1, true))
    end)

    it("restores --inserts --rows-per-insert output, and --clean --if-exists over a restored copy", function()
      local a, b = restore_both(rows)
      assert.equal(strip_restrict(dump(a)), strip_restrict(dump(b)))
      assert.equal(strip_restrict(dump(src_url)), strip_restrict(dump(b)))
      a, b = restore_both(clean, plain)
      assert.equal(strip_restrict(dump(a)), strip_restrict(dump(b)))
      assert.equal(strip_restrict(dump(src_url)), strip_restrict(dump(b)))
    end)

    it("restores plain output (COPY blocks) to the same database as psql -f", function()
      local a, b = restore_both(plain)
      local da, db = strip_restrict(dump(a)), strip_restrict(dump(b))
      assert.equal(da, db)
      assert.equal(strip_restrict(dump(src_url)), db)
    end)

    it("restores --column-inserts output to the same database as psql -f", function()
      local a, b = restore_both(inserts)
      assert.equal(strip_restrict(dump(a)), strip_restrict(dump(b)))
      assert.equal(strip_restrict(dump(src_url)), strip_restrict(dump(b)))
    end)

    it("gives the same result whatever the read chunk size", function()
      local saved = sqlrun.CHUNK
      local conn <close>, url = fresh()
      sqlrun.CHUNK = 7
      local ok, err = pcall(sqlrun.file, conn, plain, { log = (capture_log()) })
      sqlrun.CHUNK = saved
      assert.is_true(ok, tostring(err and err.msg or err))
      assert.equal(strip_restrict(dump(src_url)), strip_restrict(dump(url)))
    end)

    it("refuses meta-commands injected between \\restrict and \\unrestrict", function()
      local conn <close> = fresh()
      local text = "\\restrict abc\nSELECT 1;\n\\! echo pwned\n\\unrestrict abc\n"
      local e = raises(function() sqlrun.string(conn, text, { name = "dump.sql" }) end)
      assert.equal("dump.sql:3:1", e.where)
      assert.matches("restricted", e.msg)
    end)
  end)

  describe("meta-commands", function()
    it("\\set, \\unset and interpolation of :name, :'name', :\"name\", :{?name}", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, [[
\set tbl 'my table'
\set val 'it''s'
\set n 4 2
CREATE TABLE :"tbl" (v text, n int);
INSERT INTO :"tbl" VALUES (:'val', :n);
\echo :{?val} :{?nope} :n
\unset val
\echo :{?val} :val
]], { output = out })
      assert.equal("it's", value(conn, 'SELECT v FROM "my table"'))
      assert.equal(42, value(conn, 'SELECT n FROM "my table"'))
      assert.equal("TRUE FALSE 42\nFALSE :val\n", text())
    end)

    it("passes opts.vars and rejects invalid names", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, "\\echo :a :b\nSELECT :'a' = 'x y';", { vars = { a = "x y", b = 3 }, output = out })
      assert.equal("x y 3\n", text())
      local e = raises(function() sqlrun.string(conn, "\\set a-b 1\n") end)
      assert.matches('invalid variable name: "a%-b"', e.msg)
      assert.equal("<string>:1:1", e.where)
    end)

    it("\\echo, \\qecho, \\warn with -n and quoting like psql", function()
      local conn <close> = fresh()
      local out, text = collector()
      local warn, wtext = collector()
      sqlrun.string(conn, [[
\echo -n 'a\tb'
\echo  "q r" x'' '-n'
\qecho one \\ SELECT 1;
\warn to stderr
]], { output = out, warn = warn })
      assert.equal("a\tb\"q r\" x -n\none\n", text())
      assert.equal("to stderr\n", wtext())
    end)

    it("\\if/\\elif/\\else/\\endif with booleans, :{?var} and nesting", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, [[
\set mock on
\if :{?mock}
  \if :mock
    \echo mock-on
  \else
    \echo mock-off
  \endif
\elif true
  \echo never
\else
  \echo never
\endif
\if false
  SELECT 1/0;
  \echo :nope
  \bogus
  \if true
    \echo never
  \endif
\elif off
  \echo never
\elif yes
  \echo elif-yes
  CREATE TABLE yes_table ();
\else
  \echo never
\endif
\if 0
\else
  \echo else
\endif
]], { output = out })
      assert.equal("mock-on\nelif-yes\nelse\n", text())
      assert.equal("yes_table", value(conn, "SELECT to_regclass('yes_table')::text"))
    end)

    it("reports \\if errors at their line", function()
      local conn <close> = fresh()
      local cases = {
        { "\\if maybe\n\\endif\n", 1, 'unrecognized value "maybe" for "\\if expression": Boolean expected' },
        { "SELECT 1;\n\\endif\n", 2, "\\endif: no matching \\if" },
        { "\\else\n", 1, "\\else: no matching \\if" },
        { "\\if true\n\\else\n\\else\n\\endif\n", 3, "\\else: cannot occur after \\else" },
        { "\\if true\n\\else\n\\elif true\n\\endif\n", 3, "\\elif: cannot occur after \\else" },
        { "\n\\if true\nSELECT 1;\n", 2, "reached EOF without finding closing \\endif(s)" },
      }
      for _, c in ipairs(cases) do
        local e = raises(function() sqlrun.string(conn, c[1], { name = "c.sql" }) end)
        assert.equal(c[3], e.msg)
        assert.equal("c.sql:" .. c[2] .. ":1", e.where)
        assert.equal(1, e.exit)
      end
    end)

    it("forgets parentheses of a skipped branch, sends nothing for it, takes \\else after a bad \\if", function()
      local conn <close> = fresh()
      local sent = {}
      local function on_statement(text) sent[#sent + 1] = (text:gsub("%s+", " ")) end
      local s = sqlrun.string(conn, "SELECT 1 AS x\n\\if false\n  , (\n\\endif\n;\nSELECT 2;\n" ..
        "\\if false\nSELECT 3;\n\\endif\n\n\n", { on_statement = on_statement })
      assert.same({ "SELECT 1 AS x ;", "SELECT 2;" }, sent)
      assert.equal(2, s.statements)
      -- a ';' in a skipped branch does not end (nor drop) the statement pending before it;
      -- the text after the branch joins it on a new line (a -- comment stays closed)
      sent = {}
      local fields
      sqlrun.string(conn, "SELECT 1 AS a -- one\n\\if false\nSELECT 2;\n\\endif\n, 2 AS b;\n",
        { on_statement = on_statement, on_result = function(res) fields = res.fields end })
      assert.same({ "SELECT 1 AS a -- one , 2 AS b;" }, sent)
      assert.same({ "a", "b" }, fields)
      -- psql takes an unreadable \if expression for false: its \else branch runs
      local out, text = collector()
      s = sqlrun.string(conn, "\\if maybe\n\\echo then\n\\else\n\\echo else\n\\endif\n",
        { on_error_stop = false, output = out, log = (capture_log()) })
      assert.equal(1, s.errors)
      assert.equal("else\n", text())
    end)

    it("at the end of a file, runs the last unterminated statement only in an active branch (psql)", function()
      local conn <close> = fresh()
      local l = capture_log()
      sqlrun.string(conn, "CREATE TABLE e1 (a int);\nINSERT INTO e1 VALUES (1)\n\\if false\n\\endif\n",
        { log = l })
      assert.equal(1, value(conn, "SELECT count(*) FROM e1"))
      -- still open and inactive at the end: the pending INSERT is dropped, the open \if reported
      local s = sqlrun.string(conn, "INSERT INTO e1 VALUES (2)\n\\if false\nSELECT 1/0;\n",
        { log = l, on_error_stop = false })
      assert.equal(1, s.errors)
      assert.equal(0, value(conn, "SELECT count(*) FROM e1 WHERE a = 2"))
      -- open but active: the statement runs, then the open \if is the error
      local e = raises(function() sqlrun.string(conn, "\\if true\nINSERT INTO e1 VALUES (3)", { log = l }) end)
      assert.matches("reached EOF without finding closing", e.msg)
      assert.equal(1, value(conn, "SELECT count(*) FROM e1 WHERE a = 3"))
    end)

    it("\\i, \\include relative to cwd; \\ir, \\include_relative relative to the file; nested", function()
      local root = testutil.tmpdir("inc")
      testutil.write(root .. "/db/entry.sql", [[
\echo entry
\ir sub/a.sql
\include_relative sub/b.sql
\i db/sub/c.sql
\include db/sub/c.sql
]])
      testutil.write(root .. "/db/sub/a.sql", "\\echo a\n\\ir deeper/d.sql\n")
      testutil.write(root .. "/db/sub/deeper/d.sql", "\\echo d\nCREATE TABLE d_ran ();\n\\ir ../b.sql\n")
      testutil.write(root .. "/db/sub/b.sql", "\\echo b\n")
      testutil.write(root .. "/db/sub/c.sql", "\\echo c\n")
      local conn <close> = fresh()
      local out, text = collector()
      local s = sqlrun.file(conn, "db/entry.sql", { cwd = root, output = out })
      assert.equal("entry\na\nd\nb\nb\nc\nc\n", text())
      assert.equal(7, s.files)
      assert.equal("d_ran", value(conn, "SELECT to_regclass('d_ran')::text"))
    end)

    it("drops a UTF-8 byte-order mark of the file and of each include (hydrate's entrypoint.sql too), not of -c text", function()
      local root = testutil.tmpdir("bom")
      local bom = "\239\187\191"
      testutil.write(root .. "/entrypoint.sql", bom .. "SELECT 1 AS one;\n\\ir inc.sql\n")
      testutil.write(root .. "/inc.sql", bom .. "\\echo included\n")
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.file(conn, "entrypoint.sql", { cwd = root, output = out, print_results = true })
      assert.equal("one\n1\n(1 row)\nincluded\n", text())
      -- a string script is not a file: the mark stays (a syntax error, as with psql -c)
      local e = raises(function() sqlrun.string(conn, bom .. "SELECT 1;") end)
      assert.equal("42601", e.sqlstate)
    end)

    it("reports a missing include at the including line, with the include chain", function()
      local root = testutil.tmpdir("inc2")
      testutil.write(root .. "/top.sql", "SELECT 1;\n\\ir mid.sql\n")
      testutil.write(root .. "/mid.sql", "\n\n\\ir missing.sql\n")
      local conn <close> = fresh()
      local e = raises(function() sqlrun.file(conn, root .. "/top.sql") end)
      assert.equal(root .. "/mid.sql:3:1", e.where)
      assert.matches("\\ir: could not read " .. root:gsub("%p", "%%%0") .. "/missing.sql: No such file", e.msg)
      assert.matches("in " .. root:gsub("%p", "%%%0") .. "/top.sql:2 %(\\ir mid.sql%)", e.excerpt)
      assert.same({ { file = root .. "/top.sql", line = 2, command = "\\ir mid.sql" } }, e.includes)
      -- a directory is not a script: said at the including line too
      testutil.write(root .. "/mid.sql", "\n\\ir .\n")
      e = raises(function() sqlrun.file(conn, root .. "/top.sql") end)
      assert.equal(root .. "/mid.sql:2:1", e.where)
      assert.matches("could not read " .. root:gsub("%p", "%%%0") .. "/%.: Is a directory", e.msg)
      e = raises(function() sqlrun.file(conn, root) end)
      assert.matches("could not read .*: Is a directory", e.msg)
    end)

    it("stops runaway recursive includes", function()
      local root = testutil.tmpdir("inc3")
      testutil.write(root .. "/self.sql", "\\ir self.sql\n")
      local conn <close> = fresh()
      local e = raises(function() sqlrun.file(conn, root .. "/self.sql") end)
      assert.matches("too many nested includes", e.msg)
    end)

    it("\\restrict/\\unrestrict: wrong key, not restricted, missing argument", function()
      local conn <close> = fresh()
      local e = raises(function() sqlrun.string(conn, "\\restrict k1\n\\unrestrict k2\n") end)
      assert.equal("\\unrestrict: wrong key", e.msg)
      e = raises(function() sqlrun.string(conn, "\\unrestrict k1\n") end)
      assert.equal("\\unrestrict: not currently in restricted mode", e.msg)
      e = raises(function() sqlrun.string(conn, "\\restrict\n") end)
      assert.equal("\\restrict: missing required argument", e.msg)
      local out, text = collector()
      sqlrun.string(conn, "\\restrict k1\nSELECT 1;\n\\unrestrict k1\n\\echo free\n", { output = out })
      assert.equal("free\n", text())
    end)

    it("throws away the rest of the line after a failing meta-command, evaluating nothing on it", function()
      local conn <close> = fresh()
      local d = testutil.tmpdir("metafail")
      local out, text = collector()
      local s = sqlrun.string(conn, table.concat({
        "CREATE TABLE m (v text);",
        "\\bogus `touch " .. d .. "/ran` \\\\ INSERT INTO m VALUES ('after unknown');",
        "\\i " .. d .. "/missing.sql \\\\ INSERT INTO m VALUES ('after failed');",
        "\\echo ok \\\\ INSERT INTO m VALUES ('after ok');",
        "\\. \\: INSERT INTO m VALUES ('x');",
        "INSERT INTO m VALUES ('next line');",
      }, "\n"), { on_error_stop = false, output = out, log = (capture_log()) })
      assert.equal(3, s.errors)
      assert.equal("ok\n", text())
      assert.is_nil(io.open(d .. "/ran"), "the backquoted command of an unknown meta-command ran")
      -- what psql 15 leaves in the table for this script
      assert.equal("after ok|next line", value(conn, "SELECT string_agg(v, '|' ORDER BY v) FROM m"))
    end)

    it("rejects unsupported and unknown meta-commands at their line", function()
      local conn <close> = fresh()
      local e = raises(function() sqlrun.string(conn, "SELECT 1;\n\n  \\dt public.*\n", { name = "u.sql" }) end)
      assert.equal("u.sql:3:3", e.where)
      assert.matches("\\dt is a psql meta%-command that db%-tool does not run", e.msg)
      assert.matches("3 |   \\dt public.%*\n  |   %^", e.excerpt)
      e = raises(function() sqlrun.string(conn, "SELECT 1 \\frobnicate\n;") end)
      assert.equal("invalid command \\frobnicate", e.msg)
      assert.equal("<string>:1:10", e.where)
      e = raises(function() sqlrun.string(conn, "\\\\\n") end)
      assert.equal("invalid command \\", e.msg)
      -- \connect on a connection the caller owns (without opts.connect): say what to do instead
      e = raises(function() sqlrun.string(conn, "CREATE TABLE cc ();\n\\connect other\nSELECT 1;", { name = "c.sql" }) end)
      assert.equal("c.sql:2:1", e.where)
      assert.matches("\\connect is not available here", e.msg)
      assert.matches("pg_dump %-%-create", e.hint)
      assert.equal("cc", value(conn, "SELECT to_regclass('cc')::text"))
    end)

    it("runs backquoted shell commands in arguments", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, "\\set x `echo hi there`\n\\echo :x\n", { output = out })
      assert.equal("hi there\n", text())
    end)

    it("substitutes :name and :'name' (quoted for the shell) inside backquotes, as psql", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, table.concat({
        "\\set a 1",
        "\\set s 'it''s $HOME; `x`'",
        "\\echo `echo :a` `echo ':a'` `printf '%s|' :'s'` `printf '%s|' :'a'` `echo :nope :\"a\"`",
      }, "\n"), { output = out })
      assert.equal("1 1 it's $HOME; `x`| 1| :nope :a\n", text())   -- what psql 15 prints
      local e = raises(function()
        sqlrun.string(conn, "\\set n `printf 'a\\nb'`\n\\echo `echo :'n'`\n", { name = "n.sql" })
      end)
      assert.equal("n.sql:2:1", e.where)
      assert.matches("newline or carriage return", e.msg)
    end)
  end)

  describe("interpolation edge cases", function()
    it("leaves quotes, dollar quotes, comments, ::casts and := alone", function()
      local conn <close> = fresh()
      sqlrun.string(conn, [[
\set v 7
CREATE TABLE t (a text, b int);
INSERT INTO t VALUES (':v', :v::int);          -- :v in a comment
INSERT INTO t VALUES (E':v\'', /* :v */ 1), ($$:v$$, 2), ($q$ :'v' $q$, 3);
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$
DECLARE x int := 1;
BEGIN
  x := x + 1;  -- :v is not interpolated in the body
  RETURN x;
END $$;
INSERT INTO t VALUES ('f', f()), (current_user::text, :v);
]])
      assert.equal(":v'=1|:v=2|f=2| :'v' =3|:v=7",
        value(conn, "SELECT string_agg(a || '=' || b, '|' ORDER BY b, a) FROM t WHERE a <> current_user"))
      assert.equal(7, value(conn, "SELECT b FROM t WHERE a = current_user"))
    end)

    it("lexes a plain variable's value (it may hold several statements)", function()
      local conn <close> = fresh()
      sqlrun.string(conn, "\\set stmts 'CREATE TABLE a (); CREATE TABLE b ();'\n:stmts\n" ..
        "\\set self 'SELECT :self'\n")
      assert.equal("a", value(conn, "SELECT to_regclass('a')::text"))
      assert.equal("b", value(conn, "SELECT to_regclass('b')::text"))
      -- a variable is not expanded inside its own value: the server sees ":self"
      local e = raises(function() sqlrun.string(conn, "\\set self 'SELECT :self;'\n:self\n") end)
      assert.equal("42601", e.sqlstate)
    end)

    it("\\; joins statements into one query and \\: keeps a colon", function()
      local conn <close> = fresh()
      local results = 0
      sqlrun.string(conn, "\\set two 2\n\\set 3 999\nCREATE TABLE j (s text) \\; " ..
        "INSERT INTO j VALUES ('\\:x') \\; INSERT INTO j SELECT (ARRAY['a','b','c'])[:two\\:3]::text;",
        { on_result = function() results = results + 1 end })
      local r = conn:exec("SELECT s FROM j ORDER BY s")
      assert.equal(2, r.n)
      assert.equal("\\:x", r[1].s)
      assert.equal("{b,c}", r[2].s)
      assert.equal(3, results)
    end)

    it("leaves undefined variables as they are (the server then complains at them)", function()
      local conn <close> = fresh()
      local e = raises(function() sqlrun.string(conn, "SELECT 1,\n  :undefined;", { name = "u.sql" }) end)
      assert.equal("u.sql:2:3", e.where)
      assert.equal("42601", e.sqlstate)
    end)

    it("lexes '' as the server's standard_conforming_strings says, however it changed", function()
      local conn <close>, url = fresh()
      local d = testutil.tmpdir("stdstr")
      testutil.write(d .. "/off.sql", "SELECT set_config('standard_conforming_strings', 'off', false);\n")
      local main = testutil.write(d .. "/main.sql", table.concat({
        "CREATE TABLE s (n int, v text);",
        "\\ir off.sql",                                        -- set_config in an included file
        "INSERT INTO s SELECT 1, 'it\\'s; one';",
        "BEGIN;",
        "SET LOCAL standard_conforming_strings = on;",
        "INSERT INTO s VALUES (2, 'c:\\');",
        "ROLLBACK;",                                           -- back to off
        "INSERT INTO s SELECT 3, 'it\\'s; three';",
        "RESET standard_conforming_strings;",                  -- on
        "INSERT INTO s VALUES (4, 'c:\\');",
      }, "\n"))
      sqlrun.file(conn, main, { log = (capture_log()) })
      assert.equal("1=it's; one|3=it's; three|4=c:\\",
        value(conn, "SELECT string_agg(n || '=' || v, '|' ORDER BY n) FROM s"))
      -- a database whose default is off: the lexer starts off
      local dbname = url:match("^postgresql://[^/]*/([^?]+)")
      conn:exec('ALTER DATABASE "' .. dbname .. '" SET standard_conforming_strings = off')
      local c2 <close> = testutil.connect(url)
      sqlrun.string(c2, "INSERT INTO s SELECT 5, 'a\\'; b';", { log = (capture_log()) })
      assert.equal("a'; b", value(c2, "SELECT v FROM s WHERE n = 5"))
    end)

    it("reports a value that cannot be quoted at the variable, and leaves it as written", function()
      local conn <close> = fresh()
      local e = raises(function()
        sqlrun.string(conn, "\\set x `printf '\\377'`\nSELECT 1,\n  :'x';", { name = "q.sql" })
      end)
      assert.equal("q.sql:3:3", e.where)
      assert.matches("cannot quote the value of :'x': .*multibyte", e.msg)
      assert.matches("3 |   :'x';\n  |   %^", e.excerpt)
      -- going on: the server sees :'x' (as with psql)
      local l, lines = capture_log()
      local s = sqlrun.string(conn, "\\set x `printf '\\377'`\nSELECT :\"x\";",
        { on_error_stop = false, log = l })
      assert.equal(2, s.errors)
      assert.matches("syntax error at or near \":\"", table.concat(lines, "\n"))
    end)

    it("provides DBNAME, USER, PORT like psql", function()
      local conn <close>, url = fresh()
      local out, text = collector()
      sqlrun.string(conn, "\\echo :DBNAME :{?USER} :{?SERVER_VERSION_NUM} :ENCODING\n" ..
        "SELECT :'SERVER_VERSION_NAME' = current_setting('server_version') AS ok \\; " ..
        "SELECT :SERVER_VERSION_NUM = current_setting('server_version_num')::int AS ok;",
        { output = out, print_results = true })
      assert.equal(url:match("^postgresql://[^/]*/([^?]+)") .. " TRUE TRUE UTF8\nok\nt\n(1 row)\nok\nt\n(1 row)\n",
        text())
    end)
  end)

  describe("COPY FROM stdin", function()
    it("streams inline data up to \\. and runs the rest of the statement's line afterwards", function()
      local conn <close> = fresh()
      sqlrun.string(conn, table.concat({
        "CREATE TABLE c (a int, b text);",
        "COPY c FROM stdin; INSERT INTO c VALUES (100, 'after');",
        "1\tone",
        "2\t\\N",
        "3\twith \\\\ backslash",
        "\\.",
        "COPY c (a) FROM stdin;",
        "4",
        "\\.",
        "SELECT 1;",
      }, "\n"))
      assert.equal(5, value(conn, "SELECT count(*) FROM c"))
      assert.equal("with \\ backslash", value(conn, "SELECT b FROM c WHERE a = 3"))
      assert.equal("after", value(conn, "SELECT b FROM c WHERE a = 100"))
    end)

    it("keeps counting lines through COPY data (errors after it point at the right line)", function()
      local conn <close> = fresh()
      local saved = sqlrun.CHUNK
      sqlrun.CHUNK = 5
      local ok, e = pcall(sqlrun.string, conn, "CREATE TABLE c (a int);\nCOPY c FROM stdin;\n1\n2\n\\.\n\n" ..
        "SELECT nope;\n", { name = "l.sql" })
      sqlrun.CHUNK = saved
      assert.is_false(ok)
      assert.equal("l.sql:7:8", e.where)
      local f = testutil.write(testutil.tmpdir("copyl") .. "/l.sql", "CREATE TABLE d (a int);\nCOPY d FROM stdin;\n" ..
        string.rep("7\n", 5000) .. "\\.\n\n  SELECT nope;\n")
      sqlrun.CHUNK = 64
      ok, e = pcall(sqlrun.file, conn, f)
      sqlrun.CHUNK = saved
      assert.is_false(ok)
      assert.equal(f .. ":5005:10", e.where)
      assert.equal(5000, value(conn, "SELECT count(*) FROM d"))
    end)

    it("streams a data line longer than the read buffer without holding it (bytea/text rows of MBs)", function()
      local conn <close> = fresh()
      local d = testutil.tmpdir("copylong")
      local long = string.rep("0123456789", 200000)          -- a 2 MB field
      local f = testutil.write(d .. "/long.sql", "CREATE TABLE c (a int, b text);\nCOPY c FROM stdin;\n" ..
        "1\t" .. long .. "\n2\t\\\\.\n3\t" .. long .. "\n\\.\nSELECT nope;\n")
      local saved = sqlrun.CHUNK
      sqlrun.CHUNK = 4096
      local ok, e = pcall(sqlrun.file, conn, f)
      sqlrun.CHUNK = saved
      assert.is_false(ok)
      assert.equal(f .. ":7:8", e.where)
      assert.equal("1:2000000 2:2 3:2000000",
        value(conn, "SELECT string_agg(a || ':' || length(b), ' ' ORDER BY a) FROM c"))
      assert.equal(long, value(conn, "SELECT b FROM c WHERE a = 3"))
      -- the input buffer stays about two chunks whatever the length of a line
      local f2 = testutil.write(d .. "/ok.sql", "CREATE TABLE c (a int, b text);\nCOPY c FROM stdin;\n1\t" ..
        long .. "\n\\.\n")
      local c2 <close> = fresh()
      sqlrun.CHUNK = 4096
      local s = sqlrun.file(c2, f2)
      sqlrun.CHUNK = saved
      assert.is_true(s.buffer_peak <= 3 * 4096, "input buffer grew to " .. s.buffer_peak .. " bytes")
      assert.equal(#long, value(c2, "SELECT length(b) FROM c"))
    end)

    it("finds the end of data and line starts split anywhere between reads", function()
      local d = testutil.tmpdir("copysplit")
      local f = testutil.write(d .. "/s.sql", "CREATE TABLE c (b text, a int);\nCOPY c FROM stdin;\n" ..
        "ab.\t1\n\\\\.\t2\n\\\\.x\t3\n\\N\t4\n\\.\r\nSELECT 1;\n")
      local saved = sqlrun.CHUNK
      for _, size in ipairs { 1, 2, 3, 4, 5, 7, 4096 } do
        local conn <close> = fresh()
        sqlrun.CHUNK = size
        local ok, s = pcall(sqlrun.file, conn, f)
        sqlrun.CHUNK = saved
        assert.is_true(ok, tostring(s and s.msg or s))
        assert.equal(3, s.statements)
        assert.equal("ab.|\\.|\\.x|NULL", value(conn, "SELECT string_agg(coalesce(b, 'NULL'), '|' ORDER BY a) FROM c"))
      end
    end)

    it("ends the data at the end of the file without \\.", function()
      local conn <close> = fresh()
      sqlrun.string(conn, "CREATE TABLE c (a int);\nCOPY c FROM stdin;\n1\n2\n")
      assert.equal(2, value(conn, "SELECT count(*) FROM c"))
    end)

    it("reports bad data at the line of the file", function()
      local conn <close> = fresh()
      local e = raises(function()
        sqlrun.string(conn, "CREATE TABLE c (a int);\nCOPY c FROM stdin;\n1\n2\nnope\n\\.\n", { name = "d.sql" })
      end)
      assert.equal("d.sql:5:1", e.where)
      assert.equal("22P02", e.sqlstate)
      assert.equal(0, value(conn, "SELECT count(*) FROM c"))
    end)

    it("writes COPY TO STDOUT data to the output", function()
      local conn <close> = fresh()
      local out, text = collector()
      sqlrun.string(conn, "COPY (SELECT 1 AS a, 'x' AS b) TO STDOUT;", { output = out })
      assert.equal("1\tx\n", text())
    end)
  end)

  describe("errors", function()
    it("point at file:line:col with an excerpt, SQLSTATE, detail and hint, through includes", function()
      local root = testutil.tmpdir("err")
      testutil.write(root .. "/src/entrypoint.sql", "-- entry\n\\set t widgets\n\\ir tables.sql\n")
      testutil.write(root .. "/src/tables.sql", table.concat({
        "CREATE TABLE :\"t\" (id int PRIMARY KEY);",
        "INSERT INTO :\"t\" VALUES (1);",
        "SELECT 'é' AS x,",
        "       nope",
        "  FROM :\"t\";",
        "SELECT 2;",
      }, "\n"))
      local conn <close> = fresh()
      local e = raises(function() sqlrun.file(conn, "src/entrypoint.sql", { cwd = root }) end)
      assert.equal(1, e.exit)
      assert.equal("src/tables.sql:4:8", e.where)
      assert.equal("42703", e.sqlstate)
      assert.equal('column "nope" does not exist (SQLSTATE 42703)', e.msg)
      assert.equal(table.concat({
        "3 | SELECT 'é' AS x,",
        "4 |        nope",
        "  |        ^",
        "  in src/entrypoint.sql:3 (\\ir tables.sql)",
      }, "\n"), e.excerpt)
      -- statements before the error stay (no transaction), the rest did not run
      assert.equal(1, value(conn, "SELECT count(*) FROM widgets"))

      e = raises(function() sqlrun.string(conn, "INSERT INTO widgets VALUES (1);") end)
      assert.equal("23505", e.sqlstate)
      assert.matches("already exists", e.detail)
      e = raises(function() sqlrun.string(conn, "SELECT * FROM widgetz;") end)
      assert.equal("<string>:1:15", e.where)
      e = raises(function() sqlrun.string(conn, "SELECT lower(1, 2);") end)
      assert.truthy(e.hint)
    end)

    it("counts columns in characters and points at the statement when there is no position", function()
      local conn <close> = fresh()
      local e = raises(function() sqlrun.string(conn, "SELECT 'ééé', nope;") end)
      assert.equal("<string>:1:15", e.where)
      -- the caret sits under the column in a terminal: wide characters take two columns
      e = raises(function() sqlrun.string(conn, "SELECT 1,\n\t'é漢字😀', nope;") end)
      assert.equal("<string>:2:10", e.where)
      assert.equal("1 | SELECT 1,\n2 | \t'é漢字😀', nope;\n  | \t           ^", e.excerpt)
      -- a script in another client encoding (not UTF-8): columns in bytes, no crash
      e = raises(function()
        sqlrun.string(conn, "SET client_encoding = 'LATIN1';\nSELECT 'caf\xe9', nope;", { name = "l1.sql" })
      end)
      assert.equal(1, e.exit)
      assert.equal("l1.sql:2:16", e.where)
      assert.equal("2 | SELECT 'caf\xe9', nope;\n  |                ^", e.excerpt)
      e = raises(function() sqlrun.string(conn, "SELECT 1;\n\n   SELECT 1/0;") end)
      assert.equal("<string>:3:4", e.where)
      assert.equal("22012", e.sqlstate)
    end)

    it("maps positions after a substituted variable", function()
      local conn <close> = fresh()
      local e = raises(function()
        sqlrun.string(conn, "\\set cols 'a, b'\nSELECT :cols FROM (SELECT 1 AS a) s, nope;")
      end)
      assert.equal("<string>:2:38", e.where)
    end)

    it("carries the context of PL/pgSQL errors", function()
      local conn <close> = fresh()
      local e = raises(function()
        sqlrun.string(conn, "DO $$ BEGIN RAISE EXCEPTION 'boom' USING HINT = 'h', DETAIL = 'd'; END $$;")
      end)
      assert.equal("boom (SQLSTATE P0001)", e.msg)
      assert.equal("d", e.detail)
      assert.equal("h", e.hint)
      assert.matches("PL/pgSQL", e.context)
    end)

    it("continue on error when asked (and when the script says so)", function()
      local conn <close> = fresh()
      local l, lines = capture_log()
      local s = sqlrun.string(conn, "CREATE TABLE k (a int);\nSELECT nope;\nINSERT INTO k VALUES (1);\n\\bogus\n",
        { on_error_stop = false, log = l })
      assert.equal(2, s.errors)
      assert.equal(1, value(conn, "SELECT count(*) FROM k"))
      assert.matches("<string>:2:8: column \"nope\" does not exist", lines[1])
      assert.equal("error: 2 | SELECT nope;", lines[2])
      assert.equal("error:   |        ^", lines[3])
      assert.equal("error: <string>:4:1: invalid command \\bogus", lines[4])
      -- bad COPY data: the line in the file and the server's context
      local l2, lines2 = capture_log()
      s = sqlrun.string(conn, "COPY k FROM stdin;\n5\nbad\n\\.\nINSERT INTO k VALUES (6);\n",
        { on_error_stop = false, log = l2, name = "c.sql" })
      assert.equal(1, s.errors)
      assert.matches("^error: c.sql:3:1: invalid input syntax for type integer", lines2[1])
      assert.equal('error:   context: COPY k, line 2, column a: "bad"', lines2[2])
      assert.equal("1:0:1", value(conn, "SELECT count(*) FILTER (WHERE a = 1) || ':' || " ..
        "count(*) FILTER (WHERE a = 5) || ':' || count(*) FILTER (WHERE a = 6) FROM k"))
      s = sqlrun.string(conn, "\\set ON_ERROR_STOP off\nSELECT nope;\nINSERT INTO k VALUES (2);\n", { log = l })
      assert.equal(1, s.errors)
      assert.equal(1, value(conn, "SELECT count(*) FROM k WHERE a = 2"))
    end)

    it("stops at a lost connection even when continuing on errors", function()
      local conn <close> = fresh()
      local e = raises(function()
        sqlrun.string(conn, "SELECT 1;\nSELECT pg_terminate_backend(pg_backend_pid());\nSELECT 2;\n",
          { on_error_stop = false, name = "k.sql", log = (capture_log()) })
      end)
      assert.equal("k.sql:2:1", e.where)
      assert.equal("57P01", e.sqlstate)
      assert.matches("connection to the server was lost", e.hint)
    end)

    it("sets psql's ERROR, SQLSTATE, ROW_COUNT, LAST_ERROR_MESSAGE, LAST_ERROR_SQLSTATE", function()
      local conn <close> = fresh()
      local out, text = collector()
      local s = sqlrun.string(conn, table.concat({
        "\\echo start [:LAST_ERROR_SQLSTATE] [:LAST_ERROR_MESSAGE] [:ERROR]",
        "CREATE TABLE k (a int);",
        "INSERT INTO k SELECT generate_series(1, 3);",
        "\\echo :ERROR :SQLSTATE :ROW_COUNT",
        "SELECT nope;",
        "\\if :ERROR",
        "  \\echo failed :SQLSTATE :ROW_COUNT :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE",
        "\\endif",
        "COPY k FROM stdin;",
        "4",
        "5",
        "\\.",
        "\\echo :ERROR :SQLSTATE :ROW_COUNT :LAST_ERROR_SQLSTATE",
        "SELECT * FROM k \\; DELETE FROM k WHERE a > 4;",
        "\\echo :ROW_COUNT",
        "SELECT * FROM k WHERE a < 3;",
        "\\echo :ROW_COUNT",
      }, "\n"), { on_error_stop = false, output = out, log = (capture_log()) })
      assert.equal(1, s.errors)
      -- what psql 15 prints for this script
      assert.equal(table.concat({
        "start [00000] [] [:ERROR]",
        "false 00000 3",
        "failed 42703 0 42703 column \"nope\" does not exist",
        "false 00000 2 42703",
        "1",
        "2",
        "",
      }, "\n"), text())
    end)

    it("routes notices to the log with the statement's location", function()
      local conn <close> = fresh()
      local l, lines = capture_log()
      sqlrun.string(conn, "SELECT 1;\nDO $$ BEGIN RAISE NOTICE 'hello'; RAISE WARNING 'careful'; END $$;\n" ..
        "DO $$ BEGIN RAISE NOTICE 'with more' USING DETAIL = 'the detail', HINT = 'the hint'; END $$;\n" ..
        "COMMIT;", { name = "n.sql", log = l, single_transaction = true })
      assert.same({ "info: n.sql:2: NOTICE: hello", "warn: n.sql:2: WARNING: careful",
        "info: n.sql:3: NOTICE: with more", "info: detail: the detail", "info: hint: the hint",
        -- the script's COMMIT ended the transaction: ours finds none (as with psql -1)
        "warn: n.sql: WARNING: there is no transaction in progress" }, lines)
    end)
  end)

  describe("transactions", function()
    it("single_transaction commits everything or nothing", function()
      local conn <close> = fresh()
      local s = sqlrun.string(conn, "CREATE TABLE s1 ();\nCREATE TABLE s2 ();", { single_transaction = true })
      assert.equal(2, s.statements)
      assert.equal("idle", conn:transaction_status())
      assert.equal("s2", value(conn, "SELECT to_regclass('s2')::text"))
      local e = raises(function()
        sqlrun.string(conn, "CREATE TABLE s3 ();\nSELECT 1/0;\nCREATE TABLE s4 ();", { single_transaction = true })
      end)
      assert.equal("22012", e.sqlstate)
      assert.equal("idle", conn:transaction_status())
      assert.is_nil(value(conn, "SELECT to_regclass('s3')::text"))
    end)

    it("without it, statements before the failing one stay", function()
      local conn <close> = fresh()
      raises(function() sqlrun.string(conn, "CREATE TABLE p1 ();\nSELECT 1/0;\nCREATE TABLE p2 ();") end)
      assert.equal("p1", value(conn, "SELECT to_regclass('p1')::text"))
      assert.is_nil(value(conn, "SELECT to_regclass('p2')::text"))
    end)

    it("runs inside the caller's transaction without committing it", function()
      local conn <close> = fresh()
      conn:exec("BEGIN")
      sqlrun.string(conn, "CREATE TABLE inner_t ();", { single_transaction = true })
      assert.equal("intrans", conn:transaction_status())
      conn:exec("ROLLBACK")
      assert.is_nil(value(conn, "SELECT to_regclass('inner_t')::text"))
    end)
  end)

  describe("results", function()
    it("prints rows only when asked, and hands results to on_result", function()
      local conn <close> = fresh()
      local out, text = collector()
      local seen = {}
      sqlrun.string(conn, "SELECT 1 AS a, NULL AS b;\nSELECT 'x' AS c FROM generate_series(1, 2);",
        { output = out, on_result = function(res, info) seen[#seen + 1] = res.command .. "@" .. info.where end })
      assert.equal("", text())
      assert.same({ "SELECT 1@<string>:1", "SELECT 2@<string>:2" }, seen)
      sqlrun.string(conn, "SELECT 1 AS a, NULL AS b;", { output = out, print_results = true })
      assert.equal("a\tb\n1\t\n(1 row)\n", text())
    end)
  end)

  describe("database sql", function()
    it("runs a file with -v, and reports errors with exit 1", function()
      local _, url = fresh()
      local f = testutil.write(dir .. "/cli.sql", "\\echo :greeting\nCREATE TABLE cli_t (v text);\n" ..
        "INSERT INTO cli_t VALUES (:'greeting');\n")
      local r = testutil.run { argv = { "database", "sql", f, "-v", "greeting=hello world" },
        env = { PGURL = url } }
      assert.equal(0, r.code, r.stderr)
      assert.equal("hello world\n", r.stdout)
      local bad = testutil.write(dir .. "/bad.sql", "CREATE TABLE ok_t ();\nSELECT nope;\n")
      r = testutil.run { argv = { "db-tool", "sql", "-u", url, bad } }
      assert.equal(1, r.code)
      assert.matches("bad.sql:2:8: column \"nope\" does not exist", r.stderr)
      assert.matches("2 | SELECT nope;", r.stderr)
    end)

    it("-1 rolls back everything on error; -c runs a command", function()
      local conn <close>, url = fresh()
      local bad = testutil.write(dir .. "/bad1.sql", "CREATE TABLE one_t ();\nSELECT 1/0;\n")
      local r = testutil.run { argv = { "database", "sql", "-1", bad }, env = { PGURL = url } }
      assert.equal(1, r.code)
      assert.is_nil(value(conn, "SELECT to_regclass('one_t')::text"))
      r = testutil.run { argv = { "database", "-u", url, "sql", "-p", "-c", "SELECT 41 + 1 AS answer;" } }
      assert.equal(0, r.code, r.stderr)
      assert.equal("answer\n42\n(1 row)\n", r.stdout)
    end)

    it("exits 3 without a database and 1 for a missing file", function()
      local r = testutil.run { argv = { "database", "sql", "-c", "SELECT 1" },
        env = { PGURL = false, DB_URL = false, PG_WORKING_DIR = dir .. "/none", LOCAL_DIR = dir } }
      assert.equal(3, r.code)
      assert.matches("no database", r.stderr)
      local _, url = fresh()
      r = testutil.run { argv = { "database", "sql", dir .. "/does-not-exist.sql" }, env = { PGURL = url } }
      assert.equal(1, r.code)
      assert.matches("could not read .*does%-not%-exist.sql: No such file", r.stderr)
      r = testutil.run { argv = { "database", "sql" }, env = { PGURL = url } }
      assert.equal(3, r.code)
    end)

    it("rejects an invalid -v name with exit 9 before connecting; -v NAME alone sets it empty", function()
      local r = testutil.run { argv = { "database", "sql", "-v", "a b=1", "-c", "SELECT 1" },
        env = { PGURL = "postgresql:///nowhere?host=/nonexistent" } }
      assert.equal(9, r.code)
      assert.matches('invalid variable name "a b"', r.stderr)
      local _, url = fresh()
      r = testutil.run { argv = { "database", "sql", "-v", "flag", "-v", "é_1=x=y", "-c", "\\echo :{?flag} [:flag] :é_1" },
        env = { PGURL = url } }
      assert.equal(0, r.code, r.stderr)
      assert.equal("TRUE [] x=y\n", r.stdout)
    end)
  end)
end)
