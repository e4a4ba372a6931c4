-- Mutation fuzzer for the project-file loader and the sandbox of project code
-- (dbtool.project, dbtool.loader). Each input is the text of a db-tool.lua; properties:
--   * project.load(file) returns a normalised project (commands with a run function, hooks
--     as lists of functions, settings, file) or raises a structured error of the project
--     (errors.is, not a bug, exit 1 unless the file raised a db-tool error on purpose), with a
--     message shortened for display — never anything else;
--   * every command of a loaded project, run through project.run_command, gives an exit code
--     0–255 or such an error; every hook, through project.run_hook, likewise;
--   * the same text as a project module (`require` through dbtool.loader) loads or raises
--     such an error;
--   * errors raised in __gc metamethods meanwhile are reported as one (project.gc_error).
-- A step limit (a count hook) stops code that would loop: it is then the project's error too.
-- Memory budgets are lowered for the run (LOAD_MEMORY, RUN_MEMORY: 32 MB).
--
--   require("project_fuzz").run{iterations = N | seconds = S, seed = n, log = fn, crash_dir = dir}
--     → {iterations =, loaded =, failed =}; raises with the failing input on a violation
--       (written to crash_dir/project-crash-<n> when crash_dir is given).
-- Used by spec/unit/project_fuzz_spec.lua (a bounded quick run) and spec/fuzz/project.lua.
local core = require "dbtool.core"
local errors = require "dbtool.errors"
local loader = require "dbtool.loader"
local project = require "dbtool.project"

local M = {}

M.SEEDS = {
  "return {}",
  "return { commands = { hello = function(ctx, opts) return 0 end } }",
  [[return { commands = { stats = { summary = "s", usage = "u", help = "h",
  options = { { "--json", help = "j" }, { "-v", "--verbose" } }, run = function() return true end } } }]],
  [[return { hooks = { before_deploy = function(ctx) end, after_each_migration = { print, function() end },
  pull_staging_transform = function(line) return line:upper() end } }]],
  [[return { settings = { log_level = "info", lock_timeout = "5s", lock_wait = 3, checksum = "warn",
  memory_limit = "16MB", migration = { history = "set" } } }]],
  "error('broken at load')",
  "error({ code = 1, reason = 'table' })",
  "error(nil)",
  "error(setmetatable({}, { __tostring = function() return 'ts' end }))",
  "error(setmetatable({ x = 1 }, { __tostring = function() error('ts fails') end }))",
  [[return setmetatable({ commands = { a = print } }, { __index = function() error('i') end,
  __pairs = function() error('p') end, __newindex = function() error('n') end,
  __len = function() error('l') end })]],
  "local keep = setmetatable({}, { __gc = function() error('gc') end })\n"
    .. "return { commands = { k = function() return keep and 0 end } }",
  [[return { commands = {
  s = function() return 'an error message' end, t = function() return {} end, n = function() error() end,
  big = function() return 300 end, neg = function() return -1 end, f = function() return 1.5 end,
  e = function() error({ 1, 2, 3 }) end,
  d = function() setmetatable({}, { __gc = function() error('g') end }) end,
} }]],
  "return 42", "return nil", "return 'a string'", "return function() end", "return { [1] = 2 }",
  "return { commands = { ['bad name'] = print, [3] = print } }",
  "return { hooks = { nope = print }, settings = { colour = true } }",
  "return { commands = { grow = function()\n"
    .. "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100000) .. i end end } }",
  "local x = nil return x.y",
  "return { commands = { r = function() return require('dbtool.errors').raise(3, 'on purpose') end } }",
  "return { hooks = { before_patch = function() error(coroutine.create(print)) end } }",
}

local TOKENS = {
  "return ", "error(", ")", "(", "{", "}", "[", "]", ",", ";", "=", "==", ".", "..", ":", "'", "\"",
  "function() ", "function(ctx, opts) ", " end", " end)", "local t = ", "t", "nil", "true", "false",
  "0", "1", "255", "256", "-1", "1e308", "0/0", "'x'", "\"\\0\"", "'\\255'", "commands", "hooks",
  "settings", "run", "summary", "options", "memory_limit", "log_level", "before_deploy",
  "pull_staging_transform", "setmetatable(", "{}", "__index", "__gc", "__tostring", "__pairs",
  "__len", "__newindex", "__call", "__eq", "__metatable", "__close", "__name", "print",
  "string.rep('x', 100000)", "('y'):rep(1e6)", "collectgarbage()",
  "coroutine.wrap(function() error('c') end)()",
  "select('#')", "\n", " ", "--", "--[[", "]]", "[[", "#", "..'", "= function() return ",
}

