-- Structured errors: tables {exit = N, msg = "...", hint = "...", ...} raised with error()
-- and mapped to the process exit code in one place (dbtool.cli). Database errors raised by
-- the C modules use the same metatable and carry the PG_DIAG_* fields as well.
local core = require "dbtool.core"

local M = {}

--- Exit codes of the seed (seeds/db-tool.md) plus migrator's 4.
M.OK = 0
M.GENERIC = 1
M.AMBIGUOUS = 2
M.MISSING = 3
M.MIGRATION_FAILED = 4
M.NO_TABLE = 5
M.NOT_FOUND = 9
M.BUG = 13
M.NO_DEPENDENCY = 127

M.mt = core.error_mt

--- How much of a message is shown (M.shorten).
M.MAX_MESSAGE = 4096

--- `s` cut to `max` bytes (default M.MAX_MESSAGE) at a UTF-8 boundary, saying how much was
--- left out: a message is shown, never a whole input.
function M.shorten(s, max)
  max = max or M.MAX_MESSAGE
  if type(s) ~= "string" or #s <= max then return s end
  local cut = max
  while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return s:sub(1, cut) .. string.format(" … (%d more bytes)", #s - cut)
end

--- `s` with each byte that is not part of valid UTF-8 written as \xHH (for messages
--- naming a file or directory whose name is not UTF-8).
function M.printable(s)
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1) .. string.format("\\x%02X", s:byte(bad))
    i = bad + 1
  end
  return table.concat(out)
end

--- New error value. `fields` may add hint, file, line, sqlstate, ... The message, hint
--- and detail are redacted (no password or registered secret in an error value, whoever
--- prints it), then shortened for display (M.shorten): an error quoting a hostile input (a
--- 10 MB key) stays readable and cheap to print.
function M.new(code, msg, fields)
  local e = {}
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  local redact = require("dbtool.log").redact
  local function shown(s)
    if type(s) ~= "string" then return s end
    return M.shorten(redact(s))
  end
  e.exit = code
  e.msg = shown(msg)
  e.hint = shown(e.hint)
  e.detail = shown(e.detail)
  return setmetatable(e, M.mt)
end

--- Raise an error value (never returns).
function M.raise(code, msg, fields)
  error(M.new(code, msg, fields), 0)
end

--- Shorthand: raise with a hint.
function M.fail(code, msg, hint)
  error(M.new(code, msg, hint and { hint = hint } or nil), 0)
end

function M.is(e)
  return type(e) == "table" and math.type(e.exit) == "integer" and type(e.msg) == "string"
end

--- Wrap anything (string, error value) into an error value; unknown things are bugs.
function M.wrap(e)
  if M.is(e) then return e end
  return M.new(M.BUG, tostring(e), { bug = true })
end

--- xpcall message handler: error values pass; anything else becomes a bug with a traceback.
function M.handler(e)
  if M.is(e) then return e end
  local msg = tostring(e)
  if type(e) == "table" and getmetatable(e) == nil and type(e.msg) == "string" then msg = e.msg end
  return M.new(M.BUG, msg, { bug = true, traceback = debug.traceback(msg, 2) })
end

--- Run f(...) and return true, results... or false, error value (never raises).
function M.try(f, ...)
  return xpcall(f, M.handler, ...)
end

--- Call f(...) and, whatever happens, call cleanup(err) afterwards; errors of f win.
function M.finally(cleanup, f, ...)
  local res = table.pack(xpcall(f, M.handler, ...))
  local ok2, err2 = pcall(cleanup, not res[1] and res[2] or nil)
  if not res[1] then error(res[2], 0) end
  if not ok2 then error(err2, 0) end
  return table.unpack(res, 2, res.n)
end

return M
