-- Dotenv files: one parser for hydrate, `database secrets` and project scripts.
--
-- Grammar (a line is LF or CRLF terminated; a UTF-8 byte order mark at the start is skipped):
--   * blank lines and lines whose first non-blank character is `#` are skipped;
--   * an entry is `[export ]KEY=VALUE`, with optional blanks (space, tab) around `=`;
--     KEY is a letter or `_`, then letters, digits, `_`, `.` or `-`;
--   * VALUE is one of
--       - empty                       KEY=            → ""
--       - unquoted                    KEY=a b c       → "a b c": up to the end of the line,
--         trailing blanks removed; ` #` (a blank then `#`) starts a comment, `a#b` does not;
--         no escapes (a backslash is a backslash); control characters other than tab are
--         an error;
--       - single-quoted               KEY='a "b" \n'  → everything up to the next `'`,
--         literally (no escapes, may span lines);
--       - double-quoted               KEY="a\n\"b\""  → may span lines; escapes \n \r \t
--         \\ \" \' \$ ; any other backslash is kept as it is ("C:\path" stays C:\path);
--     after a closing quote only blanks and a `# comment` may follow on that line;
--   * a key given twice: the last value wins, with a warning naming both lines;
--   * the text must be valid UTF-8 without NUL bytes (what hectic.secret can store).
--
-- Expansion happens only when asked: opts.expand = true, or a comment line
-- `# db-tool: expand` before the first entry (the file asks for itself). Then `${NAME}`, `${NAME:-default}`
-- and `$NAME` in unquoted and double-quoted values are replaced by the value of NAME defined
-- earlier in the same text, else by opts.env (a table, or a function name → value), else the
-- default; an undefined NAME without a default is an error. `\$` (in double quotes, or
-- unquoted) is a literal `$`; single-quoted values are never expanded. Without opts.expand,
-- `$` is an ordinary character. (hydrate and `database secrets` give the process environment
-- as opts.env: with the directive, `${HOME}` works as in a shell.)
--
-- Errors never echo the text of a line (it may hold a secret): they say what is wrong, with
-- the line (and column), e.g. `.env.dev:7: unterminated double-quoted value (opened here)`.
--
--   dotenv.decode(text [, opts]) → result | nil, errs       never raises for a string input
--   dotenv.parse(text, source [, opts]) → result            raises exit 3 at source:line
--   dotenv.read_file(path [, opts]) → result, text          raises exit 3 (unreadable, invalid)
--     result = { map = {KEY = value}, keys = {KEY, ...} (first-appearance order),
--                entries = { {key =, value =, line =, last_line =}, ... } (every occurrence),
--                warnings = {"source:line: message", ...}, duplicates = {{key =, line =, previous =}},
--                expanded = whether expansion was on }
--     errs   = { {line =, col =, msg =}, ... } (at most opts.max_errors, default 20)
--   dotenv.quote(value) → a VALUE token that parses back to value (with or without expand)
--   dotenv.serialize(map | list of {key, value}) → text (sorted keys for a map)
--   dotenv.set(text, key, value [, opts]) → new text: the entry replaced in place (its
--     other occurrences removed), or appended; comments and layout kept. The text must
--     parse (opts as for parse(): source, env); the result is not re-checked: with
--     expansion, other values may refer to KEY — parse the result to be sure.
--   dotenv.unset(text, key [, opts]) → new text, number of entries removed
--   dotenv.valid_key(key) → boolean
local errors = require "dbtool.errors"

local M = {}

--- Most bytes of dotenv text (a file, HECTIC_DOTENV_CONTENT), and of all values together
--- after expansion: values that expand each other (B=${A}${A}, C=${B}${B} …) stop there with
--- an error at file:line:col instead of filling the memory.
M.MAX_BYTES = 16 * 1024 * 1024

local KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_.%-]*"
local FAST_LINE = "^([A-Za-z_][A-Za-z0-9_.%-]*)=([A-Za-z0-9_./:@%%+,~^=%-]*)()\n"
local BLANK = "^[ \t]*"

function M.valid_key(key)
  return type(key) == "string" and key:find(KEY_PATTERN .. "$") ~= nil
end

-- A character for a message: printable ASCII as itself, anything else as \xNN.
local function show_char(c)
  if c:match("^[%g]$") then return "'" .. c .. "'" end
  if c == " " then return "a space" end
  if c == "\t" then return "a tab" end
  return string.format("byte \\x%02X", c:byte())
