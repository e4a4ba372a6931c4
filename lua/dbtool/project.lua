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
--
-- Project code is sandboxed in its failures (M.call): whatever db-tool.lua, a project module,
-- a command or a hook raises or returns wrongly — a string, a table, nil, running out of its
-- memory budget — is reported as the project's error (exit 1, or the code of a db-tool
-- error it raised on purpose) at the project's file:line, never as a db-tool bug (exit 13).
-- The tables of db-tool.lua are read raw: their metatables are not consulted.
local core = require "dbtool.core"
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

--- Bounds of project code (README, "Extending"): the size of db-tool.lua, the Lua memory
--- that loading it or a project module may take, the default budget of a command or hook
--- (settings.memory_limit changes it).
M.MAX_FILE = 4 * 1024 * 1024
M.LOAD_MEMORY = 64 * 1024 * 1024
M.RUN_MEMORY = 1024 * 1024 * 1024

--- "64MB", "1GB", "512kB" or a number of bytes → bytes; false → false (no limit); nil, msg.
function M.parse_size(v)
  if v == false then return false end
  if math.type(v) == "integer" and v > 0 then return v end
  if type(v) ~= "string" then return nil, "must be a size such as \"512MB\" or \"2GB\", or false" end
  local n, unit = v:match("^%s*(%d+)%s*(%a*)%s*$")
  local mult = ({ [""] = 1, B = 1, kB = 1024, KB = 1024, MB = 1024 ^ 2, GB = 1024 ^ 3 })[unit or "?"]
  if not n or not mult or tonumber(n) == 0 then
    return nil, "must be a size such as \"512MB\" or \"2GB\", or false"
  end
  return math.tointeger(tonumber(n) * mult) or math.maxinteger
end

