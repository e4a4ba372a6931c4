-- Throw-away PostgreSQL servers on demand (`database tmp`), as pg_tmp or pg_virtualenv give.
--
--   local tmp = require "dbtool.tmp"
--   local s = tmp.create { idle = 60, log = l }   -- {dir, handle, url, watcher}: a fresh server
--   tmp.run(s, argv)          → CMD's exit code (run with PGURL & co. of the server)
--   tmp.remove(s.dir)         stop the server, delete the directory (idempotent)
--   tmp.stop_url(url)         `database tmp --stop URL`
--   tmp.client_env(handle)    {PGURL =, DATABASE_URL =, PGHOST =, ...}      (pure)
--   tmp.dir_of_host(host)     the server directory a URL's host names, or nil (pure)
--
-- Every server lives in its own directory $TMPDIR/db-tool-tmp-XXXXXX (data/, sock/ and the
-- file .db-tool-tmp.lock), made by mkdtemp: two runs never share one. The cluster is a copy
-- of db-tool's template cache (the pool's prepared copies when there are some), started with
-- the environment of postgres-init (PG_DATABASE, PG_PORT, PG_CONF_FILE,
-- PG_SHARED_PRELOAD_LIBRARIES) but socket-only, without durability (fsync off) and without
-- a logging collector.
--
-- A detached watcher (`db-tool -e "require('dbtool.tmp').watch(...)"`, working directory /,
-- no terminal, no inherited descriptors) owns each server: it holds an fcntl lock on the
-- .db-tool-tmp.lock file for its whole life and removes the server
--   * without a command: after `idle` seconds with no client connected (it polls
--     pg_stat_activity over a connection of its own, which does not count);
--   * with a command: when the `database tmp` process that runs it is gone (killed by
--     SIGKILL, say) — normally that process removes the server itself when CMD ends.
-- Anyone else who removes a server (`--stop`, the end of CMD) first kills the lock holder,
-- then removes the server under the lock: stop and removal never race.
local core = require "dbtool.core"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

M.DEFAULT_IDLE = 60
M.PREFIX = "db-tool-tmp-"
M.LOCK = ".db-tool-tmp.lock"

-- ---------------------------------------------------------------- pure functions

--- The idle timeout from the -w/--idle argument: seconds > 0 (fractions allowed), else an
--- error (exit 9).
function M.parse_idle(s)
  if s == nil then return M.DEFAULT_IDLE end
  local n = tonumber(s)
  if not n or n ~= n or n <= 0 or n == math.huge then
    errors.raise(errors.NOT_FOUND, "database tmp: -w/--idle must be a number of seconds > 0, not '"
      .. tostring(s) .. "'", { hint = "e.g. `database tmp -w 300`" })
  end
  return n
end

--- The variables a command run with `-- CMD` gets: the server as URL and as libpq's PG*
--- variables. Variables that would make libpq go elsewhere are removed (false).
function M.client_env(h)
  return {
    PGURL = h.url, DATABASE_URL = h.url, PGHOST = h.host, PGPORT = tostring(h.port),
    PGDATABASE = h.database, PGUSER = h.user,
    PGHOSTADDR = false, PGSERVICE = false, PGPASSWORD = false, PGOPTIONS = false,
  }
end

