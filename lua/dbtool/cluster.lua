-- The local PostgreSQL cluster: the policy of `postgres-init`, `postgres-cleanup`,
-- `database init/cleanup`, and the API other commands and the test helpers use.
--
--   local cluster = require "dbtool.cluster"
--   local c = cluster.start { dir = "/p/focus/postgresql", port = 5432, database = "testdb",
--                             reuse = false, preload = "pg_cron", logging = true }
--   c.url, c.host (socket dir), c.port, c.user, c.database, c.conninfo, c.pid, c:stop()
--   cluster.stop(dir [, {mode = "fast"|"immediate"|"smart"}]), cluster.status(dir),
--   cluster.remove(dir), cluster.bindir(), cluster.options_from_env(overrides)
--
-- Layout of a working directory: data/ (PGDATA), sock/ (unix socket dir, mode 0700), and
-- db-tool's own files, all named .db-tool-* (locks, a spare data dir, trash being deleted).
--
-- Speed: initdb runs once per (server binary, initdb options, user, database, TZ) into a
-- template cache under ${XDG_CACHE_HOME:-~/.cache}/db-tool/ (the database is created in the
-- template too); a fresh cluster is a copy of it, made in process (dbtool.core.fs). With
-- `spare = true` (postgres-init, database init) a background job also prepares the next copy
-- inside the working directory, so the next fresh init is a rename; every template also keeps
-- a pool of POOL_SIZE prepared copies (DB_TOOL_SPARES) that other fresh clusters (check,
-- diff, dbtool.testing) take by rename and a background job refills. `postgres` is started
-- directly (never through pg_ctl); readiness is the "ready" status the postmaster writes into
-- postmaster.pid (what pg_ctl -w waits for), polled every 1-2 ms, with PQping only for a
-- server that writes no status. Stop = a signal to the postmaster and a wait for its pid.
--
-- Safety: reuse never deletes data; a reused cluster that fails to start is moved aside to
-- data.broken-<timestamp>; a socket served by another process is an error (exit 2) before
-- anything is touched; stale pid and socket lock files are recognised by checking that the
-- pid really is a postmaster working in our data directory; concurrent runs on one working
-- directory are serialised by a lock; root is refused.
local core = require "dbtool.core"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local fs = require "dbtool.core.fs"
local log = require "dbtool.log"
local proc = require "dbtool.core.proc"

local fcntl = require "posix.fcntl"
local perrno = require "posix.errno"
local psignal = require "posix.signal"
local stat = require "posix.sys.stat"
local stdlib = require "posix.stdlib"
local unistd = require "posix.unistd"

local M = {}

M.DEFAULT_PORT = 5432
M.DEFAULT_DATABASE = "testdb"
M.DEFAULT_PRELOAD = "pg_cron"
M.START_TIMEOUT = 60        -- seconds; PGCTLTIMEOUT overrides (as for pg_ctl)
M.STOP_TIMEOUT = 60
M.LOCK_TIMEOUT = 120
M.TEMPLATE_FORMAT = "2"     -- bump to invalidate every cached template
M.POOL_SIZE = 1             -- prepared copies of each template kept in the cache

local PREFIX = ".db-tool-"

-- ====================================================================== pure functions

--- Paths of a working directory.
function M.layout(dir)
  return {
    dir = dir,
    data = dir .. "/data",
    sock = dir .. "/sock",
    lock = dir .. "/" .. PREFIX .. "init.lock",
    spare_lock = dir .. "/" .. PREFIX .. "spare.lock",
    spare_prefix = dir .. "/" .. PREFIX .. "spare-",
    trash_prefix = dir .. "/" .. PREFIX .. "trash-",
  }
end

--- Is `name` usable as a shell variable name?
function M.valid_var_name(name)
  return type(name) == "string" and name:match("^[A-Za-z_][A-Za-z0-9_]*$") ~= nil
end

