-- TOML 1.0.0 parser (https://toml.io/en/v1.0.0), our own: rickdb.toml and any other
-- configuration db-tool reads.
--
--   local toml = require "dbtool.toml"
--   local t = toml.parse(text, { name = "rickdb.toml" })   -- raises a structured error
--   local t = toml.parse_file("rickdb.toml")
--   local t, err = toml.decode(text, opts)                 -- nil, error value instead
--
-- Values: strings, integers (Lua integers, 64-bit, overflow is an error), floats (inf, nan),
-- booleans, tables (plain Lua tables), arrays (Lua sequences with metatable toml.array_mt,
-- so an empty array is not an empty table), and date/times: tables with metatable
-- toml.datetime_mt, fields kind ("offset-datetime" | "local-datetime" | "local-date" |
-- "local-time"), year, month, day, hour, min, sec, frac (digits after the point, a string,
-- or nil), offset (minutes east of UTC; nil for local kinds), and tostring() giving the
-- canonical RFC 3339 text.
--
-- Errors are structured errors (dbtool.errors, exit 1) with `where` = "name:line:col" (col
-- in characters), line, col, and an `excerpt` (the line and a caret). Everything the
-- specification calls invalid is reported: bad escapes and control characters, malformed or
-- out-of-range numbers and dates, duplicate keys, tables defined twice, tables defined by
-- dotted keys reopened with [headers] (and the reverse), inline tables and static arrays
-- extended, newlines in inline tables, invalid UTF-8.
--
-- With opts.positions = true, parse() returns a second value: info with
-- info.where(tbl, key) → line, col of the key's definition in table tbl (nil if unknown),
-- and info.line_of(tbl) → the line of the header that defined tbl (nil for the root).
local errors = require "dbtool.errors"

local byte, sub, find, match, rep = string.byte, string.sub, string.find, string.match, string.rep
local concat = table.concat
local mtype = math.type

local M = {}

M.array_mt = { __name = "toml.array" }

local Datetime = { __name = "toml.datetime" }
Datetime.__index = Datetime
Datetime.__tostring = function(d) return d.text end
Datetime.__eq = function(a, b) return a.text == b.text and a.kind == b.kind end
M.datetime_mt = Datetime

--- Nesting limit for arrays and inline tables (a pathological input must not exhaust the
--- Lua stack: errors are always structured).
M.MAX_DEPTH = 200

function M.is_array(v)
  return type(v) == "table" and getmetatable(v) == M.array_mt
end

function M.is_datetime(v)
  return type(v) == "table" and getmetatable(v) == Datetime
end

--- TOML type name of a parsed value: string, integer, float, boolean, array, table,
--- offset-datetime, local-datetime, local-date, local-time.
function M.type(v)
  local t = type(v)
  if t == "number" then return mtype(v) end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == M.array_mt then return "array" end
    if mt == Datetime then return v.kind end
    return "table"
  end
  return t
end

--- New array (for callers building TOML-shaped values).
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

-- ---------------------------------------------------------------- helpers

local ESCAPES = { [98] = "\b", [116] = "\t", [110] = "\n", [102] = "\f", [114] = "\r", [34] = '"',
  [92] = "\\" }

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in(year, month)
  if month == 2 and (year % 4 == 0 and (year % 100 ~= 0 or year % 400 == 0)) then return 29 end
  return DAYS[month]
end

local function describe_char(c)
  if c == nil then return "end of file" end
  if c == 10 then return "a newline" end
  if c == 13 then return "a carriage return" end
  if c == 9 then return "a tab" end
  if c < 32 or c == 127 then return string.format("control character U+%04X", c) end
  return "'" .. string.char(c) .. "'"
end

-- The UTF-8 character at byte i of s (for messages).
local function char_at(s, i)
  local c = byte(s, i)
  if not c then return nil end
  if c < 0x80 then return sub(s, i, i) end
  local n = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
  return sub(s, i, i + n - 1)
end

-- Description of the character at byte i of s.
local function describe_at(s, i)
  local c = byte(s, i)
  if c and c >= 128 then return "'" .. char_at(s, i) .. "'" end
  return describe_char(c)
end

-- ---------------------------------------------------------------- the parser

--- Parse `src` (a string). opts: name (for locations; default "<string>"), positions.
function M.parse(src, opts)
  opts = opts or {}
  if type(src) ~= "string" then error("toml.parse: expected a string, got " .. type(src), 2) end
  local name = opts.name or "<string>"
  local len = #src
  local p = 1

  -- line index, built on first use (errors and positions only)
  local nl_index
  local function line_col(at)
    if not nl_index then
      nl_index = {}
      local i = 1
      while true do
        local n = find(src, "\n", i, true)
        if not n then break end
        nl_index[#nl_index + 1] = n
        i = n + 1
      end
    end
    -- number of newlines before `at`
    local lo, hi = 1, #nl_index
    local count = 0
    while lo <= hi do
      local mid = (lo + hi) // 2
      if nl_index[mid] < at then
        count = mid
        lo = mid + 1
      else
        hi = mid - 1
      end
    end
    local line_start = count > 0 and nl_index[count] + 1 or 1
    local col = (utf8.len(src, line_start, at - 1, true) or (at - line_start)) + 1
    return count + 1, col, line_start
  end

  local function fail(at, msg, hint)
    if at > len + 1 then at = len + 1 end
    local line, col, ls = line_col(at)
    local le = find(src, "\n", ls, true)
    local text = sub(src, ls, (le or len + 1) - 1):gsub("\r$", "")
    -- caret under the character: keep tabs so that it lines up
    local prefix = sub(src, ls, at - 1):gsub("[^\t\128-\191]", " "):gsub("[\128-\191]", "")
    local excerpt
    if #text <= 200 and not find(text, "[%z\1-\8\10-\31\127]") then
      excerpt = string.format("%5d | %s\n      | %s^", line, text, prefix)
    end
    errors.raise(errors.GENERIC, msg, { where = name .. ":" .. line .. ":" .. col, file = name,
      line = line, col = col, excerpt = excerpt, hint = hint, toml = true })
  end

  -- whole document: valid UTF-8 (strict: no surrogates, nothing above U+10FFFF)
  do
    local ok, bad = utf8.len(src)
    if not ok then fail(bad, "invalid UTF-8 byte sequence", "TOML files must be UTF-8") end
  end
  if sub(src, 1, 3) == "\239\187\191" then p = 4 end -- BOM

  -- table state: how each table came to be (TOML's rules on redefinition)
  --   "implicit": created as the parent of a [header] (may be defined by a header later, once)
  --   "header":   defined by [header] or [[header]]
  --   "dotted":   created or extended by dotted keys (in section dotsec[t] only)
  --   "inline":   an inline table (closed)
  local kind = {}
  local dotsec = {}
  local aot = {}       -- arrays created by [[header]]
  local keypos = {}    -- table → {key → byte position of its definition}
  local headpos = {}   -- table → byte position of its header
  local section = 0
  local depth = 0

  local function record(t, k, at)
    local kp = keypos[t]
    if not kp then
      kp = {}
      keypos[t] = kp
    end
    kp[k] = at
  end

  local function first_line(t, k)
    local at = keypos[t] and keypos[t][k]
    if at then return (line_col(at)) end
    return nil
  end

  local function skip_ws()
    p = find(src, "[^ \t]", p) or len + 1
  end

  -- a comment starting at p ('#'): validated, p moved to the newline (or EOF)
  local function skip_comment()
    local e = find(src, "\n", p, true) or len + 1
    local stop = e - 1
    if byte(src, stop) == 13 and stop > p then stop = stop - 1 end
    local bad = find(src, "[%z\1-\8\10-\31\127]", p + 1)
    if bad and bad <= stop then
      fail(bad, describe_char(byte(src, bad)) .. " is not allowed in a comment")
    end
    p = e
  end

  -- whitespace, comments and newlines (inside arrays)
  local function skip_wscnl()
    while true do
      p = find(src, "[^ \t\n]", p) or len + 1
      local c = byte(src, p)
      if c == 35 then
        skip_comment()
      elseif c == 13 and byte(src, p + 1) == 10 then
        p = p + 2
      else
        return
      end
    end
  end

  -- end of an expression: optional comment, then a newline or EOF
  local function end_of_line(what)
    skip_ws()
    local c = byte(src, p)
    if c == 35 then
      skip_comment()
      c = byte(src, p)
    end
    if c == nil then return end
    if c == 10 then
      p = p + 1
      return
    end
    if c == 13 and byte(src, p + 1) == 10 then
      p = p + 2
      return
    end
    if c == 13 then fail(p, "a carriage return must be followed by a newline (CRLF)") end
    fail(p, "expected a newline or end of file after " .. what .. ", found " .. describe_at(src, p),
      c == 44 and "one key = value per line" or nil)
  end

  -- ------------------------------------------------------------ strings

  local function hex_escape(at, n)
    local h = sub(src, at + 2, at + 1 + n)
    if #h ~= n or not match(h, "^%x+$") then
      fail(at, "\\" .. sub(src, at + 1, at + 1) .. " needs exactly " .. n .. " hexadecimal digits")
    end
    local cp = tonumber(h, 16)
    if cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
      fail(at, string.format("\\%s%s is not a Unicode scalar value", sub(src, at + 1, at + 1), h),
        "surrogates (D800-DFFF) and values above 10FFFF are not allowed")
    end
    return utf8.char(cp), at + 2 + n
  end

  -- escape sequence at `at` (the backslash); returns text, next position
  local function escape(at)
    local c = byte(src, at + 1)
    local e = ESCAPES[c]
    if e then return e, at + 2 end
    if c == 117 then return hex_escape(at, 4) end
    if c == 85 then return hex_escape(at, 8) end
    if c == nil then fail(at, "unterminated string") end
    fail(at, "invalid escape sequence \\" .. (char_at(src, at + 1) or ""),
      "valid escapes: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX "
        .. "(use a 'literal string' for backslashes)")
  end

  local function basic_string()
    local start = p
    p = p + 1
    local buf, n = {}, 0
    while true do
      local q = find(src, '[%z\1-\31"\\\127]', p)
      if not q then fail(start, "unterminated string", 'close it with "') end
      local c = byte(src, q)
      if q > p then
        n = n + 1
        buf[n] = sub(src, p, q - 1)
      end
      if c == 34 then
        p = q + 1
        break
      elseif c == 92 then
        local text
        text, p = escape(q)
        n = n + 1
        buf[n] = text
      elseif c == 9 then
        n = n + 1
        buf[n] = "\t"
        p = q + 1
      elseif c == 10 or c == 13 then
        fail(start, "unterminated string (a newline before the closing quote)",
          'use a multi-line string """...""" for text with newlines')
      else
        fail(q, describe_char(c) .. " must be escaped in a string")
      end
    end
    return concat(buf)
  end

  local function literal_string()
    local start = p
    p = p + 1
    local q = find(src, "[%z\1-\8\10-\31\127']", p)
    if not q then fail(start, "unterminated literal string", "close it with '") end
    local c = byte(src, q)
    if c ~= 39 then
      if c == 10 or c == 13 then
        fail(start, "unterminated literal string (a newline before the closing quote)",
          "use a multi-line literal string '''...''' for text with newlines")
      end
      fail(q, describe_char(c) .. " is not allowed in a literal string")
    end
    local s = sub(src, p, q - 1)
    p = q + 1
    return s
  end

  -- skip the newline right after an opening delimiter
  local function skip_first_newline()
    if byte(src, p) == 10 then
      p = p + 1
    elseif byte(src, p) == 13 and byte(src, p + 1) == 10 then
      p = p + 2
    end
  end

  -- closing delimiter of a multi-line string at q (quote char code qc): number of quotes in
  -- the run; 3..5 closes (1 or 2 belong to the content)
  local function quote_run(q, qc)
    local e = q
    while byte(src, e) == qc do e = e + 1 end
    return e - q
  end

  -- multi-line strings: basic (""", escapes, line-ending backslash) or literal (''')
  local ML = {
    [34] = { stop = '[%z\1-\8\11-\31"\\\127]', label = "multi-line string", delim = '"""',
      bad = " must be escaped in a string" },
    [39] = { stop = "[%z\1-\8\11-\31'\127]", label = "multi-line literal string", delim = "'''",
      bad = " is not allowed in a literal string" },
  }

  local function ml_string(qc)
    local ml = ML[qc]
    local start = p
    p = p + 3
    skip_first_newline()
    local buf, n = {}, 0
    while true do
      local q = find(src, ml.stop, p)
      if not q then fail(start, "unterminated " .. ml.label, "close it with " .. ml.delim) end
      if q > p then
        n = n + 1
        buf[n] = sub(src, p, q - 1)
      end
      local c = byte(src, q)
      if c == qc then
        local run = quote_run(q, qc)
        local quote = sub(ml.delim, 1, 1)
        if run >= 3 then
          if run > 5 then
            fail(q + 5, "too many quotes: at most two " .. quote .. " may precede the closing " .. ml.delim)
          end
          n = n + 1
          buf[n] = rep(quote, run - 3)
          p = q + run
          break
        end
        n = n + 1
        buf[n] = rep(quote, run)
        p = q + run
      elseif c == 92 then
        -- line-ending backslash: skip whitespace and newlines up to the next content
        local ws_end = find(src, "[^ \t]", q + 1) or len + 1
        local nc = byte(src, ws_end)
        if nc == 10 or (nc == 13 and byte(src, ws_end + 1) == 10) then
          p = ws_end
          while true do
            p = find(src, "[^ \t\n]", p) or len + 1
            if byte(src, p) == 13 and byte(src, p + 1) == 10 then p = p + 2 else break end
          end
        else
          local text
          text, p = escape(q)
          n = n + 1
          buf[n] = text
        end
      elseif c == 13 then
        if byte(src, q + 1) ~= 10 then fail(q, "a carriage return must be followed by a newline (CRLF)") end
        n = n + 1
        buf[n] = "\n" -- CRLF is a newline; values hold LF
        p = q + 2
      else
        fail(q, describe_char(c) .. ml.bad)
      end
    end
    return concat(buf)
  end

  -- ------------------------------------------------------------ keys

  -- a key (possibly dotted): array of parts and array of their positions
  local function parse_key()
    local parts, pos = {}, {}
    while true do
      skip_ws()
      local c = byte(src, p)
      local at = p
      local k
      if c == 34 then
        if sub(src, p, p + 2) == '"""' then fail(p, "a multi-line string cannot be a key") end
        k = basic_string()
      elseif c == 39 then
        if sub(src, p, p + 2) == "'''" then fail(p, "a multi-line string cannot be a key") end
        k = literal_string()
      else
        local e = find(src, "[^%w_%-]", p) or len + 1
        if e == p then
          if c == nil or c == 10 or c == 13 or c == 61 or c == 46 or c == 93 then
            fail(p, "expected a key, found " .. describe_at(src, p))
          end
          fail(p, "invalid character " .. describe_at(src, p) .. " in a key",
            "bare keys may hold only A-Z a-z 0-9 _ -; quote other keys: \"my key\"")
        end
        k = sub(src, p, e - 1)
        p = e
      end
      parts[#parts + 1] = k
      pos[#pos + 1] = at
      skip_ws()
      if byte(src, p) ~= 46 then break end
      p = p + 1
    end
    return parts, pos
  end

  local function path_text(parts, n)
    local out = {}
    for i = 1, n or #parts do
      local k = parts[i]
      if match(k, "^[%w_%-]+$") then out[i] = k else out[i] = '"' .. k:gsub('[\\"]', "\\%0") .. '"' end
    end
    return concat(out, ".")
  end

  -- ------------------------------------------------------------ numbers and dates

  local function time_part(at, h, mi, s, frac)
    h, mi, s = tonumber(h), tonumber(mi), tonumber(s)
    if h > 23 then fail(at, "hour must be 00-23") end
    if mi > 59 then fail(at, "minute must be 00-59") end
    if s > 60 then fail(at, "second must be 00-59 (60 for a leap second)") end
    if frac == "" then fail(at, "a fraction of seconds needs digits after the point") end
    return h, mi, s
  end

  -- date/time at p (known to start with 4 digits and '-' or 2 digits and ':')
  local function datetime()
    local at = p
    local y, mo, d, e = match(src, "^(%d%d%d%d)%-(%d%d)%-(%d%d)()", p)
    if y then
      local year, month, day = tonumber(y), tonumber(mo), tonumber(d)
      if month < 1 or month > 12 then fail(at, "month must be 01-12") end
      if day < 1 or day > days_in(year, month) then
        fail(at, string.format("day %02d does not exist in %04d-%02d", day, year, month))
      end
      local dt = { year = year, month = month, day = day }
      local sep = byte(src, e)
      local h, mi, s, frac, e2
      if sep == 84 or sep == 116 or (sep == 32 and match(src, "^%d%d:", e + 1)) then
        h, mi, s, e2 = match(src, "^(%d%d):(%d%d):(%d%d)()", e + 1)
        if not h then
          fail(e + 1, "invalid time in a date-time", "expected HH:MM:SS (seconds are required in TOML 1.0)")
        end
        local f, fe = match(src, "^%.(%d*)()", e2)
        if f then frac, e2 = f, fe end
        dt.hour, dt.min, dt.sec = time_part(e + 1, h, mi, s, frac)
        dt.frac = frac
        local oc = byte(src, e2)
        local text = string.format("%s-%s-%sT%s:%s:%s%s", y, mo, d, h, mi, s, frac and ("." .. frac) or "")
        if oc == 90 or oc == 122 then
          dt.kind, dt.offset = "offset-datetime", 0
          text = text .. "Z"
          e2 = e2 + 1
        elseif oc == 43 or oc == 45 then
          local oh, om, e3 = match(src, "^[+-](%d%d):(%d%d)()", e2)
          if not oh then fail(e2, "invalid time offset", "expected Z, +HH:MM or -HH:MM") end
          if tonumber(oh) > 23 or tonumber(om) > 59 then fail(e2, "time offset out of range") end
          dt.kind = "offset-datetime"
          dt.offset = (tonumber(oh) * 60 + tonumber(om)) * (oc == 45 and -1 or 1)
          text = text .. sub(src, e2, e3 - 1)
          e2 = e3
        else
          dt.kind = "local-datetime"
        end
        dt.text = text
        p = e2
      else
        dt.kind = "local-date"
        dt.text = y .. "-" .. mo .. "-" .. d
        p = e
      end
      return setmetatable(dt, Datetime)
    end
    if match(src, "^%d%d%d%d%-", p) then fail(at, "invalid date", "expected YYYY-MM-DD") end
    local h, mi, s, e2 = match(src, "^(%d%d):(%d%d):(%d%d)()", p)
    if not h then fail(at, "invalid time", "expected HH:MM:SS (seconds are required in TOML 1.0)") end
    local frac, e3 = match(src, "^%.(%d*)()", e2)
    local dt = { kind = "local-time" }
    dt.hour, dt.min, dt.sec = time_part(at, h, mi, s, frac)
    dt.frac = frac
    dt.text = h .. ":" .. mi .. ":" .. s .. (frac and ("." .. frac) or "")
    p = e3 or e2
    return setmetatable(dt, Datetime)
  end

  -- digits with single underscores between them (nil when malformed)
  local function clean_digits(s, class)
    if s == "" or sub(s, 1, 1) == "_" or sub(s, -1) == "_" or find(s, "__", 1, true) then return nil end
    if find(s, "[^" .. class .. "_]") then return nil end
    return (s:gsub("_", ""))
  end

  local function based_integer(at, tok)
    local prefix, body = sub(tok, 1, 2), sub(tok, 3)
    local base, class, label = 16, "%x", "hexadecimal"
    if prefix == "0o" then
      base, class, label = 8, "0-7", "octal"
    elseif prefix == "0b" then
      base, class, label = 2, "01", "binary"
    end
    local digits = clean_digits(body, class)
    if not digits then
      fail(at, "invalid " .. label .. " integer '" .. tok .. "'",
        "digits after " .. prefix .. ", with single underscores only between digits")
    end
    local v = 0
    local limit = math.maxinteger
    for i = 1, #digits do
      local d = tonumber(sub(digits, i, i), 16)
      if v > (limit - d) // base then fail(at, "integer '" .. tok .. "' does not fit in 64 bits") end
      v = v * base + d
    end
    return v
  end

  local function number()
    local at = p
    local e = find(src, "[^%w_%.%+%-]", p) or len + 1
    local tok = sub(src, p, e - 1)
    p = e
    local sign, body = match(tok, "^([+-]?)(.*)$")
    if body == "inf" then return sign == "-" and -math.huge or math.huge end
    if body == "nan" then
      local nan = math.abs(0.0 / 0.0) -- positive NaN, whatever the platform's 0/0 gives
      return sign == "-" and -nan or nan
    end
    local pre = sub(body, 1, 2)
    if pre == "0x" or pre == "0o" or pre == "0b" then
      if sign ~= "" then fail(at, "a sign is not allowed on " .. pre .. " integers") end
      return based_integer(at, tok)
    end
    -- decimal integer or float
    local int, rest = match(body, "^([%d_]+)(.*)$")
    if not int then
      if match(tok, "^[%a_][%w_%-]*$") then
        fail(at, "invalid value '" .. tok .. "'", 'strings must be quoted: "' .. tok .. '"')
      end
      fail(at, "invalid value '" .. tok .. "'")
    end
    local idigits = clean_digits(int, "%d")
    if not idigits then
      fail(at, "invalid number '" .. tok .. "'", "underscores must be between digits")
    end
    if #idigits > 1 and sub(idigits, 1, 1) == "0" then
      fail(at, "leading zeros are not allowed in '" .. tok .. "'")
    end
    if rest == "" then
      local v = tonumber(sign .. idigits)
      if mtype(v) ~= "integer" then fail(at, "integer '" .. tok .. "' does not fit in 64 bits") end
      return v
    end
    local frac, exp = nil, nil
    local r = rest
    if sub(r, 1, 1) == "." then
      local f, r2 = match(r, "^%.([%d_]*)(.*)$")
      frac = clean_digits(f, "%d")
      if not frac then
        fail(at, "invalid float '" .. tok .. "'", "a decimal point needs digits on both sides")
      end
      r = r2
    end
    if r ~= "" then
      local es, ed = match(r, "^[eE]([+-]?)([%d_]*)$")
      exp = ed and clean_digits(ed, "%d")
      if not exp then
        fail(at, "invalid " .. (frac and "float" or "number") .. " '" .. tok .. "'",
          frac and "an exponent is e or E, an optional sign and digits" or nil)
      end
      exp = es .. exp
    end
    local v = tonumber(sign .. idigits .. (frac and ("." .. frac) or "") .. (exp and ("e" .. exp) or ""))
    if not v then fail(at, "invalid float '" .. tok .. "'") end
    return v
  end

  -- ------------------------------------------------------------ values

  local parse_value

  local function array()
    local at = p
    depth = depth + 1
    if depth > M.MAX_DEPTH then fail(at, "arrays and inline tables nested too deeply") end
    p = p + 1
    local arr, n = {}, 0
    while true do
      skip_wscnl()
      local c = byte(src, p)
      if c == 93 then
        p = p + 1
        break
      end
      if c == nil then fail(at, "unterminated array", "close it with ]") end
      if c == 44 then fail(p, "expected a value in the array, found ','") end
      n = n + 1
      arr[n] = parse_value()
      skip_wscnl()
      c = byte(src, p)
      if c == 44 then
        p = p + 1
      elseif c == 93 then
        p = p + 1
        break
      elseif c == nil then
        fail(at, "unterminated array", "close it with ]")
      else
        fail(p, "expected ',' or ']' in the array, found " .. describe_at(src, p))
      end
    end
    depth = depth - 1
    return setmetatable(arr, M.array_mt)
  end

  local keyval

  local function inline_table()
    local at = p
    depth = depth + 1
    if depth > M.MAX_DEPTH then fail(at, "arrays and inline tables nested too deeply") end
    p = p + 1
    local t = {}
    kind[t] = "inline"
    headpos[t] = at
    section = section + 1
    local my_section = section
    skip_ws()
    if byte(src, p) == 125 then
      p = p + 1
    else
      while true do
        local c = byte(src, p)
        if c == 10 or c == 13 then
          fail(p, "newlines are not allowed in an inline table (TOML 1.0)",
            "keep { ... } on one line, or use a [table] section")
        elseif c == 125 then
          fail(p, "trailing comma in an inline table", "remove the ',' before '}'")
        elseif c == nil then
          fail(at, "unterminated inline table", "close it with }")
        end
        keyval(t, my_section)
        skip_ws()
        c = byte(src, p)
        if c == 44 then
          p = p + 1
          skip_ws()
        elseif c == 125 then
          p = p + 1
          break
        elseif c == nil then
          fail(at, "unterminated inline table", "close it with }")
        elseif c == 10 or c == 13 then
          fail(p, "newlines are not allowed in an inline table (TOML 1.0)",
            "keep { ... } on one line, or use a [table] section")
        else
          fail(p, "expected ',' or '}' in the inline table, found " .. describe_at(src, p))
        end
      end
    end
    depth = depth - 1
    return t
  end

  parse_value = function()
    local c = byte(src, p)
    if c == 34 then
      if byte(src, p + 1) == 34 and byte(src, p + 2) == 34 then return ml_string(34) end
      local s, e = match(src, '^"([^"\\%c]*)"()', p) -- fast path: nothing to unescape
      if s then
        p = e
        return s
      end
      return basic_string()
    elseif c == 39 then
      if byte(src, p + 1) == 39 and byte(src, p + 2) == 39 then return ml_string(39) end
      return literal_string()
    elseif c == 116 and match(src, "^true%f[^%w_%-]", p) then
      p = p + 4
      return true
    elseif c == 102 and match(src, "^false%f[^%w_%-]", p) then
      p = p + 5
      return false
    elseif c == 91 then
      return array()
    elseif c == 123 then
      return inline_table()
    elseif c and c >= 48 and c <= 57 then
      -- fast path: a plain decimal integer (at most 18 digits: no overflow) ending the value
      local d, e = match(src, "^(%d+)()", p)
      local nc = byte(src, e)
      if #d < 19 and (c ~= 48 or #d == 1) and (nc == nil or nc == 10 or nc == 32 or nc == 44 or nc == 93
        or nc == 125 or nc == 9 or nc == 35 or nc == 13) then
        p = e
        return tonumber(d)
      end
      if match(src, "^%d%d%d%d%-", p) or match(src, "^%d%d:", p) then return datetime() end
      return number()
    elseif c == 43 or c == 45 or c == 105 or c == 110 then
      return number()
    elseif c == nil or c == 10 or c == 13 or c == 35 then
      fail(p, "expected a value, found " .. describe_char(c))
    elseif (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 then
      return number() -- reports the unquoted word
    end
    fail(p, "expected a value, found " .. describe_at(src, p))
  end

  -- ------------------------------------------------------------ key = value

  -- parse `key = value` at p into table `t` (the current table; section `sec`)
  keyval = function(t, sec)
    -- fast path: a bare key, not yet defined
    local bare, after = match(src, "^([%w_%-]+)[ \t]*=[ \t]*()", p)
    if bare and t[bare] == nil then
      record(t, bare, p)
      p = after
      t[bare] = parse_value()
      return
    end
    local parts, pos = parse_key()
    if byte(src, p) ~= 61 then
      local c = byte(src, p)
      if c == nil or c == 10 or c == 13 or c == 35 then
        fail(p, "expected '=' after the key '" .. path_text(parts) .. "'",
          "a line holds key = value, a [table] or an [[array of tables]]")
      end
      fail(p, "expected '=' after the key '" .. path_text(parts) .. "', found " .. describe_at(src, p))
    end
    p = p + 1
    skip_ws()
    -- walk/create the tables of a dotted key
    local n = #parts
    for i = 1, n - 1 do
      local k = parts[i]
      local v = t[k]
      if v == nil then
        v = {}
        kind[v] = "dotted"
        dotsec[v] = sec
        headpos[v] = pos[i]
        t[k] = v
        record(t, k, pos[i])
      elseif type(v) ~= "table" or getmetatable(v) ~= nil then
        local what = M.is_array(v) and "an array" or ("a value (" .. M.type(v) .. ")")
        fail(pos[i], "cannot use '" .. path_text(parts, i) .. "' as a table: it is already " .. what
          .. (first_line(t, k) and (" (line " .. first_line(t, k) .. ")") or ""))
      else
        local kd = kind[v]
        if kd == "inline" then
          fail(pos[i], "cannot add keys to the inline table '" .. path_text(parts, i) .. "'",
            "an inline table is complete where it is written")
        elseif kd == "header" then
          fail(pos[i], "cannot add keys to table '" .. path_text(parts, i)
            .. "' with dotted keys here: it is "
            .. "defined by its own [header] (line " .. (line_col(headpos[v])) .. ")",
            "put the key under that [header]")
        elseif kd == "dotted" and dotsec[v] ~= sec then
          fail(pos[i], "cannot extend table '" .. path_text(parts, i) .. "' here: it was defined with dotted "
            .. "keys in another table (line " .. (line_col(headpos[v])) .. ")")
        elseif kd == "implicit" then
          kind[v] = "dotted"
          dotsec[v] = sec
        end
      end
      t = v
    end
    local k = parts[n]
    if t[k] ~= nil then
      local prev = first_line(t, k)
      fail(pos[n], "duplicate key '" .. path_text(parts) .. "'" .. (prev and (" (first defined on line "
        .. prev .. ")") or ""))
    end
    record(t, k, pos[n])
    local v = parse_value()
    t[k] = v
  end

  -- ------------------------------------------------------------ [table] and [[array]]

  local root = {}

  local function header()
    local at = p
    local is_aot = byte(src, p + 1) == 91
    p = p + (is_aot and 2 or 1)
    local parts, pos = parse_key()
    if is_aot then
      if sub(src, p, p + 1) ~= "]]" then
        fail(p, "expected ']]' to close the [[array of tables]] header, found " .. describe_at(src, p))
      end
      p = p + 2
    else
      if byte(src, p) ~= 93 then
        fail(p, "expected ']' to close the [table] header, found " .. describe_at(src, p))
      end
      p = p + 1
    end
    section = section + 1
    local t = root
    local n = #parts
    for i = 1, n - 1 do
      local k = parts[i]
      local v = t[k]
      if v == nil then
        v = {}
        kind[v] = "implicit"
        headpos[v] = at
        t[k] = v
        record(t, k, pos[i])
      elseif type(v) ~= "table" or (getmetatable(v) ~= nil and not aot[v]) then
        local what = M.is_array(v) and "an array (not an array of tables)"
          or ("a value (" .. M.type(v) .. ")")
        fail(pos[i], "cannot use '" .. path_text(parts, i) .. "' as a table: it is already " .. what
          .. (first_line(t, k) and (" (line " .. first_line(t, k) .. ")") or ""))
      elseif aot[v] then
        v = v[#v]
      elseif kind[v] == "inline" then
        fail(pos[i], "cannot add a table to the inline table '" .. path_text(parts, i) .. "'",
          "an inline table is complete where it is written")
      end
      t = v
    end
    local k = parts[n]
    local v = t[k]
    local name_text = path_text(parts)
    if is_aot then
      if v == nil then
        v = setmetatable({}, M.array_mt)
        aot[v] = true
        t[k] = v
        record(t, k, pos[n])
      elseif not aot[v] then
        local what = M.is_array(v) and "a static array" or (type(v) == "table" and getmetatable(v) == nil)
          and "a table" or ("a value (" .. M.type(v) .. ")")
        fail(pos[n], "cannot define [[" .. name_text .. "]]: '" .. name_text .. "' is already " .. what
          .. (first_line(t, k) and (" (line " .. first_line(t, k) .. ")") or ""))
      end
      local elem = {}
      kind[elem] = "header"
      headpos[elem] = at
      v[#v + 1] = elem
      return elem
    end
    if v == nil then
      v = {}
      t[k] = v
      record(t, k, pos[n])
    elseif type(v) ~= "table" or getmetatable(v) ~= nil then
      local what = aot[v] and "an array of tables" or M.is_array(v) and "an array"
        or ("a value (" .. M.type(v) .. ")")
      fail(pos[n], "cannot define table [" .. name_text .. "]: it is already " .. what
        .. (first_line(t, k) and (" (line " .. first_line(t, k) .. ")") or ""))
    else
      local kd = kind[v]
      if kd == "header" then
        fail(at, "table [" .. name_text .. "] is defined twice (first on line "
          .. (line_col(headpos[v])) .. ")",
          "merge the two sections")
      elseif kd == "dotted" then
        fail(at, "table [" .. name_text .. "] was already defined with dotted keys (line "
          .. (line_col(headpos[v])) .. ")", "use either dotted keys or a [header] for a table, not both")
      elseif kd == "inline" then
        fail(at, "table [" .. name_text .. "] was already defined as an inline table (line "
          .. (line_col(headpos[v])) .. ")")
      end
    end
    kind[v] = "header"
    headpos[v] = at
    return v
  end

  -- ------------------------------------------------------------ document

  local current = root
  local current_section = 0
  while true do
    skip_ws()
    local c = byte(src, p)
    if c == nil then break end
    if c == 10 then
      p = p + 1
    elseif c == 13 then
      if byte(src, p + 1) ~= 10 then fail(p, "a carriage return must be followed by a newline (CRLF)") end
      p = p + 2
    elseif c == 35 then
      skip_comment()
    elseif c == 91 then
      current = header()
      current_section = section
      end_of_line("the table header")
    else
      keyval(current, current_section)
      end_of_line("the value")
    end
  end

  if opts.positions then
    local info = {}
    function info.where(t, key)
      local at = keypos[t] and keypos[t][key]
      if not at then return nil end
      local line, col = line_col(at)
      return line, col
    end
    function info.line_of(t)
      local at = headpos[t]
      if not at then return nil end
      return (line_col(at))
    end
    return root, info
  end
  return root
end

--- Parse; returns the value, or nil and the error value (never raises for bad input).
function M.decode(src, opts)
  local ok, res, info = errors.try(M.parse, src, opts)
  if ok then return res, info end
  return nil, res
end

--- Read and parse a file; raises (exit 1) when it cannot be read.
function M.parse_file(path, opts)
  local f, msg = io.open(path, "rb")
  if not f then errors.raise(errors.GENERIC, "cannot read " .. tostring(msg)) end
  local text = f:read("a")
  f:close()
  local o = { name = path }
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.parse(text, o)
end

return M
