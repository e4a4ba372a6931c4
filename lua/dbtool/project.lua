-- The project's extension file: `${DATABASE_DIR}/db-tool.lua` returns a table
--
--   return {
--     commands = { seed = { summary = "...", options = {...}, run = function(ctx, opts) end } },
--     hooks = { before_deploy = function(ctx) end, after_each_migration = {f1, f2}, ... },
--     settings = { log_level = "info", lock_timeout = "5s", checksum = "warn",
--                  migration = { history = "set", lock_wait = 30, ... } },
--   }
--
-- Hooks (arguments in M.HOOKS) run in the order the file lists them. A broken file (syntax
-- error, runtime error, wrong types, unknown names or settings) is an error at file:line
-- (exit 1), raised before any command does anything.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

--- Known hooks and what they receive (README, "Extending").
M.HOOKS = {
  before_deploy = "ctx",                 -- ctx.url: nil (no cluster yet)
  after_deploy = "ctx, cluster",         -- ctx.url: the deployed database; cluster handle
  before_hydrate = "ctx", after_hydrate = "ctx",
  before_patch = "ctx", after_patch = "ctx",
  before_check = "ctx", after_check = "ctx",
  before_migrate = "info",               -- {plan =, dir =}
  after_migrate = "info",                -- {plan =, dir =, done =}
  before_each_migration = "info",        -- {name =, direction =, script =, index =, total =}
  after_each_migration = "info",         -- the same + duration, outcome, skipped
  pull_staging_transform = "line, st",   -- → string (replace), false (drop), nil (keep)
}

--- Settings of the project file: name → checker(value) returning nil or a problem.
local SETTINGS = {
  log_level = function(v)
    if type(v) ~= "string" then return "must be a string such as \"debug\" or \"info;db hydrate=debug\"" end
    local default, per = require("dbtool.log").parse_spec(v)
    if default == nil and type(per) == "string" then return per end
  end,
  lock_timeout = function(v)
    if v ~= false and not require("dbtool.migrate.policy").valid_duration(v) then
      return "must be a duration such as \"5s\", \"500ms\", or false"
    end
  end,
  lock_wait = function(v)
    if type(v) ~= "number" or v < 0 then return "must be a number of seconds >= 0" end
  end,
  checksum = function(v)
    if v ~= "verify" and v ~= "warn" and v ~= "off" then return "must be \"verify\", \"warn\" or \"off\"" end
  end,
  migration = function(v)
    if type(v) ~= "table" then return "must be a table of migration policy settings" end
    local pol = require "dbtool.migrate.policy"
    local ok, msg = pol.merge(pol.defaults(), v)
    if not ok then return msg end
  end,
}

local cache = {}

--- First line of `text` where `name` appears as a key (`name =`, `["name"] =`) or, failing
--- that, as a word; nil when it does not appear.
function M.locate(text, name)
  if not text or type(name) ~= "string" then return nil end
  local esc = name:gsub("%p", "%%%0")
  local n = 0
  local fallback
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find("%f[%w_]" .. esc .. "%f[^%w_]%s*=%f[^=]")
        or line:find("%[%s*[\"']" .. esc .. "[\"']%s*%]%s*=%f[^=]") then
      return n
    end
    if not fallback and line:find("%f[%w_]" .. esc .. "%f[^%w_]") then fallback = n end
  end
  return fallback
end

