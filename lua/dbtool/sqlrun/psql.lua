-- psql 15's rules that dbtool.sqlrun follows, as plain functions (no database needed):
-- which statements get no implicit BEGIN with AUTOCOMMIT off, how its specially treated
-- variables take values, what \connect reads as a connection string.
--
--   psql.command_no_begin(query) → bool
--   psql.set_value(name, value) → value to store (nil: unset) | nil, false, message
--   psql.HOOKED[name]            variables \gset does not write (psql warns and skips them)
--   psql.is_connection_string(s) → bool
local printer = require "dbtool.sqlrun.print"

local M = {}

-- Skip whitespace and comments (nested /* */, --) from position i of q.
local function skip_white(q, i)
  local depth = 0
  local n = #q
  while i <= n do
    local c = q:sub(i, i)
    local two = q:sub(i, i + 1)
    if c:find("^[ \t\n\r\f\v]") then
      i = i + 1
    elseif two == "/*" then
      depth = depth + 1
      i = i + 2
    elseif depth > 0 and two == "*/" then
      depth = depth - 1
      i = i + 2
    elseif depth == 0 and two == "--" then
      local nl = q:find("\n", i + 2, true)
      i = nl and nl + 1 or n + 1
    elseif depth > 0 then
      i = i + 1
    else
      break
    end
  end
  return i
end

-- The word (ASCII letters) at position i of q, lowercased, and the position after it.
local function word(q, i)
  i = skip_white(q, i)
  local w = q:match("^%a*", i)
  return w:lower(), i + #w
end

--- Is `query` one before which psql sends no BEGIN when AUTOCOMMIT is off (transaction
--- control, and what the server refuses inside a transaction block)?
function M.command_no_begin(query)
  local w, i = word(query, 1)
  if w == "abort" or w == "begin" or w == "start" or w == "commit" or w == "end" or
      w == "rollback" then
    return true
  end
  if w == "prepare" then return (word(query, i)) == "transaction" end
  if w == "vacuum" then return true end
  if w == "cluster" then
    -- CLUSTER with any arguments is allowed in transactions
    local j = skip_white(query, i)
    return not query:sub(j, j):find("^%a")
  end
  if w == "create" then
    local w2, j = word(query, i)
    if w2 == "database" or w2 == "tablespace" then return true end
    if w2 == "unique" then w2, j = word(query, j) end
    if w2 == "index" then return (word(query, j)) == "concurrently" end
    return false
  end
  if w == "alter" then return (word(query, i)) == "system" end
  if w == "drop" or w == "reindex" then
    local w2, j = word(query, i)
    if w2 == "database" or w2 == "system" or w2 == "tablespace" then return true end
    if w2 == "index" or w2 == "table" then
      local w3 = word(query, j)
      if w3 == "concurrently" then return true end
    end
    return false
  end
  if w == "discard" then return (word(query, i)) == "all" end
  return false
end

local BOOL_VARS = { AUTOCOMMIT = true, ON_ERROR_STOP = true, QUIET = true, SINGLELINE = true,
  SINGLESTEP = true }

--- Variables psql treats specially (an assign hook): \gset skips them with a warning.
M.HOOKED = {}
for w in ([[AUTOCOMMIT COMP_KEYWORD_CASE ECHO ECHO_HIDDEN FETCH_COUNT HIDE_TABLEAM
  HIDE_TOAST_COMPRESSION HISTCONTROL HISTSIZE IGNOREEOF ON_ERROR_ROLLBACK ON_ERROR_STOP PROMPT1
  PROMPT2 PROMPT3 QUIET SHOW_ALL_RESULTS SHOW_CONTEXT SINGLELINE SINGLESTEP VERBOSITY]]):gmatch("%S+") do
  M.HOOKED[w] = true
end

--- The value psql stores when `name` is set to `value` (nil: \unset). Boolean variables
--- turn \unset into "off" and an empty value into "on" and refuse non-booleans;
--- ON_ERROR_ROLLBACK takes on/off/interactive. Returns the value, or nil, false, message.
function M.set_value(name, value)
  if BOOL_VARS[name] then
    if value == nil then return "off" end
    if value == "" then return "on" end
    if printer.parse_bool(value) == nil then
      return nil, false, string.format('unrecognized value "%s" for "%s": Boolean expected', value, name)
    end
    return value
  elseif name == "ON_ERROR_ROLLBACK" then
    if value == nil then return "off" end
    if value:lower() == "interactive" or printer.parse_bool(value) ~= nil then return value end
    return nil, false, string.format('unrecognized value "%s" for "%s"\n' ..
      "Available values are: on, off, interactive.", value, name)
  end
  return value
end

--- ON_ERROR_ROLLBACK's effect in a script: true only for on (interactive means off there).
function M.error_rollback(value)
  if value == nil or value:lower() == "interactive" then return false end
  return printer.parse_bool(value) == true
end

--- Does \connect read `s` as a connection string (URI or keyword=value)?
function M.is_connection_string(s)
  return s:find("^postgresql://") ~= nil or s:find("^postgres://") ~= nil or s:find("=", 1, true) ~= nil
end

return M
