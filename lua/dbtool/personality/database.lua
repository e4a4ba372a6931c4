-- `database`: the development workflow. Global options, then a subcommand implemented by
-- the module dbtool.cmd.<name> (built in, or a project file under ${DATABASE_DIR}/lua/,
-- or a command added by ${DATABASE_DIR}/db-tool.lua).
local args = require "dbtool.args"
local cli = require "dbtool.cli"
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local loader = require "dbtool.loader"
local log = require "dbtool.log"
local ui = require "dbtool.ui"

local M = {}

-- -u/--url and -i/--inherits are accepted anywhere on the line (as the original did);
-- the others only before the subcommand.
local GLOBAL = {
  { "-u", "--url", arg = "URL", help = "connection URL (sets PGURL and DB_URL for this run)" },
  { "-i", "--inherits", arg = "TABLE", multi = true,
    help = "check that TABLE exists before running (exit 5 if not); repeatable" },
  { "--verbose", help = "debug logging; says which file handled the command" },
  { "-q", "--quiet", help = "only warnings and errors" },
  { "--version", help = "print the version" },
}

local ENVIRONMENT = [[
Environment:
  LOCAL_DIR         project root (required by most subcommands)
  DB_URL            connection URL used by `migrator` (default: PGURL)
  PGURL             connection URL of the database to work on
  PG_WORKING_DIR    local cluster directory (default: $LOCAL_DIR/focus/postgresql)
  DATABASE_DIR      database files (default: $LOCAL_DIR/db)
  MIGRATION_DIR     migrations (default: $DATABASE_DIR/migration)
  DATABASE_SOURCE   hydrate sources (default: $DATABASE_DIR/src)
  PG_URL_VAR, PG_LOG_PATH, PG_CONF_FILE, PG_SHARED_PRELOAD_LIBRARIES, PG_DISABLE_LOGGING,
  PG_DATABASE, PG_PORT, PG_REUSE, HECTIC_DOTENV_FILE, ENVIRONMENT, PATCH_LOG, HYDRATE_LOG,
  NO_TTY, STAGING_SSH_HOST, STAGING_DB_URL, STAGING_DUMP_TABLES, STAGING_DUMP_FLAGS,
  HECTIC_LOG (log levels), NO_COLOR

Exit codes: 0 ok, 1 error, 2 ambiguous arguments or state, 3 missing argument or
environment variable, 5 table does not exist, 9 argument or command not found,
13 program bug, 127 missing dependency.]]

--- Command name ↔ module name: "normalize-backup" ↔ dbtool.cmd.normalize_backup.
local function module_of(name)
  return "dbtool.cmd." .. name:gsub("%-", "_")
end

--- The project's extension file, if any. For help, a broken file is only a warning.
local function project(for_help)
  local mod = require "dbtool.project"
  if not for_help then return mod.load() end
  local ok, p = pcall(mod.load)
  if ok then return p end
  local msg = errors.is(p) and ((p.where and (p.where .. ": ") or "") .. p.msg) or tostring(p)
  log.ns("db"):warn("ignoring the project file: %s", msg)
  return nil
end

--- All subcommands: {name = {module = ..., summary = ..., origin = ...}}.
function M.commands(proj)
  local cmds = {}
  local function add(modname, source)
    local ok, mod = pcall(require, modname)
    if not ok and loader.origin[modname] ~= "builtin" and not tostring(errors.is(mod) and mod.msg or mod)
        :find("module '" .. modname .. "' not found", 1, true) then
      local e = errors.wrap(mod)
      log.ns("db"):warn("%s%s", e.where and (e.where .. ": ") or "", e.msg)
    end
    if ok and type(mod) == "table" and mod.run then
      local name = mod.name or modname:match("([^.]+)$"):gsub("_", "-")
      if not mod.hidden then
        cmds[name] = { module = mod, summary = mod.summary, origin = source or loader.origin[modname] }
      end
    end
  end
  for _, modname in ipairs(loader.builtin_modules("dbtool.cmd.")) do add(modname) end
  -- commands that exist only as project files
  for _, p in ipairs(loader.paths) do
    local dir = p.path:match("^([^;?]*)/%?%.lua")
    local probe = dir and io.open(dir .. "/dbtool/cmd")
    if probe then probe:close() end
    if probe then
      local ok, dirent = pcall(require, "posix.dirent")
      local okf, files = false, nil
      if ok then okf, files = pcall(dirent.dir, dir .. "/dbtool/cmd") end
      if okf and files then
        for _, f in ipairs(files) do
          local leaf = f:match("^(.+)%.lua$")
          if leaf then add("dbtool.cmd." .. leaf) end
        end
      end
    end
  end
  if proj and proj.commands then
    for name, mod in pairs(proj.commands) do
      local base = cmds[name]
      cmds[name] = { module = mod, origin = proj.file,
        summary = mod.summary or (base and base.summary) or "(project command)" }
    end
  end
  return cmds
