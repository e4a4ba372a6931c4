-- The everyday loop of `database`: hydrate (bundle, secrets, sources), patch (test data),
-- test, deploy (cluster + hydrate + patch) and check (deploy in a throw-away cluster).
-- Each step is a plain function over a context {log =, url =, project =, ...} so that
-- commands, project scripts and hooks can call them:
--
--   workflow.hydrate(ctx, {no_hook =, mock =})      workflow.patch(ctx, {edit =})
--   workflow.test(ctx, {tap =, file =})  → passed    workflow.deploy(ctx, {cleanup =, no_patch =,
--   workflow.check(ctx, {no_patch =, no_hydrate =,      no_hydrate =, mock =, reuse =}) → handle
--                        mock =})
--
-- ctx.url is the database to work on (else dbtool.db's order: PGURL, DB_URL, local cluster);
-- ctx.phases (set by deploy/check) collects the timing of each phase for one summary line.
local core = require "dbtool.core"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local ui = require "dbtool.ui"

local M = {}

local function project_of(ctx)
  return ctx.project
end

local function hook(ctx, name, ...)
  return require("dbtool.project").run_hook(project_of(ctx), name, ...)
end

local function exists(path)
  return require("posix.sys.stat").stat(path) ~= nil
end

local function readable_file(path)
  local st = require("posix.sys.stat").stat(path)
  if not st or require("posix.sys.stat").S_ISREG(st.st_mode) == 0 then return false end
  local f = io.open(path, "r")
  if not f then return false end
  f:close()
  return true
end

local function mkdir_p(dir)
  local stat = require "posix.sys.stat"
  local path = ""
  for part in dir:gmatch("[^/]+") do
    path = path .. "/" .. part
    if dir:sub(1, 1) ~= "/" and path == "/" .. part then path = part end
    if not stat.stat(path) then
      local ok, err = stat.mkdir(path, tonumber("755", 8))
      if not ok and not stat.stat(path) then
        errors.raise(errors.GENERIC, "cannot create directory " .. path .. ": " .. tostring(err))
      end
    end
  end
end
M.mkdir_p = mkdir_p

-- Script output on stdout: the status line (TTY) is erased first and redrawn after.
local function stdout_writer(s)
  local status = ui.suspend_status()
  io.stdout:write(s)
  io.stdout:flush()
  ui.resume_status(status)
end

--- Where the output of a step's script goes: `logvar` (HYDRATE_LOG / PATCH_LOG), else
--- $PG_LOG_PATH/<name>.stdout.log when PG_LOG_PATH is set, else stdout. Returns the output
--- (a file handle or a writer function, as dbtool.sqlrun takes), its name ("stdout" or the
--- path) and whether it is a file to close.
function M.output(logvar, name)
  local path = env.get(logvar)
  if not path and env.get("PG_LOG_PATH") then
    path = env.get("PG_LOG_PATH") .. "/" .. name .. ".stdout.log"
  end
  if not path then return stdout_writer, "stdout", false end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then mkdir_p(dir) end
  local f, err = io.open(path, "w")
  if not f then
    errors.raise(errors.GENERIC, "cannot write the " .. name .. " log: " .. tostring(err),
      { hint = "check " .. (env.get(logvar) and logvar or "PG_LOG_PATH"), variable = logvar })
  end
  return f, path, true
end

local SOURCE_NAME = { ["-u"] = "-u/--url", PGURL = "PGURL", DB_URL = "DB_URL" }

local function connect(ctx)
  if ctx.conn then return ctx.conn, false end
  local pg = require "dbtool.pg"
  local url, source = require("dbtool.db").require_url(ctx)
  local ok, conn = pcall(pg.connect, url, { log = ctx.log, source = source })
  if not ok then
    -- say where a bad or unreachable connection string came from
    if errors.is(conn) and SOURCE_NAME[source] and not ctx.cluster then
      local from = "the connection string comes from " .. SOURCE_NAME[source]
      conn.hint = conn.hint and (conn.hint .. "; " .. from) or ("check it: " .. from)
    end
    error(conn, 0)
  end
  return conn, true
end

--- A connection to the context's database (ctx.conn, else -u/PGURL/DB_URL/local cluster, with
--- a hint naming where a bad connection string came from): conn, owned (the caller closes it).
M.connect = connect

