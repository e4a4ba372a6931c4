-- Personalities: the name the binary is called by picks the program (database,
-- postgres-init, postgres-cleanup, migrator, rickdb, db-tool). Errors that escape a
-- program are reported here, once, and mapped to the exit code.
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

M.personalities = {
  ["database"] = "dbtool.personality.database",
  ["postgres-init"] = "dbtool.personality.postgres_init",
  ["postgres-cleanup"] = "dbtool.personality.postgres_cleanup",
  ["migrator"] = "dbtool.personality.migrator",
  ["rickdb"] = "dbtool.personality.rickdb",
  ["db-ops"] = "dbtool.personality.db_ops",
  ["db-tool"] = "dbtool.personality.db_tool",
}

--- The programs a user calls (the links to the binary), in the order of the manuals.
M.programs = { "database", "migrator", "rickdb", "postgres-init", "postgres-cleanup", "db-ops", "db-tool" }

--- Namespace used for error reports of the running program ("db deploy"): the engine's.
setmetatable(M, {
  __index = function(_, k)
    if k == "namespace" then return require("dbtool.command").namespace end
  end,
  __newindex = function(t, k, v)
    if k == "namespace" then require("dbtool.command").namespace = v else rawset(t, k, v) end
  end,
})

function M.personality_of(prog)
  local base = (prog or ""):match("([^/]+)$") or "db-tool"
  base = base:gsub("%.sh$", "")
  if M.personalities[base] then return base end
  return "db-tool"
end

local function indent(text, prefix)
  return (text:gsub("\n", "\n" .. prefix))
end

--- Print an error value (or anything raised) and return its exit code.
function M.report(e, ns)
  e = errors.wrap(e)
  local l = log.ns(ns or require("dbtool.command").namespace)
  if e.interrupted then
    l:error("%s", e.msg)
    return e.exit
  end
  if e.bug then
    l:error("internal error: %s", e.msg)
    local dbg = os.getenv("DB_TOOL_DEBUG")
    if dbg and dbg ~= "" and dbg ~= "0" and e.traceback then
      io.stderr:write(e.traceback, "\n")
    else
      l:error("this is a bug in db-tool; rerun with DB_TOOL_DEBUG=1 to see a traceback")
    end
    return e.exit
  end
  local head = e.msg
  if e.where then head = e.where .. ": " .. head end
  l:error("%s", indent(head, "  "))
  if e.excerpt then io.stderr:write(log.shown(e.excerpt), "\n") end
  if e.detail then l:error("detail: %s", indent(e.detail, "  ")) end
  if e.hint then l:error("hint: %s", indent(e.hint, "  ")) end
  if e.context and os.getenv("DB_TOOL_DEBUG") then l:error("context: %s", indent(e.context, "  ")) end
  return e.exit
end

--- The program `name` (its command group, or for db-tool its module).
function M.program(name)
  return (require(assert(M.personalities[name], name)))
end

--- Run personality `name` with `args` (array); returns the exit code.
function M.run(name, args)
  local ok, code = errors.try(function()
    local prog = M.program(name)
    if prog.main then return prog.main(args, name) end
    return require("dbtool.command").main(prog, args)
  end)
  io.stdout:flush()
  if not ok then return M.report(code) end
  if code == nil or code == true then return 0 end
  if code == false then return 1 end
  return code
end

function M.main(argv)
  M.argv0 = argv[0] or "db-tool"
  -- the secrets private key is ours: no child process (server, pg_dump, ssh, hook) inherits it
  require("dbtool.env").seal()
  log.configure()
  local args = {}
  for i = 1, #argv do args[i] = argv[i] end
  log.add_connections_from(args)
  return M.run(M.personality_of(argv[0]), args)
end

return M
