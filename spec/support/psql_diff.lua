-- Differential test of dbtool.sqlrun against psql itself. Random scripts are built from
-- tricky pieces (quotes of every kind, dollar quotes, comments, numbers with trailing junk,
-- parameters, variables, \if branches, BEGIN ATOMIC bodies, flips of
-- standard_conforming_strings, empty lines) and the meta-commands sqlrun runs (\g \gx
-- \gset \gexec \crosstabview \gdesc \r \p \w \q, \copy … from stdin / to stdout, COPY, \c, \o,
-- \qecho, \timing, \pset, \x, \echo :var, \ir of a file with a byte-order mark, AUTOCOMMIT
-- off, ON_ERROR_ROLLBACK on, transactions); each runs through `psql -X -q -A -F '<tab>' -f` and
-- through sqlrun (both going on after errors, rows printed) on a throw-away cluster that
-- logs every statement it receives (csvlog). What the server received must be the same, byte
-- for byte (PSQL_DIFF_LOOSE=1: up to whitespace and lone ';'), and so must the standard
-- output (`Time:` lines of \timing aside). A difference prints the script (as a Lua
-- string), both statement lists and both outputs; the exit status is 1.
--
-- Not covered, on purpose: \watch (psql repeats the query forever; db-tool does not run it),
-- and the data lines of a COPY … FROM stdin that failed (psql runs them as SQL, db-tool skips
-- them; the data pieces here are `-- …` lines, which send nothing as SQL either way).
--
--   build/db-tool spec/support/psql_diff.lua [SCRIPTS [SEED]]     (not as root; default 300)
--   build/db-tool spec/support/psql_diff.lua FILE.sql...           (replay given scripts)
local top = arg[0]:match("^(.*)/spec/support/[^/]*$") or "."
package.path = top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local cluster = require "dbtool.cluster"
local proc = require "dbtool.core.proc"
local pg = require "dbtool.core.pg"
local sqlrun = require "dbtool.sqlrun"

