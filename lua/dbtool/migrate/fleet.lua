-- Fleets: one `migrator` command over many databases (a database or schema per tenant,
-- shards). Each target runs as a child `migrator` process — its own connection, lock and
-- transactions, exactly as a single run — at most `jobs` at a time; the parent schedules,
-- shows progress, keeps each target's log and prints a summary (or a JSON document).
--
--   targets: `--targets FILE|-` (one URL a line, or NAME=URL; blank lines and # comments
--   skipped; a key=value conninfo line is one unnamed target), or `targets` in db-tool.lua
--   (an array of URLs, a map NAME = URL, an array of {name =, url =}, or a function returning
--   one of those — e.g. tenant databases listed by a catalog query), with `--all-targets`.
--
-- Policy here is plain functions (parse, names, summary, exit code: unit-tested); run() does
-- the processes. Exit code: 0 when every target succeeded, 4 when any failed (its log says
-- why), 130 when interrupted. Ctrl-C: no new target starts; each running one is interrupted
-- once (its current migration rolls back, as a single run does) and waited for.
local errors = require "dbtool.errors"

local M = {}

M.SCHEMA_VERSION = 1

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function is_url(s)
  return s:match("^%a[%w+.%-]*://") ~= nil or s:match("^sqlite:") ~= nil
end

--- A target's default name: the database name of its URL or conninfo, else "target-N".
function M.default_name(url, i)
  local name = url:match("^%a[%w+.%-]*://[^/?#]*/([^?#]+)")
  if not name then name = url:match("dbname%s*=%s*'([^']*)'") or url:match("dbname%s*=%s*([^%s]+)") end
  if not name and url:match("^sqlite:") then name = url:match("([^/]+)$") end
  if name then name = name:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end) end
  if not name or name == "" or not name:match("^[%w_.%-]+$") then name = "target-" .. i end
  return name
end