end

--- The command `sub`: {module =, origin =} — a command of the project file first, then the
--- module dbtool.cmd.<sub> (a project override under ${DATABASE_DIR}/lua/ before the
--- built-in). A project-file command named like a built-in one and without its own
--- `options` takes the built-in's options, usage and help, so that it can wrap it
--- (require "dbtool.builtin.cmd.<sub>"). Unknown → exit 9.
function M.find(sub, proj)
  local modname = module_of(sub)
  if sub:find("[^%w_-]") then modname = nil end
  if proj and proj.commands and proj.commands[sub] then
    local cmd = proj.commands[sub]
    if cmd.options == nil and cmd.raw == nil and modname and loader.has_builtin(modname) then
      local base = require("dbtool.builtin.cmd." .. sub:gsub("%-", "_"))
      for _, k in ipairs { "options", "positionals", "rest", "raw", "usage", "help", "summary",
        "messages" } do
        if cmd[k] == nil then cmd[k] = base[k] end
      end
    end
    return { module = cmd, origin = proj.file }
  end
  local ok, mod = false, nil
  if modname then ok, mod = errors.try(require, modname) end
  if not ok then
    local err = mod
    local missing = not modname
      or (err.bug and tostring(err.msg):find("module '" .. modname .. "' not found", 1, true))
    if not missing then error(err, 0) end
    errors.raise(errors.NOT_FOUND, "database: unknown subcommand '" .. sub .. "'",
      { hint = "see 'database --help' for the list" })
  end
  if type(mod) ~= "table" or type(mod.run) ~= "function" then
    errors.raise(errors.GENERIC,
      "module " .. modname .. " is not a command (it must return a table with run)",
      { where = loader.origin[modname], hint = "see HACKING.md, \"Subcommands of database\"" })
  end
  return { module = mod, origin = loader.origin[modname] }
end

--- Run the command `entry` (from find) with `opts` already parsed, in context `ctx`.
--- Project code's Lua errors become exit 1 naming the file (not db-tool bugs).
function M.execute(entry, ctx, opts)
  local cmd = entry.module
  if entry.origin == "builtin" then return cmd.run(ctx, opts) end
  return require("dbtool.project").run_command(cmd.run, ctx, opts, entry.origin)
end

--- The context a command receives.
function M.context(name, entry, proj, globals)
  globals = globals or {}
  return {
    prog = "database",
    name = name,
    log = log.ns("db " .. name),
    url = globals.url,
    inherits = globals.inherits or {},
    verbose = globals.verbose,
    project = proj,
    origin = entry.origin,
  }
end

--- Exit code of a command's return value: nil/true → 0, false → 1, a number as is.
function M.exit_code(res)
  if res == nil or res == true then return 0 end
  if res == false then return 1 end
  if math.type(res) == "integer" then return res end
  errors.raise(errors.BUG, "command returned a " .. type(res) .. " (expected an exit code)")
end

local function main_help(proj)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(ui.style("bold", "Usage: ") .. "database [-u URL] [-i TABLE]... <subcommand> [options]")
  add("")
  add("PostgreSQL development database tool: local cluster, hydrate, patch, tests,")
  add("migrations, diffs, staging pulls, backups and secrets.")
  add("")
  add(ui.style("bold", "Subcommands:"))
  local cmds = M.commands(proj)
  local names = {}
  for name in pairs(cmds) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    add(string.format("  %-18s %s", name, cmds[name].summary or ""))
  end
  add("")
  add(ui.style("bold", "Global options:"))
  for _, o in ipairs(GLOBAL) do
    local n = table.concat(o, ", ") .. (o.arg and (" " .. o.arg) or "")
    add(string.format("  %-22s %s", n, o.help))
  end
  add(string.format("  %-22s %s", "-h, --help", "show this help; `database <subcommand> --help` for one"))
  add("")
  add(ENVIRONMENT)
  return table.concat(out, "\n") .. "\n"
end

