-- JUnit XML of `database test` results, in the common form CI systems read (GitHub
-- reporters, GitLab, Jenkins): one <testsuite> per test file, one <testcase> per pgTAP
-- assertion (per statement for plain SQL), <failure> with the message and file:line,
-- <error> for an SQL error that stopped a pgTAP file, <skipped> for SKIP and failing TODO
-- points, the file's script output in <system-out>. Pure: document(run) → text.
--
-- run = {name =, seconds =, timestamp = os.time(), files = {result, ...}} where a result is
-- dbtool.testrun's {name =, file =, points = {...}, seconds =, output =, started =}.
local tap = require "dbtool.tap"

local M = {}

local ENTITY = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;" }

--- Text safe inside an XML 1.0 attribute or element: markup escaped; characters XML 1.0
--- cannot hold (control characters other than tab, newline and carriage return, and bytes
--- that are not UTF-8) become U+FFFD.
function M.escape(s)
  s = tostring(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    -- the longest valid UTF-8 run from i, then the byte that is not
    local len, bad = utf8.len(s, i)
    local stop = len and n or bad - 1
    if stop >= i then
      out[#out + 1] = s:sub(i, stop):gsub("[%z\1-\8\11\12\14-\31]", "\239\191\189"):gsub("[&<>\"']", ENTITY)
    end
    if stop < n then out[#out + 1] = "\239\191\189" end
    i = stop + 2
  end
  return table.concat(out)
end

local function attrs(list)
  local out = {}
  for _, kv in ipairs(list) do
    if kv[2] ~= nil then out[#out + 1] = string.format(' %s="%s"', kv[1], M.escape(kv[2])) end
  end
  return table.concat(out)
end

local function secs(s)
  return string.format("%.3f", s or 0)
end

local function iso(t)
  return t and os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) or nil
end

--- Counts of one file's result: tests, failures, errors, skipped.
function M.counts(r)
  local c = { tests = #r.points, failures = 0, errors = 0, skipped = 0 }
  for _, p in ipairs(r.points) do
    if p.directive == "SKIP" or (not p.ok and p.directive == "TODO") then
      c.skipped = c.skipped + 1
    elseif tap.failing(p) then
      if p.kind == "error" then c.errors = c.errors + 1 else c.failures = c.failures + 1 end
    end
  end
  return c
end

local function where(p)
  if not p.file then return nil end
  return p.file .. (p.line and (":" .. math.tointeger(p.line)) or "")
    .. (p.column and (":" .. math.tointeger(p.column)) or "")
end

local function testcase(out, r, p, n)
  local name = (p.description and p.description ~= "") and p.description or ("test " .. n)
  local head = string.format("    <testcase%s", attrs {
    { "name", name }, { "classname", r.name }, { "file", p.file },
    { "line", p.line and math.tointeger(p.line) }, { "time", secs(p.seconds) } })
  local body = {}
  if p.directive == "SKIP" or (not p.ok and p.directive == "TODO") then
    local why = p.reason and p.reason ~= "" and p.reason or nil
    body[#body + 1] = string.format("      <skipped%s/>", attrs {
      { "message", p.directive == "TODO" and ("TODO" .. (why and (": " .. why) or "")) or why } })
  elseif tap.failing(p) then
    local msg = p.message or p.description or "failed"
    local text = {}
    local at = where(p)
    text[#text + 1] = (at and (at .. ": ") or "") .. msg
    for _, d in ipairs(p.diag or {}) do
      if d:match("^%s*(.-)%s*$") ~= msg then text[#text + 1] = d end
    end
    local el = p.kind == "error" and "error" or "failure"
    body[#body + 1] = string.format("      <%s%s>%s</%s>", el, attrs {
      { "message", (at and (at .. ": ") or "") .. msg },
      { "type", p.sqlstate and ("SQLSTATE " .. p.sqlstate) or p.kind or "assertion" } },
      M.escape(table.concat(text, "\n")), el)
  end
  if #body == 0 then
    out[#out + 1] = head .. "/>"
  else
    out[#out + 1] = head .. ">"
    for _, b in ipairs(body) do out[#out + 1] = b end
    out[#out + 1] = "    </testcase>"
  end
end

--- The JUnit XML document of `run`.
function M.document(run)
  local total = { tests = 0, failures = 0, errors = 0, skipped = 0 }
  local suites = {}
  for i, r in ipairs(run.files) do
    local c = M.counts(r)
    for k, v in pairs(c) do total[k] = total[k] + v end
    local out = {}
    out[#out + 1] = string.format("  <testsuite%s>", attrs {
      { "name", r.name }, { "id", i - 1 }, { "tests", c.tests }, { "failures", c.failures },
      { "errors", c.errors }, { "skipped", c.skipped }, { "time", secs(r.seconds) },
      { "timestamp", iso(r.started) }, { "file", r.file } })
    for n, p in ipairs(r.points) do testcase(out, r, p, n) end
    if r.output and r.output ~= "" then
      out[#out + 1] = "    <system-out>" .. M.escape(r.output) .. "</system-out>"
    end
    out[#out + 1] = "  </testsuite>"
    suites[i] = table.concat(out, "\n")
  end
  local head = string.format('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites%s>', attrs {
    { "name", run.name or "database test" }, { "tests", total.tests }, { "failures", total.failures },
    { "errors", total.errors }, { "skipped", total.skipped }, { "time", secs(run.seconds) },
    { "timestamp", iso(run.timestamp) } })
  local parts = { head }
  for _, s in ipairs(suites) do parts[#parts + 1] = s end
  parts[#parts + 1] = "</testsuites>"
  return table.concat(parts, "\n") .. "\n"
end

return M