local function mutate(s, rng, seeds)
  for _ = 1, rng(1, 4) do
    local op = rng(7)
    local len = #s
    local p = rng(len + 1)
    if op == 1 then                                  -- insert a token
      s = s:sub(1, p - 1) .. TOKENS[rng(#TOKENS)] .. s:sub(p)
    elseif op == 2 and len > 0 then                  -- delete a range
      s = s:sub(1, p - 1) .. s:sub(math.min(len, p + rng(0, 12)) + 1)
    elseif op == 3 and len > 0 then                  -- replace a byte
      s = s:sub(1, p - 1) .. string.char(rng(0, 255)) .. s:sub(p + 1)
    elseif op == 4 and len > 0 then                  -- duplicate a range
      local q = math.min(len, p + rng(0, 24))
      s = s:sub(1, q) .. s:sub(p, q) .. s:sub(q + 1)
    elseif op == 5 then                              -- splice another seed
      local o = seeds[rng(#seeds)]
      s = s:sub(1, p - 1) .. o:sub(rng(#o + 1)) .. s:sub(p)
    elseif op == 6 and len > 0 then                  -- truncate
      s = s:sub(1, p - 1)
    else                                             -- several tokens
      local t = {}
      for i = 1, rng(2, 6) do t[i] = TOKENS[rng(#TOKENS)] end
      s = s:sub(1, p - 1) .. table.concat(t) .. s:sub(p)
    end
  end
  if #s > 8192 then s = s:sub(1, 8192) end
  return s
end
M.mutate = mutate

-- A structured error of the project (or one it raised on purpose); nil, or what is wrong.
local function check_error(e)
  if not errors.is(e) then return "not a structured error: " .. tostring(e) end
  if e.bug or e.exit == errors.BUG then return "reported as a db-tool bug: " .. e.msg end
  if e.msg == "" then return "empty message" end
  if #e.msg > errors.MAX_MESSAGE + 64 then return "message not shortened (" .. #e.msg .. " bytes)" end
  if e.where ~= nil and type(e.where) ~= "string" then return "where is a " .. type(e.where) end
end

local function check_project(p, file)
  if type(p) ~= "table" then return "load returned a " .. type(p) end
  if p.file ~= file then return "file not recorded" end
  for _, k in ipairs { "commands", "hooks", "settings" } do
    if type(p[k]) ~= "table" or getmetatable(p[k]) ~= nil then return k .. " is not a plain table" end
  end
  for name, cmd in next, p.commands do
    if type(name) ~= "string" or type(cmd) ~= "table" or type(rawget(cmd, "run")) ~= "function" then
      return "malformed command " .. tostring(name)
    end
  end
  for name, list in next, p.hooks do
    if not project.HOOKS[name] or type(list) ~= "table" then return "malformed hook " .. tostring(name) end
    for _, f in ipairs(list) do if type(f) ~= "function" then return "hook entry is not a function" end end
  end
end

-- Run fn(...) with a step limit; returns pcall's results.
local function bounded(fn, ...)
  debug.sethook(function() error("fuzz: step limit reached", 0) end, "", 2000000)
  local res = table.pack(pcall(fn, ...))
  debug.sethook()
  return table.unpack(res, 1, res.n)
end

local function fail(input, what, crash_dir, n)
  local path
  if crash_dir then
    path = crash_dir .. "/project-crash-" .. n
    local f = io.open(path, "wb")
    if f then f:write(input); f:close() end
  end
  error(string.format("project fuzz: %s\ninput %q%s", what, input, path and ("\nsaved to " .. path) or ""), 0)
end

-- The globals and the standard library tables, to put back after an input changed them
-- (project code shares _G with db-tool: `string.rep = nil` in db-tool.lua is the project's
-- own foot-gun, but must not break the fuzzer).
local LIBS = { "string", "table", "math", "os", "io", "coroutine", "debug", "utf8", "package" }
local function snapshot()
  local snap = { g = {}, libs = {} }
  for k, v in next, _G do snap.g[k] = v end
  for _, name in ipairs(LIBS) do
    local t = {}
    for k, v in next, _G[name] do t[k] = v end
    snap.libs[name] = t
  end
  return snap
end
local function restore(snap)
  for k in next, _G do if snap.g[k] == nil then rawset(_G, k, nil) end end
  for k, v in next, snap.g do rawset(_G, k, v) end
  for name, t in next, snap.libs do
    local lib = snap.g[name]
    for k in next, lib do if t[k] == nil then rawset(lib, k, nil) end end
    for k, v in next, t do rawset(lib, k, v) end
  end
  setmetatable(_G, nil)
  debug.setmetatable("", { __index = string })
  for _, v in ipairs { 0, true, print, coroutine.running() } do debug.setmetatable(v, nil) end
  debug.setmetatable(nil, nil)
end

--- Check one input (the text of a db-tool.lua) in directory `dir`; returns nil or a problem,
--- and whether the file loaded.
function M.check(text, dir, n)
  local file = dir .. "/db-tool.lua"
  local f = assert(io.open(file, "wb"))
  f:write(text)
  f:close()
  project.reset()
  local ok, p = bounded(project.load, file)
  local problem
  if not ok then
    problem = check_error(p)
  else
    problem = check_project(p, file)
    if not problem then
      for name, cmd in next, p.commands do
        local okc, code = bounded(project.run_command, cmd.run, { name = name, project = p }, {}, file, p)
        if okc and not (math.type(code) == "integer" and code >= 0 and code <= 255) then
          problem = "command " .. name .. " gave exit code " .. tostring(code)
        elseif not okc then
          problem = check_error(code)
        end
        if problem then break end
      end
    end
    if not problem then
      for name in next, p.hooks do
        local okh, r = bounded(project.run_hook, p, name, "line", {})
        local transformed = r == nil or r == false or type(r) == "string"
        if okh and name == "pull_staging_transform" and not transformed then
          problem = "transform gave a " .. type(r)
        elseif not okh then
          problem = check_error(r)
        end
        if problem then break end
      end
    end
  end
  -- the same text as a project module
  if not problem then
    local modname = "dbtool.fuzzmod" .. n
    local mf = assert(io.open(dir .. "/lua/dbtool/fuzzmod" .. n .. ".lua", "wb"))
    mf:write(text)
    mf:close()
    local okm, e = bounded(require, modname)
    package.loaded[modname] = nil
    loader.origin[modname] = nil
    os.remove(dir .. "/lua/dbtool/fuzzmod" .. n .. ".lua")
    if not okm then problem = check_error(e) end
  end
  debug.sethook()
  collectgarbage()
  local ngc, first = core.gc_errors()
  if not problem and ngc > 0 then
    local okg, e = pcall(project.gc_error, ngc, first)
    if not okg then problem = "gc_error raised: " .. tostring(e) else problem = check_error(e) end
  end
  return problem, ok
end

function M.run(opts)
  local seed = opts.seed or os.time()
  local rng = math.random
  math.randomseed(seed)
  -- a file written and loaded per input: on a tmpfs (/dev/shm) when there is one
  local shm = require("posix.unistd").access("/dev/shm", "w")
  local tmp = shm and "/dev/shm" or (os.getenv("TMPDIR") or "/tmp")
  local dir = assert(require("posix.stdlib").mkdtemp(tmp .. "/db-tool-fuzz-XXXXXX"))
  assert(require("posix.sys.stat").mkdir(dir .. "/lua") == 0)
  assert(require("posix.sys.stat").mkdir(dir .. "/lua/dbtool") == 0)
  local saved_paths = loader.paths
  loader.configure { database_dir = dir }
  local saved = { project.LOAD_MEMORY, project.RUN_MEMORY }
  project.LOAD_MEMORY, project.RUN_MEMORY = 32 * 1024 * 1024, 32 * 1024 * 1024
  local log_level = require("dbtool.log")
  log_level.configure { level = "off" } -- settings.log_level of an input must not flood the run
  local saved_print = print
  print = function() end -- luacheck: ignore 121 (project code printing must not flood the run)
  local stats = { iterations = 0, loaded = 0, failed = 0, seed = seed }
  local deadline = opts.seconds and (core.now() + opts.seconds)
  local corpus = {}
  for i, s in ipairs(M.SEEDS) do corpus[i] = s end
  local ok, err = pcall(function()
    local n = 0
    while true do
      n = n + 1
      if opts.iterations and n > opts.iterations then break end
      if deadline and core.now() > deadline then break end
      local input = n <= #M.SEEDS and M.SEEDS[n] or mutate(corpus[rng(#corpus)], rng, corpus)
      local snap = snapshot()
      local problem, loaded = M.check(input, dir, n)
      restore(snap)
      if problem then fail(input, problem, opts.crash_dir, n) end
      stats.iterations = n
      if loaded then
        stats.loaded = stats.loaded + 1
        if #corpus < 500 then corpus[#corpus + 1] = input end
      else
        stats.failed = stats.failed + 1
      end
      if opts.log and n % 2000 == 0 then opts.log(stats, n) end
    end
  end)
  project.LOAD_MEMORY, project.RUN_MEMORY = saved[1], saved[2]
  print = saved_print -- luacheck: ignore 121
  loader.paths = saved_paths
  project.reset()
  require("dbtool.core.fs").rmtree(dir)
  for _ = 1, 4 do collectgarbage() end
  core.gc_errors() -- the inputs' finalizers: checked above, not the caller's
  if not ok then error(err, 0) end
  return stats
end

return M