-- (given script files instead of a count: those scripts, to replay a difference)
local FILES = {}
for _, a in ipairs(arg) do
  if a:match("%.sql$") then FILES[#FILES + 1] = a end
end
local N = #FILES > 0 and #FILES or tonumber(arg[1]) or 300
local SEED = tonumber(arg[2]) or os.time()
math.randomseed(SEED)

local PIECES = {
  "SELECT ", "1", " ", "\n", ";", ";", ";\n", "(", ")", "((", "))", "'", "''", "'a;b'", "E'", "\\'",
  "\\\\", "E'x\\'y;'", "'a\\'", "E'\\\\'", "\"", "\"q;\"\"x\"", "$$", "$$;$$", "$t$", "$t$ ; $$ $t$",
  "$1", "$1a", "$a", "$x", "$e'", "a$b", "$_$", "$_$x$_$", "--", "-- c;\n", "/*", "*/",
  "/* ; /* n */ ; */", ":a", ":'a'", ":\"a\"", ":{?a}", ":{?zz}", ":b", ":zz", "::int", "::", ":=", ":",
  "a:b", ":a:b", "[1:2]", "\\;", "\\:", "U&'", "U&\"", "B'", "X'", "N'", "e'", "CREATE ", "OR ",
  "REPLACE ", "FUNCTION ", "PROCEDURE ", "f() ", "BEGIN ", "ATOMIC ", "END", "CASE ", "WHEN ", "THEN ",
  "begin", "end", "\r\n", "\r", "\t", "é", "漢", "-", "/", "*", "+", "'\n'", "x", "0x1F", "1e5", "1F",
  "0.5e", "1e", "e-", "1.", "E+", "e5", "..", "\\.", "COPY ", "FROM ", "stdin",
  "\n\\set a 2\n", "\n\\set b 'x''y;'\n", "\n\\echo :a :'b'\n", "\n\\unset a\n", "\n\\warn w :'b'\n",
  "\n\\set c 'SELECT 7; SELECT 8'\n", ":c", "\n\\set d ':a'\n", ":d", "\n\\set e '$$'\n", ":e",
  "\n\\if :{?a}\n", "\n\\if false\n", "\n\\else\n", "\n\\endif\n", "\n\\echo x \\\\ ", "\\echo y\n",
  "\nSET standard_conforming_strings = off;\n", "\nSET standard_conforming_strings = on;\n",
  "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; " ..
    "END;\n",
  "\n\n", "\n\n\n", "\n  \n",
}

-- the meta-commands sqlrun runs, and statements that exercise them
local META_PIECES = {
  "\n\\g\n", " \\g\n", "\n\\gx\n", "\n\\g (format=csv)\n", "\n\\gset\n", " \\gset p_\n", "\n\\gexec\n",
  "\n\\r\n", " \\r\n", "\n\\p\n", " \\p\n", "\n\\reset\n", "\n\\print\n",
  "SELECT 7 AS g \\gset\n", "SELECT 8 AS g, NULL AS h \\gset p_\n", ":g", ":p_g",
  "\n\\echo :g :{?p_h} :'p_g'\n",
  "SELECT 'SELECT 42 AS fortytwo', NULL, 'SELECT 1/0' \\gexec\n", "SELECT 'SELECT ''gx''' AS q \\gexec\n",
  "SELECT 3 AS a, 'x' AS b\n", "SELECT NULL::int AS n, true AS t, 1.5::float8 AS f\n",
  "\n\\copy t from stdin\n-- data\n\\.\n", "\n\\copy t (a) FROM STDIN;\n-- data 2\n\\.\n",
  "\n\\copy (SELECT 1, 'a\tb') to stdout\n", "\n\\copy t to stdout with (format csv)\n",
  "\nCOPY t FROM stdin;\n-- data 3\n\\.\n", "\nCOPY (SELECT 2) TO STDOUT;\n",
  "\n\\o /dev/null\n", "\n\\o\n", "\n\\qecho q :a\n", "\n\\timing on\n", "\n\\timing off\n",
  "\n\\pset format csv\n", "\n\\pset format unaligned\n", "\n\\pset null (null)\n", "\n\\pset footer off\n",
  "\n\\pset tuples_only\n", "\n\\x\n", "\n\\pset fieldsep ,\n",
  "\n\\set AUTOCOMMIT off\n", "\n\\set AUTOCOMMIT on\n", "\n\\set ON_ERROR_ROLLBACK on\n",
  "\n\\set ON_ERROR_ROLLBACK interactive\n", "\n\\unset AUTOCOMMIT\n",
  "\nBEGIN;\n", "\nCOMMIT;\n", "\nROLLBACK;\n", "\nSAVEPOINT s;\n", "\nRELEASE s;\n", "\nSELECT 1/0;\n",
  "\nINSERT INTO t VALUES ('i');\n", "\nVACUUM t;\n",
  "\n\\c\n", "\n\\c -reuse-previous=on\n", "\n\\ir inc.sql\n", "\n\\q\n", "\n\\if false\n\\q\n\\endif\n",
  "\n\\w /dev/null\n", "SELECT 1 AS v, 2 AS h, 3 AS d \\crosstabview\n", " \\crosstabview\n",
  " \\crosstabview 2 1\n",
  "SELECT 1 AS a, 'x'::varchar(2) AS b \\gdesc\n", " \\gdesc\n",
}

local function script()
  local t = {}
  for k = 1, math.random(1, 40) do
    local set = math.random(3) == 1 and META_PIECES or PIECES
    t[k] = set[math.random(#set)]
  end
  t[#t + 1] = ({ "", "\n", ";\n" })[math.random(3)]
  return table.concat(t)
end

-- Records of a CSV text (RFC 4180: "" in quoted fields).
local function csv_records(s)
  local recs, rec, i, n = {}, {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' then
      local buf, j = {}, i + 1
      while true do
        local q = assert(s:find('"', j, true), "unterminated CSV field")
        buf[#buf + 1] = s:sub(j, q - 1)
        if s:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      rec[#rec + 1] = table.concat(buf)
    else
      local e = s:find("[,\n]", i) or n + 1
      rec[#rec + 1] = s:sub(i, e - 1)
      i = e
    end
    c = s:sub(i, i)
    if c == "," then
      i = i + 1
      if i > n or s:sub(i, i) == "\n" then rec[#rec + 1] = "" end
    end
    if s:sub(i, i) == "\n" or i > n then
      recs[#recs + 1] = rec
      rec = {}
      i = i + 1
    end
  end
  return recs
end

-- Statements the server got, by application name: {"S", text} logged, {"E", text} failed.
local function statements(logdir)
  local by = {}
  for name in io.popen("ls " .. testutil.shq(logdir)):lines() do
    if name:match("%.csv$") then
      for _, r in ipairs(csv_records(testutil.read(logdir .. "/" .. name))) do
        local app, sev, msg, query = r[23], r[12], r[14], r[20]
        local list = app and by[app]
        if not list and app then
          list = {}
          by[app] = list
        end
        if sev == "LOG" and msg and msg:sub(1, 11) == "statement: " then
          list[#list + 1] = "S " .. msg:sub(12)
        elseif sev == "ERROR" and query and query ~= "" then
          list[#list + 1] = "E " .. query
        end
      end
    end
  end
  return by
end

local LOOSE = os.getenv("PSQL_DIFF_LOOSE")

-- psql: the data lines of a COPY … FROM stdin that failed join the query buffer (they are
-- run as SQL); db-tool skips them. They are `-- data` lines here: left out on both sides.
local function normalized(list)
  local out = {}
  for _, s in ipairs(list or {}) do
    s = s:gsub("\n%-%- data[^\n]*", ""):gsub("^(. )%-%- data[^\n]*\n?", "%1")
    if LOOSE then
      local t = s:gsub("%s+", " "):gsub(" $", "")
      if t:sub(3) ~= ";" then out[#out + 1] = t end
    else
      out[#out + 1] = s
    end
  end
  return out
end

-- standard output without \timing's lines
local function output(s)
  return (s:gsub("Time: [%d.]+ ms[^\n]*\n", ""))
end

local dir = testutil.tmpdir("psql-diff")
local h = cluster.start { dir = dir .. "/pg", port = 5432, database = "postgres", preload = "",
  logging = true, log_dir = dir .. "/log", settings = { log_destination = "csvlog", log_statement = "all",
    log_min_error_statement = "error", log_min_messages = "error" } }
local psql = testutil.pg_bindir() .. "/psql"
local quiet = setmetatable({}, { __index = function() return function() end end })
io.stdout:write(string.format("psql_diff: %d scripts, seed %d\n", N, SEED))

local control <close> = pg.connect(h.url)
-- h.url with another database and an application name
local function db_url(db, app)
  local u = h.url:gsub("^(postgresql://[^/]*/)[^?]*", "%1" .. db)
  return u .. (u:find("?", 1, true) and "&" or "?") .. "application_name=" .. app
end

-- every database gets a table t (for \copy and COPY), and a script may include inc.sql
do
  local setup <close> = pg.connect(db_url("template1", "setup"))
  setup:exec("CREATE TABLE t (a text)")
end
testutil.write(dir .. "/inc.sql", "\239\187\191SELECT 'included' AS inc;\n")

local cases = {}
for k = 1, N do
  local text = FILES[k] and testutil.read(FILES[k]) or script()
  local path = string.format("%s/s%d.sql", dir, k)
  testutil.write(path, text)
  local tag = string.format("d%d_%d", SEED, k)
  -- each run on a database of its own (a script may create things the next one creates too)
  control:exec("CREATE DATABASE p" .. tag)
  control:exec("CREATE DATABASE o" .. tag)
  local p = assert(proc.spawn { argv = { psql, "-X", "-q", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=0",
    "-v", "a=1", "-v", "b=x'y", "-d", db_url("p" .. tag, "p" .. tag), "-f", path },
    stdin = "null", stdout = { path = path .. ".out", mode = "w" }, stderr = "null", cwd = dir })
  p:wait()
  local conn <close> = pg.connect(db_url("o" .. tag, "o" .. tag))
  local buf = {}
  local ok, err = pcall(sqlrun.file, conn, path, { vars = { a = "1", b = "x'y" }, on_error_stop = false,
    output = function(s) buf[#buf + 1] = s end, warn = function() end, log = quiet, print_results = true,
    connect = true, cwd = dir })
  if not ok then
    io.stdout:write(string.format("FAILED %s: %s\n", path,
      type(err) == "table" and tostring(err.msg) or tostring(err)))
  end
  cases[k] = { path = path, text = text, tag = tag, ok = ok,
    out_psql = output(testutil.read(path .. ".out")), out_ours = output(table.concat(buf)) }
end
h:stop("fast")    -- the collector writes everything out

local by = statements(dir .. "/log")
local diffs, seen = 0, 0
for _, c in ipairs(cases) do
  local a, b = normalized(by["p" .. c.tag]), normalized(by["o" .. c.tag])
  seen = seen + #a
  if table.concat(a, "\0") ~= table.concat(b, "\0") or not c.ok or c.out_psql ~= c.out_ours then
    diffs = diffs + 1
    io.stdout:write(string.format("DIFF %s %q\n  psql: %s\n  ours: %s\n", c.path, c.text,
      table.concat(a, " | "), table.concat(b, " | ")))
    for i = 1, math.max(#a, #b) do
      if a[i] ~= b[i] then
        io.stdout:write(string.format("  statement %d differs:\n    psql %q\n    ours %q\n", i, a[i], b[i]))
        break
      end
    end
    if c.out_psql ~= c.out_ours then
      io.stdout:write(string.format("  psql output: %q\n  our output:  %q\n", c.out_psql, c.out_ours))
    end
  end
end
io.stdout:write(string.format("psql_diff: seed %d: %d scripts, %d statements from psql, %d difference(s)\n",
  SEED, N, seen, diffs))
os.exit(diffs == 0 and 0 or 1, true)
