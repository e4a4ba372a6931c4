local dotenv = require "dbtool.dotenv"

local function ok(text, opts)
  local r, errs = dotenv.decode(text, opts)
  assert(r, errs and (errs[1].line .. ": " .. errs[1].msg))
  return r
end

local function bad(text, opts)
  local r, errs = dotenv.decode(text, opts)
  assert.is_nil(r, "expected an error")
  assert.is_table(errs)
  return errs
end

describe("dbtool.dotenv", function()
  describe("entries", function()
    it("parses KEY=value lines, blank lines and comments", function()
      local r = ok("# a comment\n\nA=1\n   # indented comment\n  B=two\n\t\nC=3")
      assert.are.same({ A = "1", B = "two", C = "3" }, r.map)
      assert.are.same({ "A", "B", "C" }, r.keys)
      assert.are.same({ 3, 5, 7 }, { r.entries[1].line, r.entries[2].line, r.entries[3].line })
      assert.are.same({}, r.warnings)
    end)

    it("accepts blanks around '=' and an `export ` prefix", function()
      local r = ok("export A=1\nexport\tB = 2\n  export   C  =  three  \nexport=4\nexport =5x\n")
      assert.are.same({ A = "1", B = "2", C = "three", export = "5x" }, r.map)
    end)

    it("accepts keys with letters, digits, _ . - not starting with a digit", function()
      local r = ok("_A=1\na.b-c_D9=2\nlower=3\n")
      assert.are.same({ _A = "1", ["a.b-c_D9"] = "2", lower = "3" }, r.map)
      assert.is_true(dotenv.valid_key("X_1.y-z"))
      for _, k in ipairs { "", "1A", "A B", "A=", "-A", ".A", "A$", "Ä" } do
        assert.is_false(dotenv.valid_key(k), k)
      end
      assert.is_false(dotenv.valid_key(nil))
    end)

    it("empty values", function()
      assert.are.same({ A = "", B = "", C = "", D = "" }, ok("A=\nB=   \nC=''\nD=\"\" # c\n").map)
    end)

    it("keeps everything after the first '=' in an unquoted value", function()
      assert.are.same({ D = "a=b=c", U = "postgresql://u:p@h:5432/d?x=1&y=2" },
        ok("D=a=b=c\nU=postgresql://u:p@h:5432/d?x=1&y=2\n").map)
    end)
  end)

  describe("unquoted values", function()
    it("end at a blank followed by #, not at a bare #", function()
      local r = ok("A=value # comment\nB=a#b\nC=a\t# tab comment\nD=#notacomment\nE= # only comment\n")
      assert.are.same({ A = "value", B = "a#b", C = "a", D = "#notacomment", E = "" }, r.map)
    end)

    it("keep inner blanks, trim outer ones, keep backslashes, quotes and $", function()
      local r = ok("A=  a b  c  \nB=C:\\dir\\n\nC=it's \"x\"\nD=$HOME ${X}\nE=a\tb\n")
      assert.are.same({ A = "a b  c", B = "C:\\dir\\n", C = "it's \"x\"", D = "$HOME ${X}",
        E = "a\tb" }, r.map)
    end)

    it("reject control characters other than tab", function()
      local errs = bad("A=x\27[31my\n")
      assert.are.equal(1, errs[1].line)
      assert.matches("control character %(byte \\x1B%) in the unquoted value of A", errs[1].msg)
      assert.matches("control character", bad("A=a\rb\n")[1].msg)
    end)
  end)

  describe("single quotes", function()
    it("are literal: no escapes, no expansion, may span lines", function()
      local r = ok("A='a \\n \"b\" $X ${Y} # not a comment'\nB='line1\nline2\n'\nC=after\n",
        { expand = true, env = { X = "x", Y = "y" } })
      assert.are.same({ A = 'a \\n "b" $X ${Y} # not a comment', B = "line1\nline2\n", C = "after" }, r.map)
      assert.are.equal(2, r.entries[2].line)
      assert.are.equal(4, r.entries[2].last_line)
      assert.are.equal(5, r.entries[3].line)
    end)
  end)

  describe("double quotes", function()
    it("decode escapes \\n \\r \\t \\\\ \\\" \\' \\$ and keep other backslashes", function()
      local r = ok([[A="a\nb\rc\td\\e\"f\'g\$h"
B="C:\path\x"
C="\u00e9"
]])
      assert.are.equal("a\nb\rc\td\\e\"f'g$h", r.map.A)
      assert.are.equal("C:\\path\\x", r.map.B)
      assert.are.equal("\\u00e9", r.map.C)
    end)

    it("span lines, keep # and ' inside, allow a comment after the closing quote", function()
      local r = ok('A="first\n  second # not a comment\nit\'s"   # comment\nB="x"#c\nC=2\n')
      assert.are.same({ A = "first\n  second # not a comment\nit's", B = "x", C = "2" }, r.map)
      assert.are.equal(3, r.entries[1].last_line)
    end)

    it("reject text after the closing quote", function()
      local errs = bad('A="x"y\nB=\'q\' z\n')
      assert.are.equal(2, #errs)
      assert.are.same({ 1, 2 }, { errs[1].line, errs[2].line })
      assert.matches("unexpected 'y' after the closing quote", errs[1].msg)
      assert.matches("unexpected 'z' after the closing quote", errs[2].msg)
    end)

    it("unterminated quotes are reported at the line they open", function()
      local errs = bad('A=1\nB="never\nclosed\nC=3\n')
      assert.are.equal(1, #errs)
      assert.are.equal(2, errs[1].line)
      assert.are.equal(3, errs[1].col)
      assert.matches('unterminated double%-quoted value of B', errs[1].msg)
      errs = bad("A='open\n")
      assert.matches("unterminated single%-quoted value of A", errs[1].msg)
      assert.matches("unterminated double", bad('A="ends with backslash\\')[1].msg)
      assert.matches("unterminated double", bad('A="\\"')[1].msg)
    end)
  end)

  describe("line endings and encodings", function()
    it("handles CRLF files like LF files (no CR in values, quotes stripped)", function()
      local text = "# c\r\nA=1\r\nB='quoted'\r\nC=\"x y\"\r\nD=last # c\r\nM=\"l1\r\nl2\"\r\n"
      local r = ok(text)
      assert.are.same({ A = "1", B = "quoted", C = "x y", D = "last", M = "l1\nl2" }, r.map)
      assert.are.same(ok((text:gsub("\r\n", "\n"))).map, r.map)
      assert.are.same({ A = "1" }, ok("A=1\r").map)                   -- CR at the very end
    end)

    it("skips a UTF-8 byte order mark and accepts UTF-8 values", function()
      local r = ok("\239\187\191A=héllo ✓\nB=\"日本\"\n")
      assert.are.same({ A = "héllo ✓", B = "日本" }, r.map)
    end)

    it("rejects NUL bytes and invalid UTF-8 at their line", function()
      local errs = bad("A=1\nB=x\0y\n")
      assert.are.same({ line = 2, col = 4, msg = "NUL byte (a dotenv file is text)" }, errs[1])
      errs = bad("A=1\n\nC='\255'\n")
      assert.are.equal(3, errs[1].line)
      assert.matches("invalid UTF%-8", errs[1].msg)
      assert.matches("invalid UTF%-8", bad("A=\237\160\128\n")[1].msg)  -- a UTF-16 surrogate
    end)
  end)

  describe("duplicates", function()
    it("last wins with a warning naming both lines", function()
      local r = ok("A=1\nB=2\nA=3\nA='4'\n", { source = ".env.dev" })
      assert.are.same({ A = "4", B = "2" }, r.map)
      assert.are.same({ "A", "B" }, r.keys)
      assert.are.same({
        ".env.dev:3: A is set again (first at line 1); the last value wins",
        ".env.dev:4: A is set again (first at line 1); the last value wins",
      }, r.warnings)
      assert.are.same({ key = "A", line = 3, previous = 1 }, r.duplicates[1])
      assert.are.equal(4, #r.entries)
    end)
  end)

  describe("invalid lines", function()
    it("are structured errors with line and column, several at once", function()
      local errs = bad("GOOD=1\nno equals sign here\n1BAD=x\nMY KEY=1\nK:V=2\n=empty\n")
      assert.are.same({ 2, 3, 4, 5, 6 }, { errs[1].line, errs[2].line, errs[3].line, errs[4].line,
        errs[5].line })
      assert.are.equal("expected KEY=value (this line has no '=')", errs[1].msg)
      assert.matches("^invalid key: it starts with '1'", errs[2].msg)
      assert.matches("^invalid key: a space is not allowed", errs[3].msg)
      assert.are.equal(3, errs[3].col)
      assert.matches("^invalid key: ':' is not allowed", errs[4].msg)
      assert.matches("^invalid key: it starts with '='", errs[5].msg)
    end)

    it("`export KEY` without a value is an error", function()
      assert.matches("no '='", bad("export A\n")[1].msg)
    end)

    it("stop after max_errors", function()
      local errs = bad(string.rep("bad line\n", 100), { max_errors = 5 })
      assert.are.equal(5, #errs)
      assert.are.equal(20, #bad(string.rep("bad line\n", 100)))
    end)

    it("never echo the text of the line (it may be a secret)", function()
      local secret = "hunter2-Sup3rSecret"
      local cases = {
        secret .. "\n",                              -- a bare value
        "PASSWORD: " .. secret .. "=x\n",            -- a broken key
        "A=\"" .. secret .. "\"" .. secret .. "\n",  -- text after a quote
        "A=\"" .. secret .. "\n",                    -- unterminated
        "A=" .. secret .. "\1\n",                    -- control character
        "A=" .. secret .. "\255\n",                  -- invalid UTF-8
        "A=" .. secret .. "\0\n",                    -- NUL
      }
      for _, text in ipairs(cases) do
        local errs = bad(text)
        for _, e in ipairs(errs) do
          assert.is_nil(e.msg:find("hunter2", 1, true), e.msg)
          assert.is_nil(e.msg:find("Sup3r", 1, true), e.msg)
        end
        local err = dotenv.error(errs, ".env")
        assert.is_nil(((err.detail or "") .. err.msg .. err.hint):find("hunter2", 1, true))
      end
    end)

    it("non-string content is an error, not a crash", function()
      local r, errs = dotenv.decode(nil)
      assert.is_nil(r)
      assert.matches("must be a string", errs[1].msg)
    end)
  end)

  describe("parse() and read_file()", function()
    it("raise exit 3 at source:line with the other errors in the detail", function()
      local ok_, e = pcall(dotenv.parse, "A=1\nB\nC=\"x\"y\n", ".env.test")
      assert.is_false(ok_)
      assert.are.equal(3, e.exit)
      assert.are.equal(".env.test:2:1", e.where)
      assert.are.equal("invalid dotenv: expected KEY=value (this line has no '=')", e.msg)
      assert.are.equal(".env.test", e.file)
      assert.are.equal(2, e.line)
      assert.matches("also:\n%.env%.test:3:6: unexpected 'y'", e.detail)
      assert.is_string(e.hint)
    end)

    it("read_file: an unreadable file is exit 3 with the original message", function()
      local testutil = require "testutil"
      local dir = testutil.tmpdir("dotenv")
      local ok_, e = pcall(dotenv.read_file, dir .. "/missing")
      assert.is_false(ok_)
      assert.are.equal(3, e.exit)
      assert.are.equal("dotenv file is not readable: " .. dir .. "/missing", e.msg)
      ok_, e = pcall(dotenv.read_file, dir)
      assert.is_false(ok_)
      assert.are.equal("dotenv file is not readable: " .. dir, e.msg)
      local path = testutil.write(dir .. "/.env", "A=1\r\nB='2'\r\n")
      local r, text = dotenv.read_file(path)
      assert.are.same({ A = "1", B = "2" }, r.map)
      assert.are.equal("A=1\r\nB='2'\r\n", text)
      testutil.write(path, "A=1\nbroken\n")
      ok_, e = pcall(dotenv.read_file, path)
      assert.is_false(ok_)
      assert.are.equal(path .. ":2:1", e.where)
    end)
  end)

  describe("expansion (only when asked)", function()
    it("is off by default: $ is an ordinary character", function()
      assert.are.same({ A = "1", B = "${A}-$A" }, ok("A=1\nB=${A}-$A\n").map)
    end)

    it("expands ${NAME}, ${NAME:-default} and $NAME from earlier keys, then opts.env", function()
      local r = ok(table.concat({
        "HOST=db.local",
        "URL=postgresql://${USER}@${HOST}:${PORT:-5432}/$DB",
        "Q=\"$HOST \\$HOST ${HOST}\"",
        "U=price \\$5 and $ alone and $1",
        "S='$HOST'",
        "E=${EMPTY:-fallback}",
      }, "\n"), { expand = true, env = { USER = "app", DB = "main", EMPTY = "" } })
      assert.are.same({
        HOST = "db.local", URL = "postgresql://app@db.local:5432/main", Q = "db.local $HOST db.local",
        U = "price $5 and $ alone and $1", S = "$HOST", E = "fallback",
      }, r.map)
    end)

    it("takes a lookup function and uses the value defined so far", function()
      local r = ok("A=1\nB=$A\nA=2\nC=$A$X\n", { expand = true, env = function(n) return n:lower() end })
      assert.are.same({ A = "2", B = "1", C = "2x" }, r.map)
    end)

    it("is asked for by a `# db-tool: expand` line before the first entry", function()
      local r = ok("# my settings\n#db-tool:expand\nA=1\nB=${A}2\nC='$A'\n", { env = { X = "x" } })
      assert.are.same({ A = "1", B = "12", C = "$A" }, r.map)
      r = ok("  #  db-tool:  expand  \r\nA=$X\r\n", { env = { X = "x" } })
      assert.are.same({ A = "x" }, r.map)
      assert.are.same({ A = "${X}" }, ok("# db-tool: expand later\nA=${X}\n").map)
      local errs = bad("A=1\n# db-tool: expand\nB=$A\n")
      assert.are.equal(2, errs[1].line)
      assert.matches("must come before the first entry", errs[1].msg)
    end)

    it("reports undefined names and bad ${...} forms", function()
      local errs = bad("A=1\nB=${NOPE}\n", { expand = true })
      assert.are.equal(2, errs[1].line)
      assert.matches("undefined variable NOPE in the value of B", errs[1].msg)
      assert.matches("invalid %${%.%.%.} in the value of C", bad("C=${1x}\n", { expand = true })[1].msg)
      assert.matches("invalid %${", bad("C=\"${A\"\n", { expand = true })[1].msg)
    end)
  end)

  describe("writing", function()
    it("quote() gives tokens that parse back, bare when safe", function()
      assert.are.equal("plain_value-1.2", dotenv.quote("plain_value-1.2"))
      assert.are.equal("", dotenv.quote(""))
      assert.are.equal('"a b"', dotenv.quote("a b"))
      assert.are.equal('"x\\ny\\t\\"q\\" \\\\ \\$HOME #"', dotenv.quote('x\ny\t"q" \\ $HOME #'))
      for _, v in ipairs { "", " lead", "trail ", "#", "a #b", "'", "\"", "\\", "$A", "${A}",
        "\r\n", "x\1y", "é ✓", "=", "a=b", "export X" } do
        for _, expand in ipairs { false, true } do
          assert.are.equal(v, ok("K=" .. dotenv.quote(v) .. "\n", { expand = expand }).map.K, v)
        end
      end
    end)

    it("serialize() writes sorted maps and ordered lists that parse back", function()
      local map = { Z = "last", A = "multi\nline", M = "with space", E = "" }
      local text = dotenv.serialize(map)
      assert.are.equal('A="multi\\nline"\nE=\nM="with space"\nZ=last\n', text)
      assert.are.same(map, ok(text).map)
      assert.are.equal("B=1\nA=2\n", dotenv.serialize { { "B", "1" }, { key = "A", value = "2" } })
      assert.are.equal("", dotenv.serialize {})
      local ok_, e = pcall(dotenv.serialize, { ["bad key"] = "x" })
      assert.is_false(ok_)
      assert.matches('invalid key "bad key"', e.msg)
    end)

    it("set() replaces in place, keeps comments, export and CRLF, appends new keys", function()
      local text = "# header\r\nexport A=1 # old\r\nB='multi\r\nline'\r\nA=dup\r\nC=3\r\n"
      local out = dotenv.set(text, "A", "new value")
      assert.are.equal("# header\r\nexport A=\"new value\"\r\nB='multi\r\nline'\r\nC=3\r\n", out)
      out = dotenv.set(text, "B", "x")
      assert.are.equal("# header\r\nexport A=1 # old\r\nB=x\r\nA=dup\r\nC=3\r\n", out)
      assert.are.equal("A=1\nNEW=\"\\$x\"\n", dotenv.set("A=1\n", "NEW", "$x"))
      assert.are.equal("A=1\nNEW=v\n", dotenv.set("A=1", "NEW", "v"))
      assert.are.equal("K=v\n", dotenv.set("", "K", "v"))
      assert.are.equal("\239\187\191A=2\n", dotenv.set("\239\187\191A=1\n", "A", "2"))
    end)

    it("set() refuses invalid text (exit 3) and invalid keys (exit 1)", function()
      local ok_, e = pcall(dotenv.set, "A=1\nbroken\n", "A", "2", { source = "f.env" })
      assert.is_false(ok_)
      assert.are.equal(3, e.exit)
      assert.are.equal("f.env:2:1", e.where)
      ok_, e = pcall(dotenv.set, "A=1\n", "1X", "2")
      assert.is_false(ok_)
      assert.are.equal(1, e.exit)
    end)

    it("unset() removes every occurrence and says how many", function()
      local out, n = dotenv.unset("A=1\nB=2\nA='x\ny'\n# keep\n", "A")
      assert.are.equal("B=2\n# keep\n", out)
      assert.are.equal(2, n)
      out, n = dotenv.unset("B=2\n", "A")
      assert.are.equal("B=2\n", out)
      assert.are.equal(0, n)
      assert.are.equal("", (dotenv.unset("A=1\n", "A")))
    end)
  end)

  describe("hostile input", function()
    it("handles large files and long values in linear time", function()
      local lines = {}
      for i = 1, 50000 do lines[i] = "KEY_" .. i .. "=value " .. i .. " # c" end
      local r = ok(table.concat(lines, "\n"))
      assert.are.equal(50000, #r.keys)
      assert.are.equal("value 50000", r.map.KEY_50000)
      local big = string.rep("x", 4 * 1024 * 1024)
      assert.are.equal(#big, #ok("A=" .. big .. "\n").map.A)
      assert.are.equal(#big, #ok("A=\"" .. big .. "\"\n").map.A)
      local escapes = string.rep("\\n", 500000)
      assert.are.equal(500000, #ok("A=\"" .. escapes .. "\"").map.A)
      assert.are.equal(20, #bad(string.rep("=\n", 100000)))
      assert.are.equal(1, #bad(string.rep('"', 100001)))
      assert.are.equal(1, #bad("A=" .. string.rep("'", 100001)))
    end)

    it("stops values that expand each other at 16 MiB of output, at file:line:col", function()
      local lines = { "# db-tool: expand", "A=" .. string.rep("x", 64) }
      for i = 1, 40 do lines[#lines + 1] = string.format("V%d=${%s}\"${%s}\"", i, i == 1 and "A" or
        ("V" .. (i - 1)), i == 1 and "A" or ("V" .. (i - 1))) end
      local errs = bad(table.concat(lines, "\n") .. "\n")
      assert.are.equal(1, #errs)
      -- 64 bytes doubling per line: the output of all expansions passes 16 MiB at the second
      -- ${V16} of V17's value (line 19, column 12)
      assert.are.equal(19, errs[1].line)
      assert.are.equal(12, errs[1].col)
      assert.matches("expanding V16 in the value of V17 goes beyond 16777216 bytes", errs[1].msg, 1, true)
      local e = select(2, pcall(dotenv.parse, table.concat(lines, "\n"), ".env.bomb"))
      assert.are.equal(3, e.exit)
      assert.are.equal(".env.bomb:19:12", e.where)
      -- in double quotes, and with $NAME: the column of the `$` that went over
      errs = bad('# db-tool: expand\nA="' .. string.rep("y", 9 * 1024 * 1024) .. '"\nB="$A$A"\n')
      assert.are.same({ 3, 6 }, { errs[1].line, errs[1].col })
    end)

    it("refuses dotenv text over 16 MiB before parsing it", function()
      local errs = bad(string.rep("A=1\n", 4 * 1024 * 1024 + 1))
      assert.matches("the dotenv text is 16777220 bytes; at most 16777216", errs[1].msg, 1, true)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("#", 17 * 1024 * 1024))
      f:close()
      local ok2, e = pcall(dotenv.read_file, path)
      os.remove(path)
      assert.is_false(ok2)
      assert.are.equal(3, e.exit)
      assert.matches("is 17825792 bytes; at most 16777216", e.msg, 1, true)
    end)

    it("survives a bounded mutation fuzz run (value or structured error, round trips)", function()
      local stats = require("dotenv_fuzz").run { iterations = 3000, seed = 20240601 }
      assert.are.equal(3000, stats.iterations)
      assert.is_true(stats.valid > 300, "too few valid inputs: " .. stats.valid)
      assert.is_true(stats.invalid > 300, "too few invalid inputs: " .. stats.invalid)
    end)
  end)
end)
