-- Run psql scripts over one libpq connection, as `psql -X -q -v ON_ERROR_STOP=1 -f FILE`
-- would: statements go one at a time through the simple query protocol, built as psql
-- builds its query buffer (line by line: empty lines outside quotes dropped, a
-- meta-command's own line left out), and the meta-commands scripts use are interpreted here:
--   files      \i \ir \include \include_relative \cd \q \quit
--   variables  \set \unset \getenv, :name :'name' :"name" :{?name} (and psql's DBNAME USER
--              HOST PORT ENCODING SERVER_VERSION_NAME SERVER_VERSION_NUM; after each
--              statement ERROR SQLSTATE ROW_COUNT LAST_ERROR_MESSAGE LAST_ERROR_SQLSTATE);
--              AUTOCOMMIT, ON_ERROR_STOP and ON_ERROR_ROLLBACK act as in psql
--   branches   \if \elif \else \endif
--   buffer     \g [(opts)] [FILE|'|cmd'] \gx \gset [prefix] \gexec \crosstabview \gdesc \r
--              \reset \p \print \w
--   output     \echo \qecho \warn \o \out \timing \pset \a \t \x \f \C \H \T \conninfo
--   data       \copy … from stdin|pstdin|FILE|program 'cmd', \copy … to stdout|pstdout|FILE|
--              program 'cmd'; COPY … FROM STDIN data inline, streamed
--   connection \c \connect (psql's rules for reusing the previous connection's parameters)
--              \encoding, \restrict \unrestrict, \! (a shell command)
-- Other meta-commands are errors at their line; a query buffer they would send (\watch: once
-- here) is consumed as psql consumes it, and never glued onto the next statement.
-- Input is read in chunks, so memory does not depend on the size of the file (only on its
-- largest statement). The lexing is done by dbtool.core.sqlscan (C).
--
--   sqlrun.file(conn, path, opts)  → summary
--   sqlrun.string(conn, text, opts) → summary
--
-- opts: vars (table name → value), single_transaction (bool), on_error_stop (default true;
-- a script's own `\set ON_ERROR_STOP` wins), output (file handle or function(s): stdout of
-- the script: \echo, \p, \timing, and the query output unless \o redirects it: \qecho, COPY
-- TO STDOUT data, printed results), warn (stderr: \warn), print_results (bool: print the
-- rows of queries to the output, as psql -A -F '\t'; \o FILE and \g FILE print regardless),
-- on_result (function(res, info); values as text), on_statement (function(text, where) →
-- the text to send instead, or nil to send it as is), log (a dbtool.log logger), cwd (base
-- of relative paths and \i), name (display name of a string script), connect (allow \c:
-- the runner then opens connections of its own and closes them at the end; default false:
-- \c is an error, the caller owns the connection).
-- summary: {statements =, errors =, files =, time =, rolled_back = bool, buffer_peak = the
-- largest input buffer held, in bytes (about 2 × CHUNK, or the longest statement line),
-- open_transaction = bool (the script left the connection inside a transaction block),
-- quit = bool (\q)}.
-- SQL and meta-command errors raise dbtool.errors values (exit 1) with where =
-- "file:line:col", excerpt (statement lines with a caret, the include chain), sqlstate,
-- detail, hint, context, includes = {{file =, line =, command =}, ...}. Bad input files
-- (a custom-format dump, includes nested too deep, a non-regular include over
-- MAX_SPECIAL bytes) raise exit 3.
local sqlscan = require "dbtool.core.sqlscan"
local core = require "dbtool.core"
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local printer = require "dbtool.sqlrun.print"
local psql = require "dbtool.sqlrun.psql"

local M = {}

M.CHUNK = 256 * 1024
M.MAX_DEPTH = 64
--- Bytes read from an included file that is not a regular file (a FIFO, /dev/zero …).
M.MAX_SPECIAL = 16 * 1024 * 1024
--- Characters of a long line shown around an error position.
M.EXCERPT = 100
--- Bytes of a server message (and its detail, hint, context) shown.
M.MAX_MESSAGE = 2000

local newlines = sqlscan.newlines
local copy_scan = sqlscan.copy_scan
local concat = table.concat

--- psql's ParseVariableBool: true/false/yes/no (and unique prefixes), on/off, 1/0.
M.parse_bool = printer.parse_bool

--- Is `name` a psql variable name (letters, digits, _, non-ASCII bytes)?
local function valid_var_name(name)
  return name ~= "" and not name:find("[^%w_\128-\255]")
end
M.valid_var_name = valid_var_name

-- ---------------------------------------------------------------- text for display

-- A long line cut to a window of M.EXCERPT characters around character col: the text
-- shown and the column of col in it.
local function clip_line(text, col)
  local n = utf8.len(text)
  local W = M.EXCERPT
  if not n then       -- not UTF-8: bytes
    if #text <= W then return text, col end
    local s = math.max(1, col - W // 2)
    local e = math.min(#text, s + W - 1)
    s = math.max(1, e - W + 1)
    local shown = (s > 1 and "…" or "") .. text:sub(s, e) .. (e < #text and "…" or "")
    return shown, col - s + 1 + (s > 1 and 1 or 0)
  end
  if n <= W then return text, col end
  local s = math.max(1, col - W // 2)
  local e = math.min(n, s + W - 1)
  s = math.max(1, e - W + 1)
  local bs = utf8.offset(text, s)
  local be = (utf8.offset(text, e + 1) or #text + 1) - 1
  return (s > 1 and "…" or "") .. text:sub(bs, be) .. (e < n and "…" or ""), col - s + 1 + (s > 1 and 1 or 0)
end

-- Control characters (NUL, escape …) shown as \xNN: an excerpt must not drive the terminal.
local function printable(s)
  return (s:gsub("[%z\1-\8\11-\31\127]", function(c) return string.format("\\x%02X", c:byte()) end))
end

-- ---------------------------------------------------------------- positions

-- Advance the line counter of file F to absolute byte position abs (never backwards);
-- returns line, column (characters when the line is still in the buffer).
local function locate(F, abs)
  if abs > F.lpos then
    local n, last = newlines(F.buf, F.lpos - F.base, abs - 1 - F.base)
    if n > 0 then
      F.line = F.line + n
      F.lstart = F.base + last + 1
    end
    F.lpos = abs
  end
  local col = abs - F.lstart + 1
  if F.lstart > F.base and col > 1 then
    col = (utf8.len(F.buf, F.lstart - F.base, abs - 1 - F.base) or (col - 1)) + 1
  end
  return F.line, col
end

-- The text of the line of F holding absolute position abs (when still buffered; call
-- locate(F, abs) first).
local function line_text(F, abs)
  local i = abs - F.base
  if i < 1 or i > #F.buf + 1 then return nil end
  local s = F.lstart - F.base
  if s < 1 or s > i then
    local _, last = newlines(F.buf, 1, i - 1)
    s = last and last + 1 or 1
  end
  local e = F.buf:find("\n", i, true)
  local t = F.buf:sub(s, (e or #F.buf + 1) - 1)
  return (t:gsub("\r$", ""))
end

local function where_of(F, line, col)
  return string.format("%s:%d:%d", F.name, line, col)
end

-- "  12 | text" lines; caret under character `col` of the last line shown (tabs kept, wide
-- characters counted as the two columns a terminal shows them in). Long lines are cut
-- around the caret.
local function caret_line(width, text, col)
  local char_width = require("dbtool.ui").char_width
  local prefix = {}
  local i = 1
  if utf8.len(text) then
    for _, c in utf8.codes(text) do
      if i >= col then break end
      prefix[i] = c == 9 and "\t" or string.rep(" ", char_width(c))
      i = i + 1
    end
  else
    prefix[1] = text:sub(1, col - 1):gsub("[^\t]", " ")
  end
  return string.rep(" ", width) .. " | " .. concat(prefix) .. "^"
end

-- "line | text" and the caret line for a line of text with the error at character col.
local function excerpt_lines(lineno, text, col, width)
  width = width or #tostring(lineno)
  local shown, c = clip_line(text, col)
  shown = printable(shown)
  return string.format("%" .. width .. "d | %s", lineno, shown), caret_line(width, shown, c)
end

local function chain_lines(chain)
  local out = {}
  for k = #chain, 1, -1 do
    local fr = chain[k]
    out[#out + 1] = string.format("  in %s:%d (%s)", fr.file, fr.line, errors.shorten(fr.command, 200))
  end
  return out
end

local function copy_chain(chain)
  local c = {}
  for k, fr in ipairs(chain) do c[k] = { file = fr.file, line = fr.line, command = fr.command } end
  return c
end

-- ---------------------------------------------------------------- errors

-- A meta-command (or file-level) error at a line of F; code defaults to exit 1.
local function meta_error(R, F, info, msg, fields, code)
  fields = fields or {}
  fields.where = where_of(F, info.line, info.col)
  if info.text then
    local lines = { excerpt_lines(info.line, info.text, info.tcol or 1) }
    for _, l in ipairs(chain_lines(R.chain)) do lines[#lines + 1] = l end
    fields.excerpt = concat(lines, "\n")
  elseif #R.chain > 0 then
    fields.excerpt = concat(chain_lines(R.chain), "\n")
  end
  fields.includes = copy_chain(R.chain)
  fields.file, fields.line = F.name, info.line
  return errors.new(code or errors.GENERIC, msg, fields)
end

-- Report an error: raise when ON_ERROR_STOP, else log it and go on.
local function fail(R, e)
  if R.stop_on_error() then error(e, 0) end
  R.stats.errors = R.stats.errors + 1
  local head = e.where and (e.where .. ": " .. e.msg) or e.msg
  R.log:error("%s", head)
  -- the statement with its caret, the context, the include chain (as when stopping)
  for l in (e.excerpt or ""):gmatch("[^\n]+") do R.log:error("%s", l) end
  if e.detail then R.log:error("detail: %s", e.detail) end
  if e.hint then R.log:error("hint: %s", e.hint) end
end

-- Map a byte offset b (1-based) of statement text to line, col through its segments.
local function map_offset(st, text, b)
  if st.generated or st.nseg == 0 then return st.line or 1, st.col or 1 end
  local k = 1
  for j = st.nseg, 1, -1 do
    if st.seg_off[j] < b then k = j break end
  end
  local line, col = st.seg_line[k], st.seg_col[k]
  if st.seg_var[k] then return line, col end
  local from = st.seg_off[k] + 1
  local n, last = newlines(text, from, b - 1)
  if n == 0 then
    return line, col + (utf8.len(text, from, b - 1) or (b - from))
  end
  return line + n, (utf8.len(text, last + 1, b - 1) or (b - last - 1)) + 1
end

-- Start (byte) of the line of text holding byte b.
local function line_start(text, b)
  if b <= 1 then return 1 end
  local _, last = newlines(text, 1, b - 1)
  return last and last + 1 or 1
end

-- Excerpt of statement text around byte offset b: up to 2 lines before, the caret line
-- (long lines cut around the caret).
local function statement_excerpt(st, text, b)
  local ls = line_start(text, b)
  local starts = { ls }
  local s = ls
  for _ = 1, 2 do
    if s <= 1 then break end
    local p = line_start(text, s - 1)
    table.insert(starts, 1, p)
    s = p
  end
  local shown = {}
  local width = 1
  for _, st0 in ipairs(starts) do
    local e = text:find("\n", st0, true)
    local t = text:sub(st0, (e or #text + 1) - 1):gsub("\r$", "")
    local ln = map_offset(st, text, st0)
    shown[#shown + 1] = { ln = ln, t = t }
    if #tostring(ln) > width then width = #tostring(ln) end
  end
  local out = {}
  for k = 1, #shown - 1 do
    local x = shown[k]
    out[#out + 1] = string.format("%" .. width .. "d | %s", x.ln, printable((clip_line(x.t, 1))))
  end
  local col = (utf8.len(text, ls, b - 1) or (b - ls)) + 1
  local last = shown[#shown]
  local l1, l2 = excerpt_lines(last.ln, last.t, col, width)
  out[#out + 1] = l1
  out[#out + 1] = l2
  return concat(out, "\n")
end

local DIAG = { "severity", "sqlstate", "detail", "hint", "context", "position", "internal_position",
  "internal_query", "schema", "table", "column", "datatype", "constraint" }

local function sql_error(R, F, st, text, perr)
  local fields = {}
  if type(perr) ~= "table" then perr = { msg = tostring(perr) } end
  for _, k in ipairs(DIAG) do fields[k] = perr[k] end
  for _, k in ipairs { "detail", "hint", "context", "internal_query" } do
    fields[k] = errors.shorten(fields[k], M.MAX_MESSAGE)
  end
  local b = #text > 0 and 1 or 0
  local pos = tonumber(perr.position)
  if pos and pos >= 1 and #text > 0 then
    b = utf8.offset(text, pos) or pos
    if b > #text then b = #text end
    while b > 1 and text:byte(b) and text:byte(b) >= 0x80 and text:byte(b) < 0xC0 do b = b - 1 end
  elseif perr.sqlstate == "22021" and #text > 0 and not R.copy_line and
      R.conn:parameter_status("client_encoding") == "UTF8" then
    -- an invalid byte sequence: the server gives no position, the first bad byte is it
    local ok, bad = utf8.len(text)
    if not ok and bad then b = bad end
  end
  local line, col
  local copy_line = R.copy_line and perr.context and tonumber(perr.context:match("^COPY [^\n]-, line (%d+)"))
  if copy_line then
    line, col = R.copy_line + copy_line - 1, 1
    b = 0
  elseif st.generated then
    line, col = st.line, st.col
  elseif b >= 1 then
    line, col = map_offset(st, text, b)
  else
    line, col = st.line or F.line, st.col or 1
  end
  fields.where = where_of(F, line, col)
  fields.file, fields.line, fields.col = F.name, line, col
  local ex = {}
  if st.generated then
    local g = st.generated
    if g.text then
      local l1, l2 = excerpt_lines(g.line, g.text, g.tcol or 1)
      ex[#ex + 1] = l1
      ex[#ex + 1] = l2
    end
    ex[#ex + 1] = "  query (" .. g.what .. "): " .. printable(errors.shorten((text:gsub("%s+", " ")), 300))
  elseif b >= 1 then
    ex[1] = statement_excerpt(st, text, b)
  end
  if fields.context then ex[#ex + 1] = "  context: " .. fields.context:gsub("\n", "\n  ") end
  for _, l in ipairs(chain_lines(R.chain)) do ex[#ex + 1] = l end
  if #ex > 0 then fields.excerpt = concat(ex, "\n") end
  fields.includes = copy_chain(R.chain)
  fields.statement = errors.shorten(text, 4096)
  fields.message = perr.msg
  local msg = errors.shorten(perr.msg or "error", M.MAX_MESSAGE)
  if perr.sqlstate then msg = msg .. " (SQLSTATE " .. perr.sqlstate .. ")" end
  return errors.new(errors.GENERIC, msg, fields)
end

-- ---------------------------------------------------------------- variables

local AUTO = {
  DBNAME = function(c) return c:info().db end,
  USER = function(c) return c:info().user end,
  HOST = function(c) return c:info().host end,
  PORT = function(c) return c:info().port and tostring(c:info().port) end,
  SERVER_VERSION_NUM = function(c) return tostring(c:server_version()) end,
  SERVER_VERSION_NAME = function(c) return c:parameter_status("server_version") end,
  ENCODING = function(c) return c:parameter_status("client_encoding") end,
}

local function getvar(R, name)
  local v = R.vars[name]
  if v == nil and AUTO[name] and not R.auto_done[name] then
    R.auto_done[name] = true
    local ok, val = pcall(AUTO[name], R.conn)
    if ok and val ~= nil then
      v = tostring(val)
      R.vars[name] = v
    end
  end
  return v
end

-- Set (or with nil, unset) a variable as psql's SetVariable: the specially treated ones
-- take only valid values. Returns true or nil, message.
local function setvar(R, name, value)
  if not valid_var_name(name) then return nil, 'invalid variable name: "' .. name .. '"' end
  local v, _, err = psql.set_value(name, value)
  if err then return nil, err end
  R.vars[name] = v
  R.auto_done[name] = true
  if name == "AUTOCOMMIT" then R.autocommit = M.parse_bool(v) ~= false end
  if name == "ON_ERROR_ROLLBACK" then R.error_rollback = psql.error_rollback(v) end
  return true
end

-- Value to put in place of a variable reference, or nil to leave the text as it is.
local function var_value(R, name, kind)
  if kind == "test" then return getvar(R, name) ~= nil and "TRUE" or "FALSE" end
  local v = getvar(R, name)
  if v == nil then return nil end
  if kind == "literal" then return R.conn:escape_literal(v) end
  if kind == "ident" then return R.conn:escape_identifier(v) end
  return v
end

-- ---------------------------------------------------------------- output

local function writer(out)
  if out == nil then
    return function(s) io.stdout:write(s) end
  elseif type(out) == "function" then
    return out
  elseif out == false then
    return function() end
  end
  return function(s) out:write(s) end
end

local function dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return nil end
  if d == "" then return "/" end
  return d
end

local function join(dir, p)
  if p:sub(1, 1) == "/" or dir == nil or dir == "" or dir == "." then return p end
  if dir:sub(-1) == "/" then return dir .. p end
  return dir .. "/" .. p
end

local function expand_tilde(p)
  if p:sub(1, 1) == "~" and (#p == 1 or p:sub(2, 2) == "/") then
    local home = os.getenv("HOME")
    if home then return home .. p:sub(2) end
  end
  return p
end

local function fs_path(R, p)
  if p:sub(1, 1) == "/" or not R.cwd then return p end
  return join(R.cwd, p)
end

-- An output for \o, \g, \w and \copy … to: "|command" (a shell whose standard input we
-- write) or a file (truncated). Returns {write = fn, close = fn → true | nil, msg, name =}
-- or nil, psql's message.
local function open_output(R, target, binary)
  if target:sub(1, 1) == "|" then
    local cmd = target:sub(2)
    local proc = require "dbtool.core.proc"
    io.stdout:flush()
    local p, err = proc.spawn { argv = { "/bin/sh", "-c", cmd }, stdin = "pipe", cwd = R.cwd }
    if not p then return nil, string.format('could not execute command "%s": %s', cmd, tostring(err)) end
    local broken = false
    return {
      name = target,
      write = function(s)
        if not broken and not p.stdin:write(s) then broken = true end
      end,
      close = function()
        pcall(p.stdin.close, p.stdin)
        local how, code = p:wait()
        if how ~= "exited" or code ~= 0 then
          local what = how == "exited" and "exited with exit code" or "was terminated by signal"
          return nil, string.format("%s: child process %s %s", cmd, what, tostring(code))
        end
        return true
      end,
    }
  end
  local path = expand_tilde(target)
  local f, err = io.open(fs_path(R, path), binary == false and "w" or "wb")
  if not f then return nil, string.format("%s: %s", target, (tostring(err):gsub("^.-: ", ""))) end
  return {
    name = target,
    write = function(s) f:write(s) end,
    close = function()
      local ok, cerr = f:close()
      if not ok then return nil, string.format("%s: %s", target, tostring(cerr)) end
      return true
    end,
  }
end

-- ---------------------------------------------------------------- statements

local function new_statement()
  return { parts = {}, np = 0, len = 0, seg_off = {}, seg_line = {}, seg_col = {}, seg_var = {},
    nseg = 0, begun = false }
end

local function st_clear(st)
  for i = st.np, 1, -1 do st.parts[i] = nil end
  st.np, st.len, st.nseg, st.begun = 0, 0, 0, false
  st.line, st.col, st.text, st.bad = nil, nil, nil, nil
end

local function st_add(st, s, line, col, is_var)
  if s == "" then return end
  local n = st.nseg + 1
  st.nseg = n
  st.seg_off[n], st.seg_line[n], st.seg_col[n], st.seg_var[n] = st.len, line, col, is_var or false
  if not st.line then st.line, st.col = line, col end
  st.np = st.np + 1
  st.parts[st.np] = s
  st.len = st.len + #s
end

-- Drop a newline that ends the statement text (psql never has the newline of a line it
-- has not yet followed with another: before a meta-command's own line, at the end).
local function st_trim_nl(st)
  local last = st.parts[st.np]
  if st.np == 0 or last:byte(-1) ~= 10 then return end
  st.len = st.len - 1
  if #last == 1 then
    st.parts[st.np] = nil
    st.np = st.np - 1
    st.nseg = st.nseg - 1
  else
    st.parts[st.np] = last:sub(1, -2)
  end
end

local function st_text(st)
  if st.np == 1 then return st.parts[1] end
  return concat(st.parts, "", 1, st.np)
end

-- ---------------------------------------------------------------- files

local function refill(F, keep)
  if F.eof then return false end
  locate(F, F.base + keep)
  local chunk, err = F.f:read(M.CHUNK)
  if chunk == nil and err then
    errors.raise(errors.GENERIC, "cannot read " .. F.name .. ": " .. tostring(err))
  end
  if chunk == nil then F.eof = true end
  if F.limit and chunk then
    F.read_total = F.read_total + #chunk
    if F.read_total > F.limit then
      local line = locate(F, F.base + #F.buf + 1)
      errors.raise(errors.MISSING, string.format("%s is not a regular file and has more than %d MiB: " ..
        "stopped reading it", F.name, F.limit // (1024 * 1024)), { where = string.format("%s:%d:1", F.name,
        line), file = F.name, line = line, hint = "include a regular file (a FIFO or a device given to " ..
        "\\i is read only up to " .. (F.limit // (1024 * 1024)) .. " MiB)" })
    end
  end
  if keep > #F.buf then
    F.base = F.base + #F.buf
    F.buf = chunk or ""
  else
    F.buf = F.buf:sub(keep) .. (chunk or "")
    F.base = F.base + keep - 1
  end
  F.pos = 1
  if #F.buf > F.stats.buffer_peak then F.stats.buffer_peak = #F.buf end
  return true
end

local function make_file(R, name, f, dir)
  return {
    name = name, f = f, dir = dir, buf = "", pos = 1, base = 0, eof = f == nil, stats = R.stats,
    line = 1, lpos = 1, lstart = 1,
    sc = sqlscan.new { std_strings = R.std_strings }, std_strings = R.std_strings,
    st = new_statement(), cond = {},
  }
end

-- Open a script for reading. A directory (which io.open accepts) is an error; a file
-- that is not regular is flagged (special = true); an include (nonblock) of a FIFO does
-- not wait for a writer.
local function open_script(p, nonblock)
  local stat = require "posix.sys.stat"
  local st = stat.stat(p)
  if st and stat.S_ISDIR(st.st_mode) ~= 0 then return nil, p .. ": Is a directory" end
  local special = st ~= nil and stat.S_ISREG(st.st_mode) == 0
  local f, err
  if special and nonblock and stat.S_ISFIFO(st.st_mode) ~= 0 then
    local fcntl = require "posix.fcntl"
    local fd, ferr = fcntl.open(p, fcntl.O_RDONLY | fcntl.O_NONBLOCK)
    if not fd then return nil, ferr end
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~fcntl.O_NONBLOCK)
    f, err = require("posix.stdio").fdopen(fd, "rb")
    if not f then
      require("posix.unistd").close(fd)
      return nil, err
    end
  else
    f, err = io.open(p, "rb")
    if not f then return nil, err end
  end
  local probe, rerr = f:read(0)
  if probe == nil and rerr then
    f:close()
    return nil, rerr
  end
  return f, special
end

-- ---------------------------------------------------------------- meta-command arguments

local function run_backtick(R, cmd)
  local proc = require "dbtool.core.proc"
  local p, err = proc.spawn { argv = { "/bin/sh", "-c", cmd }, stdout = "pipe", cwd = R.cwd }
  if not p then return nil, err end
  local out = p.stdout:read("a") or ""
  p.stdout:close()
  local how, code = p:wait()
  if how ~= "exited" or code ~= 0 then
    return nil, string.format("command `%s` failed (%s %s)", cmd, tostring(how), tostring(code))
  end
  return (out:gsub("\n$", ""))
end

-- A value as one shell word: as is when plainly safe, else in single quotes.
local function shell_word(v)
  if v ~= "" and not v:find("[^%w%-_./:]") then return v end
  if v:find("[\n\r]") then error("shell command argument contains a newline or carriage return", 0) end
  return "'" .. v:gsub("'", "'\"'\"'") .. "'"
end

-- psql substitutes :name and :'name' (shell-quoted) inside `backquotes`; nothing else.
local function backtick_vars(R, cmd)
  local out, i = {}, 1
  while true do
    local c = cmd:find(":", i, true)
    if not c then
      out[#out + 1] = cmd:sub(i)
      return concat(out)
    end
    out[#out + 1] = cmd:sub(i, c - 1)
    local name, e = cmd:match("^'([%w_\128-\255]+)'()", c + 1)
    local v = name and getvar(R, name)
    if v then
      out[#out + 1] = shell_word(v)
    else
      name, e = cmd:match("^([%w_\128-\255]+)()", c + 1)
      v = name and getvar(R, name)
      if v then out[#out + 1] = v end
    end
    if v then i = e else
      out[#out + 1] = ":"
      i = c + 1
    end
  end
end

local ESC = { n = "\n", t = "\t", b = "\b", r = "\r", f = "\f" }

-- Lex the arguments of a meta-command as psql's OT_NORMAL: from line[i] to the end of the
-- line or an unquoted backslash. Returns args ({text =, quoted =, dquoted =}...), the index
-- where the command ends (after a `\\` separator), or raises a message string. With
-- filepipe (psql's OT_FILEPIPE), a first argument starting with | is the rest of the line.
local function lex_args(R, line, i, active, filepipe)
  local args = {}
  local n = #line
  while true do
    local s = line:find("[^ \t\n\r\f\v]", i)
    if not s then i = n + 1 break end
    i = s
    if line:byte(i) == 92 then break end   -- backslash: end of arguments
    if filepipe and #args == 0 and line:byte(i) == 124 then
      args[1] = { text = line:sub(i), quoted = true }
      i = n + 1
      break
    end
    local buf, quoted, dquoted = {}, false, false
    while i <= n do
      local c = line:sub(i, i)
      if c:find("^[ \t\n\r\f\v]") or c == "\\" then
        break
      elseif c == "'" then
        quoted = true
        local j = i + 1
        while true do
          if j > n then error("unterminated quoted string", 0) end
          local ch = line:sub(j, j)
          if ch == "'" then
            if line:sub(j + 1, j + 1) == "'" then
              buf[#buf + 1] = "'"
              j = j + 2
            else
              j = j + 1
              break
            end
          elseif ch == "\\" and j < n then
            local nx = line:sub(j + 1, j + 1)
            if ESC[nx] then
              buf[#buf + 1] = ESC[nx]
              j = j + 2
            elseif nx:find("^[0-7]") then
              local oct = line:match("^[0-7][0-7]?[0-7]?", j + 1)
              buf[#buf + 1] = string.char(tonumber(oct, 8) & 255)
              j = j + 1 + #oct
            elseif nx == "x" and line:find("^[%x]", j + 2) then
              local hex = line:match("^%x%x?", j + 2)
              buf[#buf + 1] = string.char(tonumber(hex, 16))
              j = j + 2 + #hex
            else
              buf[#buf + 1] = nx
              j = j + 2
            end
          else
            local k = line:find("['\\]", j) or n + 1
            buf[#buf + 1] = line:sub(j, k - 1)
            j = k
          end
        end
        i = j
      elseif c == '"' then
        quoted, dquoted = true, true
        local j = i + 1
        while true do
          local k = line:find('"', j, true)
          if not k then error("unterminated quoted string", 0) end
          if line:sub(k + 1, k + 1) == '"' then
            j = k + 2
          else
            j = k + 1
            break
          end
        end
        buf[#buf + 1] = line:sub(i, j - 1)
        i = j
      elseif c == "`" then
        quoted = true
        local k = line:find("`", i + 1, true)
        if not k then error("unterminated quoted string", 0) end
        if active then
          local out, err = run_backtick(R, backtick_vars(R, line:sub(i + 1, k - 1)))
          if not out then error(err, 0) end
          buf[#buf + 1] = out
        end
        i = k + 1
      elseif c == ":" then
        local name, kind, e
        name, e = line:match("^([%w_\128-\255]+)()", i + 1)
        if name then
          kind = "plain"
        else
          name, e = line:match("^'([%w_\128-\255]+)'()", i + 1)
          if name then kind = "literal" else
            name, e = line:match('^"([%w_\128-\255]+)"()', i + 1)
            if name then kind = "ident" else
              name, e = line:match("^{%?([%w_\128-\255]+)}()", i + 1)
              if name then kind = "test" end
            end
          end
        end
        local v = name and active and var_value(R, name, kind)
        if v then
          buf[#buf + 1] = v
          i = e
        elseif name and kind ~= "plain" and active then
          buf[#buf + 1] = line:sub(i, e - 1)     -- (psql leaves :'undefined' as written)
          i = e
        else
          buf[#buf + 1] = ":"
          i = i + 1
        end
      else
        local k = line:find("[ \t\n\r\f\v\\'\"`:]", i) or n + 1
        buf[#buf + 1] = line:sub(i, k - 1)
        i = k
      end
    end
    args[#args + 1] = { text = concat(buf), quoted = quoted, dquoted = dquoted }
  end
  if line:sub(i, i + 1) == "\\\\" then i = i + 2 end
  return args, i
end

-- psql's OT_SQLIDHACK for \connect: double-quoted parts lose their quotes ("" inside them
-- is "), the rest is kept as written (not lowercased).
local function sqlid_hack(a)
  if not a.dquoted then return a.text end
  local s, out, i, inq = a.text, {}, 1, false
  while i <= #s do
    local c = s:sub(i, i)
    if c == '"' then
      if inq and s:sub(i + 1, i + 1) == '"' then
        out[#out + 1] = '"'
        i = i + 1
      else
        inq = not inq
      end
    else
      out[#out + 1] = c
    end
    i = i + 1
  end
  return concat(out)
end

-- ---------------------------------------------------------------- conditionals

local function active(F)
  local top = F.cond[#F.cond]
  return top == nil or top.state == "true"
end

-- ---------------------------------------------------------------- running

local run_cursor, run_file, execute

-- A source of COPY data that is not the script: a file, our standard input, a program.
local function data_source(R, f, name)
  local S = make_file(R, name, f, nil)
  S.data_only = true
  return S
end

-- COPY … FROM STDIN data from S (the script F: the lines after the one holding the
-- statement, up to a line `\.`; another source: all of it, `\.` ending it too, as psql 15).
-- For the script, the rest of the statement's line is returned as a cursor to run
-- afterwards (as psql does). Binary data is sent as it comes, to the end of the source.
local function copy_in(R, S, binary)
  local conn = R.conn
  local script = not S.data_only
  local rest, rline, rcol
  if script then
    local nl
    while true do
      nl = S.buf:find("\n", S.pos, true)
      if nl or S.eof then break end
      refill(S, S.pos)
    end
    rest = S.buf:sub(S.pos, nl or #S.buf)
    rline, rcol = locate(S, S.base + S.pos)
    S.pos = (nl or #S.buf) + 1
    R.copy_line = locate(S, S.base + S.pos)
  else
    R.copy_line = nil
    if #S.buf == 0 then refill(S, 1) end
  end
  local ok, err = pcall(function()
    if binary then
      while true do
        if S.pos <= #S.buf then conn:put_copy_data(S.buf:sub(S.pos)) end
        S.pos = #S.buf + 1
        if S.eof then break end
        refill(S, S.pos)
      end
      return
    end
    local midline = false   -- S.pos is inside a data line already partly sent
    while true do
      if midline then
        local e = S.buf:find("\n", S.pos, true) or #S.buf
        if e >= S.pos then conn:put_copy_data(S.buf:sub(S.pos, e)) end
        midline = S.buf:byte(e) ~= 10
        S.pos = e + 1
      end
      if not midline then
        local found, dend, resume = copy_scan(S.buf, S.pos, S.eof)
        if dend >= S.pos then conn:put_copy_data(S.buf:sub(S.pos, dend)) end
        S.pos = resume
        if found then break end
        -- what is left is the start of a line: send it now unless it may be the end marker
        -- (`\.`, `\.\r`), so that a long line does not pile up in the buffer
        if S.pos <= #S.buf and (#S.buf - S.pos >= 3 or S.buf:byte(S.pos) ~= 92) then
          conn:put_copy_data(S.buf:sub(S.pos))
          S.pos = #S.buf + 1
          midline = true
        end
      end
      if S.eof then break end
      refill(S, S.pos)
    end
  end)
  if not ok then
    pcall(conn.put_copy_end, conn, "aborted by db-tool")
    error(err, 0)
  end
  conn:put_copy_end()
  if rest and rest:find("%S") then
    return { buf = rest, pos = 1, eof = true, sub = true, line = rline, col = rcol }
  end
end

-- After a COPY … FROM STDIN that failed before taking data (psql would then run the data
-- lines as SQL): skip the script's lines up to `\.`. Returns how many lines were skipped.
local function skip_copy_data(F)
  local nl
  while true do
    nl = F.buf:find("\n", F.pos, true)
    if nl or F.eof then break end
    refill(F, F.pos)
  end
  F.pos = (nl or #F.buf) + 1
  local first = locate(F, F.base + F.pos)
  local found
  while true do
    local _, resume
    found, _, resume = copy_scan(F.buf, F.pos, F.eof)
    F.pos = resume
    if found or F.eof then break end
    refill(F, F.pos)
  end
  local last = locate(F, F.base + F.pos)
  -- (data lines only: not the `\.` line)
  return last - first - ((found and F.buf:byte(F.pos - 1) == 10) and 1 or 0), first, found
end

-- standard_conforming_strings as the server reports it (ParameterStatus, as psql reads it):
-- SET, set_config(), RESET, a rolled-back SET LOCAL all change how backslashes in '' lex.
local function update_std_strings(R)
  local v = R.conn:parameter_status("standard_conforming_strings")
  if v then R.std_strings = v ~= "off" end
end

local function popt_of(R, how)
  return how and how.popt or R.popt
end

-- Where the rows of a result go: \g's file, else \o's target, else the output with -p.
local function result_dest(R, gout)
  if gout then return gout end
  if R.qout.redirected or R.print_results then return R.qout end
  return nil
end

local function is_copy_from_stdin(text)
  local i = text:find("[^ \t\n\r\f\v]")
  local c = i and text:byte(i)
  if c ~= 67 and c ~= 99 then return false end            -- C, c
  if text:sub(i, i + 3):upper() ~= "COPY" then return false end
  local head = text:sub(i, i + 4095):upper()
  return head:find("%sFROM%s+STDIN") ~= nil
end

-- \gset: the one row of res into variables (psql's StoreQueryTuple). true or message.
local function store_tuple(R, res, prefix)
  local n = res.n or #res
  if n < 1 then return nil, "no rows returned for \\gset" end
  if n > 1 then return nil, "more than one row returned for \\gset" end
  for k, name in ipairs(res.fields or {}) do
    local var = prefix .. name
    if psql.HOOKED[var] then
      R.log:warn('attempt to \\gset into specially treated variable "%s" ignored', var)
    else
      local ok, err = setvar(R, var, res[1][k])
      if not ok then return nil, err end
    end
  end
  return true
end

-- Send one statement (SendQuery): AUTOCOMMIT's BEGIN, ON_ERROR_ROLLBACK's savepoint, the
-- results drained (COPY data in and out, rows printed, \gset, \gexec), psql's result
-- variables, \timing. how: nil, or {gset = prefix, gexec = true, gfile = target, popt =,
-- copy_in = source, copy_out = output, copy_stdin = true, info = meta info,
-- generated = {what =, line =, col =, text =}}. Returns true when it succeeded.
function execute(R, F, st, text, how)
  local conn = R.conn
  R.stats.statements = R.stats.statements + 1
  R.cur_file, R.cur_line = F.name, st.line or F.line      -- (R.current(): "file:line")
  R.copy_line = nil
  if R.on_statement then text = R.on_statement(text, R.current()) or text end
  local function client_error(msg)
    local info = how and how.info or { line = st.line or F.line, col = st.col or 1 }
    return meta_error(R, F, info, msg)
  end
  -- AUTOCOMMIT off: BEGIN first (psql's SendQuery)
  local ts = conn:transaction_status()
  if ts == "idle" and not R.autocommit and not psql.command_no_begin(text) then
    local ok, e = pcall(conn.exec, conn, "BEGIN")
    if not ok then
      fail(R, sql_error(R, F, st, text, e))
      return false
    end
    ts = conn:transaction_status()
  end
  local svpt = false
  if ts == "intrans" and R.error_rollback then
    local ok, e = pcall(conn.exec, conn, "SAVEPOINT pg_psql_temporary_savepoint")
    if not ok then
      fail(R, sql_error(R, F, st, text, e))
      return false
    end
    svpt = true
  end
  local t0 = R.timing and core.now()
  local perr, rest, gout, gerr, svpt_gone, fail_msg, copied
  local function gopen()
    if how and how.gfile and not gout and not gerr then
      local o, err = open_output(R, how.gfile)
      if o then gout = o else gerr = err end
    end
    return gout
  end
  local pending      -- a result waiting to know whether it is the last one
  local function handle(res, last)
    if R.on_result then R.on_result(res, { where = R.current(), statement = text }) end
    if res.status ~= "TUPLES_OK" then return end
    if last and how and how.gset then
      local ok, err = store_tuple(R, res, how.gset)
      if not ok then fail_msg = fail_msg or err end
    elseif last and how and how.crosstab then
      local ct, err = printer.crosstab(popt_of(R, how), res, how.crosstab)
      if not ct then
        fail_msg = fail_msg or err
      else
        local dest = result_dest(R, gout)
        if dest then
          local out, ferr = printer.format(popt_of(R, how), ct)
          if out then dest.write(out) else fail_msg = fail_msg or ferr end
        end
      end
    elseif last and how and how.gexec then
      local gst = { generated = { what = "\\gexec", line = how.info.line, col = how.info.col,
        text = how.info.text, tcol = how.info.tcol }, line = how.info.line, col = how.info.col, nseg = 0 }
      for i = 1, res.n or #res do
        for k = 1, #res.fields do
          local q = res[i][k]
          if q ~= nil then
            local saved = R.copy_line
            execute(R, F, gst, q, { info = how.info })
            R.copy_line = saved
          end
        end
      end
    else
      if how and how.gfile then gopen() end
      local dest = result_dest(R, gout)
      if dest then
        local out, err = printer.format(popt_of(R, how), res)
        if out then dest.write(out) else fail_msg = fail_msg or err end
      end
    end
  end
  if how and how.gdesc then
    -- psql's DescribeQuery: prepare, describe, then show the columns with a query of its own
    local okd, d = pcall(conn.describe, conn, text)
    if not okd then
      if type(d) ~= "table" then error(d, 0) end
      perr = d
    elseif #d.fields > 0 then
      local vals = {}
      for k, name in ipairs(d.fields) do
        vals[k] = string.format("(%s, '%d'::pg_catalog.oid, %d)", conn:escape_literal(name), d.types[k],
          d.fmods[k])
      end
      local okq, res = pcall(conn.exec, conn, 'SELECT name AS "Column", pg_catalog.format_type(tp, tpm) ' ..
        'AS "Type"\nFROM (VALUES ' .. concat(vals, ",") .. ") s(name, tp, tpm)")
      if okq then pending = res else perr = res end
    else
      local dest = result_dest(R, nil)
      if dest then dest.write("The command has no result, or the result has no columns.\n") end
    end
  else
    conn:send_query(text)
  end
  while not (how and how.gdesc) do
    local res = conn:get_result(true)
    if res == nil then break end
    local status = res.status
    if status == "COPY_IN" then
      copied = true
      local okc, rc = pcall(copy_in, R, how and how.copy_in or F, res.binary)
      if not okc and conn:status() == "bad" then -- the server went away while we sent the data
        local e = sql_error(R, F, st, text, rc)
        e.hint = "the connection to the server was lost during COPY: the rest of the script did not run"
        error(e, 0)
      elseif not okc then
        error(rc, 0)
      end
      if not (how and how.copy_in) then rest = rc or rest end
    elseif status == "COPY_OUT" then
      local dest = how and how.copy_out
      if not dest and how and how.gfile then dest = gopen() end
      dest = dest or R.qout
      while true do
        local chunk = conn:get_copy_data()
        if chunk == nil then break end
        dest.write(chunk)
      end
    elseif status == "FATAL_ERROR" or status == "BAD_RESPONSE" then
      perr = perr or res.error or { msg = "query failed" }
      if pending then
        handle(pending, false)
        pending = nil
      end
    else
      if status ~= "EMPTY_QUERY" then
        local cmd = res.command or ""
        if cmd == "COMMIT" or cmd == "SAVEPOINT" or cmd == "RELEASE" or cmd == "ROLLBACK" then
          svpt_gone = true
        end
      end
      if pending then handle(pending, false) end
      pending = res
    end
  end
  local elapsed = t0 and (core.now() - t0) * 1000
  update_std_strings(R)
  local last = pending
  if last and not perr then handle(last, true) end
  if gout then
    local ok, err = gout.close()
    if not ok then fail_msg = fail_msg or err end
  end
  if gerr then fail_msg = fail_msg or gerr end
  -- psql's result variables (\if :ERROR ... with ON_ERROR_STOP off)
  local vars = R.vars
  local e
  if perr then
    vars.ERROR, vars.ROW_COUNT = "true", "0"
    vars.SQLSTATE = perr.sqlstate or ""
    vars.LAST_ERROR_SQLSTATE, vars.LAST_ERROR_MESSAGE = vars.SQLSTATE, perr.msg or ""
    e = sql_error(R, F, st, text, perr)
    if conn:status() == "bad" then   -- no going on without a connection (psql stops too)
      e.hint = e.hint or "the connection to the server was lost: the rest of the script did not run"
      error(e, 0)
    end
    if how and how.copy_stdin and not copied and not R.stop_on_error() then
      -- the COPY never took its data: psql would now run the data lines as SQL
      local n, from, ended = skip_copy_data(F)
      rest = nil
      e.hint = e.hint or string.format("the COPY data that followed (%d line%s from line %d%s) was " ..
        "skipped, not run as SQL", n, n == 1 and "" or "s", from,
        ended and "" or ", to the end of the file: no \\. line")
    end
  elseif fail_msg then
    vars.ERROR, vars.ROW_COUNT = "true", "0"
    vars.SQLSTATE, vars.LAST_ERROR_SQLSTATE, vars.LAST_ERROR_MESSAGE = "", "", ""
    e = client_error(fail_msg)
  else
    vars.ERROR, vars.SQLSTATE = "false", "00000"
    local n = last and last.affected
    vars.ROW_COUNT = n and tostring(n) or "0"
  end
  -- ON_ERROR_ROLLBACK: back to the savepoint after an error, else release it
  if svpt then
    local ts2 = conn:transaction_status()
    local cmd
    if ts2 == "inerror" then cmd = "ROLLBACK TO pg_psql_temporary_savepoint"
    elseif ts2 == "intrans" and not svpt_gone then cmd = "RELEASE pg_psql_temporary_savepoint" end
    if cmd then
      local ok, serr = pcall(conn.exec, conn, cmd)
      if not ok and not e then e = sql_error(R, F, st, text, serr) end
    end
  end
  if elapsed then R.out(printer.timing(elapsed)) end
  if e then
    fail(R, e)
    if rest then run_cursor(R, F, rest) end
    return false
  end
  -- what followed the COPY statement on its line
  if rest then run_cursor(R, F, rest) end
  return true
end

-- The query buffer of F is complete: run it. how = nil for a ';' or the end of the file
-- (an empty or blank buffer is not sent); a table from a meta-command that sends the
-- buffer (\g, \gset, \gexec …): an empty buffer sends the previous one, as psql.
local function finish_statement(R, F, how)
  local st = F.st
  if st.np == 0 and not how then
    st_clear(st)
    return
  end
  if st.bad then      -- it held a NUL byte (reported): never sent
    st_clear(st)
    return
  end
  local text
  local fresh = st.np > 0
  if fresh then
    text = st_text(st)
    if not how and not text:find("%S") then   -- (e.g. the blank lines after a skipped branch)
      st_clear(st)
      return
    end
  elseif F.prev then
    st, text = F.prev, F.prev.text
  else
    st = new_statement()
    st.line, st.col = how.info.line, how.info.col
    text = ""
  end
  if fresh then
    -- two statement objects take turns (a statement run while this one executes, e.g. from
    -- the rest of a COPY line, gets a new one); the sent one stays as psql's previous buffer
    F.st = F.spare or new_statement()
    F.spare = nil
    st.text = text
    local old = F.prev
    F.prev = st
    if old then
      st_clear(old)
      F.spare = old
    end
  end
  local h = how
  if not h and is_copy_from_stdin(text) then h = { copy_stdin = true } end
  if how and is_copy_from_stdin(text) then how.copy_stdin = true end
  execute(R, F, st, text, h)
end

-- Send F's query buffer (or the previous one) from a meta-command at `info`.
local function send_buffer(R, F, info, how)
  how.info = info
  -- COPY … FROM STDIN data starts on the line after the command's
  if not info.cursor.sub then F.pos = info.cursor.pos end
  finish_statement(R, F, how)
  F.sc:reset()      -- psql_scan_reset after a forced send
end

local META = {}

-- psql meta-commands we do not run (a clearer message than "invalid command")
local PSQL_COMMANDS = {}
for w in ([[a bind C c cd connect conninfo copy copyright crosstabview d da dA dAc dAf dAo dAp db dc
  dC dd dD ddp dE di dm ds dt dv des det deu dew df dF dFd dFp dFt dg dl dL dn do dO dp dP drds
  dRp dRs dT du dx dX dy e edit ef encoding errverbose ev f g gdesc getenv gexec gset gx h help
  H html ir l lo_export lo_import lo_list lo_unlink o out p password print prompt pset q qecho
  quit r reset s setenv sf sv t T timing w watch write x z ! ?]]):gmatch("%S+") do
  PSQL_COMMANDS[w] = true
end

-- the one that uses up the query buffer in psql and is not run here: \watch sends it (here
-- once, as \g would); then the command is reported as not run
local SENDS = { watch = "send" }

-- what to do instead, for the unsupported commands scripts commonly hold
local META_HINT = {
  watch = "the query ran once, as with \\g; psql repeats it until it fails: loop in the caller",
  e = "an editor cannot run in a script",
  edit = "an editor cannot run in a script",
}

local function meta_info(F, C, p)
  if C.sub then return { line = C.line, col = C.col } end
  local line, col = locate(F, C.base + p)
  return { line = line, col = col, text = line_text(F, C.base + p), tcol = col }
end

local SUPPORTED = [[\i \ir \include \include_relative \cd \q \set \unset \getenv \echo \qecho \warn ]] ..
  [[\if \elif \else \endif \g \gx \gset \gexec \crosstabview \gdesc \r \p \w \o \timing \pset \a \t ]] ..
  [[\x \f \C \H \T ]] ..
  [[\copy \c \conninfo \encoding \! \restrict \unrestrict]]

-- Handle the meta-command at C.buf[p]; returns the position where SQL lexing resumes: after
-- its arguments (and a `\\` separator), or at the end of the line when the command failed
-- (psql throws the rest of that line away).
local function run_meta(R, F, C, p)
  local e = C.buf:find("\n", p, true) or (#C.buf + 1)
  local line = C.buf:sub(p, e - 1)
  local name_end = line:find("[ \t\n\r\f\v\\]", 2) or (#line + 1)
  local name = line:sub(2, name_end - 1)
  local is_active = active(F)
  local info = meta_info(F, C, p)
  local h = META[name]
  if line:find("\0", 1, true) and is_active then
    fail(R, meta_error(R, F, info, "NUL byte (\\0) in a meta-command line: the line is not run",
      { hint = "a psql script cannot hold NUL bytes (psql would cut the line there): is it a binary file?" }))
    return e
  end
  if R.restricted and name ~= "unrestrict" then
    if not is_active then return e end
    fail(R, meta_error(R, F, info, "backslash commands are restricted; only \\unrestrict is allowed"))
    return e
  end
  if not h then
    if not is_active then return e end
    -- nothing on the line is evaluated (no `backquotes`, no variables)
    local msg = "invalid command \\" .. name
    if PSQL_COMMANDS[name] then
      msg = "\\" .. name .. " is a psql meta-command that db-tool does not run"
    end
    if SENDS[name] == "send" then
      -- psql sends the query buffer here: so does this (its display is what is not done)
      msg = msg .. " (the query ran, its result is not displayed as psql would)"
      local ok, _, stop = pcall(lex_args, R, line, name_end, false)
      C.pos = ok and p + stop - 1 or e       -- (its arguments are not evaluated)
      info.cursor = C
      send_buffer(R, F, info, {})
      fail(R, meta_error(R, F, info, msg, { hint = META_HINT[name] }))
      return C.pos
    end
    fail(R, meta_error(R, F, info, msg, { hint = META_HINT[name] or
      ("db-tool runs psql scripts with these meta-commands: " .. SUPPORTED) }))
    return e
  end
  local args, stop
  if h.whole then
    -- the rest of the line, as written (psql's OT_WHOLE_LINE: no variables, no `\\`)
    local s = line:find("[^ \t\n\r\f\v]", name_end)
    args = { text = s and line:sub(s) or nil }
    stop = #line + 1
  else
    -- (while restricted, \\unrestrict's key is taken as written: no backquotes, no variables)
    local ok
    ok, args, stop = pcall(lex_args, R, line, name_end, is_active and not R.restricted, h.filepipe)
    if not ok then
      if not is_active then return e end
      fail(R, meta_error(R, F, info, "\\" .. name .. ": " .. tostring(args)))
      return e
    end
  end
  local resume = p + stop - 1
  if not is_active and not (h and h.cond) then return resume end
  info.cursor = C
  C.pos = resume
  local base0 = C.base
  local okh, err = pcall(h.fn, R, F, args, info, name, line)
  if not okh then
    if errors.is(err) then error(err, 0) end
    if type(err) == "table" and err.plain then
      fail(R, meta_error(R, F, info, err.plain))
    else
      fail(R, meta_error(R, F, info, "\\" .. name .. ": " .. tostring(err)))
    end
    -- (the rest of the line is thrown away, unless the command read past it: COPY data)
    if C.base ~= base0 or C.pos ~= resume then return C.pos end
    return e
  end
  return C.pos
end

-- A meta-command's failure, reported at its line (psql's words).
local function plain(fmt, ...)
  error({ plain = select("#", ...) > 0 and string.format(fmt, ...) or fmt }, 0)
end

local function require_arg(args, n)
  if not args[n or 1] then error("missing required argument", 0) end
  return args[n or 1].text
end

-- Warn about arguments a command does not take (psql: "extra argument … ignored").
local function extra_args(R, name, args, n)
  for k = n + 1, #args do
    R.log:warn('\\%s: extra argument "%s" ignored', name, args[k].text)
  end
end

local function include(R, F, args, info, name, line)
  local arg = expand_tilde(require_arg(args))
  extra_args(R, name, args, 1)
  local relative = name == "ir" or name == "include_relative"
  local path = arg
  if relative then path = join(F.dir, arg) end
  if #R.chain >= M.MAX_DEPTH then
    error(meta_error(R, F, info, string.format("too many nested includes (more than %d): is a file " ..
      "including itself?", M.MAX_DEPTH), nil, errors.MISSING), 0)
  end
  local f, special = open_script(fs_path(R, path), true)
  if not f then
    error(string.format("could not read %s: %s", path, (tostring(special):gsub("^.*: ", ""))), 0)
  end
  local cmd = line:gsub("%s+$", "")
  R.chain[#R.chain + 1] = { file = F.name, line = info.line, command = cmd }
  run_file(R, path, nil, f, special and M.MAX_SPECIAL or nil)
  R.chain[#R.chain] = nil
end
META.i = { fn = include }
META.include = META.i
META.ir = META.i
META.include_relative = META.i

META.q = { fn = function(_, F)
  -- \q ends the file being read (the script when it is the top one); in psql an \i'ed
  -- file's \q returns to the including file
  F.quit = true
end }
META.quit = META.q

META.cd = { fn = function(R, _, args, _, name)
  local dir = args[1] and expand_tilde(args[1].text) or os.getenv("HOME") or "/"
  extra_args(R, name, args, 1)
  local stat = require "posix.sys.stat"
  local full = fs_path(R, dir)
  local st = stat.stat(full)
  if not st or stat.S_ISDIR(st.st_mode) == 0 then
    error({ plain = string.format('\\cd: could not change directory to "%s": %s', dir,
      st and "Not a directory" or "No such file or directory") }, 0)
  end
  R.cwd = full
end }

META.set = { fn = function(R, _, args)
  if #args == 0 then
    local names = {}
    for k in pairs(R.vars) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do R.out(string.format("%s = '%s'\n", k, R.vars[k])) end
    return
  end
  local name = args[1].text
  local parts = {}
  for k = 2, #args do parts[#parts + 1] = args[k].text end
  local ok, err = setvar(R, name, concat(parts))
  if not ok then error({ plain = err }, 0) end
end }

META.unset = { fn = function(R, _, args, _, name)
  local var = require_arg(args)
  extra_args(R, name, args, 1)
  local ok, err = setvar(R, var, nil)
  if not ok then error({ plain = err }, 0) end
end }

META.getenv = { fn = function(R, _, args)
  local var, env = require_arg(args, 1), require_arg(args, 2)
  local v = os.getenv(env)
  if v ~= nil then
    local ok, err = setvar(R, var, v)
    if not ok then error({ plain = err }, 0) end
  end
end }

local function echo_text(args)
  local parts, nl = {}, true
  for k, a in ipairs(args) do
    if k == 1 and a.text == "-n" and not a.quoted then nl = false
    else parts[#parts + 1] = a.text end
  end
  return concat(parts, " ") .. (nl and "\n" or "")
end
META.echo = { fn = function(R, _, args) R.out(echo_text(args)) end }
META.qecho = { fn = function(R, _, args) R.qout.write(echo_text(args)) end }
META.warn = { fn = function(R, _, args) R.warn(echo_text(args)) end }

local function condition(args)
  local parts = {}
  for _, a in ipairs(args) do parts[#parts + 1] = a.text end
  local expr = concat(parts, " ")
  local v = M.parse_bool(expr)
  if v == nil then
    error({ plain = string.format('unrecognized value "%s" for "\\if expression": Boolean expected',
      expr) }, 0)
  end
  return v
end

-- Leaving a skipped branch restores the parenthesis depth saved when it began (psql lexes
-- skipped lines, but a '(' there must not hold back the next ';'); leaving a taken one
-- saves it.
local function leave_branch(F, top)
  if top.state == "true" then
    top.paren = F.sc:state().paren
  elseif top.state == "false" then
    F.sc:set_paren(top.paren)
  end
end

META["if"] = { cond = true, fn = function(_, F, args, info)
  local entry = { line = info.line, state = "ignored" }
  F.cond[#F.cond + 1] = entry
  if #F.cond == 1 or F.cond[#F.cond - 1].state == "true" then
    entry.paren = F.sc:state().paren
    entry.state = "false"       -- a bad expression counts as false (psql), then is reported
    local v = condition(args)
    entry.state = v and "true" or "false"
    entry.taken = v
  end
end }

META.elif = { cond = true, fn = function(_, F, args)
  local top = F.cond[#F.cond]
  if not top then error("no matching \\if", 0) end
  if top.else_seen then error("cannot occur after \\else", 0) end
  if top.state == "ignored" then return end
  leave_branch(F, top)
  if top.taken then
    top.state = "false"
  else
    top.state = "false"
    local v = condition(args)
    if v then top.state, top.taken = "true", true end
  end
end }

META["else"] = { cond = true, fn = function(_, F)
  local top = F.cond[#F.cond]
  if not top then error("no matching \\if", 0) end
  if top.else_seen then error("cannot occur after \\else", 0) end
  top.else_seen = true
  if top.state == "ignored" then return end
  leave_branch(F, top)
  top.state = top.taken and "false" or "true"
  top.taken = true
end }

META.endif = { cond = true, fn = function(_, F)
  if #F.cond == 0 then error("no matching \\if", 0) end
  leave_branch(F, F.cond[#F.cond])
  F.cond[#F.cond] = nil
end }

META.restrict = { fn = function(R, _, args)
  local key = require_arg(args)
  R.restricted = key
end }

META.unrestrict = { fn = function(R, _, args)
  local key = require_arg(args)
  if not R.restricted then error("not currently in restricted mode", 0) end
  if key ~= R.restricted then error("wrong key", 0) end
  R.restricted = nil
end }

-- ---------------------------------------------------------------- the query buffer

-- \g's options: \g (name=value ...) [file]: print settings for this query only.
local function g_options(R, args)
  if not args[1] or args[1].quoted or args[1].text:sub(1, 1) ~= "(" then return nil, 1 end
  local popt = {}
  for k, v in pairs(R.popt) do popt[k] = v end
  local k = 1
  local words = {}
  while args[k] do
    local t = args[k].text
    if k == 1 then t = t:sub(2) end
    local closing = t:sub(-1) == ")"
    if closing then t = t:sub(1, -2) end
    if t ~= "" then words[#words + 1] = t end
    k = k + 1
    if closing then break end
    if not args[k] then error({ plain = "\\g: missing right parenthesis" }, 0) end
  end
  for _, w in ipairs(words) do
    local name, value = w:match("^([^=]+)=(.*)$")
    local ok, err = printer.pset(popt, name or w, value)
    if not ok then error({ plain = err }, 0) end
  end
  return popt, k
end

local function g_cmd(R, F, args, info, name)
  local popt, k = g_options(R, args)
  local how = { popt = popt }
  if name == "gx" then
    how.popt = how.popt or setmetatable({}, { __index = R.popt })
    how.popt.expanded = 1
  end
  if args[k] then how.gfile = args[k].text end
  send_buffer(R, F, info, how)
end
META.g = { fn = g_cmd, filepipe = true }
META.gx = META.g

META.gset = { fn = function(R, F, args, info)
  send_buffer(R, F, info, { gset = args[1] and args[1].text or "" })
end }

META.gexec = { fn = function(R, F, _, info)
  send_buffer(R, F, info, { gexec = true })
end }

-- \crosstabview [colV [colH [colD [sortcolH]]]]: send the buffer, print its rows pivoted
META.crosstabview = { fn = function(R, F, args, info)
  local ct = {}
  for k = 1, math.min(#args, 4) do ct[k] = args[k].text end
  send_buffer(R, F, info, { crosstab = ct })
end }

-- \gdesc: the columns the buffer's query would return (prepared, not run)
META.gdesc = { fn = function(R, F, _, info)
  send_buffer(R, F, info, { gdesc = true })
end }

META.r = { fn = function(_, F)
  st_clear(F.st)
  F.sc:reset()
end }
META.reset = META.r

-- psql's \p and \w show the buffer as it would be sent: the current one, else the previous.
local function buffer_text(F)
  if F.st.np > 0 then return st_text(F.st) end
  return F.prev and F.prev.text or nil
end

META.p = { fn = function(R, F)
  local t = buffer_text(F)
  if t and t ~= "" then R.out(t .. "\n") end
end }
META.print = META.p

META.w = { filepipe = true, fn = function(R, F, args, _, name)
  local target = require_arg(args)
  local o, err = open_output(R, target, false)
  if not o then error({ plain = "\\" .. name .. ": " .. err }, 0) end
  local t = buffer_text(F)
  if t and t ~= "" then o.write(t .. "\n") end
  local ok, cerr = o.close()
  if not ok then error({ plain = cerr }, 0) end
end }
META.write = META.w

-- ---------------------------------------------------------------- output settings

META.o = { filepipe = true, fn = function(R, _, args)
  local o
  if args[1] then
    local err
    o, err = open_output(R, args[1].text, false)
    if not o then error({ plain = err }, 0) end
    o.redirected = true
  end
  local old = R.qout
  R.qout = o or R.stdout_out
  if old.close then
    local ok, err = old.close()
    if not ok then error({ plain = err }, 0) end
  end
end }
META.out = META.o

META.timing = { fn = function(R, _, args)
  if args[1] then
    local b = M.parse_bool(args[1].text)
    if b == nil then
      plain('unrecognized value "%s" for "\\timing": Boolean expected', args[1].text)
    end
    R.timing = b
  else
    R.timing = not R.timing
  end
end }

local function pset(R, name, value)
  local ok, err = printer.pset(R.popt, name, value)
  if not ok then error({ plain = err }, 0) end
end

META.pset = { fn = function(R, _, args)
  if not args[1] then
    R.out(printer.list(R.popt))
    return
  end
  pset(R, args[1].text, args[2] and args[2].text)
end }

META.a = { fn = function(R)
  pset(R, "format", R.popt.format ~= "aligned" and "aligned" or "unaligned")
end }
META.H = { fn = function(R)
  pset(R, "format", R.popt.format ~= "html" and "html" or "aligned")
end }
META.t = { fn = function(R, _, args) pset(R, "tuples_only", args[1] and args[1].text) end }
META.x = { fn = function(R, _, args) pset(R, "expanded", args[1] and args[1].text) end }
META.f = { fn = function(R, _, args) pset(R, "fieldsep", args[1] and args[1].text) end }
META.C = { fn = function(R, _, args) pset(R, "title", args[1] and args[1].text) end }
META.T = { fn = function(R, _, args) pset(R, "tableattr", args[1] and args[1].text) end }

-- ---------------------------------------------------------------- \copy

META.copy = { whole = true, fn = function(R, F, args, info)
  local opts, perr = require("dbtool.sqlrun.copy").parse(args.text, R.std_strings)
  if not opts then error({ plain = perr }, 0) end
  local how = { info = info }
  local closer
  if opts.from then
    if opts.file then
      local src, err
      if opts.program then
        local proc = require "dbtool.core.proc"
        io.stdout:flush()
        local p, serr = proc.spawn { argv = { "/bin/sh", "-c", opts.file }, stdout = "pipe", cwd = R.cwd }
        if not p then plain('could not execute command "%s": %s', opts.file, serr) end
        src = p.stdout
        closer = function()
          pcall(src.close, src)
          local how2, code = p:wait()
          if how2 ~= "exited" or code ~= 0 then
            return nil, string.format("%s: child process %s %s", opts.file,
              how2 == "exited" and "exited with exit code" or "was terminated by signal", tostring(code))
          end
          return true
        end
      else
        src, err = open_script(fs_path(R, opts.file))
        if not src then
          if tostring(err):find("Is a directory", 1, true) then
            error({ plain = opts.file .. ": cannot copy from/to a directory" }, 0)
          end
          error({ plain = string.format("%s: %s", opts.file, (tostring(err):gsub("^.-: ", ""))) }, 0)
        end
        closer = function() src:close() return true end
      end
      how.copy_in = data_source(R, src, opts.file)
    elseif opts.psql_inout then
      -- psql's own standard input (the script itself when it is read from there)
      if not R.stdin_file and not R.pstdin then R.pstdin = data_source(R, io.stdin, "<stdin>") end
      how.copy_in = R.stdin_file or R.pstdin
    else
      how.copy_stdin = true       -- the lines after this one
    end
  else
    if opts.file then
      local o, err = open_output(R, opts.program and ("|" .. opts.file) or opts.file)
      if not o then
        if tostring(err):find("Is a directory", 1, true) then
          err = opts.file .. ": cannot copy from/to a directory"
        end
        error({ plain = err }, 0)
      end
      how.copy_out = o
      closer = o.close
    elseif opts.psql_inout then
      how.copy_out = { write = R.out }
    else
      how.copy_out = R.qout
    end
  end
  -- the data of `from stdin` starts on the next line
  if not info.cursor.sub then F.pos = info.cursor.pos end
  local st = { generated = { what = "\\copy", line = info.line, col = info.col, text = info.text,
    tcol = info.tcol }, line = info.line, col = info.col, nseg = 0 }
  local ok, err = pcall(execute, R, F, st, opts.query, how)
  if how.copy_stdin and not info.cursor.sub and F.st.np > 0 and not F.st.bad then
    -- a statement pending around \copy goes on with the line after the data (psql adds
    -- the newline when it reads that line)
    st_add(F.st, "\n", (locate(F, F.base + F.pos)), 1)
    F.sc:newline()
  end
  if closer then
    local cok, cerr = closer()
    if ok and not cok then error({ plain = cerr }, 0) end
  end
  if not ok then error(err, 0) end
  if not info.cursor.sub then info.cursor.pos = F.pos end
end }

-- ---------------------------------------------------------------- connections

-- Install conn as the script's connection: notices to the log, psql's connection
-- variables synced again.
local function attach(R, conn)
  R.conn = conn
  conn:on_notice(function(n)
    local level = ({ WARNING = "warn", NOTICE = "info", INFO = "info", LOG = "debug",
      DEBUG = "debug" })[n.severity] or "info"
    local l = R.log[level]
    l(R.log, "%s: %s: %s", R.current() or R.name, n.severity or "NOTICE", n.msg)
    if n.detail then l(R.log, "detail: %s", n.detail) end
    if n.hint then l(R.log, "hint: %s", n.hint) end
  end)
  for name in pairs(AUTO) do
    R.vars[name] = nil
    R.auto_done[name] = nil
  end
  update_std_strings(R)
end

local function connect_cmd(R, F, args, info)
  if not R.allow_connect then
    error(meta_error(R, F, info, "\\connect is not available here: " .. (R.connect_refusal or
      "this script runs on a connection its caller owns"), { hint = "a script that switches databases " ..
      "(pg_dump --create output?): create the database, dump without --create/-C and run the script on " ..
      "that database" }), 0)
  end
  local a = {}
  local k = 1
  local reuse
  if args[1] and not args[1].quoted and args[1].text:find("^%-reuse%-previous=") then
    local v = args[1].text:match("=(.*)$")
    reuse = M.parse_bool(v)
    if reuse == nil then
      plain('unrecognized value "%s" for "-reuse-previous": Boolean expected', v)
    end
    k = 2
  end
  for j = 1, 4 do
    local arg = args[k + j - 1]
    local v = arg and sqlid_hack(arg)
    -- (unquoted - or empty: not given; a quoted "" is an empty value, as in psql)
    if arg and not arg.dquoted and (v == "" or v == "-") then v = nil end
    a[j] = v
  end
  extra_args(R, "connect", args, k + 3)
  local dbname, user, host, port = a[1], a[2], a[3], a[4]
  local has_cs = dbname ~= nil and psql.is_connection_string(dbname)
  if has_cs and (user or host or port) then
    plain("\\connect: Do not give user, host, or port separately when using a connection string")
  end
  if reuse == nil then reuse = not has_cs end
  local params = reuse and R.conn:conninfo() or {}
  local keep_password = true
  if has_cs then
    local pg = require "dbtool.pg"
    local parsed, perr = pg.parse_conninfo(dbname)
    if not parsed then error({ plain = "\\connect: " .. log.redact(tostring(perr)) }, 0) end
    if not reuse then params = {} end
    local have_password = false
    for kw, v in pairs(parsed) do
      if params[kw] ~= v and (kw == "user" or kw == "host" or kw == "hostaddr" or kw == "port") then
        keep_password = false
      end
      if kw == "password" then have_password = true end
      params[kw] = v
    end
    if have_password then keep_password = true end
  else
    local same_host = false
    if user and params.user ~= user then keep_password = false end
    if host then
      if params.host == host then same_host = true else keep_password = false end
    end
    if port and params.port ~= port then keep_password = false end
    if dbname then params.dbname = dbname end
    if user then params.user = user end
    if host then
      params.host = host
      if not same_host then params.hostaddr = nil end
    end
    if port then params.port = port end
  end
  if not keep_password then params.password = nil end
  local ok, conn = pcall(require("dbtool.pg").connect, params, { quiet = true })
  if not ok then
    local e = conn
    local msg = errors.is(e) and e.msg or tostring(e)
    -- psql closes the connection it had and the script ends (exit 2): so does the script here
    local hint = "the rest of the script did not run (psql stops too: it has no connection left)"
    if errors.is(e) and e.hint then hint = e.hint .. "; " .. hint end
    error(meta_error(R, F, info, "\\connect: " .. log.redact(msg), { hint = hint }), 0)
  end
  local old = R.conn
  R.owned[#R.owned + 1] = conn
  attach(R, conn)
  if R.owned_set[old] then
    R.owned_set[old] = nil
    pcall(old.close, old)
  end
  R.owned_set[conn] = true
end
META.c = { fn = connect_cmd }
META.connect = META.c

META.conninfo = { fn = function(R)
  local i = R.conn:info()
  local host = i.host or ""
  if host:sub(1, 1) == "/" then
    R.out(string.format('You are connected to database "%s" as user "%s" via socket in "%s" at port "%s".\n',
      i.db, i.user, host, tostring(i.port)))
  else
    R.out(string.format('You are connected to database "%s" as user "%s" on host "%s" at port "%s".\n',
      i.db, i.user, host, tostring(i.port)))
  end
end }

META.encoding = { fn = function(R, _, args)
  if not args[1] then
    R.out((R.conn:parameter_status("client_encoding") or "") .. "\n")
    return
  end
  local ok = pcall(R.conn.exec, R.conn, "set client_encoding to " .. R.conn:escape_literal(args[1].text))
  if not ok then
    plain("%s: invalid encoding name or conversion procedure not found", args[1].text)
  end
  update_std_strings(R)
  R.vars.ENCODING = R.conn:parameter_status("client_encoding")
end }

META["!"] = { whole = true, fn = function(R, _, args)
  local proc = require "dbtool.core.proc"
  if not args.text then error({ plain = "\\!: an interactive shell cannot run in a script" }, 0) end
  io.stdout:flush()
  local p, err = proc.spawn { argv = { "/bin/sh", "-c", args.text }, cwd = R.cwd }
  if not p then error({ plain = "\\!: " .. tostring(err) }, 0) end
  local how, code = p:wait()
  if how ~= "exited" or code ~= 0 then
    error({ plain = string.format("\\!: command failed (%s %s)", tostring(how), tostring(code)) }, 0)
  end
end }

-- ---------------------------------------------------------------- scanning

-- Add C.buf[sp .. cut-1] to F's statement (when it has begun and the branch is active).
-- A NUL byte there is reported (psql would cut the line at it) and the statement is never
-- sent; its text is no longer kept.
local function add(R, F, C, sp, cut, start, act)
  if start ~= false and act and cut > sp then
    if F.st.bad then return end
    local line, col
    if C.sub then line, col = C.line, C.col else line, col = locate(F, C.base + sp) end
    local piece = C.buf:sub(sp, cut - 1)
    local z = piece:find("\0", 1, true)
    if z then
      local zl, zc, text = line, col, nil
      if not C.sub then
        zl, zc = locate(F, C.base + sp + z - 1)
        text = line_text(F, C.base + sp + z - 1)
      end
      st_clear(F.st)
      -- (a bad statement keeps a placeholder so that it still ends at its ';')
      st_add(F.st, " ", zl, zc)
      F.st.bad = true
      fail(R, meta_error(R, F, { line = zl, col = zc, text = text, tcol = zc },
        "NUL byte (\\0) in the statement: it is not sent",
        { hint = "PostgreSQL text cannot hold NUL bytes (psql would cut the line there and join the next " ..
          "one to it): is the script a binary file?" }))
      return
    end
    st_add(F.st, piece, line, col, C.sub)
  end
end

local function position(F, C, p)
  if C.sub then return C.line, C.col end
  return locate(F, C.base + p)
end

-- Scan cursor C (the buffer of file F, or a variable's value or the rest of a line: C.sub)
-- with F's scanner, accumulating F's statement and running statements and meta-commands.
function run_cursor(R, F, C)
  local sc = F.sc
  local sp = C.pos          -- start of the statement text not yet added
  while not F.quit do
    if F.std_strings ~= R.std_strings then   -- changed by a statement (of any file)
      F.std_strings = R.std_strings
      sc:set_std_strings(F.std_strings)
    end
    local kind, p, q, start, name, vkind = sc:scan(C.buf, C.pos, C.eof)
    local act = active(F)
    if F.st.np > 0 then
      -- a statement is pending (a ';' in a skipped \if branch ended only the scanner's):
      -- it goes on, with the text since its last part
      start = true
    elseif start ~= true then
      if start == false then sp = p else sp = start end
    end
    if kind == "semi" then
      add(R, F, C, sp, p + 1, start, act)
      C.pos = p + 1
      -- (in a skipped branch a ';' leaves the pending statement alone, as in psql)
      if act then finish_statement(R, F) end
      sp = C.pos            -- (COPY FROM STDIN moves the position of the file)
    elseif kind == "blank" then
      -- an empty line: psql skips it (not in a variable's value, which is no line)
      C.pos = p + 1
      if not C.sub then
        add(R, F, C, sp, p, start, act)
        sp = C.pos
      end
    elseif kind == "var" then
      local v = false
      if act then
        local ok, val = pcall(var_value, R, name, vkind)
        if ok then
          v = val
        else   -- a value libpq cannot quote (not valid in the client encoding): left as written
          local line, col = position(F, C, p)
          fail(R, meta_error(R, F, { line = line, col = col, tcol = col,
            text = not C.sub and line_text(F, C.base + p) or nil },
            string.format("cannot quote the value of %s: %s", C.buf:sub(p, q),
              errors.is(val) and val.msg or tostring(val))))
        end
      end
      C.pos = q + 1
      if v then
        add(R, F, C, sp, p, start, act)
        local line, col = position(F, C, p)
        if vkind == "plain" then
          -- the value is lexed in turn (it may hold quotes, ';' or meta-commands), but a
          -- variable is not expanded inside its own value
          R.expanding = R.expanding or {}
          if R.expanding[name] then
            st_add(F.st, C.buf:sub(p, q), line, col, true)
          else
            R.expanding[name] = true
            local ok, err = pcall(run_cursor, R, F, { buf = v, pos = 1, eof = true, sub = true,
              line = line, col = col })
            R.expanding[name] = nil
            if not ok then error(err, 0) end
          end
        else
          st_add(F.st, v, line, col, true)
        end
        sp = C.pos
      end
    elseif kind == "esc" then
      add(R, F, C, sp, p, start, act)
      if act then
        local line, col = position(F, C, p)
        st_add(F.st, C.buf:sub(p + 1, p + 1), line, col, C.sub)
      end
      C.pos, sp = p + 2, p + 2
    elseif kind == "meta" then
      add(R, F, C, sp, p, start, act)
      if not C.sub and not C.eof and not C.buf:find("\n", p, true) then
        refill(C, p)        -- the whole line is needed
      else
        if act and not C.sub and F.st.np > 0 and not F.st.bad then
          -- a meta-command at the start of its line: psql leaves the line out of the query
          -- buffer, and the newline before it too
          local _, col = locate(F, C.base + p)
          if col == 1 then st_trim_nl(F.st) end
        end
        C.pos = run_meta(R, F, C, p)
      end
      sp = C.pos
    elseif kind == "more" then
      add(R, F, C, sp, p, start, act)
      refill(C, p)
      sp = C.pos
    else -- "eof": the end of this buffer
      add(R, F, C, sp, p, start, act)
      if C.sub or C.eof then return end
      refill(C, p)
      sp = C.pos
    end
  end
end

function run_file(R, path, text, opened, limit)
  local F
  if text then
    F = make_file(R, path, nil, R.cwd)
    F.buf = text
    F.eof = true
    if #text > R.stats.buffer_peak then R.stats.buffer_peak = #text end
  elseif path == "-" then
    F = make_file(R, "<stdin>", io.stdin, R.cwd)
    F.keep_open = true
    R.stdin_file = F
  else
    local f, err = opened, nil
    if not f then f, err = open_script(fs_path(R, path)) end
    if not f then
      errors.raise(errors.GENERIC, string.format("could not read %s: %s", path,
        (tostring(err):gsub("^.*: ", ""))), { hint = "check the path (relative paths start at " ..
        (R.cwd or "the current directory") .. ")" })
    end
    F = make_file(R, path, f, dirname(path))
  end
  F.limit, F.read_total = limit, 0
  -- the file is closed however this ends (to-be-closed: no pcall, no C stack per include)
  local _ <close> = setmetatable({}, { __close = function()
    if F.f and not F.keep_open then F.f:close() end
    if R.stdin_file == F then R.stdin_file = nil end
  end })
  if F.f and #F.buf == 0 then refill(F, 1) end
  if F.f then
    if F.buf:sub(1, 5) == "PGDMP" then
      errors.raise(errors.MISSING, F.name .. " is a PostgreSQL custom-format dump, not a psql script",
        { where = F.name .. ":1:1", file = F.name, line = 1, includes = copy_chain(R.chain),
          hint = "restore it with pg_restore (psql refuses it too)" })
    end
    -- a UTF-8 byte-order mark is no text (psql drops it when the client encoding is UTF8)
    if F.buf:sub(1, 3) == "\239\187\191" and R.conn:parameter_status("client_encoding") == "UTF8" then
      F.buf = F.buf:sub(4)
    end
  end
  R.stats.files = R.stats.files + 1
  run_cursor(R, F, F)
  -- end of file: an unterminated last statement runs, unless the file ends in an inactive
  -- \if branch (psql then drops it); then an \if left open is an error (not after \q)
  if F.st.np > 0 then
    if active(F) then
      st_trim_nl(F.st)
      finish_statement(R, F)
    else
      st_clear(F.st)
    end
  end
  if #F.cond > 0 and not F.quit then
    local top = F.cond[#F.cond]
    fail(R, meta_error(R, F, { line = top.line, col = 1 }, "reached EOF without finding closing \\endif(s)"))
  end
  if F.quit and #R.chain == 0 then R.quit = true end
end

-- ---------------------------------------------------------------- entry points

local function run(conn, opts, path, text)
  opts = opts or {}
  local t0 = core.now()
  local out = writer(opts.output or opts.echo)
  local R = {
    name = path or "sql",
    vars = {},
    auto_done = {},
    chain = {},
    cwd = opts.cwd,
    log = opts.log or log.ns("sql"),
    out = out,
    warn = writer(opts.warn or function(s)
      io.stdout:flush()   -- \warn after \echo stays after it when both go to one pipe
      io.stderr:write(s)
    end),
    print_results = opts.print_results,
    popt = printer.defaults(),
    on_result = opts.on_result,
    on_statement = opts.on_statement,
    allow_connect = opts.connect and not opts.single_transaction,
    connect_refusal = opts.single_transaction and "the script runs in one transaction (-1) on one connection"
      or nil,
    owned = {},
    owned_set = {},
    stats = { statements = 0, errors = 0, files = 0, buffer_peak = 0 },
  }
  R.stdout_out = { write = out }
  -- "file:line" of the statement running (for notices and callbacks)
  function R.current()
    return R.cur_file and (R.cur_file .. ":" .. R.cur_line) or nil
  end
  R.qout = R.stdout_out
  attach(R, conn)
  local stop_default = opts.on_error_stop ~= false
  R.vars.ON_ERROR_STOP = stop_default and "on" or "off"
  R.vars.AUTOCOMMIT, R.vars.ON_ERROR_ROLLBACK = "on", "off"
  R.autocommit, R.error_rollback = true, false
  R.vars.LAST_ERROR_MESSAGE, R.vars.LAST_ERROR_SQLSTATE = "", "00000"
  for k, v in pairs(opts.vars or {}) do
    if type(v) == "boolean" then v = v and "on" or "off" end
    local ok, err = setvar(R, tostring(k), tostring(v))
    if not ok then errors.raise(errors.NOT_FOUND, err) end
  end
  function R.stop_on_error()
    local v = R.vars.ON_ERROR_STOP
    if v == nil then return stop_default end
    local b = M.parse_bool(v)
    if b == nil then return stop_default end
    return b
  end
  local began = false
  if opts.single_transaction and conn:transaction_status() == "idle" then
    conn:exec("BEGIN")
    began = true
  end
  local ok, err = errors.try(run_file, R, path, text)
  R.cur_file = nil          -- notices of the COMMIT below belong to no statement
  if R.qout.close then
    local cok, cerr = R.qout.close()
    if ok and not cok then ok, err = false, errors.new(errors.GENERIC, cerr) end
    R.qout = R.stdout_out
  end
  if ok and began then
    local res
    ok, res = errors.try(conn.exec, conn, "COMMIT")
    if ok and res and res.command == "ROLLBACK" then
      R.stats.rolled_back = true
      R.log:warn("the transaction was rolled back (a statement failed)")
    elseif not ok then
      err = res
    end
    began = false
  end
  if not ok and began and not conn:closed() and conn:transaction_status() ~= "idle" then
    pcall(conn.exec, conn, "ROLLBACK")
    R.stats.rolled_back = true
  end
  -- connections opened by \c are ours: closed (a transaction left open there is lost, as
  -- when psql exits)
  for _, c in ipairs(R.owned) do
    if not c:closed() then
      if c:transaction_status() ~= "idle" and c:transaction_status() ~= "unknown" then
        R.log:warn("the script ended inside a transaction block: it is rolled back (as when psql exits)")
      end
      pcall(c.close, c)
    end
  end
  if not conn:closed() then
    local ts = conn:transaction_status()
    R.stats.open_transaction = ts == "intrans" or ts == "inerror"
    pcall(function() require("dbtool.pg").log_notices(conn, R.log) end)
  end
  R.stats.quit = R.quit or nil
  R.stats.time = core.now() - t0
  if not ok then
    if type(err) == "string" or (errors.is(err) and err.bug and not err.where) then
      if type(err) == "string" then err = errors.new(errors.GENERIC, err) end
    end
    error(err, 0)
  end
  return R.stats
end

--- Run the psql script at `path` on `conn`. See the top of this file for opts.
function M.file(conn, path, opts)
  return run(conn, opts, path, nil)
end

--- Run psql script text on `conn`; opts.name names it in messages (default "<string>").
function M.string(conn, text, opts)
  opts = opts or {}
  return run(conn, opts, opts.name or "<string>", text)
end

return M