local function fail(file, msg, line)
  errors.raise(errors.GENERIC, msg, { where = line and (file .. ":" .. line) or file,
    hint = "fix " .. file .. " (the project's db-tool extension file); nothing was run" })
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- Validate a loaded project table; returns it (raises on problems). `text` (the file's
--- source, optional) is used to point at the offending line.
function M.validate(p, file, text)
  local function bad(msg, key) fail(file, msg, M.locate(text, key)) end
  if type(p) ~= "table" then fail(file, "db-tool.lua must return a table, not a " .. type(p)) end
  for k in pairs(p) do
    if k ~= "commands" and k ~= "hooks" and k ~= "settings" and k ~= "targets" then
      bad("unknown key '" .. tostring(k) .. "' (expected commands, hooks, settings, targets)", k)
    end
  end
  -- targets: migrator's fleet (dbtool.migrate.fleet checks the entries when used)
  if p.targets ~= nil and type(p.targets) ~= "table" and type(p.targets) ~= "function" then
    bad("targets must be a table or a function returning one, not a " .. type(p.targets), "targets")
  end
  for _, section in ipairs { "commands", "hooks", "settings" } do
    if p[section] ~= nil and type(p[section]) ~= "table" then
      bad(section .. " must be a table, not a " .. type(p[section]), section)
    end
  end
  for name, cmd in pairs(p.commands or {}) do
    if type(name) ~= "string" or not name:match("^[%w][%w_-]*$") then
      bad("invalid command name '" .. tostring(name) .. "' (letters, digits, - and _)", name)
    end
    if type(cmd) == "function" then
      p.commands[name] = { run = cmd }
    elseif type(cmd) ~= "table" or type(cmd.run) ~= "function" then
      bad("command '" .. name .. "' must be a function or a table with run = function(ctx, opts)", name)
    else
      for _, field in ipairs { "summary", "usage", "help" } do
        if cmd[field] ~= nil and type(cmd[field]) ~= "string" then
          bad("command '" .. name .. "': " .. field .. " must be a string", field)
        end
      end
      if cmd.options ~= nil then
        if type(cmd.options) ~= "table" then
          bad("command '" .. name .. "': options must be a list", "options")
        end
        for i, o in ipairs(cmd.options) do
          if type(o) ~= "table" or type(o[1]) ~= "string" or o[1]:sub(1, 1) ~= "-" then
            bad("command '" .. name .. "': options[" .. i .. "] must be a table like "
              .. "{ \"-x\", \"--long\", help = \"...\" }", "options")
          end
        end
      end
    end
  end
  for name, h in pairs(p.hooks or {}) do
    if not M.HOOKS[name] then
      bad("unknown hook '" .. tostring(name) .. "' (known: "
        .. table.concat(sorted_keys(M.HOOKS), ", ") .. ")", name)
    end
    if type(h) == "function" then
      p.hooks[name] = { h }
    elseif type(h) == "table" then
      for i, f in ipairs(h) do
        if type(f) ~= "function" then bad("hook " .. name .. "[" .. i .. "] is not a function", name) end
      end
    else
      bad("hook '" .. name .. "' must be a function or a list of functions", name)
    end
  end
  for name, v in pairs(p.settings or {}) do
    local check = SETTINGS[name]
    if not check then
      bad("unknown setting '" .. tostring(name) .. "' (known: " .. table.concat(sorted_keys(SETTINGS), ", ")
        .. ")", name)
    end
    local problem = check(v)
    if problem then bad("setting " .. name .. ": " .. problem, name) end
  end
  p.commands = p.commands or {}
  p.hooks = p.hooks or {}
  p.settings = p.settings or {}
  p.file = file
  return p
end

--- Path of the project file for the current environment.
function M.path()
  return env.database_dir() .. "/db-tool.lua"
end

