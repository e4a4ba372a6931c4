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

--- Register a secret value: it is replaced by *** in every line logged, and in every error
--- made (dbtool.errors.new), from now on. Values shorter than 4 bytes are not: hiding "one"
--- or "yes" wherever it appears would garble messages, and protects nothing.
function M.add_secret(value)
  if type(value) == "string" and #value >= 4 and not state.secrets[value] then
    state.secrets[value] = true
    state.secrets_sorted = nil
  end
end

--- Forget every registered secret (for specs that register values and must not change what
--- later specs in the same process see).
function M.forget_secrets()
  state.secrets, state.secrets_sorted = {}, nil
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

-- ---------------------------------------------------------------- connection strings

local function decode_url(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A conninfo value as libpq reads it: outer single quotes and backslash escapes removed.
local function conninfo_value(s)
  if s:sub(1, 1) == "'" then
    s = s:sub(2)
    if s:sub(-1) == "'" then s = s:sub(1, -2) end
  end
  return (s:gsub("\\(.)", "%1"))
end

-- Spans of the URL starting at byte `from` of `s` (the scheme's first letter); `stop` is the
-- last byte the URL may extend to.
local function url_spans(s, from, stop, spans)
  local body = s:match("^[%a][%w+.-]*://()", from)
  if not body then return end
  -- userinfo: from the first ':' to the LAST '@' (unencoded '@', '/', '?', '#' in a password
  -- move libpq's split, which then quotes pieces of the password as host, port or database)
  local last_at
  local i = body
  while true do
    local at = s:find("@", i, true)
    if not at or at > stop then break end
    last_at, i = at, at + 1
  end
  local colon = s:find(":", body, true)
  if last_at and colon and colon < last_at then
    spans[#spans + 1] = { first = colon + 1, last = last_at - 1,
      value = decode_url(s:sub(colon + 1, last_at - 1)) }
  end
  -- password=… in the query: up to the next `&name=`
  i = body
  while true do
    local _, b = s:find("[?&]password=", i)
    if not b or b > stop then break end
    local nxt = s:find("&[%w_]+=", b + 1)
    local last = (nxt and nxt <= stop) and nxt - 1 or stop
    spans[#spans + 1] = { first = b + 1, last = last, value = decode_url(s:sub(b + 1, last)) }
    i = b + 1
  end
end

--- Where a connection string (a URL or a conninfo) holds passwords, also when it is
--  malformed: a list of {first =, last =, value =}, byte positions in `s` and the text libpq
--  should read there. A URL's userinfo password runs from the first ':' after the scheme to
--  the last '@'; a `password=` of a URL query to the next `&name=`; a conninfo `password=`
--  value to its closing quote, else to the next `name=` (libpq stops at a blank and then
--  quotes the rest as a keyword). A URL inside a conninfo (`dbname=postgresql://…`) counts.
function M.connection_spans(s)
  local spans = {}
  if type(s) ~= "string" then return spans end
  local lead = s:match("^%s*()[%a][%w+.-]*://")   -- anchored: linear
  if lead then
    url_spans(s, lead, #s, spans)
    return spans
  end
  local i = 1
  while true do
    local a, b = s:find("password%s*=%s*", i)
    if not a then break end
    if a == 1 or s:sub(a - 1, a - 1):match("%s") then
      local first, last = b + 1, #s
      if s:sub(first, first) == "'" then
        local j = first + 1
        while j <= #s do
          local ch = s:sub(j, j)
          if ch == "\\" then j = j + 2
          elseif ch == "'" then last = j break
          else j = j + 1 end
        end
      else
        local nxt = s:find("%s+[%w_]+%s*=", first)
        if nxt then last = nxt - 1 end
      end
      spans[#spans + 1] = { first = first, last = last, value = conninfo_value(s:sub(first, last)) }
      i = last + 1
    else
      i = b + 1
    end
  end
  -- URLs given as a keyword's value (libpq expands dbname=URL)
  i = 1
  while true do
    local sep = s:find("://", i, true)
    if not sep then break end
    local a = sep
    while a > 1 and s:sub(a - 1, a - 1):find("^[%w+.-]$") do a = a - 1 end
    local stop = (s:find("%s", sep) or (#s + 1)) - 1
    if a < sep then url_spans(s, a, stop, spans) end
    i = stop + 1
  end
  return spans
end

--- Register the passwords of connection string `s` (see connection_spans) with the
--  redaction, as written and as libpq reads them, when the ordinary redaction of `s` would
--  not hide them whole (a malformed string: '/', '@', a blank … in a password); a table
--  {password = …} too. (A well-formed URL's password needs no registering, and a password
--  such as "postgres" would then hide that word everywhere.) Call it before anything can
--  print `s` or an error about it. Returns the spans.
function M.add_connection(s)
  if type(s) == "table" then
    if type(s.password) == "string" then M.add_secret(s.password) end
    return {}
  end
  local spans = M.connection_spans(s)
  if #spans > 0 and M.redact(s) ~= M.redact_spans(s, spans) then
    for _, sp in ipairs(spans) do
      M.add_secret(s:sub(sp.first, sp.last))
      M.add_secret(sp.value)
    end
  end
  return spans
end

--- Register the passwords of every connection string a program was given — the variables
--  PGURL, DB_URL, DATABASE_URL, STAGING_DB_URL, $PG_URL_VAR, PGPASSWORD, and every argument
--  that looks like a URL or conninfo (`-u URL`, `--url=URL`, `--db-url URL` …) — before anything runs, so no
--  line can print them, whatever the command does with them.
function M.add_connections_from(args)
  local names = { "PGURL", "DB_URL", "DATABASE_URL", "STAGING_DB_URL", os.getenv("PG_URL_VAR") }
  for _, name in ipairs(names) do
    if name ~= "" then M.add_connection(os.getenv(name)) end
  end
  M.add_secret(os.getenv("PGPASSWORD"))
  for _, a in ipairs(args or {}) do
    if type(a) == "string" and (a:find("://", 1, true) or a:find("password", 1, true)) then
      M.add_connection((a:gsub("^%-%-?[%w-]+=", "")))
    end
  end
end

-- A "quoted" piece of an error message about connection string `s`: wherever it occurs in
-- `s`, the characters inside a password span become ***; a piece that does not occur in `s`
-- (libpq decoded it) is hidden when it is part of a password, or holds one.
local function mask_piece(piece, s, spans)
  if piece == "" then return piece end
  local hide, found, i = {}, false, 1
  while true do
    local a, b = s:find(piece, i, true)
    if not a then break end
    found = true
    for _, sp in ipairs(spans) do
      for p = math.max(a, sp.first), math.min(b, sp.last) do hide[p - a + 1] = true end
    end
    i = a + 1
  end
  if not found then
    for _, sp in ipairs(spans) do
      if sp.value:find(piece, 1, true) then return "***" end
      if sp.value ~= "" and piece:find(sp.value, 1, true) then piece = plain_gsub(piece, sp.value, "***") end
    end
    return piece
  end
  local out, j, n = {}, 1, #piece
  while j <= n do
    local k = j
    if hide[j] then
      while k <= n and hide[k] do k = k + 1 end
      out[#out + 1] = "***"
    else
      while k <= n and not hide[k] do k = k + 1 end
      out[#out + 1] = piece:sub(j, k - 1)
    end
    j = k
  end
  return table.concat(out)
end

--- Connection string `s` with every password span (see connection_spans) replaced by ***.
function M.redact_spans(s, spans)
  if type(s) ~= "string" then return s end
  local sorted = {}
  for i, sp in ipairs(spans or M.connection_spans(s)) do sorted[i] = sp end
  table.sort(sorted, function(a, b) return a.first > b.first end)
  for _, sp in ipairs(sorted) do
    if sp.last >= sp.first then s = s:sub(1, sp.first - 1) .. "***" .. s:sub(sp.last + 1) end
  end
  return M.redact(s)
end

--- Redact an error message about connection string `s` that libpq may have made from pieces
--  of it: every "quoted" piece overlapping a password span is masked (libpq quotes what it
--  could not use: a port, a host name, a percent-encoded token, the whole URI), then
--  redact() as for any line.
function M.redact_connection(msg, s, spans)
  if type(msg) ~= "string" then return msg end
  spans = spans or M.connection_spans(s)
  if type(s) == "string" and #spans > 0 then
    msg = msg:gsub('"([^"]*)"', function(piece) return '"' .. mask_piece(piece, s, spans) .. '"' end)
  end
  return M.redact(msg)
end

-- `scheme://user:pw@` → `scheme://user:***@`. Linear in the length of s: an unanchored
-- pattern such as "%a[%w+.-]*://" backtracks over every run of letters (seconds for 10 KB).
local function redact_userinfo(s)
  if not s:find("://", 1, true) then return s end
  local out, i, from = {}, 1, 1
  while true do
    local a = s:find("://", from, true)
    if not a then break end
    local body = a + 3
    from = body
    if a > 1 and s:sub(a - 1, a - 1):find("^[%w+.-]$") then
      local colon = s:match("^[^/@%s:]*()", body)
      if s:sub(colon, colon) == ":" then
        local at = s:match("^[^@%s/?#]*()", colon + 1)
        if s:sub(at, at) == "@" then
          out[#out + 1] = s:sub(i, colon) .. "***"
          i, from = at, at
        end
      end
    end
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

--- Hide passwords: `scheme://user:pw@host`, `password=pw` (conninfo, URL query), secrets.
function M.redact(s)
  s = tostring(s)
  -- registered secrets first, longest first: a pattern below could cut one in two
  if state.secrets_sorted == nil then
    local list = {}
    for secret in pairs(state.secrets) do list[#list + 1] = secret end
    table.sort(list, function(a, b) return #a > #b end)
    state.secrets_sorted = list
  end
  for _, secret in ipairs(state.secrets_sorted) do
    if s:find(secret, 1, true) then s = plain_gsub(s, secret, "***") end
  end
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
  return s
end

-- ---------------------------------------------------------------- output

local function format(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  return string.format(fmt, ...)
end

--- `s` redacted, then cut for display (errors.shorten): cutting first could leave the start
--- of a secret for redact() to miss.
function M.shown(s)
  return require("dbtool.errors").shorten(M.redact(s))
end

--- Write one log line at `level` for namespace `ns` (no level filtering), redacted and cut
--- for display (M.shown).
function M.write(level, ns, msg)
  local stream = state.stream
  local fd = (stream == io.stdout) and 1 or 2
  msg = M.shown(msg)
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
