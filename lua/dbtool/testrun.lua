-- `database test`: SQL test files run on a database, each in its own transaction that is
-- rolled back, results judged (pgTAP plans and assertions, or plain SQL statements) and
-- reported for people (as psql would show them), for TAP consumers (TAP 13, `prove`), for CI
-- (JUnit XML) and for programs (a table the command turns into JSON).
--
--   testrun.collect(paths) → {file, ...}             the test files of PATH arguments
--   testrun.run_file(conn, file, opts) → result      one file on one connection
--   testrun.run(ctx, opts) → summary                 every file, serially or in parallel
--
-- A result: {name =, file =, kind = "pgtap" | "sql", points = {...}, plan =, passed =,
-- error = {message-level fields} | nil, output = "script output", seconds =, started =}; a
-- point as in dbtool.tap, plus raw (the TAP line as pgTAP returned it), out_before (script
-- output printed before it), seconds.
--
-- In parallel (opts.jobs > 1), every file runs in a database of its own, cloned from the
-- target database (CREATE DATABASE … TEMPLATE) and dropped afterwards, by a worker process
-- (`db-tool -e "require('dbtool.testrun').worker(...)"`): files cannot see or block each
-- other, so the verdicts are those of a serial run.
local core = require "dbtool.core"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local tap = require "dbtool.tap"

local M = {}

-- ---------------------------------------------------------------- files

local function stat(path)
  return require("posix.sys.stat").stat(path)
end

local function is_dir(path)
  local st = stat(path)
  return st ~= nil and require("posix.sys.stat").S_ISDIR(st.st_mode) ~= 0
end

local function readable_file(path)
  local st = stat(path)
  if not st or require("posix.sys.stat").S_ISREG(st.st_mode) == 0 then return false end
  local f = io.open(path, "r")
  if not f then return false end
  f:close()
  return true
end

--- Is `name` (a directory entry) a test file or a directory to search? Names starting with
--- "." or "_" are left out: helpers that test files include with \ir.
function M.wanted(name, dir)
  if name:sub(1, 1) == "." or name:sub(1, 1) == "_" then return false end
  return dir or name:match("%.sql$") ~= nil
end

