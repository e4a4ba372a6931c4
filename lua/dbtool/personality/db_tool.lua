-- `db-tool`: the umbrella program and a Lua interpreter with the whole API loaded.
--
--   db-tool <personality> ...      database, postgres-init, postgres-cleanup, migrator, rickdb, db-ops
--   db-tool run FILE.lua [ARGS]    run a project script
--   db-tool sql ...                shorthand for `database sql ...`
--   db-tool [-e STAT] [-l MOD] [-v] [-E] [-W] [SCRIPT [ARGS] | - | --]
--                                  lua-compatible command line (shebang scripts, busted --lua)
local cli = require "dbtool.cli"
local core = require "dbtool.core"
local errors = require "dbtool.errors"

local M = {
  name = "db-tool",
  summary = "the db-tool programs, and a Lua 5.4 interpreter with the db-tool API",
  usage = "db-tool <program> [args]\ndb-tool run FILE.lua [args]\ndb-tool sql FILE [-v NAME=VALUE]...\n"
    .. "db-tool completion bash|zsh|fish\ndb-tool [-e STAT] [-l MOD] [-v] [-E] [-W] [script [args] | - | --]",
  environment = {
    { "LUA_INIT_5_4, LUA_INIT", "Lua code (or @FILE) run before the script, as lua does (-E: not)" },
    { "DATABASE_DIR, LOCAL_DIR", "the project: modules in $DATABASE_DIR/lua/ come first" },
    { "DB_TOOL_LUA_PATH", "extra Lua module directories (after the project's, before the built-ins)" },
    { "DB_TOOL_DEBUG", "tracebacks of internal errors" },
  },
  exit_codes = {
    { 0, "ok (run: the script's return value is the exit code: 0-255, nil/true 0, false 1)" },
    { 1, "a Lua error in the script, an unknown interpreter option; run: the script returned a "
      .. "string (an error message) or another value" },
    { 13, "program bug" },
  },
}

local HELP = [==[
Usage: db-tool <program> [args]        program: database, postgres-init, postgres-cleanup,
                                                migrator, rickdb, db-ops
       db-tool run FILE.lua [args]     run a script with the db-tool Lua API
       db-tool sql FILE [-v N=V]...    run a psql script (same as `database sql`)
       db-tool completion bash|zsh|fish
                                       print the shell completion script of every program
       db-tool -V, --version           print the version (every program: -V, --version)
       db-tool [options] [script [args]]
                                       Lua 5.4 interpreter with the API (`require "dbtool"`)

Interpreter options (as lua):
  -e STAT   execute string STAT        -l MOD   require MOD into global MOD (-l g=MOD too)
  -v        show version information   -E       ignore LUA_INIT
  -W        turn warnings on           --       stop handling options
  -         execute stdin and stop handling options

Symlinks or copies of the binary named database, postgres-init, postgres-cleanup,
migrator, rickdb or db-ops behave as `db-tool <name>`.
]==]

local function version_line()
  return require("dbtool.command").version_line()
end

-- Errors raised by user code: structured ones are reported like commands do; anything else
-- as lua does (message + traceback), exit 1.
local function run_chunk(f, ...)
  local res = table.pack(xpcall(f, function(e)
    if errors.is(e) then return e end
    local msg = tostring(e)
    if type(e) ~= "string" and type(e) ~= "number" then
      local mt = getmetatable(e)
      if not (mt and mt.__tostring) then
        msg = "(error object is " .. require("dbtool.project").describe(e) .. ")"
      end
    end
    return debug.traceback(msg, 2)
  end, ...))
  if res[1] then return true, res[2] end
  local e = res[2]
  if e == "not enough memory" then -- no message handler runs for a memory error
    e = errors.new(errors.GENERIC, "the script ran out of memory", { hint = "a script may grow db-tool's "
      .. "Lua memory by settings.memory_limit of the project's db-tool.lua (default 1GB)" })
  end
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

-- lua's command line: options up to the script name (-e/-l in order), then the script's own
M.INTERPRETER = {
  name = "db-tool",
  usage = "db-tool [options] [script [args]]",
  summary = "Lua 5.4 interpreter with the db-tool API (`require \"dbtool\"`)",
  no_help = true,
  stop_at_positional = true,
  options = {
    { "-e", arg = "STAT", list = "actions", help = "execute string STAT" },
    { "-l", arg = "MOD", list = "actions", help = "require MOD into global MOD (-l g=MOD too)" },
    { "-v", key = "version", help = "show version information" },
    { "-E", key = "ignore_env", help = "ignore LUA_INIT" },
    { "-W", key = "warnings", help = "turn warnings on" },
    { "-i", key = "interactive", hidden = true },
  },
  messages = {
    unknown = function(_, a) return "unrecognized option '" .. a .. "'" end,
    missing = function(_, flag) return "'" .. flag .. "' needs argument" end,
  },
}

