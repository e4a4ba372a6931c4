-- Machine-readable results (`--json` of `database deploy`, `check` and `test`): one JSON
-- document on stdout when the command ends, whether it succeeded or failed. The shape
-- (schema_version 1; README "Machine-readable results" is the reference):
--
--   { "schema_version": 1, "command": "database deploy", "ok": true, "exit_code": 0,
--     "started_at": "2026-01-31T12:00:00Z", "duration_ms": 812.5,
--     "steps": [{"name": "cluster", "duration_ms": 151.2, "ok": true}, ...],
--     "error": null | {"message", "exit_code", "file", "line", "column", "sqlstate", "detail",
--                      "hint", "step"},
--     ...what the command adds ("url", "tests") }
--
--   report.run(command, fn, {out =}) → fn's results     fn(doc) fills doc; the document is
--                                                        written even when fn raises
--   report.error_data(err) → table                       (pure)
--   report.steps(phases) → array                         (pure)
local core = require "dbtool.core"
local errors = require "dbtool.errors"

local M = {}

M.SCHEMA_VERSION = 1

-- the JSON encoder (dbtool.migrate's, until dbtool.json is the one encoder)
local function json()
  local m = require "dbtool.migrate"
  return { encode = m.json, array = m.array, null = m.null }
end

local function ms(seconds)
  return math.floor(seconds * 10000 + 0.5) / 10
end
M.ms = ms

--- The fields of error `e` as data: message, exit_code, and when known file, line, column
--- (from the error's fields, else from its "file:line:col" where), sqlstate, detail, hint.
function M.error_data(e)
  e = errors.wrap(e)
  local log = require "dbtool.log"
  local d = { message = log.redact(e.msg), exit_code = e.exit }
  local file, line, col = e.file, e.line, e.col
  if not file and type(e.where) == "string" then
    local f, l, c = e.where:match("^(.*):(%d+):(%d+)$")
    if not f then f, l = e.where:match("^(.*):(%d+)$") end
    file, line, col = f, l, c
  end
  d.file = file
  d.line = tonumber(line) and math.tointeger(tonumber(line)) or nil
  d.column = tonumber(col) and math.tointeger(tonumber(col)) or nil
  for _, k in ipairs { "sqlstate", "detail", "hint" } do
    if type(e[k]) == "string" then d[k] = log.redact(e[k]) end
  end
  if e.interrupted then d.interrupted = true end
  return d
end

--- The steps of a dbtool.workflow phase tracker: [{name, duration_ms, ok}] (the step that
--- failed last, with ok = false).
function M.steps(ph)
  local out = {}
  for i, p in ipairs(ph and ph.list or {}) do
    out[i] = { name = p.name, duration_ms = ms(p.seconds), ok = true }
  end
  if ph and ph.failed then
    out[#out + 1] = { name = ph.failed.name, duration_ms = ms(ph.failed.seconds), ok = false }
  end
  return json().array(out)
end

--- The document of a finished run (pure): doc as filled by the command, ok/err from the
--- protected call, res its first result (an exit code, true/nil = 0, false = 1).
function M.finish(doc, ok, res, seconds)
  doc.duration_ms = ms(seconds)
  if ok then
    local code = res
    if code == nil or code == true then code = 0 elseif code == false then code = 1 end
    doc.exit_code = code
    doc.ok = code == 0
    doc.error = json().null
  else
    doc.ok = false
    doc.error = M.error_data(res)
    doc.exit_code = doc.error.exit_code
    if doc.failed_step then doc.error.step = doc.failed_step end
  end
  doc.failed_step = nil
  if doc.steps == nil then doc.steps = json().array() end
  return doc
end

-- Run fn(...) with file descriptor 1 pointing where 2 does: whatever would go to stdout
-- (script output, \echo, a migration's or a child process's output) goes to stderr, so
-- that stdout holds the JSON document alone. Returns what errors.try returns.
local function stdout_to_stderr(fn, ...)
  local unistd = require "posix.unistd"
  io.stdout:flush()
  local saved
  core.uninterruptible(function()
    saved = unistd.dup(1)
    if saved then unistd.dup2(2, 1) end
  end)
  local res = table.pack(errors.try(fn, ...))
  io.stdout:flush()
  if saved then
    core.uninterruptible(function()
      unistd.dup2(saved, 1)
      unistd.close(saved)
    end)
  end
  return table.unpack(res, 1, res.n)
end

--- Run fn(doc) as `command`; the JSON document goes to opts.out (a function; default
--- stdout) when fn returns or raises; fn's error is raised again afterwards (the command
--- still reports it on stderr and exits with its code). While fn runs, what would go to
--- stdout goes to stderr.
function M.run(command, fn, opts)
  opts = opts or {}
  local doc = { schema_version = M.SCHEMA_VERSION, command = command,
    started_at = os.date("!%Y-%m-%dT%H:%M:%SZ") }
  local t0 = core.now()
  local res = table.pack(stdout_to_stderr(fn, doc))
  M.finish(doc, res[1], res[2], core.now() - t0)
  local out = opts.out or function(s) io.stdout:write(s) io.stdout:flush() end
  out(json().encode(doc) .. "\n")
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Record the migrations of a dbtool.migrate run in doc.steps ({name, direction, outcome,
--- duration_ms, ok}) by chaining onto the hooks of policy `pol`. Returns a function to call
--- when the run is over: a migration that began and did not end is the failed step (ok =
--- false, and doc.failed_step).
function M.record_migrations(doc, pol)
  pol.hooks = pol.hooks or {}
  local steps = json().array()
  doc.steps = steps
  local before, after = pol.hooks.before_each, pol.hooks.after_each
  local current, t0
  pol.hooks.before_each = function(info)
    current, t0 = info, core.now()
    if before then return before(info) end
  end
  pol.hooks.after_each = function(info)
    current = nil
    steps[#steps + 1] = { name = info.name, direction = info.direction, outcome = info.outcome,
      duration_ms = ms(info.duration or 0), ok = true }
    if after then return after(info) end
  end
  return function()
    if current then
      steps[#steps + 1] = { name = current.name, direction = current.direction,
        duration_ms = ms(core.now() - t0), ok = false }
      doc.failed_step = current.name
      current = nil
    end
  end
end

--- A migration plan as data: {direction, from, to, steps = [{name, direction}]}.
function M.plan(plan)
  local steps = {}
  for i, s in ipairs(plan and plan.steps or {}) do
    steps[i] = { name = s.m and s.m.name, direction = s.direction }
  end
  return { direction = plan and plan.direction, from = plan and plan.from, to = plan and plan.to,
    steps = json().array(steps) }
end

--- Test results as data (`tests` of database test / check --test).
function M.tests(summary)
  local j = json()
  local files = {}
  for i, r in ipairs(summary.files or {}) do
    local points = {}
    for k, p in ipairs(r.points) do
      points[k] = { ok = p.ok, description = p.description, directive = p.directive, reason = p.reason,
        file = p.file, line = p.line and math.tointeger(p.line),
        column = p.column and math.tointeger(p.column),
        message = p.message, sqlstate = p.sqlstate, kind = p.kind }
    end
    local c = require("dbtool.tap").counts(r.points)
    files[i] = { file = r.name, kind = r.kind, passed = r.passed, planned = r.plan and math.tointeger(r.plan),
      tests = c.tests, failures = c.failures, skipped = c.skipped, todo = c.todo,
      duration_ms = ms(r.seconds or 0),
      points = j.array(points), output = r.output or "", error = r.error and M.error_data(r.error) or j.null }
  end
  return { passed = summary.passed, files = j.array(files), tests = summary.tests or 0,
    failures = summary.failures or 0, skipped = summary.skipped or 0, todo = summary.todo or 0,
    failed_files = j.array(summary.failed_files or {}), duration_ms = ms(summary.seconds or 0) }
end

return M