--- Settings of the project file: name → checker(value) returning nil or a problem.
local SETTINGS = {
  memory_limit = function(v)
    local ok, problem = M.parse_size(v)
    if ok == nil then return problem end
  end,
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

-- ---------------------------------------------------------------- sandbox

local function debugging()
  local dbg = os.getenv("DB_TOOL_DEBUG")
  return dbg ~= nil and dbg ~= "" and dbg ~= "0"
end

M.shorten = errors.shorten

-- Call project function fn(...) in a coroutine that may run `steps` VM instructions and
-- grow the heap by `bytes` (for __tostring of an error object: it must not hang the report).
local function bounded(steps, bytes, fn, ...)
  local co = coroutine.create(fn)
  debug.sethook(co, function() error("took too long", 0) end, "", steps)
  local prev = core.memory_limit(math.floor(collectgarbage("count") * 1024) + bytes)
  local res = table.pack(coroutine.resume(co, ...))
  core.memory_limit(prev)
  return table.unpack(res, 1, res.n)
end

local function quote(v)
  if type(v) == "string" then return string.format("%q", M.shorten(v, 60)):gsub("\\\n", "\\n") end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return "<" .. type(v) .. ">"
end

--- What a raised or returned non-string value looks like to a person: a table's
--- __tostring (bounded), else its fields (read raw, at most 8), else its type.
function M.describe(v)
  if type(v) == "string" then return M.shorten(v) end
  if v == nil then return "nil (an error without a message)" end
  local mt = debug.getmetatable(v)
  if mt and rawget(mt, "__tostring") then
    local ok, s = bounded(100000, 1024 * 1024, function() return tostring(v) end)
    if ok and type(s) == "string" then return M.shorten(s) end
  end
  if type(v) ~= "table" then
    if type(v) == "number" or type(v) == "boolean" then
      return "a " .. type(v) .. " (" .. tostring(v) .. ")"
    end
    return "a " .. type(v) .. " value"
  end
  local keys = {}
  for k in next, v do
    keys[#keys + 1] = k
    if #keys > 1000 then break end
  end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    if type(a) == "string" or type(a) == "number" then return a < b end
    return false
  end)
  local parts = {}
  for i = 1, math.min(#keys, 8) do
    local k = keys[i]
    local name = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. quote(k) .. "]")
    parts[#parts + 1] = name .. " = " .. quote(rawget(v, k))
  end
  if #keys > 8 then parts[#parts + 1] = "…" end
  if #parts == 0 then return "an empty table" end
  return "a table { " .. table.concat(parts, ", ") .. " }"
end

-- The project's frame nearest to the top of the stack from `level`: "file:line" or nil.
local function project_frame(level)
  for lvl = level, level + 200 do
    local info = debug.getinfo(lvl, "Sl")
    if not info then return nil end
    if info.source:sub(1, 1) == "@" and not info.source:find("^@builtin/") then
      if info.currentline > 0 then return info.source:sub(2) .. ":" .. info.currentline end
      return info.source:sub(2)
    end
  end
end

local CAUGHT = {} -- metatable of what the message handler returns

-- The message handler of M.call: lifts the memory limit (reporting needs memory), keeps
-- structured errors, and notes the project's frame and a traceback of anything else.
local function handler(e)
  core.memory_limit(nil)
  if errors.is(e) and not e.bug then return e end
  local tb = debugging() and debug.traceback(tostring(errors.is(e) and e.msg or M.describe(e)), 2) or nil
  return setmetatable({ value = e, frame = project_frame(3), traceback = tb }, CAUGHT)
end

--- The error value for `e` caught by M.call around project code: `what` names the code
--- ("command 'seed'"), `file` its file (where, when nothing better is known).
function M.error_of(e, what, file)
  if errors.is(e) and not e.bug then -- raised on purpose (errors.raise, a database error)
    for _, k in ipairs { "msg", "detail", "hint" } do e[k] = M.shorten(e[k]) end
    if not e.msg:find("%S") then e.msg = what .. " failed (an error without a message)" end
    if e.where == nil then e.where = file end
    return e
  end
  local frame, traceback, value = nil, nil, e
  if getmetatable(e) == CAUGHT then frame, traceback, value = e.frame, e.traceback, e.value end
  if errors.is(value) then value = value.msg end -- a db-tool error marked as a bug
  local msg, where, hint
  if value == "not enough memory" then
    msg = "ran out of memory"
    hint = string.format("project code may grow db-tool's Lua memory by %d MB while a file loads"
      .. " and by settings.memory_limit (default %d MB) while a command or hook runs",
      M.LOAD_MEMORY // 1048576, M.RUN_MEMORY // 1048576)
  elseif type(value) == "string" then
    local f, line, rest = value:match("^([^\n]-):(%d+): (.*)$")
    if f and not f:find("^builtin/") then
      -- Lua shortens long chunk names to "...tail": the full name is the frame's or the file's
      local tail = f:match("^%.%.%.(.*)$")
      local candidates = { file or false, frame and (frame:match("^(.-):%d+$") or frame) or false }
      for _, full in ipairs(candidates) do
        if tail and full and full:sub(-#tail) == tail then f = full end
      end
      where, msg = f .. ":" .. line, rest
    else
      msg = value
    end
    msg = M.shorten(msg)
  else
    msg = "raised " .. M.describe(value)
  end
  return errors.new(errors.GENERIC, what .. " failed: " .. msg, { where = where or frame or file,
    hint = hint, traceback = traceback, project = true })
end

--- Run project code fn(...) with its failures sandboxed: returns fn's results, or raises
--- the project's error (M.error_of). opts: what = "command 'seed'", file = its file,
--- memory = bytes the Lua heap may grow by meanwhile (false: no limit; default M.RUN_MEMORY).
function M.call(opts, fn, ...)
  local budget = opts.memory
  if budget == nil then budget = M.RUN_MEMORY end
  local prev = core.memory_limit(nil)
  if budget then
    local limit = math.floor(collectgarbage("count") * 1024) + budget
    if prev and prev < limit then limit = prev end
    core.memory_limit(limit)
  elseif prev then
    core.memory_limit(prev)
  end
  local res = table.pack(xpcall(fn, handler, ...))
  core.memory_limit(prev)
  if res[1] then return table.unpack(res, 2, res.n) end
  error(M.error_of(res[2], opts.what or "project code", opts.file), 0)
end

--- The error value for `n` errors raised in __gc metamethods, the first of them `first` as
--- Lua words it ("error in __gc (file:line: msg)"): the project's (exit 1).
function M.gc_error(n, first)
  local inner = first:match("^error in __gc[%w ]*%((.*)%)$") or first
  -- Lua shortened the file name ("...tail"): the project's files are known
  local tail = inner:match("^%.%.%.([^\n]-):%d+: ")
  local file
  if tail then
    local candidates = { M.path() }
    for _, origin in pairs(require("dbtool.loader").origin) do candidates[#candidates + 1] = origin end
    for _, c in ipairs(candidates) do
      if c:sub(-#tail) == tail then file = c end
    end
  end
  local e = M.error_of(inner, "a __gc metamethod (finalizer)", file)
  if n > 1 then e.msg = e.msg .. string.format(" (and %d more finalizer errors)", n - 1) end
  e.hint = "an error raised in __gc does not stop the code that dropped the object: fix the finalizer"
  return e
end

--- The memory budget of commands and hooks of `project` (bytes, or false for none).
function M.run_memory(project)
  local v = project and project.settings and project.settings.memory_limit
  if v == nil then return M.RUN_MEMORY end
  return (M.parse_size(v))
end

--- The exit code of what project code returned (`what`: "command 'seed'", `where`: where
--- it is): nothing or true → 0, false → 1, an integer 0–255 as is; a string is an error
--- message (exit 1); anything else is the project's error.
function M.result_code(res, what, where)
  if res == nil or res == true then return 0 end
  if res == false then return 1 end
  if math.type(res) == "integer" and res >= 0 and res <= 255 then return res end
  if type(res) == "string" then
    errors.raise(errors.GENERIC, what .. " failed: " .. M.shorten(res), { where = where, project = true })
  end
  errors.raise(errors.GENERIC, what .. " returned " .. M.describe(res)
    .. " (expected nothing, true, false, an exit code 0-255 or an error message)",
    { where = where, project = true })
end

--- Run a project command (`run` of a db-tool.lua command or of a project module) and return
--- its exit code (M.result_code; where: the line of the function).
function M.run_command(run, ctx, opts, origin, project)
  local what = "command '" .. tostring(ctx and ctx.name) .. "'"
  local res = M.call({ what = what, file = origin, memory = M.run_memory(project or (ctx and ctx.project)) },
    run, ctx, opts)
  local where = origin
  local info = debug.getinfo(run, "S")
  if info and info.source:sub(1, 1) == "@" and info.linedefined > 0 then
    where = info.source:sub(2) .. ":" .. info.linedefined
  end
  return M.result_code(res, what, where)
end

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

-- A copy of table `t` read raw (no metamethod runs), nested tables too up to `depth`.
local function raw_copy(t, depth)
  local out = {}
  for k, v in next, t do
    if type(v) == "table" and depth > 0 then v = raw_copy(v, depth - 1) end
    out[k] = v
  end
  return out
end

--- The groups whose commands db-tool.lua can add or replace with a "<group> <name>" key.
M.COMMAND_GROUPS = { migrator = true, rickdb = true, secrets = true }

--- A command name of db-tool.lua: "seed" (database seed), or "<group> <name>" for a command
--- of another program or group: "migrator baseline", "rickdb seed", "secrets rotate".
function M.valid_command_name(name)
  if type(name) ~= "string" then return false end
  local group, cmd = name:match("^(%S+) (%S+)$")
  if group then return M.COMMAND_GROUPS[group] ~= nil and M.valid_command_name(cmd) end
  return name:match("^[%w][%w_-]*$") ~= nil
end

--- Validate a loaded project table; returns a normalised copy (raises on problems). `text`
--- (the file's source, optional) is used to point at the offending line. The tables are
--- read raw: a metatable (__index, __pairs, …) of the file's tables is not consulted.
function M.validate(res, file, text)
  local function bad(msg, key) fail(file, M.shorten(msg), M.locate(text, key)) end
  if type(res) ~= "table" then fail(file, "db-tool.lua must return a table, not " .. M.describe(res)) end
  local p = {}
  for k, v in next, res do
    if k ~= "commands" and k ~= "hooks" and k ~= "settings" and k ~= "targets" then
      bad("unknown key '" .. tostring(k) .. "' (expected commands, hooks, settings, targets)", k)
    end
    p[k] = v
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
  local commands, hooks, settings = {}, {}, raw_copy(p.settings or {}, 8)
  for name, cmd in next, p.commands or {} do
    -- "seed" (database seed), "secrets rotate", "migrator baseline", "rickdb seed"
    if not M.valid_command_name(name) then
      bad("invalid command name '" .. tostring(name) .. "' (letters, digits, - and _; a command of "
        .. "another program: \"migrator NAME\", \"rickdb NAME\", \"secrets NAME\")", name)
    end
    if type(cmd) == "function" then
      commands[name] = { run = cmd }
    elseif type(cmd) ~= "table" or type(rawget(cmd, "run")) ~= "function" then
      bad("command '" .. name .. "' must be a function or a table with run = function(ctx, opts)", name)
    else
      cmd = raw_copy(cmd, 0)
      for _, field in ipairs { "summary", "usage", "help" } do
        if cmd[field] ~= nil and type(cmd[field]) ~= "string" then
          bad("command '" .. name .. "': " .. field .. " must be a string", field)
        end
      end
      if cmd.options ~= nil then
        if type(cmd.options) ~= "table" then
          bad("command '" .. name .. "': options must be a list", "options")
        end
        cmd.options = raw_copy(cmd.options, 1)
        for i, o in ipairs(cmd.options) do
          if type(o) ~= "table" or type(o[1]) ~= "string" or o[1]:sub(1, 1) ~= "-" then
            bad("command '" .. name .. "': options[" .. i .. "] must be a table like "
              .. "{ \"-x\", \"--long\", help = \"...\" }", "options")
          end
        end
      end
      commands[name] = cmd
    end
  end
  for name, h in next, p.hooks or {} do
    if not M.HOOKS[name] then
      bad("unknown hook '" .. tostring(name) .. "' (known: "
        .. table.concat(sorted_keys(M.HOOKS), ", ") .. ")", name)
    end
    if type(h) == "function" then
      hooks[name] = { h }
    elseif type(h) == "table" then
      hooks[name] = raw_copy(h, 0)
      for i, f in ipairs(hooks[name]) do
        if type(f) ~= "function" then bad("hook " .. name .. "[" .. i .. "] is not a function", name) end
      end
    else
      bad("hook '" .. name .. "' must be a function or a list of functions", name)
    end
  end
  for name, v in next, settings do
    local check = SETTINGS[name]
    if not check then
      bad("unknown setting '" .. tostring(name) .. "' (known: " .. table.concat(sorted_keys(SETTINGS), ", ")
        .. ")", name)
    end
    local problem = check(v)
    if problem then bad("setting " .. name .. ": " .. problem, name) end
  end
  return { commands = commands, hooks = hooks, settings = settings, targets = p.targets, file = file }
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

--- Read the project file `path` (nil when there is none); raises when it is not a regular
--- file or larger than M.MAX_FILE.
local function read_file(path)
  local st = require("posix.sys.stat")
  local info = st.stat(path)
  if not info then return nil end
  if st.S_ISREG(info.st_mode) == 0 then
    fail(path, st.S_ISDIR(info.st_mode) ~= 0 and "is a directory, not a Lua file"
      or "is not a regular file (a device, FIFO or socket is never read)")
  end
  if info.st_size > M.MAX_FILE then
    fail(path, string.format("is %d bytes, more than a project file may be (%d)", info.st_size, M.MAX_FILE))
  end
  local f, err = io.open(path, "r")
  if not f then fail(path, "cannot read the file: " .. tostring(err)) end
  local text = f:read(M.MAX_FILE + 1) or ""
  f:close()
  if #text > M.MAX_FILE then fail(path, "is more than " .. M.MAX_FILE .. " bytes") end
  return text
end

--- Load `${DATABASE_DIR}/db-tool.lua` (or `path`) once; nil when there is none. Loading and
--- running it is project code (M.call, at most M.LOAD_MEMORY more memory).
function M.load(path)
  path = path or M.path()
  if cache[path] ~= nil then return cache[path] or nil end
  local text = read_file(path)
  if not text then
    cache[path] = false
    return nil
  end
  local chunk, err = load(text, "@" .. path, "t")
  if not chunk then
    local line, msg = split_lua_error(err, path)
    if msg == "C stack overflow" then
      msg = "the code is nested too deeply to be parsed (C stack overflow)"
    end
    fail(path, M.shorten(msg), line)
  end
  local ok, res = pcall(M.call, { what = "loading the file", file = path, memory = M.LOAD_MEMORY }, chunk)
  if not ok then
    res.hint = res.hint or ("fix " .. path .. " (the project's db-tool extension file); nothing was run")
    if res.project then -- "file:line: loading the file failed: msg" says less than "file:line: msg"
      res.msg = res.msg:gsub("^loading the file failed: ", "")
    end
    error(res, 0)
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

local function call_hook(project, name, fn, ...)
  return M.call({ what = "hook " .. name, file = project.file, memory = M.run_memory(project) }, fn, ...)
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
      local r = call_hook(project, name, fn, line, st)
      if r == false then return false end
      if r ~= nil then
        if type(r) ~= "string" then
          errors.raise(errors.GENERIC, "hook pull_staging_transform returned " .. M.describe(r)
            .. " (expected a string, false to drop the line, or nil to keep it)",
            { where = project.file, project = true })
        end
        line, changed = r, true
      end
    end
    if changed then return line end
    return nil
  end
  if not list then return end
  for _, fn in ipairs(list) do call_hook(project, name, fn, ...) end
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
  for k, v in pairs((project.settings.migration or {}).hooks or {}) do
    if type(v) == "function" then
      hooks[k] = function(...) return call_hook(project, "migration." .. k, v, ...) end
    else
      hooks[k] = v
    end
  end
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
