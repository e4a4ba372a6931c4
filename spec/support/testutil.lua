-- Helpers for specs: run the built binary as a user would, temporary directories, and a
-- real PostgreSQL server shared by the whole busted run (started by our own cluster code).
local proc = require "dbtool.core.proc"
local stdlib = require "posix.stdlib"
local unistd = require "posix.unistd"

local M = {}

M.top = os.getenv("DB_TOOL_TOP") or unistd.getcwd()
M.bin = os.getenv("DB_TOOL_BIN") or (M.top .. "/build/db-tool")
M.build = os.getenv("DB_TOOL_BUILD_DIR") or (M.top .. "/build")

local cleanups = {}

-- Removed when the Lua state closes (busted ends with os.exit(code, true)).
local sentinel = setmetatable({}, { __gc = function()
  for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
end })
M._sentinel = sentinel

--- Run fn at the end of the busted run (last registered, first run).
function M.at_exit(fn)
  cleanups[#cleanups + 1] = fn
end

function M.rm_rf(path)
  -- (most directories of a run are gone by its end: no `rm` process for them)
  if path and path ~= "" and path ~= "/" and require("posix.sys.stat").lstat(path) then
    local p = proc.spawn { argv = { "rm", "-rf", "--", path } }
    if p then p:wait() end
  end
end

--- A fresh temporary directory, removed at the end of the run.
function M.tmpdir(tag)
  local base = os.getenv("TMPDIR") or "/tmp"
  local dir = assert(stdlib.mkdtemp(base .. "/dbtool-spec-" .. (tag or "t") .. "-XXXXXX"))
  M.at_exit(function() M.rm_rf(dir) end)
  return dir
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, content)
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then M.mkdir_p(dir) end
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

function M.mkdir_p(dir)
  local p = proc.spawn { argv = { "mkdir", "-p", "--", dir } }
  assert(p, "mkdir failed")
  p:wait()
end

-- No secret in any output (run-busted.sh): everything the programs run by the specs print is
-- appended to DB_TOOL_OUTPUT_LOG, and the URLs handed out carry DB_TOOL_PLANTED_PASSWORD; the
-- run fails if that password shows up in any output.
M.planted_password = os.getenv("DB_TOOL_PLANTED_PASSWORD")

--- Append `text` (what a program printed) to the run's output log, under `label`.
function M.record(label, text)
  local log = os.getenv("DB_TOOL_OUTPUT_LOG")
  if not log or text == nil or text == "" then return end
  local f = io.open(log, "ab")
  if f then
    -- the label is ours (an argv): it names the planted password without counting as output
    if M.planted_password then label = label:gsub(M.planted_password, "<PLANTED>") end
    f:write("== ", label, "\n", text, text:sub(-1) == "\n" and "" or "\n")
    f:close()
  end
end

