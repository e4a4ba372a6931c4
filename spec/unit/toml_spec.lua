-- dbtool.toml: every TOML 1.0 feature, and every kind of invalid document (structured
-- error at file:line:col).
local toml = require "dbtool.toml"

-- A typed view of a parsed value (like toml-test's JSON): scalars become "type:value".
local function typed(v)
  local ty = toml.type(v)
  if ty == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = typed(x) end
    return out
  elseif ty == "array" then
    local out = { "array" }
    for i, x in ipairs(v) do out[i + 1] = typed(x) end
    return out
  elseif ty == "float" then
    if v ~= v then return "float:nan" end
    if v == math.huge then return "float:inf" end
    if v == -math.huge then return "float:-inf" end
    return "float:" .. string.format("%.17g", v)
  end
  return ty .. ":" .. tostring(v)
end

local function parse(src)
  return toml.parse(src, { name = "t.toml" })
end

--- Assert that `src` is rejected at line:col with a message matching `pat` (plain).
local function rejects(src, line, col, pat)
  local v, e = toml.decode(src, { name = "t.toml" })
  assert(v == nil, "expected an error for: " .. src)
  assert.are.equal(1, e.exit)
  assert.is_nil(e.bug)
  assert.are.equal("t.toml:" .. line .. ":" .. col, e.where, "for " .. src .. ": " .. e.msg)
  assert.are.equal(line, e.line)
  assert.are.equal(col, e.col)
  local text = e.msg .. (e.hint and (" [" .. e.hint .. "]") or "")
  if pat then assert(text:find(pat, 1, true), "message '" .. text .. "' lacks '" .. pat .. "'") end
  return e
end

describe("toml", function()
  describe("comments, whitespace, newlines", function()
    it("ignores comments and blank lines, accepts CRLF and a BOM", function()
      assert.are.same({ a = "integer:1", b = "string:x # not a comment" },
        typed(parse("\239\187\191# top\r\n\r\n  a = 1 # trailing\r\n\tb = \"x # not a comment\"\n# end")))
      assert.are.same({}, typed(parse("")))
      assert.are.same({}, typed(parse("\n\n# only comments\n")))
    end)

    it("rejects control characters in comments and bare carriage returns", function()
      rejects("a = 1 # bad \1 char", 1, 13, "control character U+0001 is not allowed in a comment")
      rejects("# x\127", 1, 4, "U+007F")
      rejects("a = 1\r b = 2", 1, 6, "carriage return must be followed by a newline")
      rejects("a = 1\n\rb = 2", 2, 1, "carriage return")
    end)

    it("requires one expression per line", function()
      rejects("a = 1 b = 2", 1, 7, "expected a newline or end of file after the value, found 'b'")
      rejects("[a] b = 1", 1, 5, "after the table header")
    end)
  end)

  describe("keys", function()
    it("reads bare, quoted, literal, empty and dotted keys with whitespace", function()
      local t = parse([[
bare_key-1 = 1
1234 = 2
"quoted \"key\" é" = 3
'literal \n' = 4
"" = 5
a . b . "c.d" = 6
site."google.com" = true
3.14159 = "pi"
]])
      assert.are.same({
        ["bare_key-1"] = "integer:1", ["1234"] = "integer:2", ['quoted "key" é'] = "integer:3",
        ["literal \\n"] = "integer:4", [""] = "integer:5", a = { b = { ["c.d"] = "integer:6" } },
        site = { ["google.com"] = "boolean:true" }, ["3"] = { ["14159"] = "string:pi" },
      }, typed(t))
    end)

    it("rejects bad keys", function()
      rejects("= 1", 1, 1, "expected a key, found '='")
      rejects("a b = 1", 1, 3, "expected '=' after the key 'a', found 'b'")
      rejects("a", 1, 2, "expected '=' after the key 'a'")
      rejects("a.", 1, 3, "expected a key")
      rejects("a..b = 1", 1, 3, "expected a key, found '.'")
      rejects("é = 1", 1, 1, "invalid character 'é' in a key")
      rejects('"""a""" = 1', 1, 1, "a multi-line string cannot be a key")
      rejects("'''a''' = 1", 1, 1, "a multi-line string cannot be a key")
      rejects("a =", 1, 4, "expected a value, found end of file")
      rejects("a = # nothing", 1, 5, "expected a value")
    end)

    it("rejects duplicate keys, naming the first definition", function()
      local e = rejects("a = 1\nb = 2\na = 3", 3, 1, "duplicate key 'a' (first defined on line 1)")
      assert.are.equal("    3 | a = 3\n      | ^", e.excerpt)
      rejects('a = 1\n"a" = 2', 2, 1, "duplicate key 'a'")
      rejects("a.b = 1\na.b = 2", 2, 3, "duplicate key 'a.b'")
      rejects("a.b = 1\na.b.c = 2", 2, 3, "cannot use 'a.b' as a table: it is already a value (integer)")
      rejects("[t]\nx = 1\nx = 2", 3, 1, "duplicate key 'x' (first defined on line 2)")
      rejects('a = {x = 1, "x" = 2}', 1, 13, "duplicate key 'x'")
    end)
  end)

  describe("strings", function()
    it("decodes every escape of basic strings", function()
      local t = parse([[s = "b\b t\t n\n f\f r\r q\" bs\\ u\u00E9 U\U0001F600 z\u0000"]])
      assert.are.equal("b\b t\t n\n f\f r\r q\" bs\\ u\195\169 U\240\159\152\128 z\0", t.s)
      assert.are.equal("tab\there", parse('s = "tab\there"').s)
    end)

    it("keeps literal strings as written", function()
      assert.are.equal([[C:\Users\nodejs\templates]], parse([[p = 'C:\Users\nodejs\templates']]).p)
      assert.are.equal([[<\i\c*\s*>]], parse([[r = '<\i\c*\s*>']]).r)
      assert.are.equal("", parse("e = ''").e)
    end)

    it("reads multi-line basic strings: first newline trimmed, line-ending backslash, quotes", function()
      local t = parse('a = """\nRoses are red\r\nViolets are blue"""\n'
        .. 'b = """\\\n    The quick brown \\\n\n\n    fox jumps over \\\r\n    the lazy dog."""\n'
        .. 'c = """Here are two quotation marks: "". Simple enough."""\n'
        .. 'd = """Here are fifteen quotation marks: ""\\"""\\"""\\"""\\"""\\"."""\n'
        .. 'e = """"This," she said, "she\'s just a pointless statement.""""\n'
        .. 'f = """\\u0041\\ttab"""\n')
      assert.are.equal("Roses are red\nViolets are blue", t.a)
      assert.are.equal("The quick brown fox jumps over the lazy dog.", t.b)
      assert.are.equal('Here are two quotation marks: "". Simple enough.', t.c)
      assert.are.equal('Here are fifteen quotation marks: """"""""""""""".', t.d)
      assert.are.equal('"This," she said, "she\'s just a pointless statement."', t.e)
      assert.are.equal("A\ttab", t.f)
    end)

    it("reads multi-line literal strings", function()
      local t = parse("a = '''\nThe first newline is\ntrimmed in raw strings.\n   All other whitespace\n"
        .. "   is preserved.\n'''\nb = '''I [dw]on't need \\d{2} apples'''\n"
        .. "c = ''''That,' she said, 'is still pointless.''''\nd = '''x\\'''")
      assert.are.equal("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n"
        .. "   is preserved.\n", t.a)
      assert.are.equal([[I [dw]on't need \d{2} apples]], t.b)
      assert.are.equal("'That,' she said, 'is still pointless.'", t.c)
      assert.are.equal("x\\", t.d)
    end)

    it("rejects bad escapes, control characters, unterminated strings", function()
      rejects([[a = "x\qy"]], 1, 7, "invalid escape sequence \\q")
      rejects([[a = "\x41"]], 1, 6, "invalid escape sequence \\x")
      rejects([[a = "\e"]], 1, 6, "invalid escape")
      rejects([[a = "\u00G1"]], 1, 6, "needs exactly 4 hexadecimal digits")
      rejects([[a = "\U0001F60"]], 1, 6, "needs exactly 8 hexadecimal digits")
      rejects([[a = "\uD800"]], 1, 6, "is not a Unicode scalar value")
      rejects([[a = "\U00110000"]], 1, 6, "is not a Unicode scalar value")
      rejects('a = "x\1"', 1, 7, "control character U+0001 must be escaped")
      rejects('a = "x\127"', 1, 7, "U+007F")
      rejects('a = "x', 1, 5, "unterminated string")
      rejects('a = "x\ny"', 1, 5, "a newline before the closing quote")
      rejects("a = 'x", 1, 5, "unterminated literal string")
      rejects("a = 'x\ny'", 1, 5, "a newline before the closing quote")
      rejects("a = 'x\1'", 1, 7, "not allowed in a literal string")
      rejects('a = """x', 1, 5, "unterminated multi-line string")
      rejects('a = """x\\ y"""', 1, 9, "invalid escape sequence \\ ")
      rejects('a = """x\1"""', 1, 9, "must be escaped")
      rejects('a = """x\ry"""', 1, 9, "carriage return")
      rejects('a = """x""""""', 1, 14, 'at most two " may precede the closing """')
      rejects("a = '''x", 1, 5, "unterminated multi-line literal string")
      rejects("a = '''x''''''", 1, 14, "at most two '")
      rejects("a = '''\1'''", 1, 8, "not allowed in a literal string")
    end)

    it("rejects invalid UTF-8 anywhere, with its position", function()
      rejects('a = "\255"', 1, 6, "invalid UTF-8")
      rejects("a = 1\n# \192\128 overlong", 2, 3, "invalid UTF-8")
      rejects('a = "\237\160\128"', 1, 6, "invalid UTF-8") -- an encoded surrogate
    end)
  end)

  describe("integers", function()
    it("reads decimal, hex, octal, binary integers with underscores", function()
      assert.are.same({
        a = "integer:99", b = "integer:42", c = "integer:0", d = "integer:-17", e = "integer:0",
        f = "integer:1000", g = "integer:5349221", h = "integer:12345",
        hex1 = "integer:3735928559", hex2 = "integer:3735928559", hex3 = "integer:3735928559",
        oct1 = "integer:342391", oct2 = "integer:493", bin1 = "integer:214",
        max = "integer:9223372036854775807", min = "integer:-9223372036854775808",
        hexmax = "integer:9223372036854775807", zero = "integer:0",
      }, typed(parse([[
a = +99
b = 42
c = 0
d = -17
e = -0
f = 1_000
g = 5_349_221
h = 1_2_3_4_5
hex1 = 0xDEADBEEF
hex2 = 0xdeadbeef
hex3 = 0xdead_beef
oct1 = 0o01234567
oct2 = 0o755
bin1 = 0b11010110
max = 9_223_372_036_854_775_807
min = -9223372036854775808
hexmax = 0x7FFFFFFFFFFFFFFF
zero = 0x0
]])))
    end)

    it("rejects leading zeros, bad underscores, signs on prefixed forms, overflow", function()
      rejects("a = 01", 1, 5, "leading zeros are not allowed in '01'")
      rejects("a = +01", 1, 5, "leading zeros")
      rejects("a = 1__0", 1, 5, "underscores must be between digits")
      rejects("a = 1_", 1, 5, "invalid number '1_'")
      rejects("a = _1", 1, 5, "invalid number '_1'")
      rejects("a = 0x", 1, 5, "invalid hexadecimal integer '0x'")
      rejects("a = 0x_1", 1, 5, "invalid hexadecimal integer")
      rejects("a = 0xG", 1, 5, "invalid hexadecimal integer")
      rejects("a = 0o8", 1, 5, "invalid octal integer")
      rejects("a = 0b2", 1, 5, "invalid binary integer")
      rejects("a = 0X1F", 1, 5, "invalid number '0X1F'")
      rejects("a = +0x1", 1, 5, "a sign is not allowed on 0x integers")
      rejects("a = -0b1", 1, 5, "a sign is not allowed on 0b integers")
      rejects("a = 9223372036854775808", 1, 5, "does not fit in 64 bits")
      rejects("a = -9223372036854775809", 1, 5, "does not fit in 64 bits")
      rejects("a = 0x8000000000000000", 1, 5, "does not fit in 64 bits")
      rejects("a = 0o1000000000000000000000", 1, 5, "does not fit in 64 bits")
      rejects("a = 1-2", 1, 5, "invalid number '1-2'")
    end)
  end)

  describe("floats", function()
    it("reads fractions, exponents, underscores, inf and nan", function()
      local t = parse([[
f1 = +1.0
f2 = 3.1415
f3 = -0.01
f4 = 5e+22
f5 = 1e06
f6 = -2E-2
f7 = 6.626e-34
f8 = 224_617.445_991_228
f9 = 1e1_0
f10 = 0.0
f11 = -0.0
sf1 = inf
sf2 = +inf
sf3 = -inf
sf4 = nan
sf5 = +nan
sf6 = -nan
]])
      assert.are.same({
        f1 = "float:1", f2 = "float:3.1415000000000002", f3 = "float:-0.01",
        f4 = "float:4.9999999999999996e+22",
        f5 = "float:1000000", f6 = "float:-0.02", f7 = "float:6.6259999999999998e-34",
        f8 = "float:224617.44599122801", f9 = "float:10000000000", f10 = "float:0", f11 = "float:-0",
        sf1 = "float:inf", sf2 = "float:inf", sf3 = "float:-inf", sf4 = "float:nan", sf5 = "float:nan",
        sf6 = "float:nan",
      }, typed(t))
      assert.are.equal("float", math.type(t.f5))
      -- sign of nan as written
      assert.are.equal("-", tostring(t.sf6):sub(1, 1))
      assert.are_not.equal("-", tostring(t.sf4):sub(1, 1))
    end)

    it("rejects malformed floats", function()
      rejects("a = 1.", 1, 5, "a decimal point needs digits on both sides")
      rejects("a = .5", 1, 5, "expected a value, found '.'")
      rejects("a = 3.e+20", 1, 5, "invalid float")
      rejects("a = 1e", 1, 5, "invalid number '1e'")
      rejects("a = 1e_2", 1, 5, "invalid number")
      rejects("a = 1.5e", 1, 5, "invalid float '1.5e'")
      rejects("a = 1.0e+", 1, 5, "invalid float")
      rejects("a = 03.14", 1, 5, "leading zeros")
      rejects("a = 1._5", 1, 5, "invalid float")
      rejects("a = 1.5_", 1, 5, "invalid float")
      rejects("a = infinity", 1, 5, "invalid value 'infinity'")
      rejects("a = Inf", 1, 5, "invalid value 'Inf'")
      rejects("a = nan1", 1, 5, "invalid value 'nan1'")
    end)
  end)

  describe("booleans and bare words", function()
    it("reads true and false", function()
      assert.are.same({ t = "boolean:true", f = "boolean:false" }, typed(parse("t = true\nf = false")))
    end)

    it("rejects other words, suggesting quotes", function()
      local e = rejects("a = bob", 1, 5, "invalid value 'bob'")
      assert.are.equal('strings must be quoted: "bob"', e.hint)
      rejects("a = True", 1, 5, "invalid value 'True'")
      rejects("a = truex", 1, 5, "invalid value 'truex'")
    end)
  end)

  describe("dates and times", function()
    it("reads offset and local date-times, dates and times", function()
      local t = parse([[
odt1 = 1979-05-27T07:32:00Z
odt2 = 1979-05-27T00:32:00-07:00
odt3 = 1979-05-27T00:32:00.999999+05:30
odt4 = 1979-05-27 07:32:00z
odt5 = 1979-05-27t07:32:00Z
ldt1 = 1979-05-27T07:32:00
ldt2 = 1979-05-27 00:32:00.999999
ld1 = 1979-05-27 # a date
lt1 = 07:32:00
lt2 = 00:32:00.999999
leap = 2000-02-29
]])
      assert.are.same({
        odt1 = "offset-datetime:1979-05-27T07:32:00Z", odt2 = "offset-datetime:1979-05-27T00:32:00-07:00",
        odt3 = "offset-datetime:1979-05-27T00:32:00.999999+05:30",
        odt4 = "offset-datetime:1979-05-27T07:32:00Z", odt5 = "offset-datetime:1979-05-27T07:32:00Z",
        ldt1 = "local-datetime:1979-05-27T07:32:00", ldt2 = "local-datetime:1979-05-27T00:32:00.999999",
        ld1 = "local-date:1979-05-27", lt1 = "local-time:07:32:00", lt2 = "local-time:00:32:00.999999",
        leap = "local-date:2000-02-29",
      }, typed(t))
      local d = t.odt3
      assert.are.same({ 1979, 5, 27, 0, 32, 0, "999999", 330 },
        { d.year, d.month, d.day, d.hour, d.min, d.sec, d.frac, d.offset })
      assert.are.equal(-420, t.odt2.offset)
      assert.are.equal(0, t.odt1.offset)
      assert.is_nil(t.ldt1.offset)
      assert.is_true(toml.is_datetime(t.lt1))
    end)

    it("rejects impossible dates, times and offsets", function()
      rejects("a = 1979-13-01", 1, 5, "month must be 01-12")
      rejects("a = 1979-00-01", 1, 5, "month must be 01-12")
      rejects("a = 1979-02-29", 1, 5, "day 29 does not exist in 1979-02")
      rejects("a = 1900-02-29", 1, 5, "does not exist")
      rejects("a = 1979-04-31", 1, 5, "does not exist")
      rejects("a = 1979-05-00", 1, 5, "does not exist")
      rejects("a = 1979-05-27T24:00:00", 1, 16, "hour must be 00-23")
      rejects("a = 1979-05-27T23:60:00", 1, 16, "minute must be 00-59")
      rejects("a = 1979-05-27T23:59:61", 1, 16, "second must be")
      rejects("a = 1979-05-27T07:32", 1, 16, "seconds are required")
      rejects("a = 1979-05-27T07:32:00.", 1, 16, "needs digits after the point")
      rejects("a = 07:32", 1, 5, "invalid time")
      rejects("a = 1979-05-27T07:32:00+25:00", 1, 24, "time offset out of range")
      rejects("a = 1979-05-27T07:32:00+0700", 1, 24, "invalid time offset")
      rejects("a = 1979-05-27x", 1, 15, "expected a newline")
      rejects("a = 1979-5-27", 1, 5, "invalid date [expected YYYY-MM-DD")
    end)
  end)

  describe("arrays", function()
    it("reads nested, mixed, multi-line arrays with comments and trailing commas", function()
      local t = parse([[
integers = [ 1, 2, 3 ]
colors = [ "red", "yellow", "green" ]
nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]
nested_mixed_array = [ [ 1, 2 ], ["a", "b", "c"] ]
numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]
contributors = [
  "Foo Bar <foo@example.com>", # comment
  { name = "Baz Qux", email = "bazqux@example.com", url = "https://example.com/bazqux" },
]
empty = []
empty2 = [ # c
]
integers3 = [
  1,
  2, # this is ok
]
]])
      assert.are.same({ "array", "integer:1", "integer:2", "integer:3" }, typed(t.integers))
      assert.are.same({ "array", { "array", "integer:1", "integer:2" }, { "array", "string:a", "string:b",
        "string:c" } }, typed(t.nested_mixed_array))
      assert.are.same({ "array", "float:0.10000000000000001", "float:0.20000000000000001", "float:0.5",
        "integer:1", "integer:2", "integer:5" }, typed(t.numbers))
      assert.are.equal("Baz Qux", t.contributors[2].name)
      assert.is_true(toml.is_array(t.empty))
      assert.are.equal(0, #t.empty)
      assert.are.same({ "array" }, typed(t.empty2))
      assert.are.same({ "array", "integer:1", "integer:2" }, typed(t.integers3))
    end)

    it("rejects malformed arrays", function()
      rejects("a = [1 2]", 1, 8, "expected ',' or ']' in the array, found '2'")
      rejects("a = [1,,2]", 1, 8, "expected a value in the array, found ','")
      rejects("a = [,]", 1, 6, "expected a value in the array")
      rejects("a = [1,", 1, 5, "unterminated array")
      rejects("a = [1", 1, 5, "unterminated array")
      rejects("a = [\n1,\n2", 1, 5, "unterminated array")
      rejects("a = [1 # c \1\n]", 1, 12, "not allowed in a comment")
    end)
  end)

  describe("inline tables", function()
    it("reads inline tables with dotted keys, nested", function()
      local t = parse([[
name = { first = "Tom", last = "Preston-Werner" }
point = { x = 1, y = 2 }
animal = { type.name = "pug" }
empty = {}
nested = { a = { b = { c = [1, { d = true }] } } }
]])
      assert.are.same({
        name = { first = "string:Tom", last = "string:Preston-Werner" },
        point = { x = "integer:1", y = "integer:2" },
        animal = { type = { name = "string:pug" } },
        empty = {},
        nested = { a = { b = { c = { "array", "integer:1", { d = "boolean:true" } } } } },
      }, typed(t))
    end)

    it("rejects newlines, trailing commas, and extending them afterwards", function()
      rejects("a = { b = 1, }", 1, 14, "trailing comma in an inline table")
      rejects("a = { b = 1,\n c = 2 }", 1, 13, "newlines are not allowed in an inline table")
      rejects("a = {\n}", 1, 6, "newlines are not allowed")
      rejects("a = { b = 1", 1, 5, "unterminated inline table")
      rejects("a = { b = 1 c = 2 }", 1, 13, "expected ',' or '}' in the inline table, found 'c'")
      rejects("a = { b = 1, b = 2 }", 1, 14, "duplicate key 'b'")
      rejects("a = {x = {y = 1}, x.z = 2}", 1, 19, "cannot add keys to the inline table 'x'")
      rejects("[product]\ntype = { name = \"Nail\" }\ntype.edible = false", 3, 1,
        "cannot add keys to the inline table 'type'")
      rejects("[product]\ntype.name = \"Nail\"\ntype = { edible = false }", 3, 1, "duplicate key 'type'")
      rejects("a = {b = 1}\n[a]", 2, 1, "table [a] was already defined as an inline table (line 1)")
      rejects("a = {b = 1}\n[a.c]", 2, 2, "cannot add a table to the inline table 'a'")
      rejects("a = [{b = 1}]\n[[a]]", 2, 3, "cannot define [[a]]: 'a' is already a static array")
    end)
  end)

  describe("tables", function()
    it("reads headers, implicit parents, dotted keys under headers, sub-tables of dotted tables", function()
      local t = parse([=[
top = 1
[table-1]
key1 = "some string"
[dog."tater.man"]
type.name = "pug"
[ j . "ʞ" . 'l' ]
x = 1
[x.y.z.w]
[x]
[fruit]
apple.color = "red"
apple.taste.sweet = true
[fruit.apple.texture]
smooth = true
[a.b.c]
z = 9
[a]
b.d = 1
[empty]
]=])
      assert.are.same({
        top = "integer:1",
        ["table-1"] = { key1 = "string:some string" },
        dog = { ["tater.man"] = { type = { name = "string:pug" } } },
        j = { ["ʞ"] = { l = { x = "integer:1" } } },
        x = { y = { z = { w = {} } } },
        fruit = { apple = { color = "string:red", taste = { sweet = "boolean:true" },
          texture = { smooth = "boolean:true" } } },
        a = { b = { c = { z = "integer:9" }, d = "integer:1" } },
        empty = {},
      }, typed(t))
    end)

    it("rejects tables defined twice and mixing dotted keys with headers", function()
      rejects("[a]\nb = 1\n[a]\nc = 2", 3, 1, "table [a] is defined twice (first on line 1)")
      rejects("[a]\nb = 1\n[a.b]", 3, 4, "cannot define table [a.b]: it is already a value (integer)")
      rejects("[fruit]\napple.color = \"red\"\n[fruit.apple]", 3, 1,
        "table [fruit.apple] was already defined with dotted keys (line 2)")
      rejects("[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]", 3, 1,
        "already defined with dotted keys")
      rejects("a.b = 1\n[a]", 2, 1, "already defined with dotted keys")
      rejects("[a.b.c]\nz = 9\n[a]\nb.c.t = 1", 4, 3,
        "cannot add keys to table 'b.c' with dotted keys here: it is defined by its own [header] (line 1)")
      rejects("[a.b.c.d]\nz = 9\n[a]\nb.c.d.k.t = 1", 4, 5, "defined by its own [header]")
      rejects("[a]\nb.c = 1\n[d]\n[a]", 4, 1, "defined twice")
      rejects("[x]\ny.z = 1\n[x.w]\n[x]\n", 4, 1, "defined twice")
      rejects("[t]\na.b = 1\n[t.q]\n[t]", 4, 1, "defined twice")
      rejects("[t1]\nx.y = 1\n[t2]\n[t1.x.z]\nq = 1\n[t1]\n", 6, 1, "defined twice")
      rejects("[a.b.c]\n[a]\nb = 1", 3, 1, "duplicate key 'b'")
      rejects("a = 1\n[a.b]", 2, 2, "cannot use 'a' as a table: it is already a value (integer) (line 1)")
      rejects("[a]]", 1, 4, "expected a newline")
      rejects("[a", 1, 3, "expected ']' to close the [table] header")
      rejects("[]", 1, 2, "expected a key")
      rejects("[a.]", 1, 4, "expected a key")
      rejects("[ [a] ]", 1, 3, "invalid character '[' in a key")
      rejects("[a] = 1", 1, 5, "after the table header")
    end)

    it("a dotted table gets sub-tables from headers, but no more keys from other sections", function()
      assert.are.same({ a = { b = { c = 1, d = { x = 1 } } }, other = {} },
        parse("[a]\nb.c = 1\n[other]\n[a.b.d]\nx = 1\n"))
      rejects("[a]\nb.c = 1\n[other]\n[a]\n", 4, 1, "defined twice")
      rejects("a.b.c = 1\n[x]\n[a.b.d]\n[a]\nb.e = 1", 4, 1, "already defined with dotted keys")
    end)
  end)

  describe("arrays of tables", function()
    it("reads arrays of tables, nested, with sub-tables of the last element", function()
      local t = parse([=[
[[products]]
name = "Hammer"
sku = 738594937

[[products]]  # empty table within the array

[[products]]
name = "Nail"
sku = 284758393
color = "gray"

[[fruits]]
name = "apple"

[fruits.physical]  # subtable
color = "red"
shape = "round"

[[fruits.varieties]]  # nested array of tables
name = "red delicious"

[[fruits.varieties]]
name = "granny smith"

[[fruits]]
name = "banana"

[[fruits.varieties]]
name = "plantain"
]=])
      assert.are.equal(3, #t.products)
      assert.are.same({}, t.products[2])
      assert.are.equal("gray", t.products[3].color)
      assert.is_true(toml.is_array(t.products))
      assert.are.same({
        { name = "apple", physical = { color = "red", shape = "round" },
          varieties = { { name = "red delicious" }, { name = "granny smith" } } },
        { name = "banana", varieties = { { name = "plantain" } } },
      }, t.fruits)
    end)

    it("rejects mixing arrays of tables with tables and static arrays", function()
      rejects("[fruit.physical]\ncolor = \"red\"\n[[fruit]]", 3, 3,
        "cannot define [[fruit]]: 'fruit' is already a table")
      rejects("fruits = []\n[[fruits]]", 2, 3, "already a static array")
      rejects("[[fruits]]\nname = \"x\"\n[fruits]", 3, 2,
        "cannot define table [fruits]: it is already an array of tables")
      rejects("[[fruits.varieties]]\nname = 1\n[[fruits]]", 3, 3, "already a table")
      rejects("a = [1]\n[a.b]", 2, 2,
        "cannot use 'a' as a table: it is already an array (not an array of tables)")
      rejects("[[a]", 1, 4, "expected ']]' to close the [[array of tables]] header")
      assert.are.same({ a = { {} }, b = { a = { x = 1 } } }, parse("[[a]]\n[b]\na.x = 1"))
    end)
  end)

  describe("errors", function()
    it("are structured: exit 1, file:line:col in characters, excerpt with a caret, hint", function()
      local _, e = toml.decode("# é\nname = \"é\" x", { name = "conf.toml" })
      assert.are.equal("conf.toml:2:12", e.where)
      assert.are.equal("    2 | name = \"é\" x\n      |            ^", e.excerpt)
      assert.are.equal(getmetatable(require("dbtool.errors").new(1, "x")), getmetatable(e))
      local ok, err = pcall(toml.parse, "a = ", { name = "x.toml" })
      assert.is_false(ok)
      assert.are.equal("x.toml:1:5", err.where)
      assert.is_true(err.toml)
    end)

    it("limits nesting instead of overflowing the stack", function()
      rejects("a = " .. string.rep("[", 10000), 1, 5 + toml.MAX_DEPTH, "nested too deeply")
      rejects("a = " .. string.rep("{b = ", 10000), 1, 5 + 5 * toml.MAX_DEPTH, "nested too deeply")
      local deep = "a = " .. string.rep("[", 100) .. string.rep("]", 100)
      assert.is_true(toml.is_array(parse(deep).a))
    end)

    it("reports unreadable files", function()
      local ok, err = pcall(toml.parse_file, "/nonexistent/x.toml")
      assert.is_false(ok)
      assert.are.equal(1, err.exit)
      assert.matches("cannot read /nonexistent/x.toml", err.msg)
    end)
  end)

  describe("positions", function()
    it("gives the line and column of keys and headers", function()
      local t, info = toml.parse("a = 1\n\n[db_app]\n  engine = \"pg\"\n", { positions = true })
      assert.are.same({ 1, 1 }, { info.where(t, "a") })
      assert.are.same({ 4, 3 }, { info.where(t.db_app, "engine") })
      assert.are.equal(3, info.line_of(t.db_app))
      assert.is_nil(info.where(t, "nope"))
    end)
  end)
end)
