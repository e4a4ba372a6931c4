-- `db-tool`: the umbrella program and a Lua interpreter with the whole API loaded.
--
--   db-tool <personality> ...      database, postgres-init, postgres-cleanup, migrator, rickdb
--   db-tool run FILE.lua [ARGS]    run a project script
--   db-tool sql ...                shorthand for `database sql ...`
--   db-tool [-e STAT] [-l MOD] [-v] [-E] [-W] [SCRIPT [ARGS] | - | --]
--                                  lua-compatible command line (shebang scripts, busted --lua)
local cli = require "dbtool.cli"
local core = require "dbtool.core"
local errors = require "dbtool.errors"

local M = {}

local HELP = [==[
Usage: db-tool <program> [args]        program: database, postgres-init, postgres-cleanup,
                                                migrator, rickdb
       db-tool run FILE.lua [args]     run a script with the db-tool Lua API
       db-tool sql FILE [-v N=V]...    run a psql script (same as `database sql`)
       db-tool [options] [script [args]]
                                       Lua 5.4 interpreter with the API (`require "dbtool"`)

Interpreter options (as lua):
  -e STAT   execute string STAT        -l MOD   require MOD into global MOD (-l g=MOD too)
  -v        show version information   -E       ignore LUA_INIT
  -W        turn warnings on           --       stop handling options
  -         execute stdin and stop handling options

Symlinks or copies of the binary named database, postgres-init, postgres-cleanup,
migrator or rickdb behave as `db-tool <name>`.
]==]

local function version_line()
  return "db-tool " .. core.version .. " (" .. _VERSION .. ")"
end

-- Errors raised by user code: structured ones are reported like commands do; anything else
-- as lua does (message + traceback), exit 1.
local function run_chunk(f, ...)
  local res = table.pack(xpcall(f, function(e)
    if errors.is(e) then return e end
    local msg = tostring(e)
    if type(e) ~= "string" and type(e) ~= "number" then
      local mt = getmetatable(e)
      if not (mt and mt.__tostring) then msg = "(error object is a " .. type(e) .. " value)" end
    end
    return debug.traceback(msg, 2)
  end, ...))
  if res[1] then return true, res[2] end
  local e = res[2]
  if errors.is(e) then return false, cli.report(e) end
  io.stderr:write("db-tool: ", e, "\n")
  return false, 1
end

local function load_chunk(f, name)
  if not f then
    io.stderr:write("db-tool: ", name, "\n")
    return nil
  end
  return f
end

local function do_require(spec)
  local global, mod = spec:match("^([^=]+)=(.+)$")
  if not global then global, mod = spec, spec end
  local ok, err = run_chunk(function() _G[global] = require(mod) end)
  return ok, err
end

--- Lua-compatible interpreter. argv as given after the program name. With `use_result`
--- (db-tool run), the script's return value is the exit code: an integer as is, false → 1.
function M.interpret(argv, progname, use_result)
  local i, script = 1, nil
  local actions = {}
  local ignore_env = false
  local version_only = false
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      i = i + 1
      script = argv[i]
      break
    elseif a == "-" then
      script = "-"
      break
    elseif a == "-e" or a == "-l" then
      local v = argv[i + 1]
      if v == nil then
        io.stderr:write("db-tool: '", a, "' needs argument\n")
        return 1
      end
      actions[#actions + 1] = { a, v }
      i = i + 2
    elseif a:match("^%-e.") or a:match("^%-l.") then
      actions[#actions + 1] = { a:sub(1, 2), a:sub(3) }
      i = i + 1
    elseif a == "-v" then
      version_only = true
      i = i + 1
    elseif a == "-E" then
      ignore_env = true
      i = i + 1
    elseif a == "-W" then
      warn("@on")
      i = i + 1
    elseif a == "-i" then
      io.stderr:write("db-tool: interactive mode (-i) is not supported\n")
      return 1
    elseif a:sub(1, 1) == "-" then
      io.stderr:write("db-tool: unrecognized option '", a, "'\n", HELP)
      return 1
    else
      script = a
      break
    end
  end
  -- global `arg` as lua.c builds it: script at 0, interpreter args below, script args above
  local script_index = script and i or #argv + 1
  local arg = {}
  arg[-script_index] = progname
  for j = 1, #argv do arg[j - script_index] = argv[j] end
  _G.arg = arg
  if version_only then io.stdout:write(version_line(), "\n") end
  if not ignore_env then
    local init = os.getenv("LUA_INIT_5_4") or os.getenv("LUA_INIT")
    if init and init ~= "" then
      local f, err
      if init:sub(1, 1) == "@" then f, err = loadfile(init:sub(2)) else f, err = load(init, "=LUA_INIT") end
      f = load_chunk(f, err)
      if not f then return 1 end
      local ok, code = run_chunk(f)
      if not ok then return code end
    end
  end
  for _, act in ipairs(actions) do
    local ok, code
    if act[1] == "-e" then
      local f = load_chunk(load(act[2], "=(command line)"))
      if not f then return 1 end
      ok, code = run_chunk(f)
    else
      ok, code = do_require(act[2])
    end
    if not ok then return code end
  end
  if script == nil then
    if #actions == 0 and not version_only then
      local unistd = require "posix.unistd"
      if unistd.isatty(0) == 1 then
        io.stdout:write(version_line(), "\n", HELP)
        return 0
      end
      script = "-"
    else
      return 0
    end
  end
  local f, err
  if script == "-" then f, err = load(io.stdin:read("a"), "=stdin") else f, err = loadfile(script) end
  f = load_chunk(f, err)
  if not f then return 1 end
  local ok, code = run_chunk(f, table.unpack(arg, 1))
  if not ok then return code end
  if use_result then
    if math.type(code) == "integer" then return code end
    if code == false then return 1 end
  end
  return 0
end

function M.main(argv)
  local first = argv[1]
  local progname = cli.argv0 or "db-tool"
  if first and cli.personalities[first] and first ~= "db-tool" then
    local rest = { table.unpack(argv, 2) }
    return cli.run(first, rest)
  elseif first == "run" then
    local file = argv[2]
    if file == nil or file == "-h" or file == "--help" then
      local out = file and io.stdout or io.stderr
      out:write("Usage: db-tool run FILE.lua [args]\n\nRuns FILE with `arg` and `...` set, and the",
        " db-tool Lua API available (local dbtool = require \"dbtool\").\nThe script's return",
        " value is the exit code (an integer; false = 1); a raised db-tool error exits\nwith its",
        " code after printing it. See README, \"Lua API\".\n")
      if file then return 0 end
      return errors.MISSING
    end
    return M.interpret({ table.unpack(argv, 2) }, progname, true)
  elseif first == "sql" then
    return cli.run("database", argv)
  elseif first == "help" or first == "--help" or first == "-h" then
    io.stdout:write(HELP)
    return 0
  elseif first == "--version" then
    io.stdout:write(version_line(), "\n")
    return 0
  end
  return M.interpret(argv, progname)
end

return M