--- Record the file `path` (a program's stdout or stderr) in the output log at the end of
--- the run, before temporary directories go. Returns path.
function M.watch_output(path, label)
  M.at_exit(function() M.record(label or path, M.read(path)) end)
  return path
end

local function merged_env(overrides, clean)
  local all = clean and {} or stdlib.getenv()
  if clean then
    for _, k in ipairs { "PATH", "HOME", "USER", "LANG", "TMPDIR", "TERM" } do all[k] = os.getenv(k) end
  end
  for k, v in pairs(overrides or {}) do
    if v == false then all[k] = nil else all[k] = tostring(v) end
  end
  return all
end

--- Run a program and capture its output.
--  opts: argv (array; argv[1] "db-tool"/"database"/... names the built binary or a link),
--  env (overrides; false unsets), clean_env (start from PATH/HOME only), cwd, stdin (string),
--  timeout (seconds, default 120).
--  Returns {code =, stdout =, stderr =, signal =, maxrss = peak RSS in KiB (wait4's rusage)}.
function M.run(opts)
  local argv = {}
  for i, a in ipairs(opts.argv or opts) do argv[i] = a end
  local builtins = { ["db-tool"] = true, database = true, ["postgres-cleanup"] = true,
    migrator = true, rickdb = true, ["postgres-init"] = true, ["db-ops"] = true }
  if builtins[argv[1]] then argv[1] = M.build .. "/" .. argv[1] end
  local dir = M.tmpdir("run")
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local stdin = "null"
  if opts.stdin then stdin = { path = M.write(dir .. "/stdin", opts.stdin) } end
  local p, msg = proc.spawn {
    argv = argv,
    env = merged_env(opts.env, opts.clean_env),
    cwd = opts.cwd,
    stdin = stdin,
    stdout = { path = out },
    stderr = { path = err },
  }
  if not p then return { code = 127, stdout = "", stderr = msg } end
  local how, code = p:wait(opts.timeout or 120)
  if how == nil then
    p:kill("KILL")
    p:wait()
    error("timeout running " .. table.concat(argv, " "))
  end
  local res = { stdout = M.read(out) or "", stderr = M.read(err) or "", maxrss = p.maxrss }
  if how == "exited" then res.code = code else res.code = 128 + code; res.signal = code end
  M.record(table.concat(argv, " "):sub(1, 200), res.stdout .. res.stderr)
  M.rm_rf(dir)
  return res
end

--- Shell-quote a string for sh -c (tests only).
function M.shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- ---------------------------------------------------------------- PostgreSQL

local shared_cluster
local db_counter = 0

local function pg_bindir()
  return require("dbtool.cluster").bindir()
end
M.pg_bindir = pg_bindir

--- A PostgreSQL server shared by the whole busted run, started by dbtool.cluster from the
--  template cache (socket only, fsync/synchronous_commit/full_page_writes off).
--  Returns {dir =, host =, port =, url =, conninfo =, handle =} (host: the socket directory;
--  handle: the dbtool.cluster handle). Stopped when the run ends.
function M.cluster()
  if shared_cluster then return shared_cluster end
  if unistd.geteuid() == 0 then
    error("PostgreSQL refuses to run as root: run specs with `make spec` / `make check`")
  end
  local dir = M.tmpdir("pg")
  local h = require("dbtool.cluster").start {
    dir = dir, port = 5432, database = "postgres", preload = "", logging = false,
    settings = { synchronous_commit = "off", full_page_writes = "off", max_connections = 100 },
  }
  shared_cluster = {
    dir = dir, host = h.host, port = h.port, conninfo = h.conninfo, url = h.url, handle = h,
    process = h.process,
  }
  M.at_exit(function() h:stop("immediate") end)   -- thrown away: no shutdown checkpoint
  return shared_cluster
end

--- URL of the database `name` on the shared cluster. Under run-busted.sh it carries the
--- planted password (`postgresql://:PASSWORD@/name?…`: no user, so libpq's default; the
--- cluster's trust authentication ignores the password), which no output may show.
function M.db_url(name)
  local c = M.cluster()
  local userinfo = ""
  if M.planted_password then
    userinfo = ":" .. M.planted_password .. "@"
    local marker = (os.getenv("TMPDIR") or "/tmp") .. "/planted-used"
    local f = io.open(marker, "a")
    if f then
      f:write(name, "\n")
      f:close()
    end
  end
  return "postgresql://" .. userinfo .. "/" .. name .. "?host=" .. c.host .. "&port=" .. c.port
end

--- A new empty database on the shared cluster: returns its URL and name.
function M.fresh_db(prefix)
  local pg = require "dbtool.core.pg"
  local c = M.cluster()
  db_counter = db_counter + 1
  local name = string.format("%s_%d_%d", prefix or "t", unistd.getpid(), db_counter)
  local conn <close> = pg.connect(c.conninfo)
  conn:exec('CREATE DATABASE "' .. name .. '"')
  return M.db_url(name), name
end

--- A PgBouncer (Debian package pgbouncer, installed by .ci/deps.sh) in front of the shared
--  cluster, listening on a unix socket only, in a temporary directory. opts.pool_mode
--  (default "transaction"), opts.pool_size (server connections per database, default 2).
--  Returns {dir =, port =, url = function(dbname) → URL through the pooler, log =}; stopped
--  at the end of the run.
function M.pgbouncer(opts)
  opts = opts or {}
  local c = M.cluster()
  local dir = M.tmpdir("pgbouncer")
  local bin = "/usr/sbin/pgbouncer"
  if not unistd.access(bin, "x") then error("pgbouncer is not installed (apt-get install pgbouncer)") end
  M.pgbouncer_port = (M.pgbouncer_port or 6431) + 1
  local port = M.pgbouncer_port
  local user = require("dbtool.env").user()
  M.write(dir .. "/pgbouncer.ini", table.concat({
    "[databases]",
    string.format("* = host=%s port=%d user=%s", c.host, c.port, user),
    "[pgbouncer]",
    "unix_socket_dir = " .. dir,
    "listen_port = " .. port,
    "auth_type = any",
    "pool_mode = " .. (opts.pool_mode or "transaction"),
    "default_pool_size = " .. (opts.pool_size or 2),
    "max_client_conn = 200",
    "logfile = " .. dir .. "/pgbouncer.log",
    "ignore_startup_parameters = extra_float_digits",
  }, "\n") .. "\n")
  local p = assert(proc.spawn { argv = { bin, dir .. "/pgbouncer.ini" }, stdin = "null",
    stdout = { path = dir .. "/stdout.log" }, stderr = "stdout" })
  M.at_exit(function()
    p:kill("TERM")
    p:wait(10)
  end)
  local pg = require "dbtool.core.pg"
  local conninfo = string.format("host=%s port=%d dbname=postgres", dir, port)
  local deadline = require("dbtool.core").now() + 20
  while pg.ping(conninfo) ~= "ok" do
    if p:wait(0) or require("dbtool.core").now() > deadline then
      error("pgbouncer did not start: " .. (M.read(dir .. "/stdout.log") or ""))
    end
    require("dbtool.core").sleep(0.02)
  end
  return { dir = dir, port = port, log = dir .. "/pgbouncer.log", process = p,
    url = function(dbname) return string.format("postgresql:///%s?host=%s&port=%d", dbname, dir, port) end }
end

--- Connect to a URL (closed when the variable goes out of scope with <close>).
function M.connect(url)
  return require("dbtool.core.pg").connect(url or M.cluster().url)
end

return M
