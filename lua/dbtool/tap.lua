-- TAP: reading the lines pgTAP returns, judging a file's results, and writing TAP 13
-- (https://testanything.org: "TAP version 13", test points, YAML diagnostic blocks, the plan).
-- Pure functions over plain tables, used by `database test` (dbtool.testrun).
--
-- A test point: {ok = bool, description =, directive = "SKIP" | "TODO" | nil, reason =,
-- diag = {lines without the leading "# "}, file =, line =, message =, sqlstate =}.
local M = {}

--- Is this line (a value returned by a test query) a TAP line pgTAP prints? `started`: TAP
--- output was seen before (then "# diagnostics" count too).
function M.is_tap_line(line, started)
  return line:match("^ok %d") ~= nil or line:match("^not ok %d") ~= nil
    or line:match("^%d+%.%.%d+") ~= nil or line:match("^Bail out!") ~= nil
    or (started == true and line:match("^#") ~= nil)
end

-- The directive of a test line's tail ("desc # SKIP why"): the last unescaped '#' followed
-- by SKIP or TODO (any case; pgTAP writes "# SKIP" and "# TODO"). Returns description,
-- directive, reason.
local function split_directive(rest)
  local pos
  local i = 1
  while true do
    local s = rest:find("#", i, true)
    if not s then break end
    if rest:sub(s - 1, s - 1) ~= "\\" then pos = s end
    i = s + 1
  end
  if pos then
    local word, reason = rest:sub(pos + 1):match("^%s*(%a+)%s*(.-)%s*$")
    local up = word and word:upper()
    if up and (up:sub(1, 4) == "SKIP" or up == "TODO") then
      return (rest:sub(1, pos - 1):gsub("%s+$", "")), up:sub(1, 4), reason
    end
  end
  return rest, nil, nil
end

--- Parse one TAP line: {kind = "point", ok =, number =, description =, directive =,
--- reason =} | {kind = "plan", first =, last =, skip = reason | nil} | {kind = "diag",
--- text =} | {kind = "bail", reason =} | {kind = "other", text =}.
function M.parse_line(line)
  local ok, after
  if line == "ok" or line:match("^ok%s") then
    ok, after = true, line:sub(3)
  elseif line == "not ok" or line:match("^not ok%s") then
    ok, after = false, line:sub(7)
  end
  if after then
    local num, rest = after:match("^%s*(%d*)%s*(.-)%s*$")
    rest = rest:gsub("^%-%s*", "")
    local desc, directive, reason = split_directive(rest)
    return { kind = "point", ok = ok, number = tonumber(num), description = (desc:gsub("\\#", "#")),
      directive = directive, reason = reason }
  end
  local a, b, tail = line:match("^(%d+)%.%.(%d+)(.*)$")
  if a then
    local skip = tail:match("^%s*#%s*[Ss][Kk][Ii][Pp]%S*%s*(.-)%s*$")
    return { kind = "plan", first = tonumber(a), last = tonumber(b), skip = skip }
  end
  local bail = line:match("^Bail out!%s*(.-)%s*$")
  if bail then return { kind = "bail", reason = bail } end
  local diag = line:match("^#%s?(.*)$")
  if diag then return { kind = "diag", text = diag } end
  return { kind = "other", text = line }
end

--- Does this point fail the run? (not ok without TODO/SKIP)
function M.failing(p)
  return not p.ok and p.directive ~= "TODO" and p.directive ~= "SKIP"
end

--- Counts of a list of points: {tests =, failures =, skipped =, todo =}.
function M.counts(points)
  local c = { tests = #points, failures = 0, skipped = 0, todo = 0 }
  for _, p in ipairs(points) do
    if M.failing(p) then c.failures = c.failures + 1 end
    if p.directive == "SKIP" then c.skipped = c.skipped + 1 end
    if p.directive == "TODO" then c.todo = c.todo + 1 end
  end
  return c
end

-- ---------------------------------------------------------------- TAP 13 output

local function yaml_string(s)
  s = tostring(s)
  if s:match("^[%w%._/:%-][%w%._/:%- ]*$") and not s:match(":%s") and not s:match("%s$") then return s end
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" end
    if c == "\t" then return "\\t" end
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

--- A description safe on a test line: one line, '#' escaped (it would start a directive).
function M.escape(s)
  return (tostring(s):gsub("[\r\n]+", " "):gsub("#", "\\#"))
end

--- The lines of test point `p` numbered `n` in TAP 13: the test line, a YAML block for a
--- failure (message, severity, file, line, sqlstate), then its diagnostics as comments.
function M.point_lines(p, n)
  local out = {}
  local line = (p.ok and "ok " or "not ok ") .. n
  if p.description and p.description ~= "" then line = line .. " - " .. M.escape(p.description) end
  if p.directive then
    local why = (p.reason and p.reason ~= "") and (" " .. M.escape(p.reason)) or ""
    line = line .. " # " .. p.directive .. why
  end
  out[1] = line
  if not p.ok and p.directive ~= "SKIP" then
    out[#out + 1] = "  ---"
    out[#out + 1] = "  message: " .. yaml_string(p.message or p.description or "failed")
    out[#out + 1] = "  severity: " .. (p.directive == "TODO" and "todo" or "fail")
    if p.file then
      out[#out + 1] = "  at:"
      out[#out + 1] = "    file: " .. yaml_string(p.file)
      if p.line then out[#out + 1] = "    line: " .. math.tointeger(p.line) end
      if p.column then out[#out + 1] = "    column: " .. math.tointeger(p.column) end
    end
    if p.sqlstate then out[#out + 1] = "  sqlstate: " .. yaml_string(p.sqlstate) end
    out[#out + 1] = "  ..."
  end
  for _, d in ipairs(p.diag or {}) do
    for l in (d .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = "# " .. l end
  end
  return out
end

return M
