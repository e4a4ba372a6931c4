-- The project's extension file: `${DATABASE_DIR}/db-tool.lua` returns a table
--
--   return {
--     commands = { seed = { summary = "...", options = {...}, run = function(ctx, opts) end } },
--     hooks = { before_deploy = function(ctx) end, after_each_migration = {f1, f2}, ... },
--     settings = { log_level = "info", migration = { lock_timeout = "5s", ... } },
--   }
--
-- Hooks: before_/after_ deploy, hydrate, patch, migrate, each_migration, and
-- pull_staging_transform (see README, "Extending"). A broken file is an error at
-- file:line (exit 1) and nothing runs.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

M.HOOKS = {
  before_deploy = true, after_deploy = true,
  before_hydrate = true, after_hydrate = true,
  before_patch = true, after_patch = true,
  before_migrate = true, after_migrate = true,
  before_each_migration = true, after_each_migration = true,
  pull_staging_transform = true,
  before_check = true, after_check = true,
}

local cache = {}

local function fail(file, msg, line)
  errors.raise(errors.GENERIC, msg, { where = line and (file .. ":" .. line) or file,
    hint = "fix " .. file .. " (the project's db-tool extension file)" })
end

--- Validate a loaded project table; returns it (raises on problems).
function M.validate(p, file)
  if type(p) ~= "table" then fail(file, "db-tool.lua must return a table, not a " .. type(p)) end
  for k in pairs(p) do
    if k ~= "commands" and k ~= "hooks" and k ~= "settings" then
      fail(file, "unknown key '" .. tostring(k) .. "' (expected commands, hooks, settings)")
    end
  end
  for name, cmd in pairs(p.commands or {}) do
    if type(name) ~= "string" or not name:match("^[%w][%w_-]*$") then
      fail(file, "invalid command name '" .. tostring(name) .. "'")
    end
    if type(cmd) == "function" then
      p.commands[name] = { run = cmd, summary = "(project command)" }
    elseif type(cmd) ~= "table" or type(cmd.run) ~= "function" then
      fail(file, "command '" .. name .. "' must be a function or a table with run = function(ctx, opts)")
    end
  end
  for name, h in pairs(p.hooks or {}) do
    if not M.HOOKS[name] then
      local known = {}
      for k in pairs(M.HOOKS) do known[#known + 1] = k end
      table.sort(known)
      fail(file, "unknown hook '" .. tostring(name) .. "' (known: " .. table.concat(known, ", ") .. ")")
    end
    if type(h) == "function" then
      p.hooks[name] = { h }
    elseif type(h) == "table" then
      for i, f in ipairs(h) do
        if type(f) ~= "function" then fail(file, "hook " .. name .. "[" .. i .. "] is not a function") end
      end
    else
      fail(file, "hook '" .. name .. "' must be a function or a list of functions")
    end
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

--- Load `${DATABASE_DIR}/db-tool.lua` once; nil when there is none.
function M.load(path)
  path = path or M.path()
  if cache[path] ~= nil then return cache[path] or nil end
  local f = io.open(path, "r")
  if not f then
    cache[path] = false
    return nil
  end
  f:close()
  local chunk, err = loadfile(path, "t")
  if not chunk then
    local line, msg = tostring(err):match(":(%d+): (.*)$")
    fail(path, msg or err, line)
  end
  local ok, res = xpcall(chunk, errors.handler)
  if not ok then
    local line, msg = tostring(res.msg):match(":(%d+): (.*)$")
    fail(path, msg or res.msg, line)
  end
  local p = M.validate(res, path)
  cache[path] = p
  if p.settings.log_level then require("dbtool.log").configure { level = p.settings.log_level } end
  return p
end

--- Forget loaded files (tests).
function M.reset()
  cache = {}
end

--- Run the hook `name` of the loaded project (if any) with the arguments; returns the
--- value of the last hook function. A failing hook raises with its name in the message.
function M.run_hook(project, name, ...)
  assert(M.HOOKS[name], "unknown hook " .. name)
  if not project or not project.hooks[name] then return ... end
  local result = table.pack(...)
  for _, fn in ipairs(project.hooks[name]) do
    local ok, err = xpcall(fn, errors.handler, ...)
    if not ok then
      if not err.interrupted then err.msg = "hook " .. name .. " failed: " .. err.msg end
      if err.bug then -- an error in project code is the project's, not a db-tool bug
        err.exit = errors.GENERIC
        err.bug = nil
      end
      error(err, 0)
    end
    result = table.pack(err)
  end
  return table.unpack(result, 1, result.n)
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

return M
