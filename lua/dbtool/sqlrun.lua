-- Run psql scripts over one libpq connection, as `psql -X -v ON_ERROR_STOP=1 -f FILE` would:
-- statements go one at a time through the simple query protocol; the meta-commands
-- projects use are interpreted here (\i \ir \include \include_relative \set \unset \echo
-- \qecho \warn \if \elif \else \endif \restrict \unrestrict); :name, :'name', :"name" and
-- :{?name} are interpolated (psql's DBNAME USER HOST PORT ENCODING SERVER_VERSION_NAME
-- SERVER_VERSION_NUM, and after each statement ERROR SQLSTATE ROW_COUNT LAST_ERROR_MESSAGE
-- LAST_ERROR_SQLSTATE are defined); inline COPY data (pg_dump output) is streamed. Input is read
-- in chunks, so memory does not depend on the size of the file (only on its largest
-- statement). The lexing is done by dbtool.core.sqlscan (C).
--
--   sqlrun.file(conn, path, opts)  → summary
--   sqlrun.string(conn, text, opts) → summary
--
-- opts: vars (table name → value), single_transaction (bool), on_error_stop (default true;
-- a script's own `\set ON_ERROR_STOP` wins), output (file handle or function(s): \echo,
-- \qecho, COPY TO STDOUT data, printed results), print_results (bool), on_result
-- (function(res, info)), on_statement (function(text, where) → the text to send instead, or
-- nil to send it as is), log (a dbtool.log logger), cwd (base of relative paths and \i),
-- name (display name of a string script).
-- summary: {statements =, errors =, files =, time =, rolled_back = bool, buffer_peak = the
-- largest input buffer held, in bytes (about 2 × CHUNK, or the longest statement line)}.
-- SQL and meta-command errors raise dbtool.errors values (exit 1) with where =
-- "file:line:col", excerpt (statement lines with a caret, the include chain), sqlstate,
-- detail, hint, context, includes = {{file =, line =, command =}, ...}.
local sqlscan = require "dbtool.core.sqlscan"
local core = require "dbtool.core"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

M.CHUNK = 256 * 1024
M.MAX_DEPTH = 64

local newlines = sqlscan.newlines
local copy_scan = sqlscan.copy_scan
local concat = table.concat

local BOOL = {}
for _, w in ipairs { "true", "yes", "on", "1" } do BOOL[w] = true end
for _, w in ipairs { "false", "no", "off", "0" } do BOOL[w] = false end

