-- The public Lua API: `local dbtool = require "dbtool"` (README, "Lua API").
--
-- Modules load on first use (dbtool.cluster, dbtool.pg, dbtool.sqlrun, dbtool.migrate,
-- dbtool.log, dbtool.env, dbtool.errors, dbtool.proc, dbtool.secrets, dbtool.dotenv,
-- dbtool.testing, ...: any dbtool.<name> module). On top of them:
--
--   dbtool.connect([url], [opts])          → connection (url: PGURL, DB_URL, local cluster)
--   dbtool.sql(target, script, [opts])     → summary   psql-compatible script (string)
--   dbtool.sql_file(target, path, [opts])  → summary   target: connection, URL or nil
--   dbtool.exec(argv, [opts])              → code, stdout (opts.capture) — argv, no shell
--   dbtool.migrations.up/down/to/status{...}           hectic migrations with the project policy
--   dbtool.commands.<name>{args...}         → exit code  every `database` subcommand
--   dbtool.command(name, args), dbtool.command_names()
--
-- Errors are raised as structured values ({exit =, msg =, hint =, where =, ...}, see
-- dbtool.errors); `db-tool run` and shebang scripts report them like commands do and exit
-- with their code.
local core = require "dbtool.core"

local M = { version = core.version }

local aliases = {
  proc = "dbtool.core.proc",
}

-- ---------------------------------------------------------------- connections and SQL

--- Connect to `url` (default: the command-line -u of the running program, PGURL, DB_URL,
--- else the local cluster of PG_WORKING_DIR). opts as dbtool.pg.connect (log, quiet).
--- The connection closes when garbage-collected or with `local c <close> = ...`.
function M.connect(url, opts)
  if url == nil then
    local source
    url, source = require("dbtool.db").require_url()
    local o = { source = source }
    for k, v in pairs(opts or {}) do o[k] = v end
    opts = o
  end
  return require("dbtool.pg").connect(url, opts)
end

-- target: a connection, a URL/conninfo, or nil (the default database, as connect()).
local function with_target(target, fn)
  if type(target) == "userdata" then return fn(target) end
  local conn = M.connect(target)
  return require("dbtool.errors").finally(function() conn:close() end, fn, conn)
end

--- Run a psql-compatible script (text) on `target`; opts as dbtool.sqlrun (vars,
--- single_transaction, output, on_result, name, cwd). Returns the run's summary.
function M.sql(target, script, opts)
  return with_target(target, function(conn) return require("dbtool.sqlrun").string(conn, script, opts) end)
end

--- Run a psql script file (\i, \ir, \set, \if, COPY … FROM stdin) on `target`.
function M.sql_file(target, path, opts)
  return with_target(target, function(conn) return require("dbtool.sqlrun").file(conn, path, opts) end)
end

-- ---------------------------------------------------------------- processes

--- Run argv (an array, never a shell string) and wait. opts: env (table, merged over the
--- environment; false removes), cwd, stdin (a string to feed), capture (return stdout as a
--- string), stderr ("inherit" default, "null", "stdout"). Returns the exit code (128 + N
--- for a signal) and the captured output. A missing program raises exit 127.
function M.exec(argv, opts)
  opts = opts or {}
  local errors = require "dbtool.errors"
  local proc = require "dbtool.core.proc"
  local stdin, tmp = "null", nil
  if opts.stdin then
    tmp = require("dbtool.env").tmpfile()
    local f = assert(io.open(tmp, "wb"))
    f:write(opts.stdin)
    f:close()
    stdin = { path = tmp }
  end
  local p, msg = proc.spawn { argv = argv, env = require("dbtool.env").child_env(opts.env), cwd = opts.cwd,
    stdin = stdin, stdout = opts.capture and "pipe" or "inherit", stderr = opts.stderr or "inherit" }
  if tmp then os.remove(tmp) end
  if not p then
    errors.raise(errors.NO_DEPENDENCY, "cannot run " .. tostring(argv[1]) .. ": " .. tostring(msg),
      { hint = "is it installed and in PATH?" })
  end
  local out
  if opts.capture then
    out = p.stdout:read("a")
    p.stdout:close()
  end
  local how, code = p:wait()
  if how ~= "exited" then code = 128 + code end
  return code, out
end

-- ---------------------------------------------------------------- migrations

local migrations = {}
M.migrations = migrations

-- An engine over the hectic store of o.url (default DB_URL, then as connect()) and the
-- migrations in o.dir (default MIGRATION_DIR), with the project's policy and hooks, then
-- o.policy over them.
local function engine(o)
  local env = require "dbtool.env"
  local migrate = require "dbtool.migrate"
  local project = require "dbtool.project"
  local log = o.log or require("dbtool.log").ns("migrator")
  local db = require "dbtool.db"
  local url, source = db.resolve { url = o.url, migrator = true, cluster = true }
  if not url then url = db.require_url() end
  local target = source == "libpq" and { engine = "postgresql", target = "" } or url
  local store = migrate.open_store(o.store or "hectic", target, { log = log, create = not o.dry_run })
  local pol = project.migration_policy(project.load())
  for k, v in pairs(o.policy or {}) do
    if k == "hooks" then
      pol.hooks = pol.hooks or {}
      for hk, hv in pairs(v) do pol.hooks[hk] = hv end
    else
      pol[k] = v
    end
  end
  local ok, eng = pcall(migrate.new, { store = store, layout = o.layout or "dirs",
    dir = o.dir or env.migration_dir(), policy = pol, vars = o.vars, log = log, force = o.force,
    allow_modified = o.allow_modified, dry_run = o.dry_run, out = o.out })
  if not ok then
    store:close()
    error(eng, 0)
  end
  return eng, store