--- The directory of a server of ours named by a URL's host (its socket directory
--- <dir>/sock), or nil when the host cannot be one.
function M.dir_of_host(host)
  if type(host) ~= "string" then return nil end
  local dir = host:gsub("/+$", ""):match("^(/.*)/sock$")
  if not dir then return nil end
  local base = dir:match("([^/]+)$")
  if not base or base:sub(1, #M.PREFIX) ~= M.PREFIX then return nil end
  return dir
end

-- ---------------------------------------------------------------- locks

local function lock_path(dir)
  return dir .. "/" .. M.LOCK
end

local function lock_spec(kind)
  local fcntl = require "posix.fcntl"
  return { l_type = kind or fcntl.F_WRLCK, l_whence = 0, l_start = 0, l_len = 0 }
end

--- Take the lock of `dir` without waiting: the fd, or nil (held by someone, or no file).
local function try_lock(dir)
  local fcntl = require "posix.fcntl"
  local fd = fcntl.open(lock_path(dir), fcntl.O_RDWR | fcntl.O_CLOEXEC)
  if not fd then return nil end
  if fcntl.fcntl(fd, fcntl.F_SETLK, lock_spec()) then return fd end
  require("posix.unistd").close(fd)
  return nil
end

--- The pid holding the lock of `dir`, or nil.
local function lock_holder(dir)
  local fcntl = require "posix.fcntl"
  local fd = fcntl.open(lock_path(dir), fcntl.O_RDWR | fcntl.O_CLOEXEC)
  if not fd then return nil end
  local info = lock_spec()
  fcntl.fcntl(fd, fcntl.F_GETLK, info)
  require("posix.unistd").close(fd)
  if info.l_type ~= fcntl.F_UNLCK and info.l_pid and info.l_pid > 0 then return info.l_pid end
  return nil
end

local function alive(pid)
  local psignal = require "posix.signal"
  local ok, _, eno = psignal.kill(pid, 0)
  if not ok then return eno == require("posix.errno").EPERM end
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  local st = f and f:read("a")
  if f then f:close() end
  return not (st and st:match("^%d+ %b() (%a)") == "Z")
end

-- ---------------------------------------------------------------- removal

local function exists(path)
  return require("posix.sys.stat").lstat(path) ~= nil
end

--- Stop the server of `dir` (immediate: no shutdown checkpoint for a throw-away server) and
--- delete the directory. Idempotent; true when nothing is left.
function M.remove(dir)
  if not exists(dir) then return true end
  local cluster = require "dbtool.cluster"
  pcall(cluster.stop, dir, { mode = "immediate", timeout = 10 })
  cluster.rm_rf(dir)
  return not exists(dir)
end

--- Remove a server somebody else may own: kill the watcher holding its lock (SIGKILL; it
--- holds nothing else), take the lock, remove. `watcher`: our process object of it, if any.
local function take_over(dir, watcher)
  local psignal = require "posix.signal"
  if watcher then
    pcall(watcher.kill, watcher, "KILL")
    pcall(watcher.wait, watcher)
  end
  local deadline = core.now() + 10
  local fd = try_lock(dir)
  while not fd and exists(lock_path(dir)) and core.now() < deadline do
    local pid = lock_holder(dir)
    if pid then psignal.kill(pid, psignal.SIGKILL) end
    core.sleep(0.002)
    fd = try_lock(dir)
  end
  return errors.finally(function()
    if fd then require("posix.unistd").close(fd) end
  end, M.remove, dir)
end

-- ---------------------------------------------------------------- the watcher

local CLIENTS = [[
SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()]]

local function connect_admin(dir)
  local cluster = require "dbtool.cluster"
  local st = cluster.status(dir)
  if st.state ~= "running" then return nil end
  local pg = require "dbtool.core.pg"
  for _, db in ipairs { "postgres", "template1" } do
    local ok, conn = pcall(pg.connect, { host = dir .. "/sock", port = tostring(st.port or 5432),
      dbname = db, user = env.user(), connect_timeout = "10" })
    if ok then return conn end
  end
  return nil
end

--- The watcher's life (run by a detached db-tool): hold the lock of `dir`, wait until the
--- server is no longer wanted, remove it. `owner`: pid of the `database tmp` running a
--- command (then: wait for it to be gone); else the idle timeout applies.
function M.watch(dir, idle, owner)
  local fd = try_lock(dir)
  if not fd then return end   -- someone else owns it (or it is gone)
  errors.finally(function()
    M.remove(dir)
    require("posix.unistd").close(fd)
  end, function()
    if owner then
      while alive(owner) and exists(dir .. "/data") do core.sleep(0.1) end
      return
    end
    local conn = connect_admin(dir)
    if not conn then return end
    local step = math.min(1, math.max(0.02, idle / 20))
    local last = core.now()
    while true do
      local ok, rows = pcall(conn.exec, conn, CLIENTS)
      if not ok then break end                         -- the server is gone
      if rows[1].n > 0 then
        last = core.now()
      elseif core.now() - last >= idle then
        break
      end
      core.sleep(step)
    end
    pcall(conn.close, conn)
  end)
end

local function spawn_watcher(dir, idle, owner)
  local exe = core.exe()
  if not exe then return nil, "cannot find the db-tool executable" end
  local code = string.format("require('dbtool.tmp').watch(%q, %.17g, %s)", dir, idle,
    owner and tostring(owner) or "nil")
  return require("dbtool.core.proc").spawn { argv = { exe, "-e", code }, cwd = "/", env = env.child_env(),
    stdin = "null", stdout = "null", stderr = "null", detach = true }
end

-- ---------------------------------------------------------------- create / run / stop

--- A fresh throw-away server. opts: idle (seconds, for a server handed out without a
--- command), owner (true: the caller runs a command and removes the server when it ends; the
--- watcher only steps in if the caller dies), client (the caller connects next), log.
--- Returns {dir =, handle =, url =, watcher =}. On any failure (Ctrl-C included) nothing is
--- left behind.
function M.create(opts)
  opts = opts or {}
  local l = opts.log or log.ns("db tmp")
  local base = env.get("TMPDIR", "/tmp")
  local s = {}
  local done = false
  errors.finally(function()
    if not done and s.dir then take_over(s.dir, s.watcher) end
  end, function()
    local err
    core.uninterruptible(function()
      s.dir, err = require("posix.stdlib").mkdtemp(base .. "/" .. M.PREFIX .. "XXXXXX")
    end)
    if not s.dir then
      errors.raise(errors.GENERIC, "cannot create a temporary directory in " .. base .. ": " .. tostring(err),
        { hint = "check TMPDIR", variable = "TMPDIR" })
    end
    local f = assert(io.open(lock_path(s.dir), "w"))
    f:write("database tmp\n")
    f:close()
    local cluster = require "dbtool.cluster"
    s.handle = cluster.start(cluster.options_from_env {
      dir = s.dir, reuse = false, spare = false, logging = false, log_dir = s.dir .. "/data/log",
      client = opts.client,
      -- durability is pointless in a server removed at the end
      settings = { fsync = "off", synchronous_commit = "off", full_page_writes = "off" },
      log = l, prog = "database tmp",
    })
    s.url = s.handle.url
    local werr
    core.uninterruptible(function()
      s.watcher, werr = spawn_watcher(s.dir, opts.idle or M.DEFAULT_IDLE,
        opts.owner and require("posix.unistd").getpid() or nil)
    end)
    if not s.watcher then
      errors.raise(errors.GENERIC, "cannot start the watcher of the throw-away server: " .. tostring(werr))
    end
    done = true
  end)
  return s
end

--- Remove server `s` (made by create) now: its watcher is ended first.
function M.destroy(s)
  return take_over(s.dir, s.watcher)
end

--- Run argv with the server's variables (client_env), the terminal and standard streams
--- inherited. Returns CMD's exit code (128 + N when a signal N ended it). An interrupt of
--- ours (Ctrl-C, SIGTERM) is passed on to CMD, which gets 10 s to end before SIGKILL; then
--- the interrupt is raised.
function M.run(s, argv)
  local proc = require "dbtool.core.proc"
  local p, err
  -- an interrupt held back during the spawn is raised when core.uninterruptible returns:
  -- inside the pcall, so that CMD, already running, gets it too
  local ok, how, code = pcall(function()
    core.uninterruptible(function()
      p, err = proc.spawn { argv = argv, env = env.child_env(M.client_env(s.handle)) }
    end)
    if p then return p:wait() end
  end)
  if not ok and not p then error(how, 0) end
  if not p then
    errors.raise(errors.NO_DEPENDENCY, "database tmp: cannot run " .. tostring(err),
      { hint = "check the command after `--` (it is run without a shell; PATH applies)" })
  end
  if not ok then
    local e = how
    pcall(p.kill, p, errors.is(e) and e.signal or "TERM")
    local okw, ended = pcall(p.wait, p, 10)
    if not (okw and ended) then
      pcall(p.kill, p, "KILL")
      pcall(p.wait, p)
    end
    error(e, 0)
  end
  if how == "exited" then return code end
  return 128 + code
end

--- `database tmp --stop URL`: remove the server of URL (a URL or conninfo `database tmp`
--- printed). Returns true when it was removed, false when it was gone already. A URL that
--- does not name a server of `database tmp` owned by us is an error (exit 1) and nothing is
--- touched.
function M.stop_url(url)
  local info = require("dbtool.core.pg").parse_conninfo(url)
  local host = info and info.host
  local dir = M.dir_of_host(host)
  local function refuse(why)
    errors.raise(errors.GENERIC, "database tmp --stop: " .. why .. ": " .. log.redact(tostring(url)),
      { hint = "pass a URL printed by `database tmp`" })
  end
  if not info then refuse("not a connection URL") end
  if not dir then refuse("not the URL of a server started by `database tmp`") end
  if not exists(dir) then return false end
  local st = require("posix.sys.stat").lstat(lock_path(dir))
  if not st or st.st_uid ~= require("posix.unistd").geteuid() then
    refuse("not a server started by `database tmp` as this user")
  end
  take_over(dir)
  return true
end

return M