--- psql's ParseVariableBool: true/false/yes/no (and unique prefixes), on/off, 1/0.
function M.parse_bool(s)
  if type(s) ~= "string" then return nil end
  local v = s:lower()
  if BOOL[v] ~= nil then return BOOL[v] end
  if #v == 0 then return nil end
  for _, w in ipairs { "true", "false", "yes", "no" } do
    if w:sub(1, #v) == v then return BOOL[w] end
  end
  if #v >= 2 then
    if ("off"):sub(1, #v) == v then return false end
  end
  return nil
end

--- Is `name` a psql variable name (letters, digits, _, non-ASCII bytes)?
local function valid_var_name(name)
  return name ~= "" and not name:find("[^%w_\128-\255]")
end
M.valid_var_name = valid_var_name

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

-- The text of the line of F holding absolute position abs (when still buffered).
local function line_text(F, abs)
  local i = abs - F.base
  if i < 1 or i > #F.buf + 1 then return nil end
  local s = i
  while s > 1 and F.buf:byte(s - 1) ~= 10 do s = s - 1 end
  local e = F.buf:find("\n", i, true)
  local t = F.buf:sub(s, (e or #F.buf + 1) - 1)
  return (t:gsub("\r$", ""))
end

local function where_of(F, line, col)
  return string.format("%s:%d:%d", F.name, line, col)
end

-- "  12 | text" lines; caret under character `col` of the last line shown (tabs kept, wide
-- characters counted as the two columns a terminal shows them in).
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

local function chain_lines(chain)
  local out = {}
  for k = #chain, 1, -1 do
    local fr = chain[k]
    out[#out + 1] = string.format("  in %s:%d (%s)", fr.file, fr.line, fr.command)
  end
  return out
end

local function copy_chain(chain)
  local c = {}
  for k, fr in ipairs(chain) do c[k] = { file = fr.file, line = fr.line, command = fr.command } end
  return c
end

-- ---------------------------------------------------------------- errors

-- A meta-command (or file-level) error at a line of F.
local function meta_error(R, F, info, msg, fields)
  fields = fields or {}
  fields.where = where_of(F, info.line, info.col)
  if info.text then
    local w = #tostring(info.line)
    local lines = { string.format("%" .. w .. "d | %s", info.line, info.text),
      caret_line(w, info.text, info.tcol or 1) }
    for _, l in ipairs(chain_lines(R.chain)) do lines[#lines + 1] = l end
    fields.excerpt = concat(lines, "\n")
  elseif #R.chain > 0 then
    fields.excerpt = concat(chain_lines(R.chain), "\n")
  end
  fields.includes = copy_chain(R.chain)
  fields.file, fields.line = F.name, info.line
  return errors.new(errors.GENERIC, msg, fields)
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

-- Excerpt of statement text around byte offset b: up to 2 lines before, the caret line.
local function statement_excerpt(st, text, b)
  local ls = b
  while ls > 1 and text:byte(ls - 1) ~= 10 do ls = ls - 1 end
  local starts = { ls }
  local s = ls
  for _ = 1, 2 do
    if s <= 1 then break end
    local p = s - 1
    while p > 1 and text:byte(p - 1) ~= 10 do p = p - 1 end
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
  for _, x in ipairs(shown) do
    out[#out + 1] = string.format("%" .. width .. "d | %s", x.ln, x.t)
  end
  local col = (utf8.len(text, ls, b - 1) or (b - ls)) + 1
  out[#out + 1] = caret_line(width, shown[#shown].t, col)
  return concat(out, "\n")
end

local DIAG = { "severity", "sqlstate", "detail", "hint", "context", "position", "internal_position",
  "internal_query", "schema", "table", "column", "datatype", "constraint" }

local function sql_error(R, F, st, text, perr)
  local fields = {}
  if type(perr) ~= "table" then perr = { msg = tostring(perr) } end
  for _, k in ipairs(DIAG) do fields[k] = perr[k] end
  local b = #text > 0 and 1 or 0
  local pos = tonumber(perr.position)
  if pos and pos >= 1 and #text > 0 then
    b = utf8.offset(text, pos) or pos
    if b > #text then b = #text end
    while b > 1 and text:byte(b) and text:byte(b) >= 0x80 and text:byte(b) < 0xC0 do b = b - 1 end
  end
  local line, col
  local copy_line = R.copy_line and perr.context and tonumber(perr.context:match("^COPY [^\n]-, line (%d+)"))
  if copy_line then
    line, col = R.copy_line + copy_line - 1, 1
    b = 0
  elseif b >= 1 then
    line, col = map_offset(st, text, b)
  else
    line, col = st.line or F.line, st.col or 1
  end
  fields.where = where_of(F, line, col)
  fields.file, fields.line, fields.col = F.name, line, col
  local ex = {}
  if b >= 1 then ex[1] = statement_excerpt(st, text, b) end
  if perr.context then ex[#ex + 1] = "  context: " .. perr.context:gsub("\n", "\n  ") end
  for _, l in ipairs(chain_lines(R.chain)) do ex[#ex + 1] = l end
  if #ex > 0 then fields.excerpt = concat(ex, "\n") end
  fields.includes = copy_chain(R.chain)
  fields.statement = #text > 4096 and (text:sub(1, 4096) .. "…") or text
  fields.message = perr.msg
  local msg = perr.msg or "error"
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

local function print_result(R, res)
  local fields = res.fields
  if not fields or #fields == 0 then return end
  local out = { concat(fields, "\t") }
  for i = 1, res.n or #res do
    local row, cells = res[i], {}
    for k = 1, #fields do
      local v = row[k]
      cells[k] = v == nil and "" or tostring(v)
    end
    out[#out + 1] = concat(cells, "\t")
  end
  local n = res.n or #res
  out[#out + 1] = string.format("(%d row%s)", n, n == 1 and "" or "s")
  R.write(concat(out, "\n") .. "\n")
end

-- ---------------------------------------------------------------- statements

local function new_statement()
  return { parts = {}, np = 0, len = 0, seg_off = {}, seg_line = {}, seg_col = {}, seg_var = {},
    nseg = 0, begun = false }
end

local function st_clear(st)
  for i = st.np, 1, -1 do st.parts[i] = nil end
  st.np, st.len, st.nseg, st.begun = 0, 0, 0, false
  st.line, st.col = nil, nil
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

-- Open a script for reading; a directory (which io.open accepts) is an error here.
local function open_script(p)
  local f, err = io.open(p, "rb")
  if not f then return nil, err end
  local probe, rerr = f:read(0)
  if probe == nil and rerr then
    f:close()
    return nil, rerr
  end
  return f
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
-- line or an unquoted backslash. Returns args ({text =, quoted =}...), the index where the
-- command ends (after a `\\` separator), or raises a message string.
local function lex_args(R, line, i, active)
  local args = {}
  local n = #line
  while true do
    local s = line:find("[^ \t\n\r\f\v]", i)
    if not s then i = n + 1 break end
    i = s
    if line:byte(i) == 92 then break end   -- backslash: end of arguments
    local buf, quoted = {}, false
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
        quoted = true
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
    args[#args + 1] = { text = concat(buf), quoted = quoted }
  end
  if line:sub(i, i + 1) == "\\\\" then i = i + 2 end
  return args, i
end

-- ---------------------------------------------------------------- conditionals

local function active(F)
  local top = F.cond[#F.cond]
  return top == nil or top.state == "true"
end

-- ---------------------------------------------------------------- running

local run_cursor, run_file

-- COPY … FROM STDIN: the data is the lines of file F after the line of the statement, up
-- to a line `\.`. The rest of the statement's line is run afterwards (as psql does).
local function copy_in(R, F)
  local conn = R.conn
  local nl
  while true do
    nl = F.buf:find("\n", F.pos, true)
    if nl or F.eof then break end
    refill(F, F.pos)
  end
  local rest = F.buf:sub(F.pos, nl or #F.buf)
  local rline, rcol = locate(F, F.base + F.pos)
  F.pos = (nl or #F.buf) + 1
  R.copy_line = locate(F, F.base + F.pos)
  local ok, err = pcall(function()
    local midline = false   -- F.pos is inside a data line already partly sent
    while true do
      if midline then
        local e = F.buf:find("\n", F.pos, true) or #F.buf
        if e >= F.pos then conn:put_copy_data(F.buf:sub(F.pos, e)) end
        midline = F.buf:byte(e) ~= 10
        F.pos = e + 1
      end
      if not midline then
        local found, dend, resume = copy_scan(F.buf, F.pos, F.eof)
        if dend >= F.pos then conn:put_copy_data(F.buf:sub(F.pos, dend)) end
        F.pos = resume
        if found then break end
        -- what is left is the start of a line: send it now unless it may be the end marker
        -- (`\.`, `\.\r`), so that a long line does not pile up in the buffer
        if F.pos <= #F.buf and (#F.buf - F.pos >= 3 or F.buf:byte(F.pos) ~= 92) then
          conn:put_copy_data(F.buf:sub(F.pos))
          F.pos = #F.buf + 1
          midline = true
        end
      end
      if F.eof then break end
      refill(F, F.pos)
    end
  end)
  if not ok then
    pcall(conn.put_copy_end, conn, "aborted by db-tool")
    error(err, 0)
  end
  conn:put_copy_end()
  if rest:find("%S") then
    return { buf = rest, pos = 1, eof = true, sub = true, line = rline, col = rcol }
  end
end

-- standard_conforming_strings as the server reports it (ParameterStatus, as psql reads it):
-- SET, set_config(), RESET, a rolled-back SET LOCAL all change how backslashes in '' lex.
local function update_std_strings(R)
  local v = R.conn:parameter_status("standard_conforming_strings")
  if v then R.std_strings = v ~= "off" end
end

-- Send one statement (text) and drain its results.
local function execute(R, F, st, text)
  local conn = R.conn
  R.stats.statements = R.stats.statements + 1
  R.current = F.name .. ":" .. tostring(st.line or F.line)
  R.copy_line = nil
  local perr, rest, last
  if R.on_statement then text = R.on_statement(text, R.current) or text end
  conn:send_query(text)
  while true do
    local res = conn:get_result()
    if res == nil then break end
    local status = res.status
    if status == "COPY_IN" then
      local okc, rc = pcall(copy_in, R, F)
      if not okc and conn:status() == "bad" then -- the server went away while we sent the data
        local e = sql_error(R, F, st, text, rc)
        e.hint = "the connection to the server was lost during COPY: the rest of the script did not run"
        error(e, 0)
      elseif not okc then
        error(rc, 0)
      end
      rest = rc or rest
    elseif status == "COPY_OUT" then
      while true do
        local chunk = conn:get_copy_data()
        if chunk == nil then break end
        R.write(chunk)
      end
    elseif status == "FATAL_ERROR" or status == "BAD_RESPONSE" then
      perr = perr or res.error or { msg = "query failed" }
    else
      last = res
      if R.on_result then R.on_result(res, { where = R.current, statement = text }) end
      if R.print_results then print_result(R, res) end
    end
  end
  update_std_strings(R)
  -- psql's result variables (\if :ERROR ... with ON_ERROR_STOP off)
  local vars = R.vars
  if perr then
    vars.ERROR, vars.ROW_COUNT = "true", "0"
    vars.SQLSTATE = perr.sqlstate or ""
    vars.LAST_ERROR_SQLSTATE, vars.LAST_ERROR_MESSAGE = vars.SQLSTATE, perr.msg or ""
    local e = sql_error(R, F, st, text, perr)
    if conn:status() == "bad" then   -- no going on without a connection (psql stops too)
      e.hint = e.hint or "the connection to the server was lost: the rest of the script did not run"
      error(e, 0)
    end
    fail(R, e)
  else
    vars.ERROR, vars.SQLSTATE = "false", "00000"
    local n = last and last.affected
    vars.ROW_COUNT = n and tostring(n) or "0"
  end
  -- what followed the COPY statement on its line
  if rest then run_cursor(R, F, rest) end
end

-- The statement of F is complete: run it (unless in an inactive branch or empty).
local function finish_statement(R, F)
  local st = F.st
  if st.np == 0 then
    st_clear(st)
    return
  end
  local text = st_text(st)
  if text == ";" or not text:find("%S") then   -- (e.g. the blank lines after a skipped branch)
    st_clear(st)
    return
  end
  -- two statement objects take turns (a statement run while this one executes, e.g. from
  -- the rest of a COPY line, gets a new one)
  F.st = F.spare or new_statement()
  F.spare = nil
  execute(R, F, st, text)
  st_clear(st)
  F.spare = st
end

local META = {}

-- psql meta-commands we do not run (a clearer message than "invalid command")
local PSQL_COMMANDS = {}
for w in ([[a bind c cd connect conninfo copy copyright crosstabview d da dA dAc dAf dAo dAp db dc
  dC dd dD ddp dE di dm ds dt dv des det deu dew df dF dFd dFp dFt dg dl dL dn do dO dp dP drds
  dRp dRs dT du dx dX dy e edit ef encoding errverbose ev f g gdesc getenv gexec gset gx h help
  H html ir l lo_export lo_import lo_list lo_unlink o out p password print prompt pset q qecho
  quit r reset s setenv sf sv t T timing w watch write x z ! ?]]):gmatch("%S+") do
  PSQL_COMMANDS[w] = true
end

-- what to do instead, for the unsupported commands scripts commonly hold
local META_HINT = {
  connect = "the script switches databases (pg_dump --create output?): create the database, " ..
    "dump without --create/-C and run the script on that database (-u URL)",
  copy = "use COPY … FROM stdin with the data inline (as pg_dump writes it), or COPY … FROM 'file' " ..
    "on the server",
}
META_HINT.c = META_HINT.connect

local function meta_info(F, C, p)
  if C.sub then return { line = C.line, col = C.col } end
  local line, col = locate(F, C.base + p)
  return { line = line, col = col, text = line_text(F, C.base + p), tcol = col }
end

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
  if R.restricted and name ~= "unrestrict" then
    if not is_active then return e end
    fail(R, meta_error(R, F, info, "backslash commands are restricted; only \\unrestrict is allowed"))
    return e
  end
  if not h and is_active then
    -- nothing on the line is evaluated (no `backquotes`, no variables)
    local msg = "invalid command \\" .. name
    if PSQL_COMMANDS[name] then
      msg = "\\" .. name .. " is a psql meta-command that db-tool does not run"
    end
    fail(R, meta_error(R, F, info, msg, { hint = META_HINT[name] or
      ("db-tool runs psql scripts with these meta-commands: " ..
      "\\i \\ir \\include \\include_relative \\set \\unset \\echo \\qecho \\warn \\if \\elif \\else " ..
      "\\endif \\restrict \\unrestrict") }))
    return e
  end
  -- (while restricted, \\unrestrict's key is taken as written: no backquotes, no variables)
  local ok, args, stop = pcall(lex_args, R, line, name_end, is_active and not R.restricted)
  if not ok then
    fail(R, meta_error(R, F, info, "\\" .. name .. ": " .. tostring(args)))
    return e
  end
  local resume = p + stop - 1
  if not is_active and not (h and h.cond) then return resume end
  local okh, err = pcall(h.fn, R, F, args, info, name, line)
  if not okh then
    if errors.is(err) then error(err, 0) end
    if type(err) == "table" and err.plain then
      fail(R, meta_error(R, F, info, err.plain))
    else
      fail(R, meta_error(R, F, info, "\\" .. name .. ": " .. tostring(err)))
    end
    return e
  end
  return resume
end

local function require_arg(args, n)
  if not args[n or 1] then error("missing required argument", 0) end
  return args[n or 1].text
end

local function include(R, F, args, info, name, line)
  local arg = expand_tilde(require_arg(args))
  local relative = name == "ir" or name == "include_relative"
  local path = arg
  if relative then path = join(F.dir, arg) end
  if #R.chain >= M.MAX_DEPTH then
    error(string.format("too many nested includes (more than %d): is a file including itself?",
      M.MAX_DEPTH), 0)
  end
  local f, err = open_script(fs_path(R, path))
  if not f then error(string.format("could not read %s: %s", path, (tostring(err):gsub("^.*: ", ""))), 0) end
  local cmd = line:gsub("%s+$", "")
  R.chain[#R.chain + 1] = { file = F.name, line = info.line, command = cmd }
  run_file(R, path, nil, f)
  R.chain[#R.chain] = nil
end
META.i = { fn = include }
META.include = META.i
META.ir = META.i
META.include_relative = META.i

META.set = { fn = function(R, _, args)
  if #args == 0 then
    local names = {}
    for k in pairs(R.vars) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do R.write(string.format("%s = '%s'\n", k, R.vars[k])) end
    return
  end
  local name = args[1].text
  if not valid_var_name(name) then error("invalid variable name: \"" .. name .. "\"", 0) end
  local parts = {}
  for k = 2, #args do parts[#parts + 1] = args[k].text end
  local value = concat(parts)
  if name == "ON_ERROR_STOP" and value == "" then value = "on" end
  if name == "ON_ERROR_STOP" and M.parse_bool(value) == nil then
    error(string.format('unrecognized value "%s" for "ON_ERROR_STOP": Boolean expected', value), 0)
  end
  R.vars[name] = value
end }

META.unset = { fn = function(R, _, args)
  local name = require_arg(args)
  if not valid_var_name(name) then error("invalid variable name: \"" .. name .. "\"", 0) end
  R.vars[name] = nil
  R.auto_done[name] = true
  if name == "ON_ERROR_STOP" then R.vars[name] = "off" end
end }

local function echo_text(args)
  local parts, nl = {}, true
  for k, a in ipairs(args) do
    if k == 1 and a.text == "-n" and not a.quoted then nl = false
    else parts[#parts + 1] = a.text end
  end
  return concat(parts, " ") .. (nl and "\n" or "")
end
META.echo = { fn = function(R, _, args) R.write(echo_text(args)) end }
META.qecho = META.echo
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

-- Scan cursor C (a buffer of file F, or a variable's value / rest of a line: C.sub) with F's
-- scanner, accumulating F's statement and running statements and meta-commands.
-- Add C.buf[sp .. cut-1] to F's statement (when it has begun and the branch is active).
local function add(F, C, sp, cut, start, act)
  if start ~= false and act and cut > sp then
    local line, col
    if C.sub then line, col = C.line, C.col else line, col = locate(F, C.base + sp) end
    st_add(F.st, C.buf:sub(sp, cut - 1), line, col, C.sub)
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
  while true do
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
      add(F, C, sp, p + 1, start, act)
      C.pos = p + 1
      -- (in a skipped branch a ';' leaves the pending statement alone, as in psql)
      if act then finish_statement(R, F) end
      sp = C.pos            -- (COPY FROM STDIN moves the position of the file)
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
        add(F, C, sp, p, start, act)
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
      add(F, C, sp, p, start, act)
      if act then
        local line, col = position(F, C, p)
        st_add(F.st, C.buf:sub(p + 1, p + 1), line, col, C.sub)
      end
      C.pos, sp = p + 2, p + 2
    elseif kind == "meta" then
      add(F, C, sp, p, start, act)
      if not C.sub and not C.eof and not C.buf:find("\n", p, true) then
        refill(C, p)        -- the whole line is needed
      else
        C.pos = run_meta(R, F, C, p)
      end
      sp = C.pos
    elseif kind == "more" then
      add(F, C, sp, p, start, act)
      refill(C, p)
      sp = C.pos
    else -- "eof": the end of this buffer
      add(F, C, sp, p, start, act)
      if C.sub or C.eof then return end
      refill(C, p)
      sp = C.pos
    end
  end
end

function run_file(R, path, text, opened)
  local F
  if text then
    F = make_file(R, path, nil, R.cwd)
    F.buf = text
    F.eof = true
    if #text > R.stats.buffer_peak then R.stats.buffer_peak = #text end
  elseif path == "-" then
    F = make_file(R, "<stdin>", io.stdin, R.cwd)
    F.keep_open = true
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
  -- the file is closed however this ends (to-be-closed: no pcall, no C stack per include)
  local _ <close> = setmetatable({}, { __close = function()
    if F.f and not F.keep_open then F.f:close() end
  end })
  if F.f and #F.buf == 0 then refill(F, 1) end
  R.stats.files = R.stats.files + 1
  run_cursor(R, F, F)
  -- end of file: an unterminated last statement runs, unless the file ends in an inactive
  -- \if branch (psql then drops it); then an \if left open is an error
  if F.st.np > 0 then
    if active(F) then finish_statement(R, F) else st_clear(F.st) end
  end
  if #F.cond > 0 then
    local top = F.cond[#F.cond]
    fail(R, meta_error(R, F, { line = top.line, col = 1 }, "reached EOF without finding closing \\endif(s)"))
  end
end

-- ---------------------------------------------------------------- entry points

local function run(conn, opts, path, text)
  opts = opts or {}
  local t0 = core.now()
  local R = {
    conn = conn,
    vars = {},
    auto_done = {},
    chain = {},
    cwd = opts.cwd,
    log = opts.log or log.ns("sql"),
    write = writer(opts.output or opts.echo),
    warn = writer(opts.warn or function(s)
      io.stdout:flush()   -- \warn after \echo stays after it when both go to one pipe
      io.stderr:write(s)
    end),
    print_results = opts.print_results,
    on_result = opts.on_result,
    on_statement = opts.on_statement,
    std_strings = conn:parameter_status("standard_conforming_strings") ~= "off",
    stats = { statements = 0, errors = 0, files = 0, buffer_peak = 0 },
  }
  local stop_default = opts.on_error_stop ~= false
  R.vars.ON_ERROR_STOP = stop_default and "on" or "off"
  R.vars.LAST_ERROR_MESSAGE, R.vars.LAST_ERROR_SQLSTATE = "", "00000"
  for k, v in pairs(opts.vars or {}) do
    if type(v) == "boolean" then v = v and "on" or "off" end
    R.vars[tostring(k)] = tostring(v)
  end
  function R.stop_on_error()
    local v = R.vars.ON_ERROR_STOP
    if v == nil then return stop_default end
    local b = M.parse_bool(v)
    if b == nil then return stop_default end
    return b
  end
  conn:on_notice(function(n)
    local level = ({ WARNING = "warn", NOTICE = "info", INFO = "info", LOG = "debug",
      DEBUG = "debug" })[n.severity] or "info"
    local l = R.log[level]
    l(R.log, "%s: %s: %s", R.current or (path or "sql"), n.severity or "NOTICE", n.msg)
    if n.detail then l(R.log, "detail: %s", n.detail) end
    if n.hint then l(R.log, "hint: %s", n.hint) end
  end)
  local began = false
  if opts.single_transaction and conn:transaction_status() == "idle" then
    conn:exec("BEGIN")
    began = true
  end
  local ok, err = errors.try(run_file, R, path, text)
  R.current = nil           -- notices of the COMMIT below belong to no statement
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
  pcall(function() require("dbtool.pg").log_notices(conn, R.log) end)
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