end

-- Line number of byte position `pos` (1-based) in s.
local function line_of(s, pos)
  local n = 1
  for _ in s:sub(1, pos - 1):gmatch("\n") do n = n + 1 end
  return n
end

local function col_of(s, pos)
  local nl = pos - 1
  while nl > 0 and s:byte(nl) ~= 10 do nl = nl - 1 end
  return pos - nl
end

--- Text as the parser sees it: without a leading UTF-8 BOM, CRLF (and a CR at the very
--  end) turned into LF. Line numbers in results and errors count the LFs of this text.
function M.normalize(text)
  local s = text
  if s:sub(1, 3) == "\239\187\191" then s = s:sub(4) end
  s = s:gsub("\r\n", "\n"):gsub("\r$", "")
  return s
end

local ESCAPES = { n = "\n", r = "\r", t = "\t", ["\\"] = "\\", ['"'] = '"', ["'"] = "'", ["$"] = "$" }

--- Parse `text`. See the header for the grammar and the result.
function M.decode(text, opts)
  opts = opts or {}
  if type(text) ~= "string" then
    return nil, { { line = 0, col = 0, msg = "dotenv content must be a string, got " .. type(text) } }
  end
  local source = opts.source or "dotenv"
  local max_errors = opts.max_errors or 20
  local expand = opts.expand == true
  local lookup_env = opts.env
  local errs = {}
  local fatal = false
  local function err(line, col, msg, hint)
    if #errs < max_errors then errs[#errs + 1] = { line = line, col = col, msg = msg, hint = hint } end
  end

  if #text > M.MAX_BYTES then
    err(0, 0, string.format("the dotenv text is %d bytes; at most %d (16 MiB)", #text, M.MAX_BYTES),
      "a dotenv file holds settings and secrets, not data")
    return nil, errs
  end

  -- whole-text checks first: NUL bytes and invalid UTF-8 are reported at their line
  local s = M.normalize(text)
  local nul = s:find("\0", 1, true)
  if nul then
    err(line_of(s, nul), col_of(s, nul), "NUL byte (a dotenv file is text)")
    return nil, errs
  end
  local ok_utf8, bad_at = utf8.len(s)
  if not ok_utf8 then
    err(line_of(s, bad_at), col_of(s, bad_at), "invalid UTF-8 (a dotenv file must be UTF-8 text)")
    return nil, errs
  end

  local map, keys, entries, warnings, duplicates = {}, {}, {}, {}, {}
  local first_line = {}
  local len = #s
  local i, line = 1, 1

  -- Skip to the start of the next line (after the LF at or after position p).
  local function next_line(p)
    local nl = s:find("\n", p, true)
    if not nl then return len + 1, line end
    return nl + 1, line + 1
  end

  -- Expand $NAME / ${NAME} / ${NAME:-default} in a plain chunk (no escapes in it).
  local function lookup(name)
    if map[name] ~= nil then return map[name] end
    if type(lookup_env) == "table" then return lookup_env[name] end
    if type(lookup_env) == "function" then return lookup_env(name) end
    return nil
  end
  local expanded_total = 0   -- bytes of all expanded values so far (M.MAX_BYTES)
  -- chunk: the text at byte `at` of s (for the position of an error)
  local function expand_chunk(chunk, key, at_line, unquoted, at)
    if fatal then return nil end
    if not expand or not chunk:find("$", 1, true) then return chunk end
    local out, p = {}, 1
    while true do
      local d = chunk:find("$", p, true)
      if not d then break end
      local name, stop = nil, nil
      if unquoted and d > p and chunk:sub(d - 1, d - 1) == "\\" then
        out[#out + 1] = chunk:sub(p, d - 2) .. "$"
        p = d + 1
        goto continue
      end
      out[#out + 1] = chunk:sub(p, d - 1)
      local default
      if chunk:sub(d + 1, d + 1) == "{" then
        local a, b, n = chunk:find("^{([A-Za-z_][A-Za-z0-9_]*)}", d + 1)
        if a then
          name, stop = n, b
        else
          local a2, b2, n2, dflt = chunk:find("^{([A-Za-z_][A-Za-z0-9_]*):%-([^}]*)}", d + 1)
          if a2 then
            name, stop, default = n2, b2, dflt
          else
            err(at_line, 0, "invalid ${...} in the value of " .. key
              .. " (expected ${NAME} or ${NAME:-default}; write \\$ in double quotes for a literal $)")
            return nil
          end
        end
      else
        local a, b, n = chunk:find("^([A-Za-z_][A-Za-z0-9_]*)", d + 1)
        if a then name, stop = n, b end
      end
      if name then
        local v = lookup(name)
        if v == nil or (default and v == "") then v = default end
        if v == nil then
          err(at_line, 0, "undefined variable " .. name .. " in the value of " .. key
            .. " (define it earlier in the file, or write ${" .. name .. ":-} for an empty default)")
          return nil
        end
        expanded_total = expanded_total + #v
        if expanded_total > M.MAX_BYTES then
          local pos = (at or 1) + d - 1
          err(line_of(s, pos), col_of(s, pos), string.format("expanding %s in the value of %s goes "
            .. "beyond %d bytes (16 MiB) for the values of this file", name, key, M.MAX_BYTES),
            "values that expand each other over and over (B=${A}${A}, C=${B}${B} …) grow "
            .. "exponentially: expand each value from plain ones")
          fatal = true
          return nil
        end
        out[#out + 1] = v
        p = stop + 1
      else
        out[#out + 1] = "$"
        p = d + 1
      end
      ::continue::
    end
    out[#out + 1] = chunk:sub(p)
    return table.concat(out)
  end

  -- After a closing quote at position p (exclusive): blanks, an optional comment, then EOL.
  local function after_quote(p, at_line)
    local _, b = s:find(BLANK, p)
    local q = b + 1
    local c = s:sub(q, q)
    if c == "" or c == "\n" then return q end
    if c == "#" then
      local nl = s:find("\n", q, true)
      return nl or len + 1
    end
    err(at_line, col_of(s, q), "unexpected " .. show_char(c) .. " after the closing quote "
      .. "(quote the whole value, or start a comment with ' #')")
    local nl = s:find("\n", q, true)
    return nl or len + 1
  end

  local function add(key, value, start_line, last_line)
    if map[key] ~= nil then
      duplicates[#duplicates + 1] = { key = key, line = start_line, previous = first_line[key] }
      warnings[#warnings + 1] = string.format("%s:%d: %s is set again (first at line %d); "
        .. "the last value wins", source, start_line, key, first_line[key])
    else
      keys[#keys + 1] = key
      first_line[key] = start_line
    end
    map[key] = value
    entries[#entries + 1] = { key = key, value = value, line = start_line, last_line = last_line }
  end

  -- Fast path for the common line `KEY=plainvalue` (no blanks, quotes, #, $, \ or control
  -- characters, LF right after): the same result as the general path, in one match.
  -- (opts.fast = false turns it off: the fuzzer checks that both paths agree)
  local fk, fv, fe
  local use_fast = opts.fast ~= false
  local function fast(p)
    if not use_fast then return false end
    fk, fv, fe = s:match(FAST_LINE, p)
    return fk ~= nil
  end

  while i <= len and #errs < max_errors and not fatal do
    local _, b = s:find(BLANK, i)
    local p = b + 1
    local c = s:sub(p, p)
    if c == "" then break end
    if c == "\n" then
      i, line = p + 1, line + 1
    elseif c == "#" then
      local nl = s:find("\n", p, true) or len + 1
      if s:sub(p, nl - 1):find("^#[ \t]*db%-tool:[ \t]*expand[ \t]*$") then
        if #entries > 0 or #errs > 0 then
          err(line, col_of(s, p), "the `# db-tool: expand` directive must come before the first entry")
        end
        expand = true
      end
      i, line = next_line(p)
    elseif fast(p) then
      add(fk, fv, line, line)
      i, line = fe + 1, line + 1
    else
      local start_line = line
      -- `export ` prefix (but `export=1` / `export =1` is the key "export")
      local _, eb = s:find("^export[ \t]+", p)
      if eb and s:sub(eb + 1, eb + 1) ~= "=" then p = eb + 1 end
      local ka, kb = s:find(KEY_PATTERN, p)
      local key = ka and s:sub(ka, kb)
      local q = kb and kb + 1 or p
      if key then
        local _, bb = s:find(BLANK, q)
        q = bb + 1
      end
      if not key or s:sub(q, q) ~= "=" then
        local bad = key and s:sub(kb + 1, kb + 1)
        local eq = s:find("=", p, true)
        local nl = s:find("\n", p, true) or len + 1
        if not eq or eq > nl then
          err(line, col_of(s, p), "expected KEY=value (this line has no '=')")
        elseif not key then
          err(line, col_of(s, p), "invalid key: it starts with " .. show_char(s:sub(p, p))
            .. " (keys are letters, digits, _ . - and do not start with a digit)")
        else
          err(line, col_of(s, kb + 1), "invalid key: " .. show_char(bad) .. " is not allowed in a key "
            .. "(letters, digits, _ . -)")
        end
        i, line = next_line(p)
      else
        q = q + 1
        local value_start = q
        local _, vb = s:find(BLANK, q)
        q = vb + 1
        local v = s:sub(q, q)
        local value, stop
        if v == "'" then
          local close = s:find("'", q + 1, true)
          if not close then
            err(line, col_of(s, q), "unterminated single-quoted value of " .. key
              .. " (opened here; add the closing ')")
            break
          end
          value = s:sub(q + 1, close - 1)
          for _ in value:gmatch("\n") do line = line + 1 end
          stop = after_quote(close + 1, line)
        elseif v == '"' then
          local parts, k, closed = {}, q + 1, nil
          local chunk_start = k
          local failed = false
          while true do
            local a = s:find('["\\]', k)
            if not a then break end
            local lit = s:sub(chunk_start, a - 1)
            if s:sub(a, a) == '"' then
              local x = expand_chunk(lit, key, line, false, chunk_start)
              if x == nil then failed = true else parts[#parts + 1] = x end
              closed = a
              break
            end
            local e = s:sub(a + 1, a + 1)
            local x = expand_chunk(lit, key, line, false, chunk_start)
            if x == nil then failed = true else parts[#parts + 1] = x end
            if e == "" then break end
            parts[#parts + 1] = ESCAPES[e] or ("\\" .. e)
            k = a + 2
            chunk_start = k
          end
          if not closed then
            err(start_line, col_of(s, q), "unterminated double-quoted value of " .. key
              .. " (opened here; add the closing \")")
            break
          end
          value = not failed and table.concat(parts) or nil
          for _ in s:sub(q, closed):gmatch("\n") do line = line + 1 end
          stop = after_quote(closed + 1, line)
        else
          -- from just after '=' (so that `KEY= # comment` is an empty value)
          local from = value_start
          local nl = s:find("\n", q, true) or len + 1
          local raw = s:sub(from, nl - 1)
          local hash = raw:find("[ \t]#")
          if hash then raw = raw:sub(1, hash - 1) end
          local lead = #raw:match("^[ \t]*")
          q = from + lead                            -- where the value starts, for columns
          raw = raw:sub(lead + 1):gsub("[ \t]+$", "")
          local cc = raw:find("[%c]")
          while cc and raw:sub(cc, cc) == "\t" do cc = raw:find("[%c]", cc + 1) end
          if cc then
            err(line, col_of(s, q + cc - 1), "control character (" .. show_char(raw:sub(cc, cc))
              .. ") in the unquoted value of " .. key .. " (use double quotes and an escape)")
          else
            value = expand_chunk(raw, key, line, true, q)
          end
          stop = nl
        end
        if value ~= nil then add(key, value, start_line, line) end
        i = stop
        if s:sub(i, i) == "\n" then i, line = i + 1, line + 1 end
      end
    end
  end
  if #errs > 0 then return nil, errs end
  return { map = map, keys = keys, entries = entries, warnings = warnings, duplicates = duplicates,
    source = source, expanded = expand }
end

--- A structured error (exit 3) for the errors of decode(), at source:line.
function M.error(errs, source)
  source = source or "dotenv"
  local first = errs[1]
  local function where(e)
    if e.line == 0 then return source end
    return string.format("%s:%d", source, e.line) .. ((e.col and e.col > 0) and (":" .. e.col) or "")
  end
  local detail
  if #errs > 1 then
    local more = {}
    for j = 2, #errs do more[#more + 1] = where(errs[j]) .. ": " .. errs[j].msg end
    detail = "also:\n" .. table.concat(more, "\n")
  end
  return errors.new(errors.MISSING, "invalid dotenv: " .. first.msg, {
    where = where(first), file = source, line = first.line, detail = detail, errors = errs,
    hint = first.hint or ("lines are KEY=value (optionally `export KEY=value`); quote values that "
      .. "hold blanks followed by #, or span lines; see `database secrets --help`"),
  })
end

--- Parse or raise exit 3 (source:line: message).
function M.parse(text, source, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.source = source or o.source
  local res, errs = M.decode(text, o)
  if not res then error(M.error(errs, o.source), 0) end
  return res
end

--- Read and parse a file; raises exit 3 when it is not a readable regular file or is invalid.
--  Returns the result and the raw text.
function M.read_file(path, opts)
  local stat = require "posix.sys.stat"
  local st = stat.stat(path)
  local f = st and stat.S_ISREG(st.st_mode) ~= 0 and io.open(path, "rb")
  if not f then
    errors.raise(errors.MISSING, "dotenv file is not readable: " .. path,
      { hint = "check the path and its permissions", file = path })
  end
  if st.st_size > M.MAX_BYTES then
    f:close()
    errors.raise(errors.MISSING, string.format("dotenv file %s is %d bytes; at most %d (16 MiB)", path,
      st.st_size, M.MAX_BYTES), { file = path, where = path })
  end
  local text = f:read("a")
  f:close()
  return M.parse(text, path, opts), text
end

-- ---------------------------------------------------------------- writing

--- A VALUE token for `value` that parses back to it (bare when safe, else double-quoted).
function M.quote(value)
  value = tostring(value)
  if value == "" then return "" end
  if value:find("^[%w_./:@%%+,=~^-]+$") then return value end
  return '"' .. value:gsub('[\\"$\n\r\t]', {
    ["\\"] = "\\\\", ['"'] = '\\"', ["$"] = "\\$", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  }) .. '"'
end

local function check_key(key)
  if not M.valid_key(key) then
    errors.raise(errors.GENERIC, "invalid key " .. string.format("%q", tostring(key)):gsub("\\\n", "\\n")
      .. ": keys are letters, digits, _ . - and do not start with a digit",
      { hint = "for example DATABASE_PASSWORD" })
  end
end

--- Text for a map {KEY = value} (sorted keys) or a list of {key, value} pairs (in order).
function M.serialize(t)
  local list = {}
  if t[1] ~= nil or next(t) == nil then
    for _, kv in ipairs(t) do list[#list + 1] = { kv[1] or kv.key, kv[2] or kv.value } end
  else
    for k, v in pairs(t) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  local out = {}
  for _, kv in ipairs(list) do
    check_key(kv[1])
    out[#out + 1] = kv[1] .. "=" .. M.quote(kv[2]) .. "\n"
  end
  return table.concat(out)
end

-- Split normalised text into lines (without terminators); remembers CRLF style.
local function split(text)
  local crlf = text:find("\r\n", 1, true) ~= nil
  local bom = text:sub(1, 3) == "\239\187\191"
  local s = M.normalize(text)
  local lines = {}
  for l in (s .. (s:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  if s == "" then lines = {} end
  return lines, crlf and "\r\n" or "\n", bom and "\239\187\191" or ""
end

local function edit(text, key, value, opts)
  check_key(key)
  opts = opts or {}
  local res = M.parse(text, opts.source, opts)
  local lines, eol, bom = split(text)
  local drop, replace_at = {}, nil
  local removed = 0
  for _, e in ipairs(res.entries) do
    if e.key == key then
      removed = removed + 1
      if value ~= nil and replace_at == nil then replace_at = e end
      for l = e.line, e.last_line do drop[l] = true end
    end
  end
  local out = {}
  for n, l in ipairs(lines) do
    if replace_at and n == replace_at.line then
      local export = l:match("^[ \t]*export[ \t]+") and "export " or ""
      out[#out + 1] = export .. key .. "=" .. M.quote(value)
    elseif not drop[n] then
      out[#out + 1] = l
    end
  end
  if value ~= nil and not replace_at then out[#out + 1] = key .. "=" .. M.quote(value) end
  if #out == 0 then return bom, removed end
  return bom .. table.concat(out, eol) .. eol, removed
end

--- Set KEY to value in dotenv text, keeping everything else (see the header).
function M.set(text, key, value, opts)
  if type(value) ~= "string" then
    errors.raise(errors.GENERIC, "the value of " .. tostring(key) .. " must be a string")
  end
  return (edit(text, key, value, opts))
end

--- Remove every entry of KEY; returns the new text and how many entries were removed.
function M.unset(text, key, opts)
  return edit(text, key, nil, opts)
end

return M
