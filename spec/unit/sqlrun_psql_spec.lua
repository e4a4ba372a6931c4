-- psql's rules kept by dbtool.sqlrun, without a database: result printing and \pset
-- (dbtool.sqlrun.print), the \copy parser (dbtool.sqlrun.copy), AUTOCOMMIT's list of
-- statements that get no BEGIN and the specially treated variables (dbtool.sqlrun.psql).
-- The expected texts are what psql 15 prints/sends (checked against psql itself in
-- spec/integration/sqlrun_psql_spec.lua and spec/support/psql_diff.lua).
-- luacheck: no max line length
local printer = require "dbtool.sqlrun.print"
local copy = require "dbtool.sqlrun.copy"
local psql = require "dbtool.sqlrun.psql"

local function res(fields, rows)
  local r = { fields = fields, n = #rows }
  for i, row in ipairs(rows) do r[i] = row end
  return r
end

describe("sqlrun.print", function()
  it("prints unaligned rows with a footer, NULL as the null string, as psql -A -F '\\t'", function()
    local p = printer.defaults()
    assert.equal("a\tb\n1\tx\n\t\n(2 rows)\n", printer.format(p, res({ "a", "b" }, { { "1", "x" }, {} })))
    assert.equal("a\n(0 rows)\n", printer.format(p, res({ "a" }, {})))
    assert.equal("\n(1 row)\n", printer.format(p, res({}, { {} })))      -- SELECT;
    assert.is_true(printer.pset(p, "null", "(null)"))
    assert.is_true(printer.pset(p, "fieldsep", "|"))
    assert.equal("a|b\n1|(null)\n(1 row)\n", printer.format(p, res({ "a", "b" }, { { "1" } })))
  end)

  it("honours tuples_only, footer, title, recordsep and the zero separators", function()
    local p = printer.defaults()
    printer.pset(p, "tuples_only")
    assert.equal("1\n", printer.format(p, res({ "a" }, { { "1" } })))
    printer.pset(p, "tuples_only", "off")
    printer.pset(p, "footer", "off")
    printer.pset(p, "title", "T")
    assert.equal("T\na\n1\n", printer.format(p, res({ "a" }, { { "1" } })))
    printer.pset(p, "title")
    printer.pset(p, "recordsep", ";")
    assert.equal("a;1;2\n", printer.format(p, res({ "a" }, { { "1" }, { "2" } })))
    printer.pset(p, "recordsep_zero")
    printer.pset(p, "fieldsep_zero")
    assert.equal("a\0b\0" .. "1\0" .. "2\0", printer.format(p, res({ "a", "b" }, { { "1", "2" } })))
  end)

  it("prints expanded records (\\x): field sep value, records apart, no default footer", function()
    local p = printer.defaults()
    printer.pset(p, "expanded")
    assert.equal("a\t1\nb\tx\n\na\t2\nb\t\n", printer.format(p, res({ "a", "b" }, { { "1", "x" }, { "2" } })))
    assert.equal("", printer.format(p, res({ "a" }, {})))     -- (psql 15: nothing at all)
  end)

  it("prints csv: quoted when needed, header unless tuples_only, its own separator", function()
    local p = printer.defaults()
    assert.is_true(printer.pset(p, "format", "csv"))
    assert.equal('a,"b,c"\n"x""y","l1\nl2"\n"\\.",\n',
      printer.format(p, res({ "a", "b,c" }, { { 'x"y', "l1\nl2" }, { "\\." } })))
    printer.pset(p, "csv_fieldsep", ";")
    printer.pset(p, "tuples_only", "on")
    assert.equal("1;2\n", printer.format(p, res({ "a", "b" }, { { "1", "2" } })))
    printer.pset(p, "expanded", "on")
    assert.equal("a;1\nb;2\n", printer.format(p, res({ "a", "b" }, { { "1", "2" } })))
  end)

  it("validates \\pset values with psql's messages", function()
    local p = printer.defaults()
    assert.is_true(printer.pset(p, "format", "c"))
    assert.equal("csv", p.format)
    assert.is_true(printer.pset(p, "format", "latex-l"))
    assert.equal("latex-longtable", p.format)
    local ok, err = printer.pset(p, "format", "a")
    assert.is_nil(ok)
    assert.equal('\\pset: ambiguous abbreviation "a" matches both "aligned" and "asciidoc"', err)
    assert.matches("^\\pset: allowed formats are", select(2, printer.pset(p, "format", "nope")))
    assert.equal("\\pset: csv_fieldsep must be a single one-byte character", select(2, printer.pset(p, "csv_fieldsep", ";;")))
    assert.equal('unrecognized value "maybe" for "tuples_only": Boolean expected',
      select(2, printer.pset(p, "tuples_only", "maybe")))
    assert.equal("\\pset: unknown option: colour", select(2, printer.pset(p, "colour", "on")))
    -- a format psql has and db-tool does not print is accepted, then refused when printing
    assert.is_true(printer.pset(p, "format", "aligned"))
    local out, ferr = printer.format(p, res({ "a" }, { { "1" } }))
    assert.is_nil(out)
    assert.matches("unaligned or csv", ferr)
  end)

  it("lists the settings as a bare \\pset does", function()
    local list = printer.list(printer.defaults())
    assert.matches("\nfieldsep                 '\t'\n", list, 1, true)
    assert.matches("\nformat                   unaligned\n", list, 1, true)
    assert.matches("\nrecordsep                '\\n'\n", list, 1, true)
    assert.matches("^border                   1\n", list)
  end)

  it("pivots a result as \\crosstabview: headers in order of appearance or by the sort column", function()
    local p = printer.defaults()
    local r = res({ "v", "h", "d" }, { { "r1", "c1", "x" }, { "r2", "c2", "y" }, { "r1", "c2", "z" }, { nil, "c1", "n" } })
    local ct = assert(printer.crosstab(p, r, {}))
    assert.equal("v\tc1\tc2\nr1\tx\tz\nr2\t\ty\n\tn\t\n(3 rows)\n", printer.format(p, ct))
    r = res({ "v", "h", "d", "s" }, { { "r1", "c1", "x", "2" }, { "r2", "c2", "y", "1" }, { "r3", "c3", nil } })
    printer.pset(p, "null", "N")
    ct = assert(printer.crosstab(p, r, { "v", "h", "d", "s" }))
    assert.equal("v\tc3\tc2\tc1\nr1\t\t\tx\nr2\t\ty\t\nr3\tN\t\t\n(3 rows)\n", printer.format(p, ct))
    -- names: unquoted lowercased, "quoted" as written; numbers from 1
    r = res({ "V", "h", "d" }, { { "1", "2", "3" } })
    assert.equal('\\crosstabview: column name not found: "v"', select(2, printer.crosstab(p, r, { "V" })))
    assert.is_table(printer.crosstab(p, r, { '"V"', "2", "3" }))
    assert.equal("\\crosstabview: column number 7 is out of range 1..3", select(2, printer.crosstab(p, r, { "7" })))
    assert.equal("\\crosstabview: vertical and horizontal headers must be different columns",
      select(2, printer.crosstab(p, r, { "1", "1" })))
    assert.equal("\\crosstabview: query must return at least three columns",
      select(2, printer.crosstab(p, res({ "a", "b" }, {}), {})))
    assert.equal("\\crosstabview: data column must be specified when query returns more than three columns",
      select(2, printer.crosstab(p, res({ "a", "b", "c", "d" }, {}), {})))
    assert.equal('\\crosstabview: query result contains multiple data values for row "a", column "b"',
      select(2, printer.crosstab(p, res({ "v", "h", "d" }, { { "a", "b", "1" }, { "a", "b", "2" } }), {})))
  end)

  it("prints \\timing's line as psql", function()
    assert.equal("Time: 0.500 ms\n", printer.timing(0.5))
    assert.equal("Time: 61500.000 ms (01:01.500)\n", printer.timing(61500))
    assert.equal("Time: 3661000.000 ms (01:01:01.000)\n", printer.timing(3661000))
    assert.equal("Time: 90000000.000 ms (1 d 01:00:00.000)\n", printer.timing(90000000))
  end)
end)

describe("sqlrun.copy", function()
  local function q(args, std)
    local o, err = copy.parse(args, std ~= false)
    return o and o.query or err, o
  end

  it("builds psql's COPY statement: tokens re-spaced before FROM/TO, the rest verbatim", function()
    assert.equal("COPY  cp FROM STDIN ", q("cp from stdin"))
    assert.equal("COPY  cp ( a, b ) FROM STDIN ;", q("cp(a, b) from stdin;"))
    assert.equal('COPY  public.cp ( a, "b" ) FROM STDIN WITH (FORMAT csv)', q('public.cp (a,"b") FROM STDIN WITH (FORMAT csv)'))
    assert.equal("COPY  ( select * from cp order by a ) TO STDOUT ", q("(select * from cp order by a) to stdout"))
    assert.equal("COPY  cp TO STDOUT csv header", q("cp to stdout csv header"))
    assert.equal("COPY binary cp TO STDOUT ", q("binary cp to /tmp/x"))
    assert.equal("COPY  cp TO STDOUT ;  ", q("cp to '/tmp/q out.txt' ;  "))
    assert.equal("COPY  cp TO STDOUT   ", q("cp to stdout   "))
    assert.equal("COPY  ( select 'a\\\\b' ) TO STDOUT ", q("(select 'a\\\\b') to stdout"))
  end)

  it("tells the file, a program, stdin/stdout and pstdin/pstdout apart", function()
    local _, o = q("cp to '/tmp/q out.txt' ;")
    assert.same({ from = false, file = "/tmp/q out.txt" }, { from = o.from, file = o.file })
    _, o = q("cp from program 'printf \"9\\tq\\n\"'")
    assert.is_true(o.program)
    assert.equal('printf "9\\tq\\n"', o.file)
    _, o = q("cp from pstdin")
    assert.is_true(o.psql_inout)
    assert.is_nil(o.file)
    _, o = q("cp to STDOUT")
    assert.is_nil(o.file)
    assert.is_nil(o.psql_inout)
  end)

  it("fails with psql's messages", function()
    assert.equal("\\copy: arguments required", q(""))
    assert.equal('\\copy: parse error at "frm"', q("cp frm stdin"))
    assert.equal('\\copy: parse error at "$$"', q("(select 1 as \"a;b\", $$x)$$) to stdout"))
    assert.equal("\\copy: parse error at end of line", q("cp from"))
    assert.equal('\\copy: parse error at "\'cmd"', q("cp to program 'cmd"))
  end)
end)

describe("sqlrun.psql", function()
  it("knows which statements get no BEGIN with AUTOCOMMIT off", function()
    for _, sql in ipairs { "BEGIN", "  /* c */ commit", "-- x\nROLLBACK", "end", "abort", "START TRANSACTION",
      "PREPARE TRANSACTION 'x'", "VACUUM t", "CLUSTER", "CREATE DATABASE d", "create unique index concurrently i on t(a)",
      "CREATE INDEX CONCURRENTLY i ON t (a)", "DROP DATABASE d", "DROP TABLESPACE s", "ALTER SYSTEM SET x = 1",
      "REINDEX TABLE CONCURRENTLY t", "DROP INDEX CONCURRENTLY i", "DISCARD ALL", "/* /* nested */ */ VACUUM" } do
      assert.is_true(psql.command_no_begin(sql), sql)
    end
    for _, sql in ipairs { "SELECT 1", "PREPARE p AS SELECT 1", "CLUSTER t", "CREATE TABLE t ()", "CREATE INDEX i ON t(a)",
      "DROP TABLE t", "DISCARD PLANS", "beginx", "savepoint s", "", "ALTER TABLE t ADD c int" } do
      assert.is_false(psql.command_no_begin(sql), sql)
    end
  end)

  it("takes values of the specially treated variables as psql", function()
    assert.equal("off", psql.set_value("AUTOCOMMIT", nil))       -- \unset AUTOCOMMIT
    assert.equal("on", psql.set_value("ON_ERROR_STOP", ""))       -- \set ON_ERROR_STOP
    local v, _, err = psql.set_value("AUTOCOMMIT", "sometimes")
    assert.is_nil(v)
    assert.equal('unrecognized value "sometimes" for "AUTOCOMMIT": Boolean expected', err)
    assert.equal("interactive", psql.set_value("ON_ERROR_ROLLBACK", "interactive"))
    assert.equal('unrecognized value "x" for "ON_ERROR_ROLLBACK"\nAvailable values are: on, off, interactive.',
      select(3, psql.set_value("ON_ERROR_ROLLBACK", "x")))
    assert.equal("anything", psql.set_value("MY_VAR", "anything"))
    assert.is_nil(psql.set_value("MY_VAR", nil))
    -- in a script, interactive means off
    assert.is_true(psql.error_rollback("on"))
    assert.is_false(psql.error_rollback("interactive"))
    assert.is_false(psql.error_rollback("off"))
    assert.is_true(psql.HOOKED.AUTOCOMMIT)
    assert.is_nil(psql.HOOKED.DBNAME)
  end)

  it("reads \\connect's first argument as a connection string as psql does", function()
    assert.is_true(psql.is_connection_string("postgresql://h/db"))
    assert.is_true(psql.is_connection_string("postgres://h/db"))
    assert.is_true(psql.is_connection_string("dbname=x host=y"))
    assert.is_false(psql.is_connection_string("mydb"))
  end)
end)
