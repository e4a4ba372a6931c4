-- The everyday loop of `database`: hydrate (bundle, secrets, sources), patch (test data),
-- test, deploy (cluster + hydrate + patch) and check (deploy in a throw-away cluster).
-- Each step is a plain function over a context {log =, url =, project =, ...} so that
-- commands, project scripts and hooks can call them.
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

--- Open the output stream for a step: `logvar` (HYDRATE_LOG / PATCH_LOG), else
--- $PG_LOG_PATH/<name>.stdout.log when PG_LOG_PATH is set, else stdout.
function M.output(logvar, name)
  local path = env.get(logvar)
  if not path and env.is_set("PG_LOG_PATH") and env.get("PG_LOG_PATH") then
    path = env.get("PG_LOG_PATH") .. "/" .. name .. ".stdout.log"
  end
  if not path then return io.stdout, "stdout", false end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then mkdir_p(dir) end
  local f, err = io.open(path, "w")
  if not f then
    errors.raise(errors.GENERIC, "cannot write " .. logvar .. " file: " .. tostring(err),
      { hint = "check " .. logvar .. (env.get(logvar) and "" or " / PG_LOG_PATH") })
  end
  return f, path, true
end

local function connect(ctx)
  if ctx.conn then return ctx.conn, false end
  local pg = require "dbtool.pg"
  local url = ctx.url or require("dbtool.db").require_url(ctx)
  return pg.connect(url, { log = ctx.log }), true
end

local function with_conn(ctx, fn)
  local conn, owned = connect(ctx)
  return errors.finally(function()
    if owned then conn:close() end
  end, fn, conn)
end

local function timed(fn, ...)
  local t0 = core.now()
  local res = table.pack(fn(...))
  return core.now() - t0, table.unpack(res, 1, res.n)
end

-- ---------------------------------------------------------------- secrets source

--- The dotenv text for hydrate, first match wins: HECTIC_DOTENV_CONTENT, HECTIC_DOTENV_FILE,
--- $LOCAL_DIR/.env.$ENVIRONMENT or its encrypted form .env.$ENVIRONMENT.enc (decrypted).
--- Returns text, source-description; or nil when there is none. (dbtool.secrets.find)
function M.dotenv_source()
  return require("dbtool.secrets").find()
end

-- ---------------------------------------------------------------- hydrate

