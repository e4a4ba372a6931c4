-- Logging to stderr as `<namespace>> <message>`, compatible with hectic's HECTIC_LOG
-- (`level[;ns=level...]`, levels trace < debug < info < notice < warn < error). Colour only
-- on a TTY and never with NO_COLOR. Every line goes through redact(): URL and conninfo
-- passwords and registered secret values never reach the terminal or a log file.
local ui = require "dbtool.ui"

local M = {}

local LEVELS = { trace = 1, debug = 2, info = 3, notice = 4, warn = 5, error = 6, panic = 6, off = 7 }
M.LEVELS = LEVELS

local COLORS = { trace = "magenta", debug = "blue", info = "green", notice = "cyan",
  warn = "yellow", error = "red", panic = "bred" }

local state = {
  level = LEVELS.info,     -- default level when nothing else says
  ns_levels = {},          -- from HECTIC_LOG
  forced = nil,            -- --verbose / --quiet win over HECTIC_LOG
  secrets = {},
  stream = io.stderr,
  warned_spec = false,
}

--- Parse a HECTIC_LOG value. Returns default level, {ns = level} or nil, message.
function M.parse_spec(spec)
  local default, per_ns = nil, {}
  for part in (spec .. ";"):gmatch("([^;]*);") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then
      local ns, lvl = part:match("^(.-)%s*=%s*(%a+)$")
      if ns then
        if not LEVELS[lvl] or ns == "" then return nil, "invalid HECTIC_LOG entry '" .. part .. "'" end
        per_ns[ns] = LEVELS[lvl]
      elseif LEVELS[part] then
        default = LEVELS[part]
      else
        return nil, "invalid HECTIC_LOG entry '" .. part .. "'"
      end
    end
  end
  return default, per_ns
end

--- Configure from the environment and options: {level = "debug", spec = HECTIC_LOG, stream = f}.
function M.configure(opts)
  opts = opts or {}
  if opts.stream then state.stream = opts.stream end
  local spec = opts.spec
  if spec == nil then spec = os.getenv("HECTIC_LOG") end
  if spec and spec ~= "" then
    local default, per_ns = M.parse_spec(spec)
    if default == nil and type(per_ns) == "string" then
      if not state.warned_spec then
        state.warned_spec = true
        M.ns("db-tool"):warn("ignoring HECTIC_LOG: %s", per_ns)
      end
    else
      if default then state.level = default end
      state.ns_levels = per_ns
    end
  end
  if opts.level then state.forced = assert(LEVELS[opts.level], opts.level) end
end

function M.level_of(ns)
  if state.forced then return state.forced end
  return state.ns_levels[ns] or state.level
end

function M.enabled(level, ns)
  return LEVELS[level] >= M.level_of(ns or "")
end

-- ---------------------------------------------------------------- redaction

--- Register a secret value: it is replaced by *** in every line logged from now on.
function M.add_secret(value)
  if type(value) == "string" and #value >= 3 then state.secrets[value] = true end
end

local function plain_gsub(s, needle, repl)
  local out, i = {}, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = repl
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- `scheme://user:pw@` → `scheme://user:***@`, in time linear in #s: found from each "://"
-- (a pattern starting with the scheme retries from every letter: quadratic on long words)
local function redact_userinfo(s)
  if not s:find("://", 1, true) then return s end
  local out, done, from = {}, 1, 1
  while true do
    local a = s:find("://", from, true)
    if not a then break end
    local _, e, user = s:find("^([^/@%s:]*):[^@%s/?#]*@", a + 3)
    if e and a > 1 and s:find("^[%w+.-]", a - 1) then
      out[#out + 1] = s:sub(done, a + 2) .. user .. ":***@"
      done, from = e + 1, e + 1
    else
      from = a + 1
    end
  end
  out[#out + 1] = s:sub(done)
  return table.concat(out)
end

--- Hide passwords: `scheme://user:pw@host`, `password=pw` (conninfo, URL query), secrets.
function M.redact(s)
  s = tostring(s)
  -- userinfo of any URL: keep the user, hide what follows the first ':'
  s = redact_userinfo(s)
  -- conninfo keyword and URL query parameter forms
  s = s:gsub("([?&]password=)[^&%s]*", "%1***")
  s = s:gsub("(password%s*=%s*)'[^']*'", "%1***")
  s = s:gsub("(password%s*=%s*)([^%s'&]+)", function(k, v)
    if v == "***" then return k .. v end
    return k .. "***"
  end)
  s = s:gsub("(PGPASSWORD=)%S+", "%1***")
  for secret in pairs(state.secrets) do
    if s:find(secret, 1, true) then s = plain_gsub(s, secret, "***") end
  end
  return s
end

-- ---------------------------------------------------------------- output

local function format(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  return string.format(fmt, ...)
end

--- Write one log line at `level` for namespace `ns` (no level filtering).
function M.write(level, ns, msg)
  local stream = state.stream
  local fd = (stream == io.stdout) and 1 or 2
  msg = M.redact(msg)
  local line
  -- plain info lines; colour only for warnings and errors
  if LEVELS[level] >= LEVELS.warn and ui.color(fd) then
    line = "\27[90m" .. ns .. ">\27[0m \27[" .. ui.codes[COLORS[level]] .. "m" .. msg .. "\27[0m\n"
  else
    line = ns .. "> " .. msg .. "\n"
  end
  local status = ui.suspend_status()
  -- what the program printed on stdout before this line comes out before it, also when
  -- stdout is a pipe (block-buffered) shared with stderr: `database hydrate 2>&1 | cat`
  if stream ~= io.stdout then io.stdout:flush() end
  stream:write(line)
  stream:flush()
  ui.resume_status(status)
end

local Logger = {}
Logger.__index = Logger

for level in pairs(COLORS) do
  Logger[level] = function(self, fmt, ...)
    if LEVELS[level] >= M.level_of(self.name) then
      M.write(level, self.name, format(fmt, ...))
    end
  end
end

--- A logger for namespace `name` ("db deploy").
function M.ns(name)
  return setmetatable({ name = name }, Logger)
end

function Logger:child(name)
  return M.ns(self.name .. " " .. name)
end

function Logger:enabled(level)
  return LEVELS[level] >= M.level_of(self.name)
end

local default = M.ns("db-tool")
for level in pairs(COLORS) do
  M[level] = function(...) return default[level](default, ...) end
end

return M