end

local function run_engine(o, fn)
  local eng, store = engine(o or {})
  return require("dbtool.errors").finally(function() store:close() end, fn, eng)
end

--- Apply pending migrations: o.n (default "all"), o.url, o.dir, o.vars, o.policy,
--- o.dry_run, o.force, o.allow_modified, o.log. Returns {done =, plan =}; a failing
--- migration raises exit 4 (its cause in err.cause).
function migrations.up(o)
  o = o or {}
  return run_engine(o, function(eng) return eng:migrate { kind = "up", n = o.n or "all" } end)
end

--- Revert the last o.n (default 1) applied migrations.
function migrations.down(o)
  o = o or {}
  return run_engine(o, function(eng) return eng:migrate { kind = "down", n = o.n or 1 } end)
end

--- Migrate up or down to o.name (a full name, a unique prefix or description, "latest"),
--- or to o.index (the position on disk; 0 = clean state: everything reverted).
function migrations.to(o)
  o = o or {}
  if o.name == nil and o.index == nil then
    local errors = require "dbtool.errors"
    errors.raise(errors.MISSING, "migrations.to: name or index is required")
  end
  return run_engine(o, function(eng) return eng:migrate { kind = "to", name = o.name, index = o.index } end)
end

--- Status: {rows = {{name =, state = "applied"|"pending"|"modified"|"missing", ...}},
--- counts = {applied =, pending =, modified =, missing =}, current =, initialized =}.
function migrations.status(o)
  return run_engine(o, function(eng) return eng:status() end)
end

-- ---------------------------------------------------------------- commands

local GLOBAL_KEYS = { url = true, verbose = true, inherits = true }

--- Call the `database` subcommand `name` as a function. `a`: an argument array as on the
--- command line ({"--cleanup"}), named options ({cleanup = true}), or both; `url` is the
--- global -u (for this call only). Returns the exit code (0 = success); errors are raised
--- as structured values. The command is resolved as `database` does (db-tool.lua commands,
--- project overrides under ${DATABASE_DIR}/lua/, built-ins).
function M.command(name, a)
  local command = require "dbtool.command"
  local env = require "dbtool.env"
  local errors = require "dbtool.errors"
  if type(a) == "string" then a = { a } end
  a = a or {}
  if type(a) ~= "table" then
    errors.raise(errors.GENERIC, "dbtool.commands." .. name .. ": expected a table of arguments, not a "
      .. type(a))
  end
  local argv, named, globals = {}, {}, { inherits = {} }
  for i, v in ipairs(a) do argv[i] = tostring(v) end
  for k, v in pairs(a) do
    if math.type(k) ~= "integer" or k < 1 or k > #argv then
      if GLOBAL_KEYS[k] then
        globals[k] = v
      else
        named[k] = v
      end
    end
  end
  if type(globals.inherits) == "string" then globals.inherits = { globals.inherits } end
  local saved = {}
  if globals.url then
    for _, var in ipairs { "PGURL", "DB_URL" } do saved[var] = env.raw(var) or false end
  end
  return errors.finally(function()
    for var, v in pairs(saved) do env.set(var, v or nil) end
  end, function()
    -- as `database -i TABLE`: exit 5 when a table is missing (the program's before_run)
    return command.call(require "dbtool.personality.database", name, argv, named, globals)
  end)
end

--- Names of every `database` subcommand (built-in, project overrides, db-tool.lua).
function M.command_names()
  local command = require "dbtool.command"
  local database = require "dbtool.personality.database"
  local names = {}
  for cname in pairs(command.commands(database, require("dbtool.project").load())) do
    names[#names + 1] = cname
  end
  table.sort(names)
  return names
end

--- dbtool.commands.deploy{cleanup = true}, dbtool.commands.test{}, dbtool.commands["normalize-backup"]{...}
M.commands = setmetatable({}, {
  __index = function(_, name)
    if type(name) ~= "string" then return nil end
    return function(a) return M.command(name, a) end
  end,
  __newindex = function() error("dbtool.commands is read-only; add commands in db-tool.lua", 2) end,
})

return setmetatable(M, {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local modname = aliases[k] or ("dbtool." .. k)
    local ok, mod = pcall(require, modname)
    if not ok then
      local msg = tostring(type(mod) == "table" and mod.msg or mod)
      if msg:find("module '" .. modname .. "' not found", 1, true) then
        return nil
      end
      error(mod, 2)
    end
    rawset(t, k, mod)
    return mod
  end,
})
