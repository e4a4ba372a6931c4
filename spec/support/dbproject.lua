-- Helpers for the `database` end-to-end specs (spec/cli/database_*_spec.lua): a project
-- directory on disk, the environment a user would have for it (nothing inherited that
-- matters), and small SQL probes.
local t = require "testutil"
local pg = require "dbtool.core.pg"

local M = {}

-- Every variable `database` reads; unset unless a spec sets it.
local VARS = { "LOCAL_DIR", "DATABASE_DIR", "MIGRATION_DIR", "DATABASE_SOURCE", "PGURL", "DB_URL",
  "PG_WORKING_DIR", "PG_PORT", "PG_DATABASE", "PG_REUSE", "PG_CONF_FILE", "PG_DISABLE_LOGGING",
  "PG_LOG_PATH", "PG_URL_VAR", "HYDRATE_LOG", "PATCH_LOG", "PATCH_SQL", "PROFILE_DIR",
  "HYDRATE_ENTRYPOINT", "HECTIC_DOTENV_FILE", "HECTIC_DOTENV_CONTENT", "ENVIRONMENT", "HECTIC_LOG",
  "DB_TOOL_TTY", "DB_TOOL_COLOR", "PAGER", "EDITOR", "VISUAL", "DB_TOOL_LUA_PATH", "PGHOST", "PGPORT",
  "PGDATABASE", "PGUSER", "HECTIC_NAMESPACE", "DB_TOOL_SECRET_KEY", "DB_TOOL_SECRET_KEY_FILE",
  "DATABASE_URL", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGPASSWORD", "PGPASSFILE" }

--- Environment for a project rooted at `dir`: LOCAL_DIR = dir, no server logs, no preload
--- library, no colour; `extra` wins (false unsets).
function M.env(dir, extra)
  local e = {}
  for _, k in ipairs(VARS) do e[k] = false end
  e.LOCAL_DIR = dir
  e.PG_SHARED_PRELOAD_LIBRARIES = ""
  e.PG_DISABLE_LOGGING = "1"
  e.NO_COLOR = "1"
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- A new project directory; `files` maps relative paths to contents.
function M.project(files, tag)
  local dir = t.tmpdir(tag or "proj")
  for path, content in pairs(files or {}) do t.write(dir .. "/" .. path, content) end
  -- a cluster started in it is stopped at the end of the run, whatever happened
  t.at_exit(function()
    pcall(require("dbtool.cluster").stop, dir .. "/focus/postgresql", { mode = "immediate" })
  end)
  return dir
end

--- A copy of examples/ (the sample project) as a new project directory.
function M.example()
  local dir = M.project(nil, "example")
  local p = require("dbtool.core.proc").spawn { argv = { "cp", "-R", t.top .. "/examples/.", dir } }
  assert(p:wait() == "exited")
  return dir
end

--- Run `database ARGS...` for the project `dir` with env extras; returns {code, stdout, stderr}.
function M.database(dir, args, extra, opts)
  local argv = { "database" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  return t.run { argv = argv, env = M.env(dir, extra), stdin = opts.stdin, cwd = opts.cwd or dir,
    timeout = opts.timeout }
end

--- Start `database ARGS...` for project `dir` in the background, in its own process group
--- (as a shell runs a foreground job). Returns the process and the paths of its stdout and
--- stderr files.
function M.spawn(dir, args, extra)
  local argv = { t.build .. "/database" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = require("posix.stdlib").getenv()
  for k, v in pairs(M.env(dir, extra)) do env[k] = v or nil end
  local tmp = t.tmpdir("out")
  local p = assert(require("dbtool.core.proc").spawn { argv = argv, env = env, cwd = dir, stdin = "null",
    stdout = { path = t.watch_output(tmp .. "/stdout") },
    stderr = { path = t.watch_output(tmp .. "/stderr") }, detach = true })
  return p, tmp .. "/stdout", tmp .. "/stderr"
end

--- Wait until fn() is true (polling), at most `timeout` seconds; returns whether it became true.
function M.wait_for(fn, timeout)
  local core = require "dbtool.core"
  local deadline = core.now() + (timeout or 60)
  while core.now() < deadline do
    if fn() then return true end
    core.sleep(0.01)
  end
  return false
end

--- URL of the cluster `database deploy` makes for project `dir`.
function M.cluster_url(dir, port)
  return string.format("postgresql:///testdb?host=%s/focus/postgresql/sock&port=%d", dir, port or 5432)
end

--- First column of the first row of `sql` on `url` (nil when no row).
function M.value(url, sql, ...)
  local c <close> = pg.connect(url)
  local r = c:exec(sql, ...)
  return r[1] and r[1][1]
end

--- Run `sql` on `url`; returns the result.
function M.exec(url, sql, ...)
  local c <close> = pg.connect(url)
  return c:exec(sql, ...)
end

--- Does relation `name` (schema-qualified) exist on `url`?
function M.has(url, name)
  return M.value(url, "SELECT to_regclass($1) IS NOT NULL", name)
end

--- Is a server running for working directory `wd`?
function M.running(wd)
  return require("dbtool.cluster").status(wd).state == "running"
end

--- The file's entries (names) or {} when it does not exist.
function M.ls(dir)
  local ok, names = pcall(require("posix.dirent").dir, dir)
  local out = {}
  if ok and names then
    for _, n in ipairs(names) do if n ~= "." and n ~= ".." then out[#out + 1] = n end end
  end
  table.sort(out)
  return out
end

--- Processes whose command line contains `needle` (pids), from /proc.
function M.processes(needle)
  local pids = {}
  for _, n in ipairs(M.ls("/proc")) do
    if n:match("^%d+$") then
      local cmd = t.read("/proc/" .. n .. "/cmdline")
      if cmd and cmd:gsub("%z", " "):find(needle, 1, true) then pids[#pids + 1] = tonumber(n) end
    end
  end
  return pids
end

return M
