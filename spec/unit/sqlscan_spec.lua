-- The psql-script lexer (dbtool.core.sqlscan), without a database.
local sqlscan = require "dbtool.core.sqlscan"

-- Drive a scanner over `text` fed in chunks of `chunk` bytes (the whole text by default), as
-- sqlrun does: rescan from the "more" position with more input, skip meta-command lines.
-- Returns the events in absolute positions:
--   {"stmt", text}        a statement from its first token to its ';' (or to the end)
--   {"meta", line}        a meta-command line (from the backslash, without the newline)
--   {"var", kind, name}   a variable reference
--   {"esc", char}         \; or \:
--   {"blank"}             an empty line inside a statement (psql leaves it out)
local function events(text, chunk, opts)
  chunk = chunk or #text + 1
  local sc = sqlscan.new(opts)
  local out = {}
  local buf, base, off = "", 0, 0
  local pos = 1
  local eof = #text == 0
  local start_abs
  local function refill(keep)
    local piece = text:sub(off + 1, off + chunk)
    off = off + #piece
    buf = buf:sub(keep) .. piece
    base = base + keep - 1
    pos = 1
    eof = off >= #text
  end
  refill(1)
  local guard = 0
  while true do
    guard = guard + 1
    assert(guard < 100000, "scanner does not progress")
    local kind, p, q, start, name, vkind = sc:scan(buf, pos, eof)
    if type(start) == "number" then start_abs = base + start end
    if kind == "semi" then
      out[#out + 1] = { "stmt", text:sub(start_abs, base + p) }
      start_abs = nil
      pos = p + 1
    elseif kind == "var" then
      out[#out + 1] = { "var", vkind, name }
      assert.equal(text:sub(base + p, base + q), buf:sub(p, q))
      pos = q + 1
    elseif kind == "esc" then
      out[#out + 1] = { "esc", buf:sub(p + 1, p + 1) }
      pos = p + 2
    elseif kind == "blank" then
      assert.equal("\n", buf:sub(p, p))
      out[#out + 1] = { "blank" }
      pos = p + 1
    elseif kind == "meta" then
      local nl = buf:find("\n", p, true)
      if not nl and not eof then
        refill(p)
      else
        out[#out + 1] = { "meta", buf:sub(p, (nl or #buf + 1) - 1) }
        pos = nl or #buf + 1
      end
    elseif kind == "more" then
      assert.is_false(eof)
      refill(p)
    else
      assert.equal("eof", kind)
      assert.equal(#buf + 1, p)
      if eof then
        if start ~= false and start_abs then
          out[#out + 1] = { "stmt", text:sub(start_abs) }
        end
        return out, sc
      end
      refill(p)
    end
  end
end

local function stmts(text, opts)
  local r = {}
  for _, e in ipairs((events(text, nil, opts))) do
    if e[1] == "stmt" then r[#r + 1] = e[2] end
  end
  return r
end

-- every chunking gives the same events as the whole buffer at once
local function assert_chunk_invariant(text, opts)
  local whole = events(text, nil, opts)
  for size = 1, math.min(#text, 64) do
    assert.same(whole, (events(text, size, opts)), "chunk size " .. size)
  end
  return whole
end

describe("sqlscan", function()
  describe("statement boundaries", function()
    it("splits on semicolons and drops leading whitespace and -- comments", function()
      assert.same({ "SELECT 1;", "SELECT 2;" }, stmts("  -- hi\n\nSELECT 1;\n  SELECT 2;\n"))
    end)

    it("keeps a last statement without semicolon", function()
      assert.same({ "SELECT 1;", "SELECT 2\n" }, stmts("SELECT 1;\nSELECT 2\n"))
    end)

    it("reports empty lines inside a statement, outside quotes and comments (psql drops them)", function()
      local function kinds(text, chunk)
        local out = {}
        for _, e in ipairs(events(text, chunk)) do out[#out + 1] = e[1] end
        return table.concat(out, " ")
      end
      -- before a statement nothing; inside one, each empty line once (not a CRLF one)
      assert.equal("blank blank stmt", kinds("\n\nSELECT\n\n\n1;"))
      assert.equal("stmt", kinds("SELECT\r\n\r\n1;"))
      assert.equal("stmt", kinds("SELECT '\n\n', $$\n\n$$, /*\n\n*/ \"\n\n\" 1;"))
      assert.equal("blank stmt", kinds("SELECT 1 -- c\n\n;"))
      -- a meta-command line in between is content: the newline after it is no empty line
      assert.equal("meta stmt", kinds("SELECT 1\n\\echo x\n;"))
      for size = 1, 4 do assert.equal("blank blank stmt", kinds("\n\nSELECT\n\n\n1;", size)) end
    end)

    it("reports nothing for whitespace and comments only", function()
      assert.same({}, stmts("  \n-- only a comment\n\t"))
    end)

    it("starts a statement at a block comment (psql sends it)", function()
      assert.same({ "/* c; */ SELECT 1;" }, stmts("/* c; */ SELECT 1;"))
    end)

    it("does not end inside single quotes, doubled quotes, E'' escapes", function()
      assert.same({ "SELECT 'a;''b';", [[SELECT E'x\';y';]], "SELECT 1;" },
        stmts("SELECT 'a;''b';" .. [[SELECT E'x\';y';]] .. "SELECT 1;"))
    end)

    it("treats backslashes in standard strings literally", function()
      assert.same({ [[SELECT 'a\';]], [[SELECT 'b';]] }, stmts([[SELECT 'a\';SELECT 'b';]]))
    end)

    it("treats backslashes as escapes when standard_conforming_strings is off", function()
      assert.same({ [[SELECT 'a\';b';]] }, stmts([[SELECT 'a\';b';]], { std_strings = false }))
      local sc = sqlscan.new()
      sc:set_std_strings(false)
      assert.is_false(sc:state().std_strings)
    end)

    it("continues an E'' string across a newline (with escapes still active)", function()
      assert.same({ "SELECT E'a'\n  '\\';';" }, stmts("SELECT E'a'\n  '\\';';"))
      -- without a newline, two literals: the second is a standard string
      assert.same({ "SELECT E'a' '\\';", "';" }, stmts("SELECT E'a' '\\';';"))
    end)

    it("handles U&'', U&\"\", B'', X'', N'' literals", function()
      assert.same({ [[SELECT U&'d\0061t;a', U&"x;y", B'1;', X'1;', N'n;';]] },
        stmts([[SELECT U&'d\0061t;a', U&"x;y", B'1;', X'1;', N'n;';]]))
    end)

    it("does not end inside quoted identifiers", function()
      assert.same({ 'SELECT 1 AS "a;""b";' }, stmts('SELECT 1 AS "a;""b";'))
    end)

    it("handles dollar quotes with and without tags", function()
      local sql = "SELECT $$a;$b$;$$, $fn$ x; $$ ; $f$ ; $fn$;SELECT 2;"
      assert.same({ "SELECT $$a;$b$;$$, $fn$ x; $$ ; $f$ ; $fn$;", "SELECT 2;" }, stmts(sql))
    end)

    it("does not take $1 parameters or identifiers with $ for dollar quotes", function()
      assert.same({ "SELECT $1;", "SELECT a$b$c;", "SELECT 1;" },
        stmts("SELECT $1;SELECT a$b$c;SELECT 1;"))
      -- a tag cannot start with a digit: $1$ is a parameter followed by '$'
      assert.same({ "SELECT $1$;", "x;" }, stmts("SELECT $1$;x;"))
      -- letters after $1 are junk of the parameter: E' there opens a plain string
      assert.same({ "SELECT $1E'x\\';", "y';" }, stmts("SELECT $1E'x\\';y';"))
      -- ... and CREATE in $1CREATE is no identifier: no BEGIN tracking
      assert.same({ "$1CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;", "END;" },
        stmts("$1CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;END;"))
    end)

    it("lexes what follows a '$' that opens no dollar quote again, as psql does", function()
      -- $e'...' is '$' then an E'' string: the backslash escapes the quote
      assert.same({ "SELECT $e'\\';';", "x;" }, stmts("SELECT $e'\\';';x;"))
      -- $a is '$' then the identifier a: CREATE is not the statement's first identifier
      assert.same({ "$a CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;", "END;" },
        stmts("$a CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;END;"))
      assert_chunk_invariant("SELECT $e'\\';'; $ab:v $a$b$a$; $x")
    end)

    it("lexes a number with trailing letters as one token running on through $ (as psql 15)", function()
      -- psql sends "SELECT 1F$t$VAR;" for SELECT 1F$t$:a; (the server then rejects the junk)
      assert.same({ { "var", "plain", "a" }, { "stmt", "SELECT 1F$t$:a;" } }, (events("SELECT 1F$t$:a;")))
      for _, s in ipairs { "0x1F$1$t$x", "12abc$t$", "1.5e$t$", "1e5$t$", ".5a$t$", "7_$t$" } do
        assert.same({ { "var", "plain", "a" }, { "stmt", "SELECT " .. s .. ":a;" } },
          (events("SELECT " .. s .. ":a;")), s)
        assert_chunk_invariant("SELECT " .. s .. ":a; SELECT 2;")
      end
      -- 1e- / 1.5E+ end after the sign (psql's realfail): a following '-' is no comment start
      for _, s in ipairs { "0.5e--x;", "1E+-x;", "1.e--x;", ".5e--x;" } do
        assert.same({ "SELECT " .. s, "y;" }, stmts("SELECT " .. s .. "y;"), s)
      end
      assert.same({ "SELECT 1e5--x;\ny;" }, stmts("SELECT 1e5--x;\ny;"))
      assert.same({ "SELECT 1..2;" }, stmts("SELECT 1..2;"))
      -- no letter right after the digits: $t$ opens a dollar quote
      for _, s in ipairs { "1$t$", "1.$t$", "1..$t$" } do
        local ev, sc = events("SELECT " .. s .. ":a;")
        assert.same({ { "stmt", "SELECT " .. s .. ":a;" } }, ev, s)
        assert.equal("dollar", sc:state().state)
      end
    end)

    it("handles nested block comments", function()
      assert.same({ "SELECT /* a /* b; */ c; */ 1;" }, stmts("SELECT /* a /* b; */ c; */ 1;"))
    end)

    it("handles -- comments inside a statement", function()
      assert.same({ "SELECT 1 -- not the end;\n + 1;" }, stmts("SELECT 1 -- not the end;\n + 1;"))
    end)

    it("does not end inside parentheses", function()
      assert.same({ "CREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2);" },
        stmts("CREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2);"))
    end)

    it("keeps SQL-standard function bodies (BEGIN ATOMIC … END) together", function()
      local body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n" ..
        " SELECT CASE WHEN true THEN 1 END;\nEND;"
      assert.same({ body, "SELECT 2;" }, stmts(body .. "\nSELECT 2;"))
      local proc = "create or replace procedure p() begin atomic insert into t values (1); end;"
      assert.same({ proc, "x;" }, stmts(proc .. "x;"))
    end)

    it("keeps tracking BEGIN … END across a meta-command inside the definition", function()
      local text = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\\echo in the middle\nBEGIN ATOMIC\n" ..
        " SELECT 1;\nEND;\nSELECT 2;"
      local ev = events(text)
      assert.same({ "meta", "\\echo in the middle" }, ev[1])
      assert.same({ "stmt", text:sub(1, -11) }, ev[2])
      assert.same({ "stmt", "SELECT 2;" }, ev[3])
      -- \; does start a new statement within the query: no CREATE FUNCTION tracking after it
      local f = "CREATE FUNCTION f() RETURNS int AS $$x$$ LANGUAGE sql \\; BEGIN;"
      assert.same({ f, "SELECT 2;" }, stmts(f .. "SELECT 2;"))
    end)

    it("does not track BEGIN outside CREATE FUNCTION/PROCEDURE", function()
      assert.same({ "BEGIN;", "CREATE TABLE begin (x int);", "END;" },
        stmts("BEGIN;CREATE TABLE begin (x int);END;"))
    end)

    it("reports the state at the end (unterminated quote, comment, dollar quote)", function()
      local _, sc = events("SELECT 'abc")
      assert.equal("quote", sc:state().state)
      _, sc = events("SELECT /* /* x */")
      assert.equal("comment", sc:state().state)
      assert.equal(1, sc:state().comment)
      _, sc = events("SELECT $body$ x")
      assert.equal("dollar", sc:state().state)
      assert.equal("body", sc:state().tag)
      _, sc = events("SELECT (1")
      assert.equal(1, sc:state().paren)
      sc:reset()
      assert.same("sql", sc:state().state)
      assert.equal(0, sc:state().paren)
    end)
  end)

  describe("variables", function()
    it("finds :name, :'name', :\"name\" and :{?name}", function()
      assert.same({
        { "var", "plain", "a" }, { "var", "literal", "b" }, { "var", "ident", "c_1" },
        { "var", "test", "d" }, { "stmt", [[SELECT :a, :'b', :"c_1", :{?d};]] },
      }, (events([[SELECT :a, :'b', :"c_1", :{?d};]])))
    end)

    it("ignores ::casts and := assignments", function()
      assert.same({ { "stmt", "SELECT x::int, y := 1, z::text[];" } },
        (events("SELECT x::int, y := 1, z::text[];")))
    end)

    it("takes :n in a[1:n] for a variable, as psql does", function()
      assert.same({ { "var", "plain", "n" }, { "stmt", "SELECT a[1:n];" } }, (events("SELECT a[1:n];")))
    end)

    it("finds :var right after a cast or an assignment", function()
      assert.same({ { "var", "plain", "v" }, { "stmt", "x:::v;" }, { "var", "plain", "w" },
        { "stmt", "y:=:w;" } }, (events("x:::v;y:=:w;")))
    end)

    it("ignores variables in quotes, dollar quotes, identifiers and comments", function()
      local ev = events([[SELECT ':a', E':b\'', ":c", $$:d$$, $t$:e$t$ /* :f */ -- :g
        ;]])
      assert.equal(1, #ev)
      assert.equal("stmt", ev[1][1])
    end)

    it("does not take an unterminated :'name or an empty :'' for a variable", function()
      local ev = events("SELECT :'a, :'', :\"\", :{?}, :{x};")
      assert.same({ { "stmt", "SELECT :'a, :'', :\"\", :{?}, :{x};" } }, ev)
    end)

    it("finds variables in PL/pgSQL bodies only outside the dollar quote", function()
      local ev = events("DO $$ BEGIN x := :nope; END $$; SELECT :yes;")
      assert.same({ "stmt", "DO $$ BEGIN x := :nope; END $$;" }, ev[1])
      assert.same({ "var", "plain", "yes" }, ev[2])
    end)

    it("accepts non-ASCII variable names", function()
      assert.same({ "var", "plain", "größe" }, (events("SELECT :größe;"))[1])
    end)
  end)

  describe("backslashes", function()
    it("reports meta-commands anywhere outside quotes", function()
      assert.same({
        -- (the driver reports the raw span of the statement; sqlrun cuts the meta-command out)
        { "meta", "\\set x 1" }, { "meta", "\\echo :x" }, { "stmt", "SELECT 1 \\echo :x\n;" },
      }, (events("\\set x 1\nSELECT 1 \\echo :x\n;")))
    end)

    it("does not report backslashes in quotes, comments or dollar quotes", function()
      assert.same({ { "stmt", [[SELECT '\x', E'\\', "\y", $$\z$$ /* \w */;]] } },
        (events([[SELECT '\x', E'\\', "\y", $$\z$$ /* \w */;]])))
      assert.same({ { "stmt", "SELECT 1 -- \\echo no\n;" } }, (events("SELECT 1 -- \\echo no\n;")))
    end)

    it("turns \\; and \\: into literal characters", function()
      assert.same({ { "esc", ";" }, { "esc", ":" }, { "stmt", "SELECT 1 \\; SELECT \\:x;" } },
        (events("SELECT 1 \\; SELECT \\:x;")))
    end)

    it("reports \\\\ as a meta-command (psql: invalid command)", function()
      assert.same({ { "meta", "\\\\" } }, (events("\\\\")))
    end)

    it("reports a lone backslash at the end", function()
      assert.same({ { "stmt", "SELECT 1;" }, { "meta", "\\" } }, (events("SELECT 1;\\")))
    end)
  end)

  describe("incremental scanning", function()
    local sample = table.concat({
      "-- header ; with :x\n",
      "SET standard_conforming_strings = on;\n",
      "CREATE FUNCTION public.f(a integer) RETURNS integer\n    LANGUAGE plpgsql\n",
      "    AS $_$\nBEGIN\n  a := a + 1; -- ;\n  RETURN $1 + a::int;\nEND;\n$_$;\n",
      "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n",
      "SELECT E'it\\'s;', 'a''b;', U&'\\0041;', \"we\"\"ird;\" /* /* ; */ */ FROM t;\n",
      "\\set name 'value with ; and \\'quote\\''\n",
      "SELECT :name, :'name', :\"name\", :{?name}, x::text, 'x' \\; SELECT 2;\n",
      "COPY t (a) FROM stdin;\n",
      "\\if :{?name}\n\\echo yes\n\\endif\n",
      "SELECT $$ :not_a_var ; $$, $tag$ $$ ; $tag$ ;\n",
      "SELECT 1 /* unterminated at the end ;",
    })

    it("gives the same events for every chunk size", function()
      local ev = assert_chunk_invariant(sample)
      assert.is_true(#ev > 15)
    end)

    it("gives the same events with standard_conforming_strings off", function()
      assert_chunk_invariant(sample, { std_strings = false })
    end)

    it("asks for more input when a token may continue", function()
      local sc = sqlscan.new()
      for _, prefix in ipairs { "SELECT E", "SELECT $ta", "SELECT :na", "SELECT 1 -", "SELECT a /",
        "SELECT 'a'", "SELECT U&", "SELECT abc", "SELECT :", "SELECT \\", "SELECT E'a'\n " } do
        sc:reset()
        local kind, p = sc:scan(prefix, 1, false)
        assert.equal("more", kind, prefix)
        assert.is_true(p > 7, prefix)
        sc:reset()
        kind = sc:scan(prefix, 1, true)
        assert.is_true(kind == "eof" or kind == "var" or kind == "meta", prefix)
      end
    end)

    it("reports where the statement started in this call, or whether it started earlier", function()
      local sc = sqlscan.new()
      local kind, p, _, start = sc:scan("  \n  SEL", 1, false)
      assert.equal("more", kind)
      assert.equal(6, p)
      assert.is_false(start)
      kind, p, _, start = sc:scan("SELECT 1", 1, false)
      assert.equal("more", kind)
      assert.equal(8, p)
      assert.equal(1, start)
      kind, p, _, start = sc:scan("1;", 1, false)
      assert.equal("semi", kind)
      assert.equal(2, p)
      assert.is_true(start)
      kind, p, _, start = sc:scan(" ", 1, true)
      assert.equal("eof", kind)
      assert.equal(2, p)
      assert.is_false(start)
    end)

    it("rejects positions out of range", function()
      local sc = sqlscan.new()
      assert.has_error(function() sc:scan("abc", 5) end)
      assert.has_error(function() sc:scan("abc", 0) end)
      assert.equal("eof", (sc:scan("abc", 4)))
    end)

    it("survives random input in random chunks", function()
      local alphabet = { "'", '"', "$", "$$", "$a$", ";", ":", "::", ":=", "\\", "\\;", "/*", "*/", "--",
        "\n", " ", "E'", "U&'", "(", ")", "a", "1", "begin", "end", "create", "function", "é", "\r" }
      math.randomseed(42)
      for _ = 1, 200 do
        local parts = {}
        for k = 1, math.random(1, 60) do parts[k] = alphabet[math.random(#alphabet)] end
        local text = table.concat(parts)
        local whole = events(text)
        assert.same(whole, (events(text, math.random(1, 8))), text)
      end
    end)
  end)

  describe("copy_scan", function()
    it("finds the end-of-data line", function()
      local s = "1\tx\n2\ty\n\\.\nSELECT 1;"
      local found, dend, resume = sqlscan.copy_scan(s, 1, false)
      assert.is_true(found)
      assert.equal("1\tx\n2\ty\n", s:sub(1, dend))
      assert.equal("SELECT 1;", s:sub(resume))
    end)

    it("accepts \\.\\r\\n and a final \\. without newline", function()
      local s = "a\r\n\\.\r\nrest"
      local found, dend, resume = sqlscan.copy_scan(s, 1, false)
      assert.is_true(found)
      assert.equal("a\r\n", s:sub(1, dend))
      assert.equal("rest", s:sub(resume))
      found, dend = sqlscan.copy_scan("a\n\\.", 1, true)
      assert.is_true(found)
      assert.equal(2, dend)
    end)

    it("does not take \\. inside a line or a longer line for the end", function()
      local found = sqlscan.copy_scan("a\\.\n\\.x\n \\.\n", 1, true)
      assert.is_false(found)
    end)

    it("stops at the last complete line when more input may follow", function()
      local s = "1\n2\n\\"
      local found, dend, resume = sqlscan.copy_scan(s, 1, false)
      assert.is_false(found)
      assert.equal(4, dend)
      assert.equal(5, resume)
      found, dend, resume = sqlscan.copy_scan(s, 1, true)
      assert.is_false(found)
      assert.equal(#s, dend)
      assert.equal(#s + 1, resume)
    end)

    it("waits when the end marker may be incomplete", function()
      local found, dend, resume = sqlscan.copy_scan("a\n\\.", 1, false)
      assert.is_false(found)
      assert.equal(2, dend)
      assert.equal(3, resume)
      found, dend = sqlscan.copy_scan("a\n\\.\r", 1, false)
      assert.is_false(found)
      assert.equal(2, dend)
      found = sqlscan.copy_scan("\\.\r\n", 1, false)
      assert.is_true(found)
    end)

    it("starts at the given position", function()
      local found, dend, resume = sqlscan.copy_scan("xx;\n\\.\n", 5, false)
      assert.is_true(found)
      assert.equal(4, dend)
      assert.equal(8, resume)
    end)
  end)

  it("newlines counts newlines and finds the last one", function()
    assert.same({ 3, 5 }, { sqlscan.newlines("a\n\nb\nc") })
    assert.same({ 2, 3 }, { sqlscan.newlines("a\n\nb\nc", 1, 3) })
    assert.same({ 0 }, { sqlscan.newlines("abc") })
    assert.same({ 0 }, { sqlscan.newlines("a\nb", 3, 2) })
  end)
end)
