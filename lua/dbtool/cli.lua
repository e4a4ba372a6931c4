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
  ["db-tool"] = "dbtool.personality.db_tool",
}

--- Namespace used for error reports of the running program ("db deploy").
M.namespace = "db-tool"

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
  local l = log.ns(ns or M.namespace)
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

--- Run personality `name` with `args` (array); returns the exit code.
function M.run(name, args)
  local modname = assert(M.personalities[name], name)
  local ok, code = errors.try(function()
    local mod = require(modname)
    return mod.main(args, name)
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