--- `file:line: msg` (as Lua reports errors) → line, msg for `file`.
local function split_lua_error(msg, file)
  msg = tostring(msg)
  local f, line, rest = msg:match("^(.-):(%d+): (.*)$")
  if f and (f == file or file:sub(-#f) == f or f:find("...", 1, true)) then return line, rest end
  return nil, msg
end

--- Apply settings that act as soon as the file is loaded: the log level, unless HECTIC_LOG
--- or a command-line flag (--verbose, --quiet) already decided.
local function apply_settings(p)
  local level = p.settings.log_level
  if level and not env.get("HECTIC_LOG") then require("dbtool.log").configure { spec = level } end
end

--- Load `${DATABASE_DIR}/db-tool.lua` (or `path`) once; nil when there is none.
function M.load(path)
  path = path or M.path()
  if cache[path] ~= nil then return cache[path] or nil end
  local f = io.open(path, "r")
  if not f then
    cache[path] = false
    return nil
  end
  local text = f:read("a")
  f:close()
  if not text then fail(path, "cannot read the file (is it a directory?)") end
  local chunk, err = load(text, "@" .. path, "t")
  if not chunk then
    local line, msg = split_lua_error(err, path)
    fail(path, msg, line)
  end
  local ok, res = xpcall(chunk, errors.handler)
  if not ok then
    if not res.bug then
      res.where = res.where or path
      error(res, 0)
    end
    local line, msg = split_lua_error(res.msg, path)
    fail(path, msg, line)
  end
  local p = M.validate(res, path, text)
  cache[path] = p
  apply_settings(p)
  return p
end

--- The project of the current environment (nil when it has none); raises when it is broken.
function M.current()
  return M.load()
end

--- Forget loaded files (tests).
function M.reset()
  cache = {}
end

--- Make `dir` the project of this process (a script working on a project it was not started
--- in): LOCAL_DIR = dir for this process and its children (DATABASE_DIR, MIGRATION_DIR,
--- DATABASE_SOURCE and PATCH_SQL then derive from it), its lua/ first on the module path,
--- and its db-tool.lua the project file. Modules already loaded stay as they are. Returns
--- the project (nil when dir has no db-tool.lua).
function M.use(dir)
  if dir:sub(1, 1) ~= "/" then dir = (require("dbtool.core").getcwd() or ".") .. "/" .. dir end
  env.set("LOCAL_DIR", dir)
  for _, k in ipairs { "DATABASE_DIR", "MIGRATION_DIR", "DATABASE_SOURCE", "PATCH_SQL" } do
    env.set(k, nil)
  end
  require("dbtool.loader").configure { database_dir = env.database_dir() }
  cache = {}
  return M.load()
end

local function call_hook(name, fn, ...)
  local res = table.pack(xpcall(fn, errors.handler, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local err = res[2]
  if not err.interrupted then err.msg = "hook " .. name .. " failed: " .. err.msg end
  if err.bug then -- an error in project code is the project's, not a db-tool bug
    err.exit = errors.GENERIC
    err.bug = nil
  end
  error(err, 0)
end

--- Run the hook `name` of `project` (if any): every function in order, with the
--- arguments. For pull_staging_transform the functions are chained: each gets the line as
--- the previous one left it; false (drop the line) stops the chain; the result is the
--- final line, false, or nil when no function changed it. Other hooks return nothing.
--- A failing hook raises (exit 1) with its name in the message.
function M.run_hook(project, name, ...)
  assert(M.HOOKS[name], "unknown hook " .. tostring(name))
  local list = project and project.hooks and project.hooks[name]
  if name == "pull_staging_transform" then
    local line, st = ...
    if not list then return nil end
    local changed = false
    for _, fn in ipairs(list) do
      local r = call_hook(name, fn, line, st)
      if r == false then return false end
      if r ~= nil then
        if type(r) ~= "string" then
          errors.raise(errors.GENERIC, "hook pull_staging_transform returned a " .. type(r)
            .. " (expected a string, false to drop the line, or nil to keep it)")
        end
        line, changed = r, true
      end
    end
    if changed then return line end
    return nil
  end
  if not list then return end
  for _, fn in ipairs(list) do call_hook(name, fn, ...) end
end

--- A setting by dotted path ("migration.lock_timeout"), or `default`.
function M.setting(project, path, default)
  local v = project and project.settings
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return default end
    v = v[part]
  end
  if v == nil then return default end
  return v
end

local MIGRATION_HOOKS = { before_migrate = "before_migrate", after_migrate = "after_migrate",
  before_each_migration = "before_each", after_each_migration = "after_each" }

--- The migration policy of `project` for dbtool.migrate: settings.migration, with the
--- shorthands settings.lock_timeout / lock_wait / checksum (settings.migration wins), and
--- the migration hooks. Returns a table to merge over the defaults ({} without a project).
function M.migration_policy(project)
  local p = {}
  if not project then return p end
  for _, k in ipairs { "lock_timeout", "lock_wait", "checksum" } do
    if project.settings[k] ~= nil then p[k] = project.settings[k] end
  end
  for k, v in pairs(project.settings.migration or {}) do
    if k ~= "hooks" then p[k] = v end
  end
  local hooks = {}
  for k, v in pairs((project.settings.migration or {}).hooks or {}) do hooks[k] = v end
  for from, to in pairs(MIGRATION_HOOKS) do
    if project.hooks[from] then
      local inner = hooks[to]
      hooks[to] = function(info)
        if inner then inner(info) end
        M.run_hook(project, from, info)
      end
    end
  end
  if next(hooks) then p.hooks = hooks end
  return p
end

return M