local function with_conn(ctx, fn)
  local conn, owned = connect(ctx)
  return errors.finally(function()
    if owned then conn:close() end
  end, fn, conn)
end

-- Run the psql script `file` on `conn`, its output to `logvar` (see M.output).
local function run_script(conn, file, logvar, name, l, vars, single)
  local out, outname, owned = M.output(logvar, name)
  local ok, err = errors.try(require("dbtool.sqlrun").file, conn, file, {
    vars = vars or {}, output = out, log = l, single_transaction = single })
  if owned then out:close() end
  if not ok then
    if outname ~= "stdout" and errors.is(err) then
      err.hint = err.hint or ("the output of the run is in " .. outname)
    end
    error(err, 0)
  end
end

-- ---------------------------------------------------------------- phases

-- Timing of the phases of a run. On a TTY, a status line says what is running and each
-- finished phase gets a line with its time; the caller prints one summary line at the end
-- (everywhere, TTY or not).
local Phases = {}
Phases.__index = Phases

--- A phase tracker for logger `l`; `title` prefixes the status line ("deploy").
function M.phases(l, title)
  return setmetatable({ log = l, title = title, list = {}, t0 = core.now(), tty = ui.isatty(2) },
    Phases)
end

--- Run fn(...) as phase `name`; returns what fn returns.
function Phases:run(name, fn, ...)
  local n = #self.list + 1
  if self.tty then ui.status(string.format("%s: %s …", self.title, name)) end
  local t = core.now()
  local res = table.pack(errors.finally(function(err)
    ui.status(nil)
    if err then self.failed = { name = name, seconds = core.now() - t } end
  end, fn, ...))
  local dt = core.now() - t
  self.list[n] = { name = name, seconds = dt }
  if self.tty then self.log:info("✓ %-8s %8s", name, ui.duration(dt)) end
  return table.unpack(res, 1, res.n)
end

--- "cluster 380 ms, bundle 40 ms, ..."
function Phases:summary()
  local parts = {}
  for i, p in ipairs(self.list) do parts[i] = p.name .. " " .. ui.duration(p.seconds) end
  return table.concat(parts, ", ")
end

--- Seconds since the tracker was made.
function Phases:elapsed()
  return core.now() - self.t0
end

-- ---------------------------------------------------------------- secrets source

--- The dotenv text for hydrate, first match wins: HECTIC_DOTENV_CONTENT, HECTIC_DOTENV_FILE,
--- $LOCAL_DIR/.env.$ENVIRONMENT or its encrypted form .env.$ENVIRONMENT.enc (decrypted).
--- Returns text, source-description; or nil when there is none. (dbtool.secrets.find)
function M.dotenv_source()
  return require("dbtool.secrets").find()
end

-- ---------------------------------------------------------------- hydrate

--- The hydrate entrypoint: HYDRATE_ENTRYPOINT (default entrypoint.sql) in DATABASE_SOURCE;
--- an absolute HYDRATE_ENTRYPOINT is taken as is.
function M.entrypoint()
  local entry = env.get("HYDRATE_ENTRYPOINT", "entrypoint.sql")
  if entry:sub(1, 1) ~= "/" then entry = env.database_source() .. "/" .. entry end
  return entry
end

