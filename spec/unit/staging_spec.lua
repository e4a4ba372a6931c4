local staging = require "dbtool.staging"

describe("dbtool.staging helpers", function()
  it("quotes every word for a POSIX shell", function()
    assert.are.equal("'plain'", staging.shell_quote("plain"))
    assert.are.equal("''", staging.shell_quote(""))
    assert.are.equal("'it'\\''s'", staging.shell_quote("it's"))
    assert.are.equal("'$(id) `id` \\ \"; x'", staging.shell_quote("$(id) `id` \\ \"; x"))
    assert.are.equal("'a' 'b c' ''\\'''", staging.shell_join { "a", "b c", "'" })
    local ok, e = pcall(staging.shell_quote, "a\0b")
    assert.is_false(ok)
    assert.matches("NUL", e.msg)
  end)

  it("splits flags and tables on whitespace only", function()
    assert.are.same({ "--data-only", "--column-inserts", "'x", "$(y)" },
      staging.words("  --data-only\t--column-inserts\n'x $(y) "))
    assert.are.same({}, staging.words(""))
  end)

  it("builds the dump argv with --dbname= and --table= (no word can become an option)", function()
    local argv = staging.steps.dump_argv { url = "-x", flags = { "--data-only" }, tables = { "-t", "a b" } }
    assert.are.same({ "pg_dump", "--dbname=-x", "--data-only", "--table=-t", "--table=a b" }, argv)
    assert.are.same({ "ssh", "--", "-oProxyCommand=x", "'pg_dump' 'a'\\''b'" },
      staging.steps.transport({ host = "-oProxyCommand=x" }, { "pg_dump", "a'b" }))
  end)

  it("parses the names pg_dump prints", function()
    local parts, rest = staging.parse_name('public."a""b c".x')
    assert.are.same({ "public", 'a"b c', "x" }, parts)
    assert.are.equal("", rest)
    local h = staging.data_header('COPY public."Us;ers" (id, "E-mail", x) FROM stdin;')
    assert.are.same({ schema = "public", name = "Us;ers", table = "public.Us;ers",
      qualified = 'public."Us;ers"', columns = { "id", "E-mail", "x" }, copy = true }, h)
    h = staging.data_header("INSERT INTO public.t (a) VALUES (1);")
    assert.are.equal("public.t", h.table)
    assert.is_false(h.copy)
    assert.are.same({ "a" }, h.columns)
    assert.is_nil(staging.data_header("COPY x TO stdout;"))
    assert.is_nil(staging.data_header("-- COPY public.t (a) FROM stdin;"))
  end)

  it("decodes and encodes COPY text lines", function()
    local v, n = staging.decode_copy("1\t\\N\ttab\\there\\\\\\n\t\\101\\x42")
    assert.are.equal(4, n)
    assert.are.equal("1", v[1])
    assert.is_nil(v[2])
    assert.are.equal("tab\there\\\n", v[3])
    assert.are.equal("AB", v[4])
    assert.are.equal("1\t\\N\ttab\\there\\\\\\n\tAB", staging.encode_copy(v, n))
    assert.are.same({ "" }, (staging.decode_copy("")))
  end)

  it("footer resets sequences through literals only", function()
    local text = staging.steps.footer({}, { 'public."a\'b"' })
    assert.matches("SELECT pg_temp%.db_tool_reset_sequences%('public%.\"a''b\"'%);", text)
    assert.are.equal("\n-- Reset sequences to match imported data\n", staging.steps.footer({}, {}))
  end)
end)
