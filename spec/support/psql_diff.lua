-- Differential test of dbtool.sqlrun against psql itself. Random scripts are built from
-- tricky pieces (quotes of every kind, dollar quotes, comments, numbers with trailing junk,
-- parameters, variables, meta-commands, \if branches, BEGIN ATOMIC bodies, flips of
-- standard_conforming_strings); each runs through `psql -X -f` and through sqlrun (both
-- going on after errors) on a throw-away cluster that logs every statement it receives
-- (csvlog). The statements must be the same, up to whitespace: psql joins the line after a
-- meta-command line to the previous one and drops blank lines and the final newline, and
-- it sends a lone ";". A difference prints the script (as a Lua string) and both statement
-- lists; the exit status is 1.
--
--   build/db-tool spec/support/psql_diff.lua [SCRIPTS [SEED]]     (not as root; default 300)
local top = arg[0]:match("^(.*)/spec/support/[^/]*$") or "."
package.path = top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local cluster = require "dbtool.cluster"
local proc = require "dbtool.core.proc"
local pg = require "dbtool.core.pg"
local sqlrun = require "dbtool.sqlrun"

local N = tonumber(arg[1]) or 300
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
}

local function script()
  local t = {}
  for k = 1, math.random(1, 40) do t[k] = PIECES[math.random(#PIECES)] end
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

local function normalized(list)
  local out = {}
  for _, s in ipairs(list or {}) do
    local t = s:gsub("%s+", " "):gsub(" $", "")
    if t:sub(3) ~= ";" then out[#out + 1] = t end
  end
  return out
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

local cases = {}
for k = 1, N do
  local text = script()
  local path = string.format("%s/s%d.sql", dir, k)
  testutil.write(path, text)
  local tag = string.format("d%d_%d", SEED, k)
  -- each run on a database of its own (a script may create things the next one creates too)
  control:exec("CREATE DATABASE p" .. tag)
  control:exec("CREATE DATABASE o" .. tag)
  local p = assert(proc.spawn { argv = { psql, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-v", "a=1",
    "-v", "b=x'y", "-d", db_url("p" .. tag, "p" .. tag), "-f", path },
    stdin = "null", stdout = "null", stderr = "null" })
  p:wait()
  local conn <close> = pg.connect(db_url("o" .. tag, "o" .. tag))
  local ok, err = pcall(sqlrun.file, conn, path, { vars = { a = "1", b = "x'y" }, on_error_stop = false,
    output = function() end, warn = function() end, log = quiet })
  if not ok then
    io.stdout:write(string.format("FAILED %s: %s\n", path,
      type(err) == "table" and tostring(err.msg) or tostring(err)))
  end
  cases[k] = { path = path, text = text, tag = tag, ok = ok }
end
h:stop("fast")    -- the collector writes everything out

local by = statements(dir .. "/log")
local diffs, seen = 0, 0
for _, c in ipairs(cases) do
  local a, b = normalized(by["p" .. c.tag]), normalized(by["o" .. c.tag])
  seen = seen + #a
  if table.concat(a, "\0") ~= table.concat(b, "\0") or not c.ok then
    diffs = diffs + 1
    io.stdout:write(string.format("DIFF %s %q\n  psql: %s\n  ours: %s\n", c.path, c.text,
      table.concat(a, " | "), table.concat(b, " | ")))
  end
end
io.stdout:write(string.format("psql_diff: seed %d: %d scripts, %d statements from psql, %d difference(s)\n",
  SEED, N, seen, diffs))
os.exit(diffs == 0 and 0 or 1, true)
