local diff = require "dbtool.diff"

-- reference: length of a longest common subsequence (O(NM) dynamic programming)
local function lcs(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = 0 end
  for i = 1, #a do
    local cur = { [0] = 0 }
    for j = 1, #b do
      if a[i] == b[j] then cur[j] = prev[j - 1] + 1 else cur[j] = math.max(prev[j], cur[j - 1]) end
    end
    prev = cur
  end
  return prev[#b]
end

-- apply an ops list: the " " and "-" lines must give a, the " " and "+" lines b
local function check_ops(a, b, ops)
  local ra, rb, kept = {}, {}, 0
  for _, o in ipairs(ops) do
    if o[1] ~= "+" then ra[#ra + 1] = o[2] end
    if o[1] ~= "-" then rb[#rb + 1] = o[2] end
    if o[1] == " " then kept = kept + 1 end
  end
  assert.are.same(a, ra)
  assert.are.same(b, rb)
  return kept
end

describe("dbtool.diff", function()
  describe("normalisation", function()
    it("drops \\restrict / \\unrestrict lines and collapses the blank lines they leave", function()
      local text = table.concat({
        "--", "-- PostgreSQL database dump", "--", "",
        "\\restrict Xyz123abc", "",
        "SET statement_timeout = 0;", "",
        "CREATE TABLE public.t (id integer);", "",
        "\\unrestrict Xyz123abc", "", "" }, "\n")
      assert.are.same({ "--", "-- PostgreSQL database dump", "--", "", "SET statement_timeout = 0;", "",
        "CREATE TABLE public.t (id integer);" }, diff.normalize_schema(text))
    end)

    it("keeps lines that only mention restrict", function()
      assert.is_false(diff.is_noise("-- \\restrict x"))
      assert.is_false(diff.is_noise("\\restricted"))
      assert.is_true(diff.is_noise("\\restrict"))
      assert.is_true(diff.is_noise("\\unrestrict abc"))
    end)

    it("drops pg_cron with --no-cron only", function()
      local text = "CREATE EXTENSION IF NOT EXISTS pg_cron WITH SCHEMA pg_catalog;\n"
        .. "COMMENT ON EXTENSION pg_cron IS 'Job scheduler';\n"
        .. "SELECT cron.schedule('x', '* * * * *', 'SELECT 1');\n"
        .. "CREATE TABLE public.cronjobs (id int);\n"
      assert.are.equal(4, #diff.normalize_schema(text))
      assert.are.same({ "CREATE TABLE public.cronjobs (id int);" },
        diff.normalize_schema(text, { no_cron = true }))
    end)

    it("parses --tables lists", function()
      assert.are.same({ "a", "public.b", '"C d"' }, diff.parse_tables(' a, public.b,,"C d" '))
      assert.are.same({}, diff.parse_tables(" , "))
      assert.is_nil(diff.parse_tables(nil))
    end)

    it("splits lines without inventing an empty last one", function()
      assert.are.same({ "a", "", "b" }, diff.lines("a\n\nb\n"))
      assert.are.same({ "a", "b" }, diff.lines("a\nb"))
      assert.are.same({}, diff.lines(""))
    end)
  end)

  describe("the diff", function()
    it("finds a shortest edit script", function()
      local a = { "a", "b", "c", "a", "b", "b", "a" }
      local b = { "c", "b", "a", "b", "a", "c" }
      local ops = diff.ops(a, b)
      assert.are.equal(lcs(a, b), check_ops(a, b, ops))
      assert.are.equal(4, lcs(a, b))
    end)

    it("is minimal and valid on random inputs (against an LCS reference)", function()
      math.randomseed(42)
      for _ = 1, 400 do
        local a, b = {}, {}
        local alphabet = math.random(1, 5)
        for i = 1, math.random(0, 25) do a[i] = tostring(math.random(1, alphabet)) end
        for i = 1, math.random(0, 25) do b[i] = tostring(math.random(1, alphabet)) end
        local ops = diff.ops(a, b)
        assert.are.equal(lcs(a, b), check_ops(a, b, ops))
      end
    end)

    it("stays valid when a region is too expensive (replaced as a whole)", function()
      local a, b = {}, {}
      for i = 1, 60 do a[i] = "a" .. i; b[i] = "b" .. i end
      a[30], b[30] = "same", "same"
      local ops = diff.ops(a, b, { max_cost = 5 })
      check_ops(a, b, ops)
    end)

    it("prints GNU-style unified hunks", function()
      local a, b = {}, {}
      for i = 1, 20 do a[i] = "line " .. i; b[i] = "line " .. i end
      b[2] = "changed 2"
      table.insert(b, 15, "inserted")
      table.remove(b, 20) -- drops "line 19"
      local text, differs = diff.unified(a, b, { label_a = "old", label_b = "new" })
      assert.is_true(differs)
      assert.are.equal(table.concat({
        "--- old", "+++ new",
        "@@ -1,5 +1,5 @@", " line 1", "-line 2", "+changed 2", " line 3", " line 4", " line 5",
        "@@ -12,9 +12,9 @@", " line 12", " line 13", " line 14", "+inserted",
        " line 15", " line 16", " line 17", " line 18", "-line 19", " line 20", "" }, "\n"), text)
    end)

    it("merges hunks whose context touches, and handles empty sides", function()
      local a = { "1", "2", "3", "4", "5", "6", "7", "8", "9" }
      local b = { "1", "x", "3", "4", "5", "6", "7", "y", "9" }
      local text = diff.unified(a, b, { label_a = "a", label_b = "b" })
      assert.matches("^%-%-%- a\n%+%+%+ b\n@@ %-1,9 %+1,9 @@\n", text)
      local _, n = text:gsub("@@", "")
      assert.are.equal(2, n) -- one hunk header (two @@ markers)
      assert.are.equal("--- a\n+++ b\n@@ -0,0 +1,2 @@\n+p\n+q\n", diff.unified({}, { "p", "q" }))
      assert.are.equal("--- a\n+++ b\n@@ -1 +0,0 @@\n-p\n", diff.unified({ "p" }, {}))
      assert.are.same({ "", false }, { diff.unified({ "same" }, { "same" }) })
    end)

    it("colours only when asked", function()
      local text = diff.unified({ "a" }, { "b" }, { color = true })
      assert.matches("\27%[31m%-a\27%[0m", text)
      assert.matches("\27%[32m%+b\27%[0m", text)
      assert.is_nil(diff.unified({ "a" }, { "b" }):find("\27", 1, true))
    end)
  end)

  describe("the report", function()
    local labels = { label_a = "backup+migrations", label_b = "sources" }

    it("is empty when nothing differs", function()
      local text, differs, s = diff.report({ a = { "x" }, b = { "x" } },
        { tables = { { name = "public.t", a = { "r1" }, b = { "r1" } } } }, labels)
      assert.are.equal("", text)
      assert.is_false(differs)
      assert.is_false(s.schema)
      assert.are.same({}, s.tables)
    end)

    it("adds the immutable data section per table", function()
      local text, differs, s = diff.report({ a = { "x" }, b = { "x" } }, { tables = {
        { name = "public.a", a = { "r1" }, b = { "r1" } },
        { name = "public.b", a = { "r1", "r2" }, b = { "r1", "r2'" } },
        { name = "public.c", b = { "r9" } },
      } }, labels)
      assert.is_true(differs)
      assert.is_false(s.schema)
      assert.are.same({ "public.b", "public.c" }, s.tables)
      assert.are.equal(table.concat({
        "(no schema differences)",
        "",
        "--- IMMUTABLE TABLE DATA ---",
        "",
        "=== public.a ===",
        "(no differences)",
        "",
        "=== public.b ===",
        "--- backup+migrations: public.b",
        "+++ sources: public.b",
        "@@ -1,2 +1,2 @@",
        " r1",
        "-r2",
        "+r2'",
        "",
        "=== public.c ===",
        "(only in sources)",
        "--- backup+migrations: public.c",
        "+++ sources: public.c",
        "@@ -0,0 +1 @@",
        "+r9",
        "" }, "\n"), text)
    end)

    it("puts the schema diff first and uses the --tables marker", function()
      local text, differs, s = diff.report({ a = { "x" }, b = { "y" } },
        { marker = diff.TABLES_MARKER, tables = { { name = "t", a = {}, b = {} } } }, labels)
      assert.is_true(differs)
      assert.is_true(s.schema)
      assert.matches("^%-%-%- backup%+migrations\n%+%+%+ sources\n@@ %-1 %+1 @@\n%-x\n%+y\n\n"
        .. "%-%-%- TABLE DATA %-%-%-\n\n=== t ===\n%(no differences%)\n$", text)
    end)
  end)

  describe("merging the two sides' data", function()
    local function side(tables, found)
      local t = { tables = {}, rows = {}, found = found or {} }
      for name, rows in pairs(tables) do
        t.tables[name] = { pattern = '"p"."' .. name .. '"' }
        t.rows[name] = rows
      end
      return t
    end

    it("takes the union of the immutable tables, sorted by name", function()
      local a = side { ["s.b"] = { "1" }, ["s.a"] = { "2" } }
      local b = side { ["s.c"] = { "3" }, ["s.a"] = { "2" } }
      assert.are.same({ { name = "s.a", a = { "2" }, b = { "2" } }, { name = "s.b", a = { "1" } },
        { name = "s.c", b = { "3" } } }, diff.merge_data(a, b, nil))
      assert.are.same({ '"p"."s.a"', '"p"."s.b"', '"p"."s.c"' }, diff.patterns(a, b))
      assert.are.same({}, diff.patterns(side {}))
    end)

    it("keeps the --tables order and exits 5 for a name found on neither side", function()
      local a = side({ ["x.z"] = {}, ["x.a"] = {} }, { z = "x.z", a = "x.a" })
      local b = side({ ["x.a"] = {} }, { a = "x.a" })
      local out = diff.merge_data(a, b, { "z", "a" })
      assert.are.same({ "x.z", "x.a" }, { out[1].name, out[2].name })
      local ok, e = pcall(diff.merge_data, a, b, { "a", "nope", "gone" })
      assert.is_false(ok)
      assert.are.equal(5, e.exit)
      assert.are.equal("table does not exist on either side: nope, gone", e.msg)
    end)
  end)

  describe("row rendering", function()
    it("orders by the primary key, identifiers as given (already quoted)", function()
      local sql = diff.rows_sql('public."we\'ird"', { { "id", "N" }, { '"Label"', "S" }, { "ok", "B" } },
        { "id" })
      assert.are.equal("SELECT 'INSERT INTO public.\"we''ird\" (id, \"Label\", ok) VALUES (' || "
        .. "COALESCE(id::text, 'NULL') || ', ' || pg_catalog.quote_nullable(\"Label\") || ', ' || "
        .. "COALESCE(ok::text, 'NULL') || ');' AS line FROM ONLY public.\"we'ird\" ORDER BY id", sql)
    end)

    it("orders by the rendered line without a primary key", function()
      local sql = diff.rows_sql("t", { { "a", "S" } }, {})
      assert.matches('^SELECT line FROM %(SELECT .* FROM ONLY t%) AS r ORDER BY line COLLATE "C"$', sql)
      assert.matches("DEFAULT VALUES", diff.rows_sql("t", {}, {}))
    end)

    it("turns a table into an exact pg_dump pattern", function()
      assert.are.equal('"public"."a*b"', diff.exact_pattern("public", "a*b"))
      assert.are.equal('"My ""S"""."T"', diff.exact_pattern('My "S"', "T"))
    end)
  end)
end)
