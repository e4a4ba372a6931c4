-- Module search: project `${DATABASE_DIR}/lua/` → `DB_TOOL_LUA_PATH` → modules embedded in
-- the binary. First match wins. `dbtool.builtin.X` always loads the embedded X, so a
-- project override can wrap the module it replaces. `origin[name]` says where a module
-- came from (shown by --verbose).
local core = require "dbtool.core"

local M = { origin = {}, paths = {} }

local function embedded_file(name)
  local base = "lua/" .. name:gsub("%.", "/")
  for _, path in ipairs { base .. ".lua", base .. "/init.lua" } do
    if core.embedded(path) then return path end
  end
end

--- Load the embedded module `name` ("dbtool.cli"); returns the loader or nil, message.
function M.load_builtin(name)
  local path = embedded_file(name)
  if not path then return nil, "no built-in module '" .. name .. "'" end
  return core.load_embedded(path, "@builtin/" .. path:sub(5))
end

function M.has_builtin(name)
  return embedded_file(name) ~= nil
end

--- Names of embedded modules under `prefix` ("dbtool.cmd.") without nested ones.
function M.builtin_modules(prefix)
  local dir = "lua/" .. prefix:gsub("%.", "/")
  local names = {}
  for _, path in ipairs(core.embedded_list(dir)) do
    local rest = path:sub(#dir + 1)
    -- cmd/init.lua is the module dbtool.cmd.init (`database init`), found through ?.lua
    local leaf = rest:match("^([^/]+)%.lua$") or rest:match("^([^/]+)/init%.lua$")
    if leaf then names[#names + 1] = prefix .. leaf end
  end
  table.sort(names)
  return names
end

local function path_templates(dir)
  if dir:find("?", 1, true) then return dir end
  dir = dir:gsub("/+$", "")
  return dir .. "/?.lua;" .. dir .. "/?/init.lua"
end

--- Recompute the search path from the environment (DATABASE_DIR, LOCAL_DIR, DB_TOOL_LUA_PATH).
function M.configure(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local paths = {}
  local dbdir = opts.database_dir
  if not dbdir then
    dbdir = getenv("DATABASE_DIR")
    if not dbdir or dbdir == "" then
      local localdir = getenv("LOCAL_DIR")
      if not localdir or localdir == "" then localdir = core.getcwd() or "." end
      dbdir = localdir .. "/db"
    end
  end
  paths[#paths + 1] = { kind = "project", path = path_templates(dbdir .. "/lua") }
  local extra = getenv("DB_TOOL_LUA_PATH")
  if extra and extra ~= "" then
    for dir in extra:gmatch("[^;:]+") do
      paths[#paths + 1] = { kind = "DB_TOOL_LUA_PATH", path = path_templates(dir) }
    end
  end
  M.paths = paths
  return paths
end

--- A structured error (exit 1, where = file:line) for a Lua error raised while loading or
--- running the module file `file` of the project or DB_TOOL_LUA_PATH.
function M.file_error(file, err, name)
  local errors = require "dbtool.errors"
  if errors.is(err) then return err end
  local msg = tostring(err)
  local where
  local f, line, rest = msg:match("^(.-):(%d+): (.*)$")
  if f and (f == file or file:sub(-#f) == f or f:find("...", 1, true)) then
    where, msg = file .. ":" .. line, rest
  end
  return errors.new(errors.GENERIC, "module " .. name .. ": " .. msg, { where = where or file,
    hint = "fix " .. file .. ", or remove it to use the built-in module" })
end

--- Wrap the chunk of a project module: running it is project code (dbtool.project.call:
--- any failure, running out of memory included, is a structured error at file:line, exit 1,
--- not a db-tool bug). Until dbtool.project is loaded (it and what it needs may come from
--- DB_TOOL_LUA_PATH themselves), errors are only made structured.
function M.guard(chunk, file, name)
  return function(...)
    local project = package.loaded["dbtool.project"]
    if type(project) ~= "table" or not project.call then
      local res = table.pack(xpcall(chunk, function(e)
        local errors = require "dbtool.errors"
        if errors.is(e) then return e end
        return M.file_error(file, e, name)
      end, ...))
      if not res[1] then error(res[2], 0) end
      return table.unpack(res, 2, res.n)
    end
    local ok, res = pcall(function(...)
      return table.pack(project.call({ what = "module " .. name, file = file,
        memory = project.LOAD_MEMORY }, chunk, ...))
    end, ...)
    if not ok then
      if type(res) == "table" and res.project then
        res.msg = res.msg:gsub("^(module [^ ]+) failed: ", "%1: ")
        res.hint = res.hint or ("fix " .. file .. ", or remove it to use the built-in module")
      end
      error(res, 0)
    end
    return table.unpack(res, 1, res.n)
  end
end

function M.searcher(name)
  local builtin = name:match("^dbtool%.builtin%.(.+)$")
  if builtin then
    builtin = "dbtool." .. builtin
    local f, err = M.load_builtin(builtin)
    if not f then return "\n\t" .. err end
    M.origin[name] = "builtin"
    return f, "builtin:" .. builtin
  end
  local tried = {}
  for _, p in ipairs(M.paths) do
    local file = package.searchpath(name, p.path)
    if file then
      local f, err = loadfile(file, "t")
      if not f then error(M.file_error(file, err, name), 0) end
      M.origin[name] = file
      return M.guard(f, file, name), file
    end
    tried[#tried + 1] = "\n\tno file in " .. p.kind .. " (" .. p.path .. ")"
  end
  local f, err = M.load_builtin(name)
  if f then
    M.origin[name] = "builtin"
    return f, "builtin:" .. name
  end
  if embedded_file(name) then error(err, 0) end -- a syntax error in a built-in module
  return table.concat(tried) .. "\n\tno built-in module '" .. name .. "'"
end

function M.install(opts)
  M.configure(opts)
  for _, s in ipairs(package.searchers) do
    if s == M.searcher then return end
  end
  table.insert(package.searchers, 2, M.searcher)
end

return M