--- hydrate: bundle (unless opts.no_hook), secrets, then $DATABASE_SOURCE/entrypoint.sql.
function M.hydrate(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db hydrate")
  local entry = env.get("HYDRATE_ENTRYPOINT", "entrypoint.sql")
  if entry:sub(1, 1) ~= "/" then entry = env.database_source() .. "/" .. entry end
  if not readable_file(entry) then
    errors.raise(errors.GENERIC, "hydrate entrypoint not found: " .. entry,
      { hint = "create it, or set DATABASE_SOURCE / HYDRATE_ENTRYPOINT" })
  end
  hook(ctx, "before_hydrate", ctx)
  local t0 = core.now()
  -- secrets are read, decrypted and parsed before connecting: a bad file or key changes nothing
  local secrets = not opts.no_hook and require("dbtool.secrets").prepare(l) or nil
  with_conn(ctx, function(conn)
    if opts.no_hook then
      l:info("skipping hectic bundle hook")
    else
      l:info("hectic bundle hook")
      require("dbtool.bundle").apply(conn, { log = l })
      if secrets then require("dbtool.secrets").load(conn, secrets, l) end
    end
    if opts.mock then l:info("mock mode enabled — external API calls will be stubbed") end
    l:notice("hydrate database sources")
    local out, outname, owned = M.output("HYDRATE_LOG", "hydrate")
    local sqlrun = require "dbtool.sqlrun"
    local ok, err = errors.try(sqlrun.file, conn, entry, {
      vars = opts.mock and { USE_MOCK = "1" } or {},
      output = out,
      log = l,
    })
    if owned then out:close() end
    if not ok then
      if outname ~= "stdout" then err.hint = err.hint or ("output of the run is in " .. outname) end
      error(err, 0)
    end
  end)
  hook(ctx, "after_hydrate", ctx)
  local dt = core.now() - t0
  l:notice("hydrate done in %s", ui.duration(dt))
  return dt
end

-- ---------------------------------------------------------------- patch

--- patch: apply the test-data file (created empty when missing); opts.edit opens $EDITOR first.
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
  if opts.edit then
    local editor = env.get("EDITOR", "vi")
    l:notice("opening %s in %s", file, editor)
    local argv = {}
    for w in editor:gmatch("%S+") do argv[#argv + 1] = w end
    argv[#argv + 1] = file
    local p, err = require("dbtool.core.proc").spawn { argv = argv }
    if not p then
      errors.raise(errors.NO_DEPENDENCY, "cannot run the editor: " .. err, { hint = "set EDITOR" })
    end
    local how, code = p:wait()
    if how ~= "exited" or code ~= 0 then
      errors.raise(errors.GENERIC,
        "the editor exited with " .. how .. " " .. tostring(code) .. "; nothing applied")
    end
  end
  hook(ctx, "before_patch", ctx)
  local t0 = core.now()
  l:notice("restoring %s in database", file)
  with_conn(ctx, function(conn)
    local out, outname, owned = M.output("PATCH_LOG", "patch")
    local ok, err = errors.try(require("dbtool.sqlrun").file, conn, file, { output = out, log = l })
    if owned then out:close() end
    if not ok then
      if outname ~= "stdout" then err.hint = err.hint or ("output of the run is in " .. outname) end
      error(err, 0)
    end
  end)
  hook(ctx, "after_patch", ctx)
  local dt = core.now() - t0
  l:notice("patch done in %s", ui.duration(dt))
  return dt
end

-- ---------------------------------------------------------------- test

--- Interpret TAP lines; returns {planned =, run =, failed =, lines =}.
function M.tap_summary(lines)
  local s = { planned = nil, run = 0, failed = 0, failures = {} }
  for _, line in ipairs(lines) do
    local a, b = line:match("^(%d+)%.%.(%d+)")
    if a then s.planned = tonumber(b) - tonumber(a) + 1 end
    local notok = line:match("^not ok%f[%W]")
    local ok = line:match("^ok%f[%W]")
    if ok or notok then
      s.run = s.run + 1
      local directive = line:match("#%s*(%a+)")
      directive = directive and directive:upper()
      if notok and directive ~= "TODO" and directive ~= "SKIP" then
        s.failed = s.failed + 1
        s.failures[#s.failures + 1] = line
      end
    end
  end
  return s
end

--- test: run $DATABASE_DIR/test/test.sql inside BEGIN … ROLLBACK (nothing it does stays).
--- TAP lines returned by the tests (pgTAP) are printed and judged; opts.tap prints TAP for
--- plain SQL tests too. Returns true when the tests passed.
function M.test(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db test")
  local file = opts.file or (env.database_dir() .. "/test/test.sql")
  if not readable_file(file) then
    errors.raise(errors.GENERIC, "test file not found: " .. file,
      { hint = "write your tests in " .. file .. " (or set DATABASE_DIR)" })
  end
  l:notice("running tests from %s", file)
  local tap_lines = {}
  local out = opts.output or io.stdout
  local ok, err
  with_conn(ctx, function(conn)
    conn:exec("BEGIN")
    ok, err = errors.try(require("dbtool.sqlrun").file, conn, file, {
      log = l,
      output = out,
      on_result = function(res)
        -- pgTAP functions return one text column of TAP lines
        if res.n and res.n > 0 and res.fields and #res.fields == 1 then
          for i = 1, res.n do
            local v = res[i][1]
            if type(v) == "string" and (v:match("^ok%f[%W]") or v:match("^not ok%f[%W]")
                or v:match("^%d+%.%.%d+") or v:match("^#")) then
              for line in v:gmatch("[^\n]+") do
                tap_lines[#tap_lines + 1] = line
                out:write(line, "\n")
              end
            end
          end
        end
      end,
    })
    if not conn:closed() and conn:transaction_status() ~= "idle" then pcall(conn.exec, conn, "ROLLBACK") end
  end)
  local passed = ok
  if #tap_lines > 0 then
    local s = M.tap_summary(tap_lines)
    if s.failed > 0 or (s.planned and s.planned ~= s.run) then passed = false end
    if s.planned and s.planned ~= s.run then
      l:error("planned %d tests but ran %d", s.planned, s.run)
    end
  elseif opts.tap then
    out:write("1..1\n", ok and "ok 1 - " or "not ok 1 - ", file, "\n")
  end
  if not ok then
    require("dbtool.cli").report(err, l.name)
  end
  if passed then
    l:notice("all tests passed")
  else
    l:error("tests failed")
  end
  return passed
end

-- ---------------------------------------------------------------- deploy / check

--- Start (or reuse) the local cluster as postgres-init would; returns the cluster handle.
function M.start_cluster(_ctx, opts)
  local cluster = require "dbtool.cluster"
  return cluster.start_from_env(opts or {})
end

--- deploy: cluster, hydrate, patch (each optional), then stop with opts.cleanup.
function M.deploy(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db deploy")
  local timings = {}
  local t0 = core.now()
  hook(ctx, "before_deploy", ctx)
  local dt, handle = timed(M.start_cluster, ctx, { reuse = opts.reuse, log = l })
  timings[#timings + 1] = "cluster " .. ui.duration(dt)
  local sub = setmetatable({ url = ctx.url or handle.url }, { __index = ctx })
  if not opts.no_hydrate then
    sub.log = log.ns("db hydrate")
    local dt_h = M.hydrate(sub, { mock = opts.mock, no_hook = opts.no_hook })
    timings[#timings + 1] = "hydrate " .. ui.duration(dt_h)
  end
  if not opts.no_patch then
    sub.log = log.ns("db patch")
    timings[#timings + 1] = "patch " .. ui.duration(M.patch(sub, {}))
  end
  hook(ctx, "after_deploy", sub, handle)
  if opts.cleanup then
    l:info("cleanup: stopping postgresql")
    handle:stop()
  end
  l:notice("deploy done in %s (%s); %s", ui.duration(core.now() - t0), table.concat(timings, ", "),
    opts.cleanup and "cluster stopped" or ("connect with: psql '" .. handle.url .. "'"))
  return handle
end

--- check: the whole deploy in an isolated temporary cluster that is always removed.
function M.check(ctx, opts)
  opts = opts or {}
  local l = ctx.log or log.ns("db check")
  local cluster = require "dbtool.cluster"
  local stdlib = require "posix.stdlib"
  local base = env.get("TMPDIR", "/tmp")
  local dir = assert(stdlib.mkdtemp(base .. "/db-tool-check-XXXXXX"))
  local t0 = core.now()
  l:info("isolated cluster: %s", dir)
  local handle
  return errors.finally(function()
    if handle then pcall(handle.stop, handle) end
    pcall(cluster.stop, dir)
    require("dbtool.core.proc").spawn({ argv = { "rm", "-rf", "--", dir } }):wait()
  end, function()
    hook(ctx, "before_check", ctx)
    l:info("check: initializing temporary PostgreSQL cluster")
    handle = cluster.start {
      dir = dir,
      database = env.pg_database(),
      port = env.pg_port(),
      logging = false,
      preload = cluster.preload_from_env and cluster.preload_from_env() or nil,
      log = l,
    }
    l:info("check PGURL: %s", handle.url)
    local sub = setmetatable({ url = handle.url }, { __index = ctx })
    if not opts.no_hydrate then
      sub.log = log.ns("db hydrate")
      M.hydrate(sub, { mock = opts.mock })
    end
    if not opts.no_patch then
      sub.log = log.ns("db patch")
      M.patch(sub, {})
    end
    hook(ctx, "after_check", sub)
    l:notice("check: success — deploy completed cleanly in %s", ui.duration(core.now() - t0))
    return true
  end)
end

return M