--- hydrate: the hectic bundle and the secrets (unless opts.no_hook), then the entrypoint as
--- a psql script (opts.mock sets the variable USE_MOCK=1). Returns the elapsed seconds.
function M.hydrate(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db hydrate")
  local entry = M.entrypoint()
  if not readable_file(entry) then
    errors.raise(errors.GENERIC, "hydrate entrypoint not found: " .. entry,
      { hint = "create it, or set DATABASE_SOURCE / HYDRATE_ENTRYPOINT (LOCAL_DIR is "
        .. (env.get("LOCAL_DIR") and env.get("LOCAL_DIR") or "not set") .. ")" })
  end
  local ph = ctx.phases or M.phases(l, "hydrate")
  local t0 = core.now()
  hook(ctx, "before_hydrate", ctx)
  -- secrets are read, decrypted and parsed before connecting: a bad file or key changes nothing
  local secrets = not opts.no_hook and require("dbtool.secrets").prepare(l) or nil
  with_conn(ctx, function(conn)
    if opts.no_hook then
      l:info("skipping hectic bundle hook")
    else
      l:info("hectic bundle hook")
      ph:run("bundle", require("dbtool.bundle").apply, conn, { log = l })
      if secrets then ph:run("secrets", require("dbtool.secrets").load, conn, secrets, l) end
    end
    if opts.mock then l:info("mock mode enabled — external API calls will be stubbed") end
    l:notice("hydrate database sources")
    ph:run("sources", run_script, conn, entry, "HYDRATE_LOG", "hydrate", l,
      opts.mock and { USE_MOCK = "1" } or nil)
  end)
  hook(ctx, "after_hydrate", ctx)
  local dt = core.now() - t0
  if not ctx.phases then l:notice("hydrate done in %s (%s)", ui.duration(dt), ph:summary()) end
  return dt
end

-- ---------------------------------------------------------------- patch

local function edit(l, file)
  local editor = env.get("VISUAL") or env.get("EDITOR", "vi")
  l:notice("opening %s in %s", file, editor)
  local argv = {}
  for w in editor:gmatch("%S+") do argv[#argv + 1] = w end
  argv[#argv + 1] = file
  local p, err = require("dbtool.core.proc").spawn { argv = argv, env = env.child_env() }
  if not p then
    errors.raise(errors.NO_DEPENDENCY, "cannot run the editor '" .. editor .. "': " .. tostring(err),
      { hint = "set EDITOR to an installed editor", variable = "EDITOR" })
  end
  local how, code = p:wait()
  if how ~= "exited" or code ~= 0 then
    errors.raise(errors.GENERIC, string.format("the editor %s %s; nothing was applied",
      how == "exited" and "exited with code" or "was killed by signal", tostring(code)),
      { hint = "save and quit the editor normally to apply the file" })
  end
end

--- patch: apply the test-data file (PATCH_SQL, created empty when missing) in one
--- transaction: all of it or, on an error, nothing. opts.edit opens $EDITOR on it first, then
--- applies it. Returns the elapsed seconds.
function M.patch(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db patch")
  local file = env.patch_sql()
  local dir = file:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then mkdir_p(dir) end
  if not exists(file) then
    local f, err = io.open(file, "w")
    if not f then errors.raise(errors.GENERIC, "cannot create " .. file .. ": " .. tostring(err)) end
    f:close()
    l:info("created empty %s", file)
  end
  if opts.edit then edit(l, file) end
  local ph = ctx.phases or M.phases(l, "patch")
  local t0 = core.now()
  hook(ctx, "before_patch", ctx)
  l:notice("restoring %s in database", file)
  with_conn(ctx, function(conn)
    ph:run("patch", run_script, conn, file, "PATCH_LOG", "patch", l, nil, true)
  end)
  hook(ctx, "after_patch", ctx)
  local dt = core.now() - t0
  if not ctx.phases then l:notice("patch done in %s", ui.duration(dt)) end
  return dt
end

-- ---------------------------------------------------------------- test

--- test: run test files (opts.paths, else opts.file, else $DATABASE_DIR/test/test.sql), each
--- inside BEGIN … ROLLBACK on a connection of its own (dbtool.testrun): pgTAP output is
--- printed and judged; opts.tap gives TAP 13, opts.junit a JUnit XML file, opts.jobs > 1
--- runs files in parallel in clones of the database. Returns true when the tests passed,
--- and the summary.
function M.test(ctx, opts)
  opts = opts or {}
  local summary = require("dbtool.testrun").run(ctx, { paths = opts.paths or (opts.file and { opts.file }),
    tap = opts.tap, junit = opts.junit, jobs = opts.jobs, output = opts.output or stdout_writer,
    log = ctx.log or log.ns("db test") })
  return summary.passed, summary
end

-- ---------------------------------------------------------------- deploy / check

--- Start (or reuse) the local cluster as postgres-init would; returns the cluster handle.
function M.start_cluster(_, opts)
  opts = opts or {}
  if opts.client == nil then opts.client = true end   -- hydrate and patch connect next
  return require("dbtool.cluster").start_from_env(opts)
end

--- hydrate then patch (unless opts.no_hydrate / opts.no_patch; opts.mock) on the cluster
--- `handle`, as phases of `ph`; returns the sub-context (its url is the cluster's).
local function fill(ctx, handle, ph, opts)
  local sub = setmetatable({ url = handle.url, phases = ph, cluster = handle }, { __index = ctx })
  if not opts.no_hydrate then
    sub.log = log.ns("db hydrate")
    M.hydrate(sub, { mock = opts.mock })
  end
  if not opts.no_patch then
    sub.log = log.ns("db patch")
    M.patch(sub, {})
  end
  sub.log = ctx.log
  return sub
end
M.fill = fill

--- deploy: start the local cluster (fresh, or reused with opts.reuse / PG_REUSE), hydrate
--- and patch it (unless opts.no_hydrate / opts.no_patch), then stop it with opts.cleanup.
--- Returns the cluster handle.
function M.deploy(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db deploy")
  if ctx.url then
    l:warn("deploy works on the local cluster in %s; the -u URL is not used", env.pg_working_dir())
  end
  local ph = opts.phases or M.phases(l, "deploy")
  hook(ctx, "before_deploy", ctx)
  local handle = ph:run("cluster", M.start_cluster, ctx, { reuse = opts.reuse, log = l })
  local sub = fill(ctx, handle, ph, opts)
  hook(ctx, "after_deploy", sub, handle)
  if opts.cleanup then
    l:info("cleanup: stopping postgresql")
    ph:run("stop", handle.stop, handle)
  end
  l:notice("deploy done in %s (%s); %s", ui.duration(ph:elapsed()), ph:summary(),
    opts.cleanup and "cluster stopped" or ((handle.reused and "cluster reused; " or "")
      .. "connect with: psql '" .. handle.url .. "'"))
  return handle
end

-- Our child processes still working in `dir` (their command line names it, or their working
-- directory is in it), from /proc: {pid =, comm =}. After an interrupt, a helper (the `cp` of
-- the template, initdb, a server) can outlive the code that started it for a moment.
local function children_in(dir)
  local ok, names = pcall(require("posix.dirent").dir, "/proc")
  if not ok or not names then return {} end
  local me = require("posix.unistd").getpid()
  local out = {}
  for _, n in ipairs(names) do
    if n:match("^%d+$") then
      local f = io.open("/proc/" .. n .. "/stat", "r")
      local st = f and f:read("a")
      if f then f:close() end
      local comm, state, ppid = (st or ""):match("^%d+ %((.*)%) (%a) (%d+) ")
      if ppid and tonumber(ppid) == me and state ~= "Z" then
        local c = io.open("/proc/" .. n .. "/cmdline", "r")
        local cmd = c and c:read("a") or ""
        if c then c:close() end
        local cwd = require("posix.unistd").readlink("/proc/" .. n .. "/cwd") or ""
        if cmd:find(dir, 1, true) or cwd == dir or cwd:sub(1, #dir + 1) == dir .. "/" then
          out[#out + 1] = { pid = tonumber(n), comm = comm }
        end
      end
    end
  end
  return out
end

-- End them: a server with SIGQUIT (immediate shutdown, which ends its backends too), others
-- with SIGTERM; SIGKILL for whatever is left after 10 s.
local function end_children_in(dir, l)
  local kids = children_in(dir)
  if #kids == 0 then return end
  local psignal = require "posix.signal"
  for _, k in ipairs(kids) do
    if l then l:debug("stopping %s (pid %d), still working in %s", k.comm, k.pid, dir) end
    psignal.kill(k.pid, k.comm == "postgres" and psignal.SIGQUIT or psignal.SIGTERM)
  end
  local deadline = core.now() + 10
  while #children_in(dir) > 0 and core.now() < deadline do core.sleep(0.01) end
  for _, k in ipairs(children_in(dir)) do psignal.kill(k.pid, psignal.SIGKILL) end
  deadline = core.now() + 5
  while #children_in(dir) > 0 and core.now() < deadline do core.sleep(0.01) end
end

--- check: the whole deploy in an isolated temporary cluster (under TMPDIR) that is stopped
--- and removed however the run ends: success, failure, Ctrl-C. The user's own cluster and
--- data are not touched. opts.test ({paths =, tap =, junit =, jobs =}, as test)
--- runs the tests in that cluster after the deploy. opts.phases: the phase tracker to use.
--- Returns true (false when the tests failed), and the tests' summary.
function M.check(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db check")
  local cluster = require "dbtool.cluster"
  local base = env.get("TMPDIR", "/tmp")
  local dir
  local ph = opts.phases or M.phases(l, "check")
  local removed = false
  local passed, summary = true, nil
  -- a throw-away cluster: no shutdown checkpoint. After a success the server is stopped and
  -- the files deleted by a detached db-tool that outlives us by some tens of milliseconds
  -- (the result is not kept waiting); on a failure or Ctrl-C we wait for both, after ending
  -- anything of ours still working in the directory (a copy or a server an interrupt left
  -- unattended).
  local function remove(background)
    local exe = background and core.exe()
    if exe then
      local p
      core.uninterruptible(function()
        local code = string.format("local c = require('dbtool.cluster') "
          .. "pcall(c.stop, %q, { mode = 'immediate' }) c.rm_rf(%q)", dir, dir)
        p = require("dbtool.core.proc").spawn { argv = { exe, "-e", code }, stdin = "null", stdout = "null",
          stderr = "null", detach = true }
        removed = p ~= nil
      end)
      if removed then return end
    end
    pcall(cluster.stop, dir, { mode = "immediate" })
    end_children_in(dir, l)
    cluster.rm_rf(dir)
    removed = true
  end
  errors.finally(function()
    ui.status(nil)
    if dir and not removed then remove() end
  end, function()
    -- made inside the protected call, and named before an interrupt can be raised: Ctrl-C
    -- right after mkdtemp must not leave the directory behind
    local err
    core.uninterruptible(function()
      dir, err = require("posix.stdlib").mkdtemp(base .. "/db-tool-check-XXXXXX")
    end)
    if not dir then
      errors.raise(errors.GENERIC, "cannot create a temporary directory in " .. base .. ": " .. tostring(err),
        { hint = "check TMPDIR", variable = "TMPDIR" })
    end
    l:info("isolated cluster: %s", dir)
    hook(ctx, "before_check", ctx)
    l:info("check: initializing temporary PostgreSQL cluster")
    local handle = ph:run("cluster", cluster.start, cluster.options_from_env {
      dir = dir, reuse = false, spare = false, logging = false, log_dir = dir .. "/data/log", client = true,
      -- durability is pointless in a cluster removed at the end, and so is autovacuum (whose
      -- workers would also hold up the clones of `--test -j`: CREATE DATABASE waits for them)
      settings = { fsync = "off", synchronous_commit = "off", full_page_writes = "off", autovacuum = "off" },
      log = l, prog = "database check",
    })
    l:info("check PGURL: %s", handle.url)
    local sub = fill(ctx, handle, ph, opts)
    hook(ctx, "after_check", sub)
    if opts.test then
      local tctx = setmetatable({ log = log.ns("db test") }, { __index = sub })
      passed, summary = ph:run("test", M.test, tctx, opts.test)
    end
    ph:run("remove", remove, true)
  end)
  if not passed then
    l:error("check: the deploy completed cleanly, the tests failed (%s)", ph:summary())
    return false, summary
  end
  l:notice("check: success — deploy completed cleanly%s in %s (%s)", opts.test and ", tests passed" or "",
    ui.duration(ph:elapsed()), ph:summary())
  return true, summary
end

return M