M.HELP = HELP
M.options = M.INTERPRETER.options

--- Lua-compatible interpreter. argv as given after the program name. With `use_result`
--- (db-tool run), the script's return value is the exit code as a project command's
--- (dbtool.project.result_code): 0-255 as is, nil/true → 0, false → 1, a string is an error.
function M.interpret(argv, progname, use_result)
  local command = require "dbtool.command"
  local ok, opts = errors.try(command.parse, M.INTERPRETER, argv)
  if not ok then
    if opts.bug then error(opts, 0) end
    io.stderr:write("db-tool: ", opts.msg, "\n")
    if opts.msg:find("unrecognized", 1, true) then io.stderr:write(HELP) end
    return 1
  end
  if opts.interactive then
    io.stderr:write("db-tool: interactive mode (-i) is not supported\n")
    return 1
  end
  if opts.warnings then warn("@on") end
  local actions = opts.actions or {}
  local script = opts.args[1]
  local script_index = opts.rest_index or (#argv + 1)
  -- global `arg` as lua.c builds it: script at 0, interpreter args below, script args above
  local arg = {}
  arg[-script_index] = progname
  for j = 1, #argv do arg[j - script_index] = argv[j] end
  _G.arg = arg
  if opts.version then io.stdout:write(version_line(), "\n") end
  if not opts.ignore_env then
    local init = os.getenv("LUA_INIT_5_4") or os.getenv("LUA_INIT")
    if init and init ~= "" then
      local f, err
      if init:sub(1, 1) == "@" then f, err = loadfile(init:sub(2)) else f, err = load(init, "=LUA_INIT") end
      f = load_chunk(f, err)
      if not f then return 1 end
      local okc, code = run_chunk(f)
      if not okc then return code end
    end
  end
  for _, act in ipairs(actions) do
    local okc, code
    if act[1] == "-e" then
      local f = load_chunk(load(act[2], "=(command line)"))
      if not f then return 1 end
      okc, code = run_chunk(f)
    else
      okc, code = do_require(act[2])
    end
    if not okc then return code end
  end
  if script == nil then
    if #actions == 0 and not opts.version then
      if core.isatty(0) then
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
  -- db-tool run: the script is project code, with its memory budget (settings.memory_limit
  -- of the project's db-tool.lua, default dbtool.project.RUN_MEMORY)
  local prev_limit
  if use_result then
    local project = require "dbtool.project"
    local okp, p = pcall(project.load)
    local budget = project.run_memory(okp and p or nil)
    prev_limit = core.memory_limit(nil)
    if budget then core.memory_limit(math.floor(collectgarbage("count") * 1024) + budget) end
  end
  local okc, code = run_chunk(f, table.unpack(arg, 1))
  if use_result then core.memory_limit(prev_limit) end
  if not okc then return code end
  if use_result then -- as a project command's: a string is an error message (dbtool.project)
    local okr, rc = errors.try(require("dbtool.project").result_code, code, "the script", script)
    if not okr then return cli.report(rc) end
    return rc
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
        " value is the exit code (0-255; nil/true = 0, false = 1; a string is an error\nmessage, exit 1);",
        " a raised db-tool error exits with its code after printing it. See README,\n\"Scripts\".\n")
      if file then return 0 end
      return errors.MISSING
    end
    return M.interpret({ table.unpack(argv, 2) }, progname, true)
  elseif first == "sql" then
    return cli.run("database", argv)
  elseif first == "completion" then
    return require("dbtool.command").main(require("dbtool.complete").SPEC, { table.unpack(argv, 2) })
  elseif first == "__complete" then
    return require("dbtool.complete").complete_main({ table.unpack(argv, 2) })
  elseif first == "__man" then
    return require("dbtool.manpage").main({ table.unpack(argv, 2) })
  elseif first == "help" or first == "--help" or first == "-h" then
    io.stdout:write(HELP)
    return 0
  elseif first == "--version" or first == "-V" then
    io.stdout:write(version_line(), "\n")
    return 0
  end
  return M.interpret(argv, progname)
end

return M
