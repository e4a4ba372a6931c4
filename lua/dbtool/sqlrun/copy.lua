-- psql's \copy argument parser (parse_slash_copy of psql 15), as plain functions.
--
--   opts, err = copy.parse(args, std_strings)
--     args: the rest of the \copy line, taken whole (no variables, no backquotes, trailing
--     blanks kept); std_strings: standard_conforming_strings of the session.
--     opts = {from = bool, file = path | nil (stdin/stdout), program = bool,
--             psql_inout = bool (pstdin/pstdout), query = the COPY statement to send}
--     err: "\copy: arguments required", "\copy: parse error at "x"", ... (psql's words)
--
-- The statement sent is psql's: "COPY" .. the part before FROM/TO re-spaced token by token
-- .. " FROM STDIN " or " TO STDOUT " .. the rest of the line after the file name verbatim.
local M = {}

local WS = " \t\n\r"

local function in_set(set, c)
  return c ~= "" and set ~= nil and set:find(c, 1, true) ~= nil
end

-- psql's strip_quotes: remove the quote characters (a doubled quote is one), an escape
-- character keeps the next character.
local function strip_quotes(s, quote, escape)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == quote then
      if s:sub(i + 1, i + 1) == quote then
        out[#out + 1] = quote
        i = i + 2
      else
        i = i + 1
      end
    elseif escape and c == escape and i < n then
      out[#out + 1] = s:sub(i + 1, i + 1)
      i = i + 2
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

-- A tokenizer with psql's strtokx rules over string `s` from position `pos`:
-- whitespace separates; each delimiter character is a token; a quoted string is one token
-- (doubled quotes and the escape character inside); e_strings makes E'…' a string with
-- backslash escapes. A whitespace character right after a token is consumed with it.
-- Returns token, next position (or nil at the end).
local function strtokx(s, pos, whitespace, delim, quote, escape, e_strings, del_quotes)
  local n = #s
  local i = pos
  while i <= n and in_set(whitespace, s:sub(i, i)) do i = i + 1 end
  if i > n then return nil, i end
  local start = i
  local function finish(e)     -- token is s[start .. e-1]
    local tok = s:sub(start, e - 1)
    local nxt = e
    if e <= n and in_set(whitespace, s:sub(e, e)) then nxt = e + 1 end
    return tok, nxt
  end
  local c = s:sub(i, i)
  if in_set(delim, c) then return finish(i + 1) end
  local p = i
  if e_strings and (c == "E" or c == "e") and s:sub(i + 1, i + 1) == "'" then
    quote, escape = "'", "\\"
    p = i + 1
  end
  local q = s:sub(p, p)
  if quote and in_set(quote, q) then
    p = p + 1
    while p <= n do
      local ch = s:sub(p, p)
      if escape and ch == escape and p < n then
        p = p + 2
      elseif ch == q and s:sub(p + 1, p + 1) == q then
        p = p + 2
      elseif ch == q then
        p = p + 1
        break
      else
        p = p + 1
      end
    end
    if p > n + 1 then p = n + 1 end
    local tok, nxt = finish(p)
    if del_quotes then tok = strip_quotes(tok, q, escape) end
    return tok, nxt
  end
  local e = i
  while e <= n do
    local ch = s:sub(e, e)
    if in_set(whitespace, ch) or in_set(delim, ch) or in_set(quote, ch) then break end
    e = e + 1
  end
  return finish(e)
end
M.strtokx = strtokx

local function expand_tilde(p)
  if p:sub(1, 1) == "~" and (#p == 1 or p:sub(2, 2) == "/") then
    local home = os.getenv("HOME")
    if home then return home .. p:sub(2) end
  end
  return p
end

--- Parse the arguments of \copy (see the top of the file).
function M.parse(args, std_strings)
  if args == nil or args == "" then return nil, "\\copy: arguments required" end
  local nonstd = (not std_strings) and "\\" or nil
  local pos = 1
  local tok
  local function err()
    if tok then return nil, string.format('\\copy: parse error at "%s"', tok) end
    return nil, "\\copy: parse error at end of line"
  end
  local before = ""
  tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
  if not tok then return err() end
  if tok:lower() == "binary" then
    before = before .. tok
    tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
    if not tok then return err() end
  end
  if tok:sub(1, 1) == "(" then           -- \copy (query) to ...
    local parens = 1
    while parens > 0 do
      before = before .. " " .. tok
      tok, pos = strtokx(args, pos, WS, "()", "\"'", nonstd, true, false)
      if not tok then return err() end
      if tok:sub(1, 1) == "(" then parens = parens + 1
      elseif tok:sub(1, 1) == ")" then parens = parens - 1 end
    end
  end
  before = before .. " " .. tok
  tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
  if not tok then return err() end
  if tok:sub(1, 1) == "." then           -- schema . table
    before = before .. tok
    tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
    if not tok then return err() end
    before = before .. tok
    tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
    if not tok then return err() end
  end
  if tok:sub(1, 1) == "(" then           -- column list
    while true do
      before = before .. " " .. tok
      tok, pos = strtokx(args, pos, WS, "()", '"', nil, false, false)
      if not tok then return err() end
      if tok:sub(1, 1) == ")" then break end
    end
    before = before .. " " .. tok
    tok, pos = strtokx(args, pos, WS, ".,()", '"', nil, false, false)
    if not tok then return err() end
  end
  local opts = {}
  if tok:lower() == "from" then opts.from = true
  elseif tok:lower() == "to" then opts.from = false
  else return err() end
  tok, pos = strtokx(args, pos, WS, ";", "'", nil, false, false)
  if not tok then return err() end
  local low = tok:lower()
  if low == "program" then
    tok, pos = strtokx(args, pos, WS, ";", "'", nil, false, false)
    if not tok then return err() end
    if tok:sub(1, 1) ~= "'" or #tok < 2 or tok:sub(-1) ~= "'" then return err() end
    opts.program = true
    opts.file = strip_quotes(tok, "'")
  elseif low == "stdin" or low == "stdout" then
    opts.file = nil
  elseif low == "pstdin" or low == "pstdout" then
    opts.psql_inout = true
  else
    opts.file = expand_tilde(strip_quotes(tok, "'"))
  end
  local rest = pos <= #args and args:sub(pos) or nil
  opts.query = "COPY " .. before .. (opts.from and " FROM STDIN " or " TO STDOUT ") .. (rest or "")
  return opts
end

return M