local function add(list, seen, name, url, where)
  if seen[name] then
    errors.raise(errors.AMBIGUOUS, string.format("%s: target %s is given twice (first at %s)", where, name,
      seen[name]), { hint = "give each target its own name: NAME=URL" })
  end
  seen[name] = where
  list[#list + 1] = { name = name, url = url, where = where }
end

--- Parse a targets file's text. Returns {{name, url, where}...}; raises exit 2 (a name given
--- twice) or 3 (no target) naming source:line.
function M.parse(text, source)
  local list, seen, n = {}, {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = trim(line:gsub("\r$", ""))
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local where = source .. ":" .. n
      local name, rest = line:match("^([%a_][%w_.%-]*)%s*=%s*(.+)$")
      if name and is_url(rest) then
        add(list, seen, name, rest, where)
      else
        local default = M.default_name(line, #list + 1)
        if seen[default] then default = default .. "-" .. (#list + 1) end
        add(list, seen, default, line, where)
      end
    end
  end
  if #list == 0 then
    errors.raise(errors.MISSING, "no targets in " .. source, { hint = "one URL a line, or NAME=URL" })
  end
  return list
end

--- The project's `targets` (db-tool.lua): a function is called (with no arguments) and may
--- return any of the table forms. Returns the list, or raises exit 1/3 naming `where`.
function M.from_project(value, where)
  where = where or "db-tool.lua"
  if type(value) == "function" then
    -- project code: its failures are the project's (file:line, exit 1), as a hook's
    value = require("dbtool.project").call({ what = "targets()", file = where }, value)
  end
  if type(value) ~= "table" then
    errors.raise(errors.GENERIC, where .. ": targets must be a table (or a function returning one), not "
      .. type(value))
  end
  local list, seen = {}, {}
  for i, v in ipairs(value) do
    if type(v) == "string" then
      add(list, seen, M.default_name(v, i), v, where .. " targets[" .. i .. "]")
    elseif type(v) == "table" and type(v.url) == "string" then
      add(list, seen, v.name and tostring(v.name) or M.default_name(v.url, i), v.url,
        where .. " targets[" .. i .. "]")
    else
      errors.raise(errors.GENERIC, where .. ": targets[" .. i .. "] must be a URL or {name =, url =}")
    end
  end
  local names = {}
  for k, v in pairs(value) do
    if type(k) == "string" then
      if type(v) ~= "string" then
        errors.raise(errors.GENERIC, where .. ": targets." .. k .. " must be a URL")
      end
      names[#names + 1] = k
    end
  end
  table.sort(names)
  for _, k in ipairs(names) do add(list, seen, k, value[k], where .. " targets." .. k) end
  if #list == 0 then errors.raise(errors.MISSING, where .. ": targets is empty") end
  return list
end

--- Exit code of a finished fleet: 130 interrupted, 4 any target failed, else 0.
function M.exit_code(results, interrupted)
  if interrupted then return 130 end
  for _, r in ipairs(results) do
    if r.status ~= "ok" then return 4 end
  end
  return 0
end

--- Counts by status.
function M.counts(results)
  local c = { ok = 0, failed = 0, skipped = 0, interrupted = 0, total = #results }
  for _, r in ipairs(results) do c[r.status] = (c[r.status] or 0) + 1 end
  return c
end

--- The summary table (lines).
function M.summary_lines(results, log_dir)
  local w = 6
  for _, r in ipairs(results) do if #r.name > w then w = #r.name end end
  local out = { string.format("%-" .. w .. "s  %-11s  %7s  %9s  %s", "target", "result", "applied", "time",
    "detail") }
  local ui = require "dbtool.ui"
  for _, r in ipairs(results) do
    out[#out + 1] = string.format("%-" .. w .. "s  %-11s  %7s  %9s  %s", r.name, r.status,
      r.applied and tostring(#r.applied) or "-", r.duration and ui.duration(r.duration) or "-",
      r.detail or (r.to and ("at " .. r.to) or ""))
  end
  local c = M.counts(results)
  out[#out + 1] = string.format("%d target(s): %d ok, %d failed, %d interrupted, %d not started; logs: %s",
    c.total, c.ok, c.failed, c.interrupted, c.skipped, log_dir)
  return out
end

--- The JSON document of a fleet run (dbtool.migrate.json).
function M.json_doc(results, opts)
  local migrate = require "dbtool.migrate"
  local redact = require("dbtool.log").redact
  local items = {}
  for i, r in ipairs(results) do
    items[i] = { name = r.name, url = redact(r.url), status = r.status, exit = r.exit or migrate.null,
      from = r.from or migrate.null, to = r.to or migrate.null,
      applied = migrate.array(r.applied or {}), repeatable = r.repeatable or 0,
      duration_ms = r.duration and math.floor(r.duration * 1000 + 0.5) or migrate.null,
      error = r.detail or migrate.null, log = r.log or migrate.null }
  end
  return migrate.json { schema_version = M.SCHEMA_VERSION, command = opts.command or "migrator migrate",
    jobs = opts.jobs, fail_fast = opts.fail_fast and true or false, log_dir = opts.log_dir,
    interrupted = opts.interrupted and true or false, counts = M.counts(results),
    targets = migrate.array(items) }
end

--- The directory for this run's logs: opts.log_dir, else ${XDG_STATE_HOME:-~/.local/state}/
--- db-tool/migrator/<UTC time>-<pid>.
function M.log_dir(dir)
  local env = require "dbtool.env"
  if not dir then
    local base = env.get("XDG_STATE_HOME") or ((env.get("HOME") or "/tmp") .. "/.local/state")
    dir = string.format("%s/db-tool/migrator/%s-%d", base, os.date("!%Y%m%dT%H%M%SZ"),
      require("posix.unistd").getpid())
  end
  local acc = dir:sub(1, 1) == "/" and "" or "."
  local stat = require "posix.sys.stat"
  for part in dir:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not stat.stat(acc) then stat.mkdir(acc, 448) end
  end
  if not stat.stat(dir) then
    errors.raise(errors.GENERIC, "cannot create the log directory " .. dir, { hint = "pass --log-dir DIR" })
  end
  return dir
end

local function safe_file(name)
  return (name:gsub("[^%w_.%-]", "_"))
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- A child's --result-file (written by `migrator migrate --result-file FILE`): lines
--- "from\tNAME", "to\tNAME", "applied\tNAME" (each), "reverted\tNAME", "repeatable\tNAME".
function M.parse_result(text)
  local res = { applied = {}, reverted = {}, repeatable = 0 }
  for key, value in (text or ""):gmatch("([%w_]+)\t([^\n]*)\n") do
    if key == "applied" then res.applied[#res.applied + 1] = value
    elseif key == "reverted" then res.reverted[#res.reverted + 1] = value
    elseif key == "repeatable" then res.repeatable = res.repeatable + 1
    elseif key == "from" or key == "to" then res[key] = value end
  end
  return res
end

--- The first error line of a child's log (its "migration failed: …" or error message).
local function failure_detail(log_text)
  if not log_text then return nil end
  local last
  for line in log_text:gmatch("[^\n]+") do
    local msg = line:match("^[^>]*> (.*)$") or line
    if msg:match("failed") or msg:match("^error") or msg:match("cannot")
        or msg:match("another migration") then
      return msg
    end
    last = msg
  end
  return last
end

--- Run `argv` (migrator arguments, e.g. {"migrate", "up", "all", "--json"}) for every target.
--- opts: targets, argv, jobs (default 1), fail_fast, log_dir, out (function(line)), tty (a
--- live status line), log. Returns results ({name, url, status = "ok" | "failed" |
--- "skipped" | "interrupted", exit, applied, from, to, duration, detail, log}), interrupted.
function M.run(opts)
  local core = require "dbtool.core"
  local proc = require "dbtool.core.proc"
  local env = require "dbtool.env"
  local ui = require "dbtool.ui"
  local exe = core.exe()
  if not exe then errors.raise(errors.GENERIC, "cannot find the db-tool executable") end
  local jobs = math.max(1, opts.jobs or 1)
  local out = opts.out or function(line) io.stderr:write(line, "\n") end
  local results, running = {}, {}
  for i, t in ipairs(opts.targets) do
    results[i] = { name = t.name, url = t.url, status = "skipped",
      log = opts.log_dir .. "/" .. safe_file(t.name) .. ".log" }
  end
  local next_i, stop, interrupted, failed = 1, false, false, 0
  local done = 0
  local function status_line()
    if not opts.tty then return end
    local names = {}
    for _, r in pairs(running) do names[#names + 1] = r.res.name end
    table.sort(names)
    ui.status(string.format("migrating %d/%d: %s", done, #results, table.concat(names, ", ")))
  end
  local function start(i)
    local r = results[i]
    local argv = { exe, "migrator" }
    for _, a in ipairs(opts.argv) do argv[#argv + 1] = a end
    r.result = opts.log_dir .. "/" .. safe_file(r.name) .. ".result"
    argv[#argv + 1] = "--result-file=" .. r.result
    local cenv = env.child_env { DB_URL = r.url, PGURL = false, DATABASE_URL = false,
      HECTIC_NAMESPACE = "migrator " .. r.name, DB_TOOL_TTY = false, NO_COLOR = "1" }
    local p, msg
    core.uninterruptible(function()
      p, msg = proc.spawn { argv = argv, env = cenv, stdin = "null",
        stdout = { path = r.log }, stderr = "stdout",
        detach = true }
    end)
    r.t0 = core.now()
    if not p then
      r.status, r.detail, r.duration = "failed", "cannot start migrator: " .. tostring(msg), 0
      failed = failed + 1
      done = done + 1
      return
    end
    r.status = "running"
    running[i] = { p = p, res = r }
  end
  local function finish(i, how, code)
    local r = running[i].res
    running[i] = nil
    done = done + 1
    r.duration = core.now() - r.t0
    r.exit = how == "exited" and code or 128 + (code or 0)
    local res = M.parse_result(read(r.result))
    r.applied, r.from, r.to, r.repeatable = res.applied, res.from, res.to, res.repeatable
    if r.exit == 0 then
      r.status = "ok"
    elseif r.exit == 130 or (how ~= "exited" and code == 2) then
      r.status = "interrupted"
      r.detail = "interrupted (its current migration was rolled back)"
    else
      r.status = "failed"
      r.detail = failure_detail(read(r.log)) or ("exit " .. r.exit)
      failed = failed + 1
    end
    if opts.tty then ui.status(nil) end
    out(string.format("%-8s %s (%s)%s", r.status, r.name, ui.duration(r.duration),
      r.status == "ok" and (r.applied and ("  " .. #r.applied .. " applied") or "")
        or ("  " .. (r.detail or ""))))
    status_line()
  end
  local delay = 0.001
  local function loop()
    while true do
      while not stop and next_i <= #results and (function()
        local n = 0
        for _ in pairs(running) do n = n + 1 end
        return n < jobs
      end)() do
        start(next_i)
        next_i = next_i + 1
        status_line()
        if opts.fail_fast and failed > 0 then stop = true end
      end
      if next(running) == nil then break end
      local finished = false
      for i, r in pairs(running) do
        local how, code = r.p:wait(0)
        if how then
          finish(i, how, code)
          finished = true
        end
      end
      if opts.fail_fast and failed > 0 then stop = true end
      if next_i > #results and next(running) == nil then break end
      -- poll: soon after a change, then less often (a run of one target takes ≥ 20 ms)
      delay = finished and 0.001 or math.min(delay * 2, 0.01)
      core.sleep(delay)
    end
  end
  local ok, err = errors.try(loop)
  if not ok then
    if not (errors.is(err) and err.interrupted) then
      for _, r in pairs(running) do pcall(r.p.kill, r.p, "INT") end
      error(err, 0)
    end
    interrupted, stop = true, true
    if opts.tty then ui.status(nil) end
    out("interrupted: no new target starts; waiting for the running ones to roll back their current "
      .. "migration")
    for _, r in pairs(running) do pcall(r.p.kill, r.p, "INT") end
    -- wait for them, whatever further Ctrl-C come (each is passed on)
    while next(running) ~= nil do
      local ok2, err2 = errors.try(function()
        for i, r in pairs(running) do
          local how, code = r.p:wait(0)
          if how then finish(i, how, code) end
        end
        core.sleep(0.02)
      end)
      if not ok2 and errors.is(err2) and err2.interrupted then
        for _, r in pairs(running) do pcall(r.p.kill, r.p, "INT") end
      elseif not ok2 then
        error(err2, 0)
      end
    end
  end
  if opts.tty then ui.status(nil) end
  return results, interrupted
end

return M