--- POSIX shell single quoting: 'it'\''s'.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- `export NAME='value'` lines for an ordered list of {name, value}; only safe names.
function M.export_lines(vars)
  local out = {}
  for _, nv in ipairs(vars) do
    local name, value = nv[1], nv[2]
    if not M.valid_var_name(name) then
      errors.raise(errors.BUG, "refusing to export an invalid variable name: " .. tostring(name))
    end
    out[#out + 1] = "export " .. name .. "=" .. M.shell_quote(value) .. "\n"
  end
  return table.concat(out)
end

local function pct(s, keep)
  return (tostring(s):gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- The cluster URL, as the original printed it: postgresql://<user>@/<db>?host=<sock>&port=<N>.
--- Characters that would break the URL are percent-encoded (libpq decodes them).
function M.url(t)
  return string.format("postgresql://%s@/%s?host=%s&port=%d", pct(t.user), pct(t.database),
    pct(t.host, "/"), t.port)
end

--- A value quoted for postgresql.conf: 'a''b', backslashes doubled.
function M.conf_quote(v)
  return "'" .. tostring(v):gsub("\\", "\\\\"):gsub("'", "''") .. "'"
end

--- "pg_cron, pg_stat_statements" → {"pg_cron", "pg_stat_statements"} (empty entries dropped).
function M.parse_libraries(s)
  local libs = {}
  for item in tostring(s or ""):gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then libs[#libs + 1] = item end
  end
  return libs
end

local function has_lib(libs, name)
  for _, l in ipairs(libs) do
    if l == name or l:match("([^/]+)$"):gsub("%.so$", "") == name then return true end
  end
  return false
end

--- Settings appended to postgresql.conf on a fresh init ({} with a PG_CONF_FILE, which
--- replaces the generated configuration).
function M.generated_settings(o)
  if o.conf_file then return {} end
  local s = { { "listen_addresses", "" } }
  if o.logging then
    s[#s + 1] = { "logging_collector", "on" }
    s[#s + 1] = { "log_directory", o.log_dir or "log" }
  end
  local libs = M.parse_libraries(o.preload)
  if #libs > 0 then
    s[#s + 1] = { "shared_preload_libraries", table.concat(libs, ",") }
    if has_lib(libs, "pg_cron") then
      s[#s + 1] = { "cron.database_name", o.database }
      s[#s + 1] = { "cron.host", o.sock }
    end
  end
  return s
end

--- Keys db-tool owns in postgresql.auto.conf: removed and rewritten on every start.
M.MANAGED_KEYS = { "port", "unix_socket_directories", "hba_file", "ident_file", "logging_collector",
  "log_directory", "shared_preload_libraries", "cron.database_name", "cron.host" }

--- Settings written to postgresql.auto.conf on every start (reuse included). With a
--- PG_CONF_FILE only the connection settings are imposed; logging and preload are the file's.
function M.runtime_settings(o)
  local s = {
    { "port", tostring(o.port) },
    { "unix_socket_directories", o.sock },
    { "hba_file", o.data .. "/pg_hba.conf" },
    { "ident_file", o.data .. "/pg_ident.conf" },
  }
  if not o.conf_file then
    s[#s + 1] = { "logging_collector", o.logging and "on" or "off" }
    if o.logging then s[#s + 1] = { "log_directory", o.log_dir or "log" } end
    local libs = M.parse_libraries(o.preload)
    -- written even when empty: a restored backup's postgresql.conf may name pg_cron, and
    -- PG_SHARED_PRELOAD_LIBRARIES="" must still disable it
    s[#s + 1] = { "shared_preload_libraries", table.concat(libs, ",") }
    if has_lib(libs, "pg_cron") then
      s[#s + 1] = { "cron.database_name", o.database }
      s[#s + 1] = { "cron.host", o.sock }
    end
  end
  if o.settings then
    local keys = {}
    for k in pairs(o.settings) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do s[#s + 1] = { k, tostring(o.settings[k]) } end
  end
  return s
end

local HEADER = "# db-tool: runtime settings, rewritten by postgres-init on every start"

--- Rewrite a configuration file's text: drop the (active) lines that set one of `remove`
--- (case-insensitive), then append `settings` ({key, value} pairs) under one header line.
function M.rewrite_conf(text, remove, settings)
  local drop = {}
  for _, k in ipairs(remove) do drop[k:lower()] = true end
  for _, kv in ipairs(settings) do drop[kv[1]:lower()] = true end
  local out = {}
  for line in (text or ""):gmatch("([^\n]*)\n?") do
    local key = line:match("^%s*([%w_%.]+)%s*=") or line:match("^%s*([%w_%.]+)%s+[^%s#]")
    if not (key and drop[key:lower()]) and line ~= HEADER then out[#out + 1] = line end
  end
  while #out > 0 and out[#out] == "" do out[#out] = nil end
  if #settings > 0 then
    out[#out + 1] = HEADER
    for _, kv in ipairs(settings) do out[#out + 1] = kv[1] .. " = " .. M.conf_quote(kv[2]) end
  end
  return table.concat(out, "\n") .. "\n"
end

--- What to do with the data directory. kind: "none" | "empty" | "cluster" | "other"
--- (a file, or a non-empty directory without PG_VERSION). Returns "reuse", "fresh" or
--- "move-aside" (reuse was asked, but there is something that is not a usable cluster:
--- keep it under another name and start fresh — never delete it).
function M.plan(reuse, kind)
  if reuse then
    if kind == "cluster" then return "reuse" end
    if kind == "other" then return "move-aside" end
  end
  return "fresh"
end

--- postmaster.pid → {pid, data, start, port, sock, listen, shmkey, status}.
function M.parse_pidfile(text)
  if not text then return nil end
  local lines = {}
  for line in text:gmatch("([^\n]*)\n?") do lines[#lines + 1] = line end
  local pid = tonumber((lines[1] or ""):match("^%s*(%d+)%s*$"))
  if not pid or pid <= 0 then return nil end
  return {
    pid = math.tointeger(pid), data = lines[2], start = tonumber(lines[3]),
    port = tonumber(lines[4]), sock = lines[5], listen = lines[6], shmkey = lines[7],
    status = lines[8] and lines[8]:match("^%s*(%S+)") or nil,
  }
end

--- Refuse root (PostgreSQL refuses it too). Exit 2: the cluster cannot be started in this
--- state — the code the original returned (its server start failed) and the code of every
--- other "cannot start here" condition.
function M.check_root(euid, prog)
  if euid == 0 then
    errors.raise(errors.AMBIGUOUS,
      "refusing to run as root: PostgreSQL servers cannot run as root, nothing was changed", {
        hint = "run it as an unprivileged user, e.g. `runuser -u <user> -- " ..
          (prog or "postgres-init") .. "`",
      })
  end
end

--- 64-bit FNV-1a of a string, as 16 hex digits.
function M.hash(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 1099511628211          -- 0x100000001b3, wraps
  end
  return string.format("%016x", h)
end

--- Text identifying a template: everything initdb's output depends on.
function M.template_key(t)
  local lines = {
    "format=" .. M.TEMPLATE_FORMAT,
    "bindir=" .. t.bindir,
    "postgres=" .. t.binary_id,
    "initdb=" .. table.concat(t.initdb_args, " "),
    "database=" .. (t.bake or ""),
    "tz=" .. (t.tz or ""),
  }
  local text = table.concat(lines, "\n") .. "\n"
  return text, M.hash(text)
end

--- The initdb arguments (after -D dir) for user `user`.
function M.initdb_args(user)
  return { "--no-locale", "-E", "UTF8", "-A", "trust", "-U", user, "--no-sync" }
end

--- Databases that initdb creates: never baked into a template.
local BUILTIN_DB = { postgres = true, template0 = true, template1 = true }

--- Name of a moved-aside data directory for time `t` (os.time()).
function M.broken_name(data, t)
  return data .. ".broken-" .. os.date("%Y%m%d-%H%M%S", t)
end

-- ====================================================================== file helpers

local function exists(path) return stat.lstat(path) ~= nil end

local function is_dir(path)
  local st = stat.stat(path)
  return st ~= nil and stat.S_ISDIR(st.st_mode) ~= 0
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, content, mode)
  local tmp = path .. ".tmp-" .. unistd.getpid()
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(content)
  f:close()
  if mode then stat.chmod(tmp, mode) end
  local ok, rerr = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

local function must(ok, what, err)
  if not ok then errors.raise(errors.GENERIC, what .. ": " .. tostring(err)) end
  return ok
end

--- mkdir -p with `mode` for created directories; error (exit 1) naming the culprit.
local function mkdir_p(dir, mode)
  if is_dir(dir) then return end
  local parent = dir:match("^(.*)/[^/]+/*$")
  if parent and parent ~= "" and not is_dir(parent) then mkdir_p(parent, mode) end
  local ok, err, eno = stat.mkdir(dir, mode or 448)
  if not ok and eno == perrno.EEXIST and is_dir(dir) then return end
  if not ok then
    if exists(dir) then
      errors.raise(errors.GENERIC, dir .. " exists and is not a directory",
        { hint = "remove it or point PG_WORKING_DIR elsewhere; nothing was changed" })
    end
    errors.raise(errors.GENERIC, "cannot create directory " .. dir .. ": " .. tostring(err))
  end
end
M.mkdir_p = mkdir_p

local function run(argv, opts)
  opts = opts or {}
  local p, err
  core.uninterruptible(function()   -- the wait below must own the child, Ctrl-C or not
    p, err = proc.spawn { argv = argv, stdin = opts.stdin or "null", stdout = opts.stdout or "null",
      stderr = opts.stderr or "null", env = opts.env }
  end)
  if not p then return nil, err end
  local okw, how, code = pcall(p.wait, p)
  if not okw then
    -- interrupted (Ctrl-C): the child must not go on working behind our back (a `cp` still
    -- writing into a directory the caller is about to remove)
    pcall(p.kill, p, "KILL")
    pcall(p.wait, p)
    error(how, 0)
  end
  if how == "exited" and code == 0 then return true end
  return nil, how .. " " .. tostring(code)
end

--- Remove a tree, in process (dbtool.core.fs); `rm -rf` when that fails (e.g. a directory
--- without write permission that rm may still be able to handle).
local function rm_rf(path)
  if not path or path == "" or path == "/" then return end
  if fs.rmtree(path) then return true end
  return run { "rm", "-rf", "--", path }
end
M.rm_rf = rm_rf

--- Copy a tree (a cached data directory) in process: ~5x cheaper than `cp -a` per file, and
--- no process. A partial copy is removed.
local function copy_tree(src, dst)
  local ok, err = fs.copytree(src, dst)
  if ok then return true end
  rm_rf(dst)
  return nil, err
end

--- Last `n` lines of a file (or nil).
local function tail(path, n)
  local s = read_file(path)
  if not s or s == "" then return nil end
  local lines = {}
  for line in s:gmatch("([^\n]*)\n?") do lines[#lines + 1] = line end
  while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
  local first = math.max(1, #lines - (n or 15) + 1)
  return table.concat(lines, "\n", first)
end

local function dir_entries(dir)
  local ok, dirent = pcall(require, "posix.dirent")
  if not ok then return {} end
  local okf, files = pcall(dirent.dir, dir)
  if not okf or not files then return {} end
  local out = {}
  for _, f in ipairs(files) do
    if f ~= "." and f ~= ".." then out[#out + 1] = f end
  end
  table.sort(out)
  return out
end

local function realpath(path)
  return stdlib.realpath(path) or path
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (unistd.getcwd() or ".") .. "/" .. path
end

-- ====================================================================== locks

--- Take an fcntl lock on `path` ("w" exclusive, "r" shared), waiting up to `timeout` seconds
--- and calling on_wait(holder_pid) once if we have to wait. Returns the fd, or nil when
--- the file cannot be opened (no_create and missing, permissions) or on timeout (nil, pid).
local function lock(path, kind, timeout, on_wait, no_create)
  local flags = fcntl.O_RDWR | fcntl.O_CLOEXEC | (no_create and 0 or fcntl.O_CREAT)
  local deadline = core.now() + (timeout or M.LOCK_TIMEOUT)
  local waited = false
  local nap = 0.005
  while true do
    local fd = fcntl.open(path, flags, 384)
    if not fd then return nil end
    local ltype = kind == "r" and fcntl.F_RDLCK or fcntl.F_WRLCK
    local ok = fcntl.fcntl(fd, fcntl.F_SETLK, { l_type = ltype, l_whence = 0, l_start = 0, l_len = 0 })
    if ok then
      -- the file may have been removed (cleanup) while we waited: then lock the new one
      local a, b = stat.fstat(fd), stat.stat(path)
      if b and a.st_ino == b.st_ino and a.st_dev == b.st_dev then return fd end
      unistd.close(fd)
    else
      local info = { l_type = ltype, l_whence = 0, l_start = 0, l_len = 0 }
      fcntl.fcntl(fd, fcntl.F_GETLK, info)
      unistd.close(fd)
      local holder = info.l_type ~= fcntl.F_UNLCK and info.l_pid or nil
      if core.now() >= deadline then return nil, holder end
      if not waited and on_wait then on_wait(holder) end
      waited = true
      core.sleep(nap)
      nap = math.min(nap * 2, 0.1)
    end
  end
end

local function unlock(fd)
  if fd then unistd.close(fd) end
end

-- ====================================================================== processes

local HAS_PROC = exists("/proc/self/cwd")
local children = {}   -- pid → process object, for servers started by this process

--- Is pid alive? Reaps our own children (a zombie would look alive to kill(pid, 0)).
local function alive(pid)
  local p = children[pid]
  if p then
    if p:wait(0) then
      children[pid] = nil
      return false
    end
    return true
  end
  local ok, _, eno = psignal.kill(pid, 0)
  if ok then
    -- a zombie (exited, not yet reaped by its parent) is gone for us
    local st = HAS_PROC and read_file("/proc/" .. pid .. "/stat")
    if st and st:match("^%d+ %b() (%a)") == "Z" then return false end
    return true
  end
  return eno == perrno.EPERM
end

--- Is `pid` a live postmaster working in `data`? "ours", "stale" or "unverified".
local function identify(pid, data)
  if children[pid] then return alive(pid) and "ours" or "stale" end
  local ok, _, eno = psignal.kill(pid, 0)
  if not ok then
    -- dead, or another user's process: our data directory (0700) cannot be its cluster
    if eno == perrno.ESRCH or eno == perrno.EPERM then return "stale" end
    return "unverified"
  end
  if not alive(pid) then return "stale" end   -- a zombie
  if not HAS_PROC then return "unverified" end
  local cwd = unistd.readlink("/proc/" .. pid .. "/cwd")
  if not cwd then return "unverified" end
  -- the postmaster and its children live in the data directory
  if cwd == realpath(data) then return "ours" end
  return "stale"
end

--- The running postmaster of data directory `data`: pid, pidfile info; or nil, info (stale
--- file) / nil (no pid file).
local function postmaster(data)
  local info = M.parse_pidfile(read_file(data .. "/postmaster.pid"))
  if not info then return nil end
  local v = identify(info.pid, data)
  if v == "stale" then return nil, info end
  return info.pid, info
end

local function wait_gone(pid, timeout)
  local p = children[pid]
  if p then
    local how = p:wait(timeout)
    if how then children[pid] = nil end
    return how ~= nil
  end
  local deadline = core.now() + timeout
  local nap = 0.001
  while alive(pid) do
    if core.now() >= deadline then return false end
    core.sleep(nap)
    nap = math.min(nap * 2, 0.02)
  end
  return true
end

local SIGNAL = { smart = psignal.SIGTERM, fast = psignal.SIGINT, immediate = psignal.SIGQUIT }

--- Signal the postmaster `pid` for shutdown `mode` and wait; escalate to immediate after the
--- timeout. Returns true when it is gone.
local function shutdown(pid, mode, timeout)
  psignal.kill(pid, SIGNAL[mode] or psignal.SIGINT)
  if wait_gone(pid, timeout or M.STOP_TIMEOUT) then return true end
  if mode ~= "immediate" then
    psignal.kill(pid, psignal.SIGQUIT)
    if wait_gone(pid, 10) then return true end
  end
  return false
end

-- ====================================================================== binaries

local function capture(argv)
  local p = proc.spawn { argv = argv, stdin = "null", stdout = "pipe", stderr = "null" }
  if not p then return nil end
  local out = p.stdout:read("a")
  local how, code = p:wait()
  if how ~= "exited" or code ~= 0 then return nil end
  return out and out:match("^%s*(.-)%s*$")
end

local bindir_memo

local function file_id(path)
  local st = path and stat.stat(path)
  if not st then return "-" end
  return string.format("%d:%d:%d:%d", st.st_dev, st.st_ino, st.st_size, st.st_mtime)
end

local function has_postgres(dir)
  local st = dir and stat.stat(dir .. "/postgres")
  return st ~= nil and stat.S_ISREG(st.st_mode) ~= 0
end

--- `pg_config --bindir` costs a process (a shell script on Debian), so its answer is kept in
--- the cache directory, valid while pg_config and the directory holding the server
--- installations (e.g. /usr/lib/postgresql) are unchanged.
local function pg_config_bindir(pg_config)
  local okc, cache = pcall(env.cache_dir)
  local file = okc and (cache .. "/pg_config-" .. M.hash(pg_config):sub(1, 8)) or nil
  local text = file and read_file(file)
  if text then
    local id, gid, dir = text:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
    if dir and id == file_id(pg_config) and gid == file_id(dir:match("^(.*)/[^/]+/[^/]+/*$"))
      and has_postgres(dir) then
      return dir
    end
  end
  local dir = capture { pg_config, "--bindir" }
  if file and has_postgres(dir) and pcall(mkdir_p, cache, 448) then
    write_file(file, file_id(pg_config) .. "\n" .. file_id(dir:match("^(.*)/[^/]+/[^/]+/*$")) .. "\n" ..
      dir .. "\n", 384)
  end
  return dir
end

local function version_key(a, b)
  -- "15" < "9.6"? compare numerically by components
  local function parts(v)
    local t = {}
    for n in v:gmatch("%d+") do t[#t + 1] = tonumber(n) end
    return t
  end
  local x, y = parts(a), parts(b)
  for i = 1, math.max(#x, #y) do
    if (x[i] or -1) ~= (y[i] or -1) then return (x[i] or -1) < (y[i] or -1) end
  end
  return a < b
end

--- The PostgreSQL server binaries: PG_BINDIR, else `pg_config --bindir`, else the directory
--- of `postgres` in PATH, else the newest /usr/lib/postgresql/*/bin. Exit 127 if none.
function M.bindir()
  local forced = env.get("PG_BINDIR")
  if forced then
    if not has_postgres(forced) then
      errors.raise(errors.NO_DEPENDENCY, "PG_BINDIR=" .. forced .. " has no postgres binary",
        { hint = "point PG_BINDIR at the bin directory of a PostgreSQL server installation",
          variable = "PG_BINDIR" })
    end
    return forced
  end
  if bindir_memo then return bindir_memo end
  local found
  local pg_config = proc.which("pg_config", env.get("PATH"))
  if pg_config then
    local dir = pg_config_bindir(realpath(pg_config))
    if has_postgres(dir) then found = dir end
  end
  if not found then
    local p = proc.which("postgres", env.get("PATH"))
    if p then found = p:match("^(.*)/[^/]*$") end
  end
  if not found then
    local best
    for _, v in ipairs(dir_entries("/usr/lib/postgresql")) do
      if has_postgres("/usr/lib/postgresql/" .. v .. "/bin") and (not best or version_key(best, v)) then
        best = v
      end
    end
    if best then found = "/usr/lib/postgresql/" .. best .. "/bin" end
  end
  if not found then
    errors.raise(errors.NO_DEPENDENCY, "PostgreSQL server binaries not found (postgres, initdb)", {
      hint = "install the PostgreSQL server (Debian: apt install postgresql), put its bin directory " ..
        "in PATH, or set PG_BINDIR",
    })
  end
  bindir_memo = found
  return found
end

--- The package library directory (where pg_cron.so lives) of the server in `bindir`.
function M.pkglibdir(bindir)
  local base = bindir:match("^(.*)/[^/]+/*$") or bindir
  for _, cand in ipairs { base .. "/lib/postgresql", base .. "/lib" } do
    if exists(cand .. "/plpgsql.so") or exists(cand .. "/plpgsql.dylib") then return cand end
  end
  local pc = bindir .. "/pg_config"
  if not exists(pc) then pc = proc.which("pg_config", env.get("PATH")) end
  return pc and capture { pc, "--pkglibdir" } or nil
end

--- Check that every library in `libs` exists for the server in `bindir`; exit 127 naming
--- PG_SHARED_PRELOAD_LIBRARIES otherwise (nothing has been touched at that point).
function M.check_libraries(libs, bindir, source)
  if #libs == 0 then return end
  local libdir = M.pkglibdir(bindir)
  local missing = {}
  for _, lib in ipairs(libs) do
    local path = lib
    if lib:sub(1, 8) == "$libdir/" then path = (libdir or "") .. lib:sub(8)
    elseif not lib:find("/", 1, true) then path = (libdir or "") .. "/" .. lib end
    local found = false
    for _, cand in ipairs { path, path .. ".so", path .. ".dylib" } do
      if exists(cand) then found = true end
    end
    if not found then missing[#missing + 1] = lib end
  end
  if #missing > 0 then
    local names = table.concat(missing, ", ")
    local cron = has_lib(missing, "pg_cron")
    local major = bindir:match("/postgresql/(%d+)/bin")
    errors.raise(errors.NO_DEPENDENCY, string.format(
      "shared_preload_libraries: %s not found in %s (PG_SHARED_PRELOAD_LIBRARIES=%s%s); nothing was changed",
      names, libdir or "the server's library directory", table.concat(libs, ","),
      source == "default" and ", the default" or ""), {
        hint = (cron and ("install pg_cron for this server (Debian: apt install postgresql-" ..
          (major or "<version>") .. "-cron), or ") or "install it, or ") ..
          "set PG_SHARED_PRELOAD_LIBRARIES='' to start without preloaded libraries",
        variable = "PG_SHARED_PRELOAD_LIBRARIES",
      })
  end
end

local function binary_id(bindir)
  local st = stat.stat(bindir .. "/postgres")
  if not st then
    errors.raise(errors.NO_DEPENDENCY, bindir .. "/postgres not found",
      { hint = "set PG_BINDIR to the bin directory of a PostgreSQL server installation" })
  end
  return string.format("%d:%d:%d:%d", st.st_dev, st.st_ino, st.st_size, st.st_mtime)
end

-- ====================================================================== template cache

local function spawn_log(path)
  return { path = path, mode = "w" }
end

--- Run postgres in single-user mode on `data` with `sql` (one statement) on stdin.
local function single_user(bindir, data, sql, logfile)
  local p, err = proc.spawn {
    argv = { bindir .. "/postgres", "--single", "-D", data, "-F", "-c", "shared_preload_libraries=",
      "-c", "logging_collector=off", "postgres" },
    stdin = "pipe", stdout = spawn_log(logfile), stderr = "stdout",
  }
  if not p then return nil, err end
  p.stdin:write(sql, "\n")
  p.stdin:close()
  local how, code = p:wait()
  local out = read_file(logfile) or ""
  if how ~= "exited" or code ~= 0 or out:find("ERROR:", 1, true) or out:find("FATAL:", 1, true) then
    return nil, tail(logfile, 10) or (how .. " " .. tostring(code))
  end
  return true
end

local function template_valid(dir, key)
  return read_file(dir .. "/key") == key and exists(dir .. "/data/PG_VERSION")
    and exists(dir .. "/data/global/pg_control") and exists(dir .. "/data/base/1/PG_VERSION")
end

--- The cached template for (bindir, user, database): {dir =, data =, hash =, built = bool}.
--- Built under an exclusive lock in a temporary directory, then renamed into place.
function M.template(o)
  local user = o.user or env.user()
  local bake = o.database
  if not bake or BUILTIN_DB[bake] or bake:find("%c") then bake = nil end
  local args = M.initdb_args(user)
  local key, hash = M.template_key { bindir = o.bindir, binary_id = binary_id(o.bindir), initdb_args = args,
    bake = bake, tz = env.get("TZ") }
  local cache = o.cache or env.cache_dir()
  local dir = cache .. "/initdb-" .. hash
  local t = { dir = dir, data = dir .. "/data", hash = hash, key = key, cache = cache, database = bake }
  if template_valid(dir, key) then return t end
  local l = o.log or log.ns("postgres-init")
  mkdir_p(cache, 448)
  local fd, holder = lock(cache .. "/.lock", "w", o.lock_timeout or 600, function(pid)
    l:info("waiting for another db-tool (pid %s) building a cluster template in %s", tostring(pid), cache)
  end)
  if not fd then
    errors.raise(errors.AMBIGUOUS, "timed out waiting for the template cache lock in " .. cache ..
      (holder and (" (held by pid " .. holder .. ")") or ""))
  end
  return errors.finally(function() unlock(fd) end, function()
    if template_valid(dir, key) then return t end
    -- leftovers of interrupted builds and an invalid template are ours to remove (we hold the lock)
    for _, name in ipairs(dir_entries(cache)) do
      if name:match("^tmp%-") then rm_rf(cache .. "/" .. name) end
    end
    if exists(dir) then
      l:warn("cluster template %s is incomplete or stale; rebuilding it", dir)
      rm_rf(dir)
    end
    local tmp = must(stdlib.mkdtemp(cache .. "/tmp-XXXXXX"), "cannot create a directory in " .. cache)
    l:info("building the cluster template (initdb, once per PostgreSQL version and database name) in %s", dir)
    local initlog = tmp .. "/initdb.log"
    local argv = { o.bindir .. "/initdb", "-D", tmp .. "/data" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local env_ = env.child_env { LC_ALL = "C", LANG = "C", PGDATA = false }
    local ok, err = run(argv, { stdout = spawn_log(initlog), stderr = "stdout", env = env_ })
    if not ok then
      local msg = tail(initlog, 10) or err
      rm_rf(tmp)
      errors.raise(errors.GENERIC, "initdb failed:\n" .. tostring(msg))
    end
    if bake then
      local sql = 'CREATE DATABASE "' .. bake:gsub('"', '""') .. '";'
      ok, err = single_user(o.bindir, tmp .. "/data", sql, tmp .. "/single.log")
      if not ok then
        rm_rf(tmp)
        errors.raise(errors.GENERIC, "creating database " .. bake .. " in the template failed:\n" ..
          tostring(err))
      end
    end
    for _, f in ipairs { "postmaster.opts", "postmaster.pid" } do os.remove(tmp .. "/data/" .. f) end
    os.remove(initlog)
    os.remove(tmp .. "/single.log")
    write_file(tmp .. "/version", (capture { o.bindir .. "/postgres", "-V" } or "") .. "\n")
    must(write_file(tmp .. "/key", key), "cannot write " .. tmp .. "/key")
    must(os.rename(tmp, dir))
    t.built = true
    return t
  end)
end

-- ====================================================================== inspection

local function data_kind(data)
  local st = stat.lstat(data)
  if not st then return "none" end
  if stat.S_ISDIR(st.st_mode) == 0 then return "other" end
  if exists(data .. "/PG_VERSION") then return "cluster" end
  if #dir_entries(data) == 0 then return "empty" end
  return "other"
end

--- Can we connect to the unix socket at `path`? (someone is listening on it)
local function listening(path)
  local ok, socket = pcall(require, "posix.sys.socket")
  if not ok then return false end
  local fd = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
  if not fd then return false end
  local fl = fcntl.fcntl(fd, fcntl.F_GETFL)
  if fl then fcntl.fcntl(fd, fcntl.F_SETFL, fl | fcntl.O_NONBLOCK) end
  local r, _, eno = socket.connect(fd, { family = socket.AF_UNIX, path = path })
  unistd.close(fd)
  return r ~= nil or eno == perrno.EAGAIN or eno == perrno.EINPROGRESS
end

--- Who holds the socket of `port` in `sock` (other than the postmaster `ours`)? Returns the
--- holder's pid (or "unknown") when a live process accepts connections on it, else nil.
local function socket_holder(sock, port, ours)
  local path = sock .. "/.s.PGSQL." .. port
  if not exists(path) then return nil end
  local lockpid = tonumber((read_file(path .. ".lock") or ""):match("^%s*(%d+)"))
  if ours and lockpid == ours then return nil end
  if listening(path) then return lockpid and math.tointeger(lockpid) or "unknown" end
  return nil
end

--- State of the cluster in working directory `dir`:
--- {state = "running"|"stopped"|"none", pid =, port =, sock =, data =, stale_pidfile = bool}.
function M.status(dir)
  local L = M.layout(dir)
  local r = { dir = dir, data = L.data, sock = L.sock }
  local pid, info = postmaster(L.data)
  if pid then
    r.state, r.pid = "running", pid
    r.port, r.sock = info.port, info.sock ~= "" and info.sock or L.sock
    r.ready = info.status == "ready"
  elseif data_kind(L.data) == "cluster" then
    r.state = "stopped"
    r.stale_pidfile = info ~= nil
  else
    r.state = "none"
  end
  return r
end

-- ====================================================================== stop

local function stop_locked(L, mode, timeout)
  local pid = postmaster(L.data)
  if not pid then return false end
  if not shutdown(pid, mode or "fast", timeout) then
    errors.raise(errors.AMBIGUOUS, string.format("the server (pid %d) of %s did not stop", pid, L.data),
      { hint = "look at its log; stop it by hand with `kill -QUIT " .. pid .. "`" })
  end
  return true
end

--- Stop the server of working directory `dir` (mode "fast" by default: SIGINT, then SIGQUIT
--- after opts.timeout). Returns true if one was running, false if there was none (a missing
--- directory, a stale pid file, a directory that is not a cluster).
function M.stop(dir, opts)
  opts = opts or {}
  local L = M.layout(dir)
  if not is_dir(dir) then return false end
  local fd
  if unistd.geteuid() ~= 0 and opts.lock ~= false then
    fd = lock(L.lock, "w", opts.lock_timeout or 30, function(pid)
      local l = opts.log or log.ns("postgres-cleanup")
      l:info("waiting for postgres-init (pid %s) to finish in %s", tostring(pid), dir)
    end, true)
  end
  return errors.finally(function() unlock(fd) end, stop_locked, L, opts.mode, opts.timeout)
end

--- Stop the cluster of `dir` and remove what db-tool created there (data, sock, spare, trash,
--- moved-aside copies, locks), then the directory itself when nothing else is left in it.
--- Returns the list of entries kept (files db-tool did not create).
function M.remove(dir, opts)
  opts = opts or {}
  local l = opts.log or log.ns("db cleanup")
  local st = stat.lstat(dir)
  if not st then return {} end
  if stat.S_ISDIR(st.st_mode) == 0 then
    errors.raise(errors.GENERIC, dir .. " is not a directory; not removing it",
      { hint = "check PG_WORKING_DIR" })
  end
  local L = M.layout(dir)
  local fd = lock(L.lock, "w", opts.lock_timeout or 30, function(pid)
    l:info("waiting for postgres-init (pid %s) to finish in %s", tostring(pid), dir)
  end)
  return errors.finally(function() unlock(fd) end, function()
    stop_locked(L, "fast")
    -- wait for a background spare job, so that it does not write into what we remove
    local sfd = lock(L.spare_lock, "w", 60, nil, true)
    local kept = {}
    errors.finally(function() unlock(sfd) end, function()
      for _, name in ipairs(dir_entries(dir)) do
        local path = dir .. "/" .. name
        local ours = name == "data" or name == "sock" or name:sub(1, #PREFIX) == PREFIX
          or name:match("^data%.broken%-")
        if ours then
          if name:match("^data%.broken%-") then l:info("removing the moved-aside copy %s", path) end
          if not rm_rf(path) then kept[#kept + 1] = name end
        else
          kept[#kept + 1] = name
        end
      end
    end)
    if #kept == 0 then os.remove(dir) end
    return kept
  end)
end

-- ====================================================================== start

--- PG_SHARED_PRELOAD_LIBRARIES: unset → "pg_cron" (and "default" as second value), set →
--- its value ("" = no preloaded library).
function M.preload_from_env()
  if env.is_set("PG_SHARED_PRELOAD_LIBRARIES") then return env.raw("PG_SHARED_PRELOAD_LIBRARIES"), "env" end
  return M.DEFAULT_PRELOAD, "default"
end

--- Directory of the server logs of working directory `dir`: PG_LOG_PATH, else dir/data/log.
function M.log_dir(dir)
  local p = env.get("PG_LOG_PATH")
  if p then return absolute(p) end
  return dir .. "/data/log"
end

--- Options from the environment contract (seed defaults): PG_WORKING_DIR/LOCAL_DIR, PG_PORT,
--- PG_DATABASE, PG_REUSE, PG_CONF_FILE, PG_SHARED_PRELOAD_LIBRARIES, PG_DISABLE_LOGGING,
--- PG_LOG_PATH. `overrides` wins over the environment.
function M.options_from_env(overrides)
  overrides = overrides or {}
  local o = {}
  o.dir = overrides.dir or env.pg_working_dir()
  o.port = overrides.port or env.pg_port()
  o.database = overrides.database or env.pg_database()
  -- PG_REUSE in the environment always reuses (a --reuse flag adds to it, never removes it)
  o.reuse = overrides.reuse == true or env.is_set("PG_REUSE")
  o.conf_file = overrides.conf_file or env.get("PG_CONF_FILE")
  if overrides.preload ~= nil then
    o.preload = overrides.preload
  else
    o.preload, o.preload_source = M.preload_from_env()
  end
  if overrides.logging ~= nil then o.logging = overrides.logging else
    local v = env.get("PG_DISABLE_LOGGING", "0")
    o.logging = not (v == "1" or v == "true" or v == "yes" or v == "on")
  end
  o.log_dir = overrides.log_dir or env.get("PG_LOG_PATH")
  for k, v in pairs(overrides) do if o[k] == nil then o[k] = v end end
  return o
end

--- cluster.start(cluster.options_from_env(overrides)), with the background spare copy on
--- unless overrides.spare == false (the everyday deploy loop re-initialises this directory).
function M.start_from_env(overrides)
  local o = {}
  for k, v in pairs(overrides or {}) do o[k] = v end
  if o.spare == nil then o.spare = true end
  return M.start(M.options_from_env(o))
end

local function normalize(o)
  local n = {}
  for k, v in pairs(o) do n[k] = v end
  if not n.dir or n.dir == "" then errors.raise(errors.MISSING, "cluster.start: dir is required") end
  n.dir = absolute(n.dir):gsub("/+$", "")
  n.port = math.tointeger(tonumber(n.port or M.DEFAULT_PORT))
  if not n.port or n.port < 1 or n.port > 65535 then
    errors.raise(errors.GENERIC, "invalid port '" .. tostring(o.port) .. "' (1-65535)",
      { variable = "PG_PORT" })
  end
  n.database = n.database or M.DEFAULT_DATABASE
  if n.database == "" then
    errors.raise(errors.GENERIC, "the database name is empty", { variable = "PG_DATABASE" })
  end
  n.user = n.user or env.user()
  n.preload = n.preload or ""
  if n.log_dir then n.log_dir = absolute(n.log_dir) end
  if n.conf_file == "" then n.conf_file = nil end
  n.log = n.log or log.ns("postgres-init")
  local L = M.layout(n.dir)
  n.data, n.sock = L.data, L.sock
  return n, L
end

local function log_dir_of(o)
  return o.log_dir or (o.data .. "/log")
end

--- Write the configuration: generated settings (fresh), runtime settings (always).
local function configure(o, fresh)
  local conf = o.data .. "/postgresql.conf"
  if fresh then
    if o.conf_file then
      local text = read_file(o.conf_file)
      if not text then
        errors.raise(errors.GENERIC, "PG_CONF_FILE not readable: " .. o.conf_file,
          { variable = "PG_CONF_FILE" })
      end
      must(write_file(conf, text, 384), "cannot write " .. conf)
    else
      local text = read_file(conf) or ""
      local gen = M.generated_settings(o)
      local lines = { text:gsub("\n*$", ""), "", "# db-tool: generated by postgres-init" }
      for _, kv in ipairs(gen) do lines[#lines + 1] = kv[1] .. " = " .. M.conf_quote(kv[2]) end
      must(write_file(conf, table.concat(lines, "\n") .. "\n", 384), "cannot write " .. conf)
    end
  end
  local main = read_file(conf) or ""
  must(write_file(conf, M.rewrite_conf(main, {}, {
    { "port", tostring(o.port) }, { "unix_socket_directories", o.sock } }), 384), "cannot write " .. conf)
  local autoconf = o.data .. "/postgresql.auto.conf"
  local auto = read_file(autoconf) or
    "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"
  local remove = {}
  for _, k in ipairs(M.MANAGED_KEYS) do remove[#remove + 1] = k end
  must(write_file(autoconf, M.rewrite_conf(auto, remove, M.runtime_settings(o)), 384),
    "cannot write " .. autoconf)
  if not exists(o.data .. "/pg_ident.conf") then write_file(o.data .. "/pg_ident.conf", "", 384) end
  if not exists(o.data .. "/pg_hba.conf") then
    write_file(o.data .. "/pg_hba.conf", "local all all trust\n", 384)
  end
  mkdir_p(log_dir_of(o), 448)
end

--- Put a fresh data directory in place: the spare prepared in the working directory, else a
--- copy of the template, else (no usable cache) initdb. Returns the template (or nil).
local function fresh_data(o, L)
  local l = o.log
  local ok, tpl = errors.try(M.template, { bindir = o.bindir, user = o.user, database = o.database,
    log = l, cache = o.cache })
  if not ok then
    if tpl.exit == errors.NO_DEPENDENCY then error(tpl, 0) end
    l:warn("cluster template cache unusable (%s); running initdb directly", tpl.msg)
    tpl = nil
  end
  if tpl then
    local spare = L.spare_prefix .. tpl.hash
    if exists(spare .. "/PG_VERSION") and os.rename(spare, L.data) then
      l:debug("fresh cluster from the prepared spare %s", spare)
      return tpl, "spare"
    end
    local pooled = M.claim_pooled(tpl, L.data)
    if pooled then
      l:debug("fresh cluster from the template's pool: %s", pooled)
      return tpl, "pool"
    end
    local fd = lock(tpl.cache .. "/.lock", "r", 600)
    local copied, err = errors.finally(function() unlock(fd) end, copy_tree, tpl.data, L.data)
    if copied then return tpl, "copy" end
    l:warn("copying the cluster template failed (%s); running initdb directly", tostring(err))
  end
  local initlog = L.dir .. "/" .. PREFIX .. "initdb.log"
  local argv = { o.bindir .. "/initdb", "-D", L.data }
  for _, a in ipairs(M.initdb_args(o.user)) do argv[#argv + 1] = a end
  local okr, err = run(argv, { stdout = spawn_log(initlog), stderr = "stdout",
    env = env.child_env { LC_ALL = "C", LANG = "C", PGDATA = false } })
  if not okr then
    errors.raise(errors.GENERIC, "initdb failed:\n" .. tostring(tail(initlog, 10) or err))
  end
  os.remove(initlog)
  return nil
end

-- ====================================================================== spare pool

--- Size of each template's pool of prepared copies (DB_TOOL_SPARES; 0 disables it).
function M.pool_size()
  local n = tonumber(env.get("DB_TOOL_SPARES") or "")
  if n and n >= 0 then return math.floor(math.min(n, 8)) end
  return M.POOL_SIZE
end

--- Directory of the prepared copies of template `tpl` ({dir = ...} or its directory).
function M.pool_dir(tpl)
  return (type(tpl) == "table" and tpl.dir or tpl) .. "/spares"
end

--- Move one prepared copy of the template into `target` (which must not exist): a rename,
--- atomic, so that concurrent runs never share a copy. Returns its old path, or nil when the
--- pool is empty or lives on another file system than `target`.
function M.claim_pooled(tpl, target)
  local pool = M.pool_dir(tpl)
  for _, name in ipairs(dir_entries(pool)) do
    if name:match("^ready%-") then
      local path = pool .. "/" .. name
      local ok, _, code = os.rename(path, target)
      if ok then return path end
      if code == perrno.EXDEV then return nil end
    end
  end
  return nil
end

--- Top up the pool of template directory `tpl_dir` to `size` copies (run by a detached
--- db-tool at low priority; gives up at once when another job is filling the pool). A copy
--- is made under a temporary name and renamed when complete.
function M.refill_pool(tpl_dir, size)
  local pool = M.pool_dir(tpl_dir)
  if not exists(tpl_dir .. "/data/PG_VERSION") or size <= 0 then return end
  mkdir_p(pool, 448)
  local fd = lock(pool .. "/.lock", "w", 0)
  if not fd then return end
  errors.finally(function() unlock(fd) end, function()
    local ready = 0
    for _, name in ipairs(dir_entries(pool)) do
      if name:match("^tmp%-") then rm_rf(pool .. "/" .. name) end   -- an interrupted job's
      if name:match("^ready%-") then ready = ready + 1 end
    end
    for i = ready + 1, size do
      -- a shared lock on the cache: the template is not rebuilt while we copy it
      local cfd = lock(tpl_dir .. "/../.lock", "r", 60, nil, true)
      if not cfd then return end
      local tmp = string.format("%s/tmp-%d-%d", pool, unistd.getpid(), i)
      local ok = errors.finally(function() unlock(cfd) end, copy_tree, tpl_dir .. "/data", tmp)
      if not ok then return end
      if not os.rename(tmp, string.format("%s/ready-%d-%d-%d", pool, os.time(), unistd.getpid(), i)) then
        rm_rf(tmp)
        return
      end
    end
  end)
end

--- Is a background job filling the pool of template directory `tpl_dir`? (specs, benchmarks)
function M.pool_busy(tpl_dir)
  local path = M.pool_dir(tpl_dir) .. "/.lock"
  local fd = lock(path, "w", 0, nil, true)
  if fd then
    unlock(fd)
    return false
  end
  return exists(path)
end

--- Remove a stale postmaster.pid and stale socket files of our port (their pids are gone or
--- are not a postmaster of this data directory).
local function clear_stale(o, L)
  local pid, info = postmaster(L.data)
  if not pid and info then
    o.log:debug("removing stale %s/postmaster.pid (pid %d is not a server of this cluster)", L.data, info.pid)
    os.remove(L.data .. "/postmaster.pid")
  end
  local sockpath = L.sock .. "/.s.PGSQL." .. o.port
  if exists(sockpath) or exists(sockpath .. ".lock") then
    os.remove(sockpath)
    os.remove(sockpath .. ".lock")
  end
end

local function start_timeout(o)
  return o.timeout or tonumber(env.get("PGCTLTIMEOUT") or "") or M.START_TIMEOUT
end

--- Start postgres on o.data and wait until it accepts connections. Returns the process, or
--- nil, reason ("exited" | "timeout"), detail (log tail).
local function launch(o, L, client)
  local logdir = log_dir_of(o)
  local startlog = logdir .. "/postmaster.log"
  local p, err
  -- a Ctrl-C right after the spawn must not leave a server nobody tracks
  core.uninterruptible(function()
    p, err = proc.spawn {
      argv = { o.bindir .. "/postgres", "-D", L.data, "-F" },
      env = env.child_env { PGDATA = false, PGPORT = false, PGHOST = false },
      stdin = "null", stdout = { path = startlog, mode = "w" }, stderr = "stdout", detach = true,
    }
    if p then children[p.pid] = p end
  end)
  if not p then
    errors.raise(errors.NO_DEPENDENCY, "cannot run " .. o.bindir .. "/postgres: " .. tostring(err))
  end
  -- someone will connect once the server is up: load libpq (~10 ms) while it starts
  if client then pcall(require, "dbtool.core.pg") end
  local started = os.time()
  local target = { host = L.sock, port = tostring(o.port), dbname = "postgres", user = o.user,
    connect_timeout = "10" }
  local t_launch = core.now()
  local deadline = t_launch + start_timeout(o)
  local nap = 0.001
  local function poll()
    while true do
      -- The postmaster writes "ready" into postmaster.pid when it accepts connections (what
      -- pg_ctl -w waits for): reading that file is cheap, while a ping makes the server fork
      -- a backend that initialises itself (~25 ms here). So the pid file decides when it
      -- names our process and has a status ("ready", or "standby" for a hot standby, as
      -- pg_ctl). The status line comes last, after the server has written the rest: a
      -- server older than PostgreSQL 10 writes none, so after 2 s of a complete file without
      -- one, PQping decides (libpq is loaded only then).
      local info = M.parse_pidfile(read_file(L.data .. "/postmaster.pid"))
      if info and info.pid == p.pid then
        if info.status == "ready" or info.status == "standby" then return p end
        if info.status == nil and info.shmkey and core.now() - t_launch > 2
          and require("dbtool.core.pg").ping(target) == "ok" then
          return p
        end
      end
      if p:wait(0) then
        children[p.pid] = nil
        local detail = tail(startlog, 15)
        -- with the logging collector the reason may be in the newest server log file
        if o.logging and not o.conf_file then
          local newest, newest_t
          for _, name in ipairs(dir_entries(logdir)) do
            local st = stat.stat(logdir .. "/" .. name)
            if name ~= "postmaster.log" and st and st.st_mtime >= started - 1
              and (not newest_t or st.st_mtime >= newest_t) then
              newest, newest_t = name, st.st_mtime
            end
          end
          if newest then
            detail = (detail and (detail .. "\n") or "") .. (tail(logdir .. "/" .. newest, 10) or "")
          end
        end
        return nil, "exited", detail, startlog
      end
      if core.now() >= deadline then
        shutdown(p.pid, "fast", 10)
        children[p.pid] = nil
        return nil, "timeout", tail(startlog, 15), startlog
      end
      core.sleep(nap)
      nap = math.min(nap * 1.5, 0.002)
    end
  end
  -- interrupted (Ctrl-C) while waiting: do not leave a server starting behind us
  local res = table.pack(xpcall(poll, errors.handler))
  if not res[1] then
    if not p:wait(0) then shutdown(p.pid, "fast", 10) end
    children[p.pid] = nil
    error(res[2], 0)
  end
  return table.unpack(res, 2, res.n)
end

local function ensure_database(o, L)
  local pg = require "dbtool.core.pg"
  local ok, conn = pcall(pg.connect,
    { host = L.sock, port = tostring(o.port), dbname = "postgres", user = o.user })
  if not ok then
    local e = errors.wrap(conn)
    e.msg = "the server started, but connecting to it failed: " .. e.msg
    e.hint = e.hint or ("the cluster needs a superuser role named " .. o.user .. " (the OS user)")
    error(e, 0)
  end
  local created = false
  local okq, err = pcall(function()
    local r = conn:exec("SELECT 1 AS x FROM pg_database WHERE datname = $1", o.database)
    if r.n == 0 then
      o.log:debug("creating database %s", o.database)
      conn:exec("CREATE DATABASE " .. conn:escape_identifier(o.database))
      created = true
    end
  end)
  conn:close()
  if not okq then
    local e = errors.wrap(err)
    e.msg = "creating database " .. o.database .. " failed: " .. e.msg
    e.hint = e.hint or "the server is left running; `postgres-cleanup` stops it"
    error(e, 0)
  end
  return created
end

--- Start the background job that removes trash and prepares the next spare data directory
--- (`spare`), and tops up the template's pool (`pool`: the pool lost a copy, or was empty).
local function spawn_refill(L, tpl, spare, pool)
  local exe = core.exe()
  if not exe or not (spare or (pool and tpl)) then return end
  local code = {}
  if spare then
    code[#code + 1] = string.format("c.refill(%q, %q, %q)", L.dir, tpl and tpl.data or "",
      tpl and tpl.hash or "")
  end
  if pool and tpl then
    code[#code + 1] = string.format("c.refill_pool(%q, %d)", tpl.dir, M.pool_size())
  end
  proc.spawn { argv = { exe, "-e", "local c = require('dbtool.cluster') " .. table.concat(code, " ") },
    stdin = "null", stdout = "null", stderr = "null", detach = true }
end

--- The background job (run by a detached db-tool): delete trash, then copy the template into
--- the working directory as the spare for the next fresh init. Never blocks the user: it
--- gives up when another job runs, and works at low priority.
function M.refill(dir, tpl_data, hash)
  pcall(unistd.nice, 10)
  local L = M.layout(dir)
  if not is_dir(dir) then return end
  local fd = lock(L.spare_lock, "w", 0)
  if not fd then return end
  errors.finally(function() unlock(fd) end, function()
    for _, name in ipairs(dir_entries(dir)) do
      local path = dir .. "/" .. name
      if path:sub(1, #L.trash_prefix) == L.trash_prefix then rm_rf(path) end
      if path:sub(1, #L.spare_prefix) == L.spare_prefix and path ~= L.spare_prefix .. hash then
        rm_rf(path)
      end
    end
    if hash == "" or tpl_data == "" or not exists(tpl_data .. "/PG_VERSION") then return end
    if not exists(L.data) or exists(L.spare_prefix .. hash) then return end
    local tmp = L.trash_prefix .. "spare-" .. unistd.getpid()
    local cfd = lock(tpl_data:gsub("/data$", "") .. "/../.lock", "r", 60, nil, true)
    local ok = errors.finally(function() unlock(cfd) end, copy_tree, tpl_data, tmp)
    if ok and exists(tmp .. "/PG_VERSION") then
      os.rename(tmp, L.spare_prefix .. hash)
    else
      rm_rf(tmp)
    end
  end)
end

--- Is a background spare job running in `dir`? (benchmarks wait for it)
function M.refill_busy(dir)
  local L = M.layout(dir)
  local fd = lock(L.spare_lock, "w", 0, nil, true)
  if fd then
    unlock(fd)
    return false
  end
  return exists(L.spare_lock)
end

local Handle = {}
Handle.__index = Handle

--- Stop this cluster (mode "fast" by default).
function Handle:stop(mode)
  return M.stop(self.dir, { mode = mode })
end

--- URL of another database on this cluster.
function Handle:db_url(name)
  return M.url { user = self.user, database = name, host = self.host, port = self.port }
end

local function start_locked(o, L)
  local l = o.log
  local timings, t_last = {}, core.now()
  local function mark(name)
    local now = core.now()
    timings[#timings + 1] = string.format("%s %.0f ms", name, (now - t_last) * 1000)
    t_last = now
  end
  o.bindir = o.bindir or M.bindir()
  if not o.conf_file then
    M.check_libraries(M.parse_libraries(o.preload), o.bindir, o.preload_source)
  end
  local st = stat.lstat(L.sock)
  if st and stat.S_ISDIR(st.st_mode) == 0 then
    errors.raise(errors.GENERIC, L.sock .. " exists and is not a directory",
      { hint = "remove it; nothing was changed" })
  end
  local kind = data_kind(L.data)
  local plan = M.plan(o.reuse, kind)
  local running = postmaster(L.data)
  local holder = socket_holder(L.sock, o.port, running)
  if holder then
    errors.raise(errors.AMBIGUOUS, string.format(
      "socket %s/.s.PGSQL.%d is in use by another server (pid %s), not by the cluster in %s; " ..
      "nothing was changed",
      L.sock, o.port, tostring(holder), L.data),
      { hint = "stop that server, or use another PG_PORT or PG_WORKING_DIR" })
  end
  if plan ~= "reuse" and o.conf_file and not read_file(o.conf_file) then
    errors.raise(errors.GENERIC, "PG_CONF_FILE not readable: " .. o.conf_file, { variable = "PG_CONF_FILE" })
  end

  mark("checks")
  -- from here on we change things
  if running then
    l:debug("stopping the running server (pid %d)", running)
    stop_locked(L, plan == "reuse" and "fast" or "immediate")
  end
  mark("stop")
  mkdir_p(L.sock, 448)
  stat.chmod(L.sock, 448)
  local moved
  local function move_aside(why)
    local target = M.broken_name(L.data, os.time())
    if exists(target) then target = target .. "-" .. unistd.getpid() end
    must(os.rename(L.data, target), "cannot move " .. L.data .. " aside")
    moved = target
    l:warn("%s; moved it aside to %s (nothing was deleted); initializing a fresh cluster in %s",
      why, target, L.dir)
  end
  if plan == "move-aside" then move_aside(L.data .. " is not a PostgreSQL data directory") end

  local tpl, used_template, source
  local function make_fresh()
    if exists(L.data) then
      local trash = L.trash_prefix .. os.time() .. "-" .. unistd.getpid()
      must(os.rename(L.data, trash), "cannot clear " .. L.data)
      if not o.spare then rm_rf(trash) end
    end
    tpl, source = fresh_data(o, L)
    used_template = tpl ~= nil
    mark("data")
    configure(o, true)
  end

  if plan == "reuse" then
    l:info("reusing the cluster in %s", L.data)
    configure(o, false)
  else
    make_fresh()
  end
  clear_stale(o, L)
  mark("config")
  -- a fresh copy of the template already holds the database (it was created there)
  local function baked()
    return plan ~= "reuse" and used_template and (tpl.database == o.database or BUILTIN_DB[o.database])
  end
  -- will anyone connect right after the start? (then libpq is loaded while the server starts)
  local client = o.client or (o.create_database ~= false and not baked())
  local p, why, detail, logfile = launch(o, L, client)
  mark("start")
  if not p and plan == "reuse" and why == "exited" and o.reinit ~= false then
    l:warn("the reused cluster failed to start:\n%s", detail or "(no server output)")
    move_aside("reused cluster failed to start")
    plan = "fresh"
    make_fresh()
    clear_stale(o, L)
    p, why, detail, logfile = launch(o, L, client)
    if p then l:notice("reinitialized broken cluster at %s", L.dir) end
  end
  if not p then
    errors.raise(errors.AMBIGUOUS, (why == "timeout"
      and string.format("the server did not accept connections within %d s", start_timeout(o))
      or "the server failed to start") .. " (log: " .. logfile .. ")" ..
      (detail and ("\n" .. detail) or ""), {
        hint = why == "timeout" and "set PGCTLTIMEOUT to wait longer (seconds)" or
          "fix the cause above; the data directory is " .. L.data,
      })
  end
  local created = false
  if o.create_database ~= false and not baked() then
    created = ensure_database(o, L)
  end
  mark("database")
  if plan ~= "reuse" then
    spawn_refill(L, used_template and tpl, o.spare,
      (source == "pool" or source == "copy") and M.pool_size() > 0)
  end
  l:debug("timings: %s", table.concat(timings, ", "))
  local h = setmetatable({
    dir = L.dir, data = L.data, sock = L.sock, host = L.sock, port = o.port, user = o.user,
    database = o.database, pid = p.pid, process = p, reused = plan == "reuse", created = created,
    moved_aside = moved, log_dir = log_dir_of(o), bindir = o.bindir, timings = timings,
  }, Handle)
  h.url = M.url { user = o.user, database = o.database, host = L.sock, port = o.port }
  local function cq(s) return (s:gsub("[\\']", "\\%0")) end
  h.conninfo = string.format("host='%s' port=%d dbname='%s' user='%s'", cq(L.sock), o.port, cq(o.database),
    cq(o.user))
  return h
end

--- Start (or reuse) the cluster in o.dir. Options:
---   dir (required), port (5432), database ("testdb"), user (OS user), reuse (false),
---   preload ("" = none; the env default pg_cron comes from options_from_env), logging
---   (false: no logging collector), log_dir (server logs; default data/log), conf_file,
---   settings ({name = value} added to postgresql.auto.conf), timeout (start, seconds),
---   spare (prepare the next fresh copy in the background), bindir, cache, log (logger),
---   reinit (false: a reused cluster that fails to start is an error, left in place — not
---   moved aside and replaced by a fresh one; `restore` and `diff` use it), create_database
---   (false: do not connect to create `database`; `normalize-backup` connects itself),
---   client (true: the caller connects right after the start, so libpq is loaded meanwhile).
--- Returns a handle {url, host, port, user, database, dir, data, sock, pid, conninfo,
--- reused, created, moved_aside, stop = function}. Errors: exit 2 (root, socket in use,
--- start failure, lock timeout), 127 (binaries or preload library missing), 1 (other).
function M.start(opts)
  local o, L = normalize(opts)
  M.check_root(unistd.geteuid(), o.prog)
  mkdir_p(L.dir, 448)
  local fd, holder = lock(L.lock, "w", o.lock_timeout or M.LOCK_TIMEOUT, function(pid)
    o.log:info("waiting for another postgres-init (pid %s) working in %s", tostring(pid), L.dir)
  end)
  if not fd then
    if holder then
      errors.raise(errors.AMBIGUOUS, string.format("another postgres-init (pid %s) is still working in %s",
        tostring(holder), L.dir), { hint = "wait for it, or stop it" })
    end
    errors.raise(errors.GENERIC, "cannot create the lock file " .. L.lock,
      { hint = "check the permissions of " .. L.dir })
  end
  return errors.finally(function() unlock(fd) end, start_locked, o, L)
end

--- The variables postgres-init exports, in order: POSTGRESQL_*, PGURL, then $PG_URL_VAR.
function M.exports(h, url_var)
  local vars = {
    { "POSTGRESQL_HOST", h.host }, { "POSTGRESQL_PORT", tostring(h.port) },
    { "POSTGRESQL_USER", h.user }, { "POSTGRESQL_DATABASE", h.database },
    { "PGURL", h.url },
  }
  if url_var and url_var ~= "PGURL" then vars[#vars + 1] = { url_var, h.url } end
  return vars
end

return M