local function walk(dir, out)
  local ok, names = pcall(require("posix.dirent").dir, dir)
  if not ok or not names then
    errors.raise(errors.GENERIC, "cannot read the test directory " .. dir, { hint = "check its permissions" })
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local path = (dir:gsub("/+$", "")) .. "/" .. name
    if name ~= "." and name ~= ".." then
      if is_dir(path) then
        if M.wanted(name, true) then walk(path, out) end
      elseif M.wanted(name) and readable_file(path) then
        out[#out + 1] = path
      end
    end
  end
end

--- The test files of `paths` (default: $DATABASE_DIR/test/test.sql), in order: a file as
--- given, a directory's *.sql files below it (sorted, without names starting with "." or
--- "_"). A path that is not there, or a directory without test files, is an error (exit 1).
function M.collect(paths)
  if not paths or #paths == 0 then
    local file = env.database_dir() .. "/test/test.sql"
    if not readable_file(file) then
      errors.raise(errors.GENERIC, "test file not found: " .. file,
        { hint = "write your tests in " .. file .. " (or set DATABASE_DIR), or name test files or "
          .. "directories" })
    end
    return { file }
  end
  local out, seen = {}, {}
  for _, p in ipairs(paths) do
    local found = {}
    if is_dir(p) then
      walk(p, found)
      if #found == 0 then
        errors.raise(errors.GENERIC, "no test files (*.sql) in " .. p,
          { hint = "test files end in .sql; names starting with . or _ are left out" })
      end
    elseif readable_file(p) then
      found[1] = p
    else
      errors.raise(errors.GENERIC, "test file not found: " .. p, { hint = "name test files or directories" })
    end
    for _, f in ipairs(found) do
      if not seen[f] then
        seen[f] = true
        out[#out + 1] = f
      end
    end
  end
  return out
end

-- ---------------------------------------------------------------- one file

-- First one or two keywords of a statement, upper case, after comments and blanks.
local function keywords(text)
  local s, before = text
  repeat
    before = s
    s = s:gsub("^%s+", ""):gsub("^%-%-[^\n]*", ""):gsub("^/%*.-%*/", "")
  until s == before
  local w1, rest = s:match("^(%a+)(.*)$")
  if not w1 then return nil end
  local w2 = rest:match("^%s+(%a+)")
  return w1:upper(), w2 and w2:upper()
end

--- A statement rewriter for dbtool.sqlrun that keeps a test file's own transaction control
--- inside the test transaction: its BEGIN becomes a savepoint, its COMMIT releases it and
--- its ROLLBACK rolls back to it, so nothing escapes the final ROLLBACK (the original tool
--- ran the file as is, and a test.sql written for it has its own BEGIN … ROLLBACK).
--- Returns the rewriter and a state table {depth =, n =}.
function M.transaction_rewriter(l)
  local state = { depth = 0, n = 0 }
  local NOOP = "SELECT WHERE false"
  local function rewrite(text, where)
    local w1, w2 = keywords(text)
    if not w1 then return nil end
    local name = "dbtool_test_" .. state.n
    if w1 == "BEGIN" or (w1 == "START" and w2 == "TRANSACTION") then
      if state.depth > 0 then return nil end -- PostgreSQL warns "already in progress", as psql shows
      state.n = state.n + 1
      state.depth = 1
      return "SAVEPOINT dbtool_test_" .. state.n
    elseif (w1 == "COMMIT" or w1 == "END") and w2 ~= "PREPARED" then
      if state.depth == 0 then
        if l then l:warn("%s: COMMIT without BEGIN ignored: the tests run inside BEGIN … ROLLBACK", where) end
        return NOOP
      end
      state.depth = 0
      return "RELEASE SAVEPOINT " .. name
    elseif (w1 == "ROLLBACK" or w1 == "ABORT") and w2 ~= "TO" and w2 ~= "PREPARED" then
      if state.depth == 0 then return NOOP end
      state.depth = 0
      return "ROLLBACK TO SAVEPOINT " .. name .. "; RELEASE SAVEPOINT " .. name
    end
    return nil
  end
  return rewrite, state
end

local ERROR_FIELDS = { "exit", "msg", "where", "file", "line", "col", "sqlstate", "detail", "hint", "context",
  "excerpt" }

--- The fields of an error value as plain data (for results, JSON and worker messages).
function M.error_fields(e)
  e = errors.wrap(e)
  local out = {}
  for _, k in ipairs(ERROR_FIELDS) do
    local v = e[k]
    if type(v) == "string" or type(v) == "number" then out[k] = v end
  end
  return out
end

local function split_where(where)
  local file, line = tostring(where or ""):match("^(.*):(%d+)$")
  return file, tonumber(line)
end

--- Judge a result: the failing points a run adds (an SQL error that stopped the file, a
--- missing or unmet pgTAP plan), and result.passed. Pure.
function M.judge(r, err)
  local npoints = #r.points
  if err then
    local e = err
    local lines = {}
    for l in tostring(e.msg):gmatch("[^\n]+") do lines[#lines + 1] = l end
    r.points[#r.points + 1] = {
      ok = false, description = e.where or r.file, message = e.msg, sqlstate = e.sqlstate,
      file = e.file or r.file, line = e.line, column = e.col, diag = lines,
      -- in a pgTAP file an SQL error is not one of its assertions: JUnit calls it an error
      kind = r.kind == "pgtap" and "error" or nil,
    }
  end
  if r.kind == "pgtap" then
    if not r.plan then
      if not err then
        r.problem = "the TAP output has no plan: call plan(n) or finish() from pgTAP"
      end
    elseif r.plan ~= npoints then
      r.problem = string.format("planned %d tests but ran %d", r.plan, npoints)
    end
    if r.problem then
      r.points[#r.points + 1] = { ok = false, description = r.problem, message = r.problem, file = r.file,
        kind = "plan" }
    end
  end
  r.passed = true
  for _, p in ipairs(r.points) do
    if tap.failing(p) then r.passed = false end
  end
  r.tap_count = npoints
  return r
end

--- Run test file `file` on `conn` inside BEGIN … ROLLBACK (a connection of its own: the
--- transaction is the caller's only if it gives none). opts: name (display name), log,
--- write (function(s): the script output as it comes), on_tap (function(line): TAP lines
--- as they come). Returns the judged result (see the top of this file); never raises for
--- an SQL error of the file (it is in the result), only for a lost connection or an
--- interrupt.
function M.run_file(conn, file, opts)
  opts = opts or {}
  local l = opts.log or log.ns("db test")
  local r = { name = opts.name or file, file = file, started = os.time(), diag = {} }
  local tap_points, stmt_points = {}, {}
  -- the script output since the last statement point / TAP point (which kind of points the
  -- file has is known at its end), and all of it
  local sbuf, tbuf, all = {}, {}, {}
  local function out(s)
    sbuf[#sbuf + 1] = s
    tbuf[#tbuf + 1] = s
    all[#all + 1] = s
    if opts.write then opts.write(s) end
  end
  local function take(b)
    local s = table.concat(b)
    for k in pairs(b) do b[k] = nil end
    return s ~= "" and s or nil
  end
  local started_tap, last_diag = false, nil
  local last_where, last_statement
  local t0 = core.now()
  local t_last = t0
  local rewrite = M.transaction_rewriter(l)
  conn:exec("BEGIN")
  local ok, err = errors.try(require("dbtool.sqlrun").file, conn, file, {
    log = l,
    output = out,
    on_statement = rewrite,
    on_result = function(res, info)
      local now = core.now()
      local f, line = split_where(info.where)
      -- one point per statement (a rewritten ROLLBACK gives two results)
      if info.where ~= last_where or info.statement ~= last_statement then
        stmt_points[#stmt_points + 1] = { ok = true, file = f, line = line, seconds = now - t_last,
          description = info.where .. " " .. ((res.command or ""):match("^%S+") or ""),
          out_before = take(sbuf) }
        last_where, last_statement = info.where, info.statement
      end
      -- pgTAP functions return one text column of TAP lines
      if res.n and res.n > 0 and res.fields and #res.fields == 1 then
        local first = true
        for i = 1, res.n do
          local v = res[i][1]
          if type(v) == "string" then
            for text in v:gmatch("[^\n]+") do
              if tap.is_tap_line(text, started_tap) then
                started_tap = true
                if opts.on_tap then opts.on_tap(text) end
                local t = tap.parse_line(text)
                if t.kind == "point" then
                  local p = { ok = t.ok, description = t.description, directive = t.directive,
                    reason = t.reason, number = t.number, raw = text, file = f, line = line, diag = {},
                    seconds = first and (now - t_last) or 0, out_before = take(tbuf) }
                  if not t.ok then
                    p.message = t.description ~= "" and t.description or ("test " .. #tap_points + 1)
                  end
                  tap_points[#tap_points + 1] = p
                  last_diag = p
                  first = false
                elseif t.kind == "plan" then
                  r.plan = t.last - t.first + 1
                  r.plan_skip = t.skip
                  r.plan_raw = text
                  r.plan_first = #tap_points == 0
                elseif t.kind == "diag" then
                  if last_diag then
                    local d = last_diag.diag
                    d[#d + 1] = t.text
                    -- pgTAP's "Failed test N: ..." says more than the description
                    if not last_diag.ok and #d == 1 then
                      last_diag.message = t.text:match("^%s*(.-)%s*$")
                    end
                  else
                    r.diag[#r.diag + 1] = t.text
                  end
                elseif t.kind == "bail" then
                  tap_points[#tap_points + 1] = { ok = false, description = "Bail out! " .. t.reason,
                    message = "Bail out! " .. t.reason, raw = text, file = f, line = line, diag = {},
                    kind = "bail" }
                end
              end
            end
          end
        end
      end
      t_last = now
    end,
  })
  if not conn:closed() and conn:transaction_status() ~= "idle" then pcall(conn.exec, conn, "ROLLBACK") end
  if not ok and (err.interrupted or conn:closed() or conn:status() == "bad") then error(err, 0) end
  r.seconds = core.now() - t0
  r.output = table.concat(all)
  r.kind = started_tap and "pgtap" or "sql"
  r.output_after = take(started_tap and tbuf or sbuf)
  r.points = started_tap and tap_points or stmt_points
  if not ok then r.error = M.error_fields(err) end
  return M.judge(r, not ok and r.error or nil)
end

-- ---------------------------------------------------------------- reporting

local Report = {}
Report.__index = Report

-- How results are shown while a run goes: `mode` "human" (script output and pgTAP lines as
-- they come, as psql shows them; judgements on stderr) or "tap" (TAP 13 on stdout).
local function reporter(mode, write, l, nfiles)
  return setmetatable({ mode = mode, write = write, log = l, n = 0, many = nfiles > 1 }, Report)
end

function Report:start()
  if self.mode == "tap" then self.write("TAP version 13\n") end
end

function Report:file_start(name)
  self.log:notice("running tests from %s", name)
end

local function comment_lines(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = "# " .. line end
  if out[#out] == "# " then out[#out] = nil end
  return out
end

--- A finished file. `live`: its output was already shown (serial human mode).
function Report:file_done(r, live, report_error)
  local l = self.log
  if self.mode == "human" and not live then
    local parts = {}
    if r.plan_raw and r.plan_first then parts[1] = r.plan_raw .. "\n" end
    for _, d in ipairs(r.diag or {}) do parts[#parts + 1] = "# " .. d .. "\n" end
    for _, p in ipairs(r.points) do
      if p.out_before then parts[#parts + 1] = p.out_before end
      if p.raw then
        parts[#parts + 1] = p.raw .. "\n"
        for _, d in ipairs(p.diag or {}) do parts[#parts + 1] = "# " .. d .. "\n" end
      end
    end
    if r.output_after then parts[#parts + 1] = r.output_after end
    if r.plan_raw and not r.plan_first then parts[#parts + 1] = r.plan_raw .. "\n" end
    if #parts > 0 then self.write(table.concat(parts)) end
  elseif self.mode == "tap" then
    local lines = {}
    if self.many then lines[#lines + 1] = "# " .. r.name end
    for _, d in ipairs(r.diag or {}) do lines[#lines + 1] = "# " .. d end
    for _, p in ipairs(r.points) do
      if p.out_before then
        for _, c in ipairs(comment_lines(p.out_before)) do lines[#lines + 1] = c end
      end
      self.n = self.n + 1
      local q = p
      local desc = p.description or ""
      if self.many and not desc:find(r.file, 1, true) then
        q = setmetatable({ description = desc ~= "" and (r.name .. ": " .. desc) or r.name }, { __index = p })
      end
      for _, x in ipairs(tap.point_lines(q, self.n)) do lines[#lines + 1] = x end
    end
    if r.output_after then
      for _, c in ipairs(comment_lines(r.output_after)) do lines[#lines + 1] = c end
    end
    self.write(table.concat(lines, "\n") .. "\n")
  end
  -- judgements, on stderr
  if r.kind == "pgtap" then
    if r.problem then l:error("%s", r.problem) end
    local c = tap.counts(r.points)
    local failed = 0
    for i = 1, r.tap_count do if tap.failing(r.points[i]) then failed = failed + 1 end end
    if failed > 0 then l:error("%d of %d tests failed", failed, r.tap_count) end
    r.counts = c
  end
  if r.error then report_error(r.error) end
end

function Report:finish()
  if self.mode == "tap" then self.write("1.." .. self.n .. "\n") end
end

-- ---------------------------------------------------------------- serialization (workers)

local function serialize(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "number" then
    out[#out + 1] = math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      if type(k) == "string" or math.type(k) == "integer" then
        out[#out + 1] = "["
        serialize(k, out)
        out[#out + 1] = "]="
        serialize(x, out)
        out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "nil"
  end
end

--- A Lua literal of plain data (strings, numbers, booleans, tables of them).
function M.serialize(v)
  local out = {}
  serialize(v, out)
  return "return " .. table.concat(out)
end

--- The data of M.serialize's text (loaded with an empty environment), or nil.
function M.deserialize(text)
  local f = text and load(text, "=result", "t", {})
  if not f then return nil end
  local ok, v = pcall(f)
  return ok and v or nil
end

--- The worker of a parallel run (a `db-tool -e` process): file `file` on the database of
--- PGURL; the result is written to `out` (a path) as a Lua literal.
function M.worker(file, name, out)
  local l = log.ns("db test")
  local pg = require "dbtool.pg"
  local conn = pg.connect(env.get("PGURL"), { log = l })
  local r = errors.finally(function() conn:close() end, M.run_file, conn, file, { name = name, log = l })
  local f = assert(io.open(out, "w"))
  f:write(M.serialize(r))
  f:close()
end

-- ---------------------------------------------------------------- running

local function conninfo(kw)
  local parts = {}
  local keys = {}
  for k in pairs(kw) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = k .. "='" .. tostring(kw[k]):gsub("[\\']", "\\%0") .. "'"
  end
  return table.concat(parts, " ")
end

-- The target database's name and a connection to another database of its server (from
-- which its clones are made): dbname, admin connection, keyword table of the target.
local function admin_for(url)
  local pg = require "dbtool.pg"
  local kw, perr = pg.parse_conninfo(url)
  if not kw then errors.raise(errors.GENERIC, "invalid connection string: " .. tostring(perr)) end
  local dbname = kw.dbname or env.get("PGDATABASE") or kw.user or env.get("PGUSER") or env.user()
  local last
  for _, other in ipairs { "postgres", "template1" } do
    if other ~= dbname then
      local a = {}
      for k, v in pairs(kw) do a[k] = v end
      a.dbname = other
      local ok, conn = pcall(pg.connect, a, { quiet = true })
      if ok then return dbname, conn, kw end
      last = conn
    end
  end
  error(last, 0)
end

local function drop(admin, name)
  local force = admin:server_version() >= 130000 and " WITH (FORCE)" or ""
  admin:exec("DROP DATABASE IF EXISTS " .. require("dbtool.pg").quote_ident(name) .. force)
end

-- Run `files` with `jobs` workers, each file in a clone of the target; results are handed
-- to on_result(i, r) in file order.
local function run_parallel(url, files, names, jobs, l, on_start, on_result)
  local pg = require "dbtool.pg"
  local proc = require "dbtool.core.proc"
  local dbname, admin, kw = admin_for(url)
  local strategy = ""
  if admin:server_version() >= 150000 then
    -- on a server without durability the two checkpoints of file_copy cost less than
    -- writing every page to the WAL (wal_log, the default)
    local fsync = admin:exec("SHOW fsync")[1][1]
    if fsync == "off" then strategy = " STRATEGY file_copy" end
  end
  local exe = assert(core.exe())
  local active, clones, outs, results = {}, {}, {}, {}
  local next_file, next_emit = 1, 1
  local tag = require("posix.unistd").getpid()
  local function cleanup()
    for _, a in pairs(active) do pcall(a.p.kill, a.p, "TERM") end
    for _, a in pairs(active) do
      local ok, how = pcall(a.p.wait, a.p, 5)
      if not (ok and how) then
        pcall(a.p.kill, a.p, "KILL")
        pcall(a.p.wait, a.p)
      end
    end
    for name in pairs(clones) do pcall(drop, admin, name) end
    for _, path in pairs(outs) do os.remove(path) end
    admin:close()
  end
  errors.finally(cleanup, function()
    while next_emit <= #files do
      while next_file <= #files and #active < jobs do
        local i = next_file
        next_file = next_file + 1
        local name = string.format("dbtool_test_%d_%d", tag, i)
        clones[name] = true
        local ok, err = pcall(admin.exec, admin, "CREATE DATABASE " .. pg.quote_ident(name) .. " TEMPLATE "
          .. pg.quote_ident(dbname) .. strategy)
        if not ok then
          clones[name] = nil
          local e = errors.wrap(err)
          e.msg = "cannot clone the database " .. dbname .. " for parallel tests: " .. e.msg
          e.hint = "--jobs runs every file in a copy of the database: it needs the CREATEDB privilege and no "
            .. "other session on " .. dbname .. " (close them, or run without --jobs)"
          error(e, 0)
        end
        local target = {}
        for k, v in pairs(kw) do target[k] = v end
        target.dbname = name
        outs[i] = env.tmpfile()
        on_start(i)
        local p, serr
        core.uninterruptible(function()
          local code = string.format("require('dbtool.testrun').worker(%q, %q, %q)", files[i], names[i],
            outs[i])
          p, serr = proc.spawn { argv = { exe, "-e", code }, env = env.child_env { PGURL = conninfo(target) },
            stdin = "null" }
          if p then active[#active + 1] = { p = p, i = i, clone = name } end
        end)
        if not p then errors.raise(errors.GENERIC, "cannot start a test worker: " .. tostring(serr)) end
      end
      local k = 1
      while k <= #active do
        local a = active[k]
        local how, code = a.p:wait(0)
        if how then
          table.remove(active, k)
          local f = io.open(outs[a.i], "r")
          local r = M.deserialize(f and f:read("a"))
          if f then f:close() end
          os.remove(outs[a.i])
          outs[a.i] = nil
          if not r then
            -- the worker died (its error is on stderr): the file failed
            r = M.judge({ name = names[a.i], file = files[a.i], kind = "sql", points = {}, diag = {},
              output = "", seconds = 0, started = os.time() },
              { msg = string.format("the test worker %s %s", how == "exited" and "exited with code" or
                "was killed by signal", tostring(code)) })
            r.error = { exit = errors.GENERIC, msg = r.points[#r.points].message }
          end
          results[a.i] = r
          drop(admin, a.clone)
          clones[a.clone] = nil
        else
          k = k + 1
        end
      end
      while results[next_emit] do
        on_result(next_emit, results[next_emit])
        next_emit = next_emit + 1
      end
      if next_emit <= #files then core.sleep(0.002) end
    end
  end)
  l:debug("parallel run: %d files, %d jobs, clones of %s%s", #files, jobs, dbname, strategy)
end

--- Run test files. opts: paths (files/directories; default $DATABASE_DIR/test/test.sql),
--- jobs (parallel workers, default 1), tap (TAP 13 on stdout), junit (path of a JUnit XML
--- report), output (stdout: a file handle or a function), log, report_error (function(err)
--- shows a file's SQL error).
--- The database is ctx.url (else dbtool.db's order). Returns {passed =, files = {results},
--- seconds =, tests =, failures =, skipped =, todo =, started =}.
function M.run(ctx, opts)
  opts = opts or {}
  local l = opts.log or ctx.log or log.ns("db test")
  local files = M.collect(opts.paths)
  local names = {}
  for i, f in ipairs(files) do names[i] = f end
  local out = opts.output or function(s) io.stdout:write(s) io.stdout:flush() end
  local write = type(out) == "function" and out or function(s) out:write(s) end
  local mode = opts.tap and "tap" or "human"
  local rep = reporter(mode, write, l, #files)
  local report_error = opts.report_error or function(e) require("dbtool.cli").report(e, l.name) end
  local summary = { files = {}, started = os.time() }
  local t0 = core.now()
  rep:start()
  local jobs = math.max(1, math.min(math.tointeger(opts.jobs or 1) or 1, #files))
  if jobs == 1 then
    local connect = require("dbtool.workflow").connect
    for i, f in ipairs(files) do
      rep:file_start(names[i])
      local live = mode == "human"
      local conn, owned = connect(ctx)
      local r = errors.finally(function() if owned then conn:close() end end, M.run_file, conn, f, {
        name = names[i], log = l, write = live and write or nil, on_tap = live and function(line)
          write(line .. "\n")
        end or nil })
      summary.files[i] = r
      rep:file_done(r, live, report_error)
    end
  else
    local url = require("dbtool.db").require_url(ctx)
    run_parallel(url, files, names, jobs, l, function() end, function(i, r)
      rep:file_start(names[i])
      summary.files[i] = r
      rep:file_done(r, false, report_error)
    end)
  end
  rep:finish()
  summary.seconds = core.now() - t0
  summary.passed = true
  local counts = { tests = 0, failures = 0, skipped = 0, todo = 0 }
  local failed_files = {}
  for _, r in ipairs(summary.files) do
    if not r.passed then
      summary.passed = false
      failed_files[#failed_files + 1] = r.name
    end
    for k, v in pairs(tap.counts(r.points)) do counts[k] = counts[k] + v end
  end
  for k, v in pairs(counts) do summary[k] = v end
  summary.failed_files = failed_files
  if opts.junit then
    local xml = require("dbtool.junit").document { name = "database test", seconds = summary.seconds,
      timestamp = summary.started, files = summary.files }
    local tmp = opts.junit .. ".tmp-" .. require("posix.unistd").getpid()
    local f, err = io.open(tmp, "w")
    if not f then
      errors.raise(errors.GENERIC, "cannot write the JUnit report " .. opts.junit .. ": " .. tostring(err),
        { hint = "check --junit FILE" })
    end
    f:write(xml)
    f:close()
    local ok, rerr = os.rename(tmp, opts.junit)
    if not ok then
      os.remove(tmp)
      errors.raise(errors.GENERIC, "cannot write the JUnit report " .. opts.junit .. ": " .. tostring(rerr))
    end
  end
  if summary.passed then
    if #files > 1 then
      l:notice("all tests passed: %d files, %d tests (%s)", #files, counts.tests,
        require("dbtool.ui").duration(summary.seconds))
    else
      l:notice("all tests passed (%s)", require("dbtool.ui").duration(summary.seconds))
    end
  else
    if #files > 1 then
      l:error("tests failed: %d of %d files (%s)", #failed_files, #files, table.concat(failed_files, ", "))
    else
      l:error("tests failed")
    end
  end
  return summary
end

return M