-- A table name as given to -i: an SQL name (`public.users`, `"Mixed"`), or, as the original
-- took it, one identifier written as is (`Mixed`).
local INHERITS_SQL = [[
SELECT pg_catalog.to_regclass($1) IS NOT NULL
    OR pg_catalog.to_regclass(pg_catalog.quote_ident($1)) IS NOT NULL AS ok]]

--- `-i TABLE` checks: exit 5 naming every missing table.
function M.check_inherits(ctx, tables)
  local db = require "dbtool.db"
  local conn <close> = db.connect(ctx)
  local missing = {}
  for _, t in ipairs(tables) do
    local ok, res = pcall(conn.exec, conn, INHERITS_SQL, t)
    if not ok then
      if not (errors.is(res) and res.sqlstate) then error(res, 0) end
      local okq, quoted = pcall(conn.exec, conn,
        "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1)) IS NOT NULL AS ok", t)
      if not (okq and quoted[1].ok) then missing[#missing + 1] = t .. " (" .. res.msg .. ")" end
    elseif not res[1].ok then
      missing[#missing + 1] = t
    end
  end
  if #missing > 0 then
    errors.raise(errors.NO_TABLE, "-i/--inherits: table does not exist: " .. table.concat(missing, ", "),
      { hint = "check the -i/--inherits arguments (schema-qualified names are allowed)" })
  end
end

function M.main(argv)
  local globals = { inherits = {} }
  local rest = {}
  local sub, i = nil, 1
  -- pass 1: global options anywhere (-u, -i); the rest kept in order
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i, #argv do rest[#rest + 1] = argv[j] end
      break
    elseif a == "-u" or a == "--url" or a == "-i" or a == "--inherits" then
      local v = argv[i + 1]
      if v == nil then
        errors.raise(errors.MISSING, "database: " .. a .. " requires a value",
          { hint = "see 'database --help'" })
      end
      if a == "-u" or a == "--url" then globals.url = v else table.insert(globals.inherits, v) end
      i = i + 2
    elseif a:match("^%-%-url=") then
      globals.url = a:sub(7)
      i = i + 1
    elseif a:match("^%-%-inherits=") then
      table.insert(globals.inherits, a:sub(12))
      i = i + 1
    else
      rest[#rest + 1] = a
      i = i + 1
    end
  end
  -- pass 2: options before the subcommand
  local k = 1
  while k <= #rest do
    local a = rest[k]
    if a == "-h" or a == "--help" or a == "-?" or a == "help" or a == "?" then
      if sub == nil then
        io.stdout:write(main_help(project(true)))
        return 0
      end
    elseif a == "--version" then
      io.stdout:write("database (db-tool) ", require("dbtool.core").version, "\n")
      return 0
    elseif a == "--verbose" then
      globals.verbose = true
      log.configure { level = "debug" }
    elseif a == "-q" or a == "--quiet" then
      log.configure { level = "warn" }
    elseif a:sub(1, 1) == "-" then
      errors.raise(errors.NOT_FOUND, "database: unknown option '" .. a .. "'",
        { hint = "options of a subcommand go after it; see 'database --help'" })
    else
      sub = a
      k = k + 1
      break
    end
    k = k + 1
  end
  if sub == nil then
    io.stderr:write(main_help(project(true)))
    log.ns("db"):error("no subcommand specified. Use '--help' for usage information.")
    return errors.GENERIC
  end
  local subargs = {}
  for j = k, #rest do subargs[#subargs + 1] = rest[j] end

  if globals.url then
    env.set("PGURL", globals.url)
    env.set("DB_URL", globals.url)
  end

  -- `database <sub> --help` works even when the project file is broken
  local wants_help = false
  for _, a in ipairs(subargs) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then wants_help = true end
  end
  local proj = project(wants_help)
  local entry = M.find(sub, proj)
  local cmd = entry.module
  local name = cmd.name or sub
  cli.namespace = "db " .. name
  local ctx = M.context(name, entry, proj, globals)
  if globals.verbose then
    ctx.log:debug("handled by %s", entry.origin == "builtin" and ("built-in dbtool.cmd." .. name)
      or tostring(entry.origin))
  end
  local opts
  if cmd.raw then
    opts = subargs
  else
    cmd.prog = cmd.prog or ("database " .. name)
    cmd.name = cmd.name or name
    opts = args.parse(cmd, subargs)
    if opts.help then
      io.stdout:write(args.help(cmd))
      return 0
    end
  end
  if #globals.inherits > 0 then M.check_inherits(ctx, globals.inherits) end
  return M.execute(entry, ctx, opts)
end

return M
