-- What the `rickdb` subcommands share (lua/dbtool/rickdb/cmd/*.lua): the configuration and
-- connection of the selected database, the store, rick_db's output conventions (`Error :`,
-- `Warning :`, colours on a terminal) and its exit codes. Configuration policy is in
-- dbtool.rickdb.config; migrations in dbtool.migrate.
local config = require "dbtool.rickdb.config"
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local ui = require "dbtool.ui"

local M = {}

M.PROG = "rickdb"

-- ---------------------------------------------------------------- output

function M.write(fd, text)
  local f = fd == 2 and io.stderr or io.stdout
  f:write(text)
  f:flush()
end

function M.style(name, text, fd)
  return ui.style(name, text, fd or 1)
end

--- `Warning : msg` on stderr (yellow on a terminal).
function M.warn(msg)
  M.write(2, M.style("yellow", "Warning : " .. log.shown(msg), 2) .. "\n")
end

local function indent(text)
  return "  " .. tostring(text):gsub("\n", "\n  ")
end

--- Print an error value as rickdb does (`Error : msg`), with the details we know below it.
function M.report(e)
  local prefix = e.prefix or "Error :"
  local head = e.msg
  if e.toml and e.where then head = e.where .. ": " .. head end
  local lines = {}
  if e.sqlstate then
    -- rick_db printed the server's message alone: the code goes below it
    head = head:gsub(" %(SQLSTATE " .. e.sqlstate .. "%)$", "")
  end
  M.write(2, M.style("red", prefix .. " " .. log.shown(head), 2) .. "\n")
  if e.where and not e.toml then lines[#lines + 1] = "  at " .. e.where end
  if e.excerpt then lines[#lines + 1] = log.redact(e.excerpt) end
  if e.detail then lines[#lines + 1] = indent("detail: " .. e.detail) end
  if e.sqlstate then lines[#lines + 1] = "  sqlstate: " .. e.sqlstate end
  if e.hint then lines[#lines + 1] = indent("hint: " .. e.hint) end
  if #lines > 0 then M.write(2, log.shown(table.concat(lines, "\n")) .. "\n") end
end

--- The logger handed to the engine and the stores: warnings as rickdb prints them
--- (`Warning : ...`), everything else as dbtool.log lines (shown with --verbose).
function M.logger()
  local base = log.ns(M.PROG)
  local l = setmetatable({}, { __index = base })
  function l.warn(self, fmt, ...)
    if base.enabled(self, "warn") then M.warn(select("#", ...) > 0 and string.format(fmt, ...) or fmt) end
  end
  return l
end

--- A command failed (252).
function M.fail(msg, fields)
  errors.raise(config.EXIT_FAILED, msg, fields)
end

--- A usage error (255).
function M.usage_error(msg, hint)
  errors.raise(config.EXIT_USAGE, msg, { hint = hint })
end

-- ---------------------------------------------------------------- the database

--- --lock-wait SECONDS → number (255 when it is not one), or nil.
function M.lock_wait_option(opts)
  if opts.lock_wait == nil then return nil end
  local n = tonumber(opts.lock_wait)
  if not n or n < 0 then
    M.usage_error("--lock-wait expects a number of seconds, not '" .. opts.lock_wait .. "'")
  end
  return n
end

--- The configuration file and the database of the command line. Fills ctx.cfg, settings,
--- section, key, name, conn, lock_wait and ctx.log; warns about what the file has wrong.
--- `nargs`: how many positional arguments the command uses (more are ignored with a warning).
function M.setup(ctx, opts, nargs)
  ctx.log = M.logger()
  local lock_wait = M.lock_wait_option(opts) or 60
  local cfg = config.load(config.locate(ctx.globals.config))
  for _, w in ipairs(cfg.warnings) do M.warn(w) end
  local section, key = config.select(cfg, ctx.globals.database)
  if not opts.lock_wait and cfg.settings.lock_wait then lock_wait = cfg.settings.lock_wait end
  local conn, warnings = config.connection(section, key, cfg)
  for _, w in ipairs(warnings) do M.warn(w) end
  if conn.password then log.add_secret(conn.password) end
  ctx.args = M.arguments(opts)
  if #ctx.args > (nargs or 0) then M.warn("ignoring extra arguments after '" .. ctx.name .. "'") end
  ctx.cfg, ctx.settings, ctx.section, ctx.key = cfg, cfg.settings, section, key
  ctx.name_db = ctx.globals.database or "db"
  ctx.conn, ctx.lock_wait = conn, lock_wait
  return ctx
end

--- The positional words of a command (its named positionals, then the rest).
function M.arguments(opts)
  local out = {}
  for _, a in ipairs(opts.positional or {}) do out[#out + 1] = a end
  return out
end

--- Open the rickdb store of the selected database. create: SQLite may create the file.
function M.open_store(ctx, create)
  local c = ctx.conn
  local d
  if c.engine == "postgresql" then
    d = { engine = "postgresql", target = c.params }
  else
    d = { engine = "sqlite", path = c.path, uri = c.uri }
  end
  local store_rickdb = require "dbtool.migrate.store_rickdb"
  local ok, s = errors.try(store_rickdb.open, d, { log = ctx.log, create = create,
    lock_wait = c.timeout or ctx.lock_wait, checksums = ctx.settings.checksum ~= "off" })
  if not ok then
    if s.bug or s.interrupted then error(s, 0) end
    s.exit = config.EXIT_ENGINE
    s.prefix = "Error:"
    error(s, 0)
  end
  return s
end

function M.require_installed(s)
  if not s:installed() then
    M.fail("Migration Manager is not installed", { hint = "run `" .. M.PROG .. " init` first" })
  end
end

local function is_dir(path)
  local stat = require "posix.sys.stat"
  local st = stat.stat(path)
  return st ~= nil and stat.S_ISDIR(st.st_mode) ~= 0
end

--- The migration directory argument (rick_db's checks and messages).
function M.migration_dir(ctx)
  local dir = ctx.args[1]
  if dir == nil or dir == "" then M.fail("missing path to migration files") end
  if not is_dir(dir) then
    M.fail("migration path must be a directory", { hint = dir .. " is not a directory" })
  end
  local trimmed = dir:gsub("/+$", "")
  if trimmed == "" then trimmed = "/" end
  return trimmed
end

--- The *.sql files of `dir` in the order migrate applies them.
function M.flat_files(dir)
  local files = require("dbtool.migrate.layout_flat").discover(dir)
  return require("dbtool.migrate.policy").sort(files)
end

function M.read_file(path)
  local f, msg = io.open(path, "rb")
  if not f then M.fail("cannot read " .. tostring(msg)) end
  local text = f:read("a")
  f:close()
  if text == nil then M.fail("cannot read " .. path) end
  return text
end

function M.json(v)
  return require("dbtool.migrate").json(v)
end

function M.jarray(t)
  return require("dbtool.migrate").array(t)
end

--- The state of every file for check: rows {name, path, state, applied = record | nil} and
--- the applied names without a file.
function M.classify(ctx, s, dir)
  local files = M.flat_files(dir)
  local applied = s:applied()
  local by = {}
  for _, a in ipairs(applied) do by[a.name] = a end
  if ctx.settings.checksum ~= "off" then
    -- through the engine's checksum cache: unchanged files are not read
    require("dbtool.migrate").new { dir = dir, layout = "flat" }:hash(files)
  end
  local rows, on_disk = {}, {}
  for i, f in ipairs(files) do
    on_disk[f.name] = true
    local a = by[f.name]
    local row = { name = f.name, path = f.path, applied = a }
    if a then
      row.state = "applied"
      if a.hash and ctx.settings.checksum ~= "off" then
        local h = f.hash
        if h ~= a.hash then
          row.state = "modified"
          row.hash, row.file_hash = a.hash, h
        end
      end
    else
      local text = M.read_file(f.path)
      row.state = text:match("^%s*$") and "empty" or "pending"
    end
    rows[i] = row
  end
  local missing = {}
  for _, a in ipairs(applied) do if not on_disk[a.name] then missing[#missing + 1] = a.name end end
  return rows, missing
end

--- Names of the databases of the configuration file (for completions): {"app", ...}.
function M.database_names(globals)
  local ok, cfg = pcall(function() return config.load(config.locate(globals and globals.config)) end)
  if not ok then return {} end
  local out = {}
  for _, key in ipairs(cfg.names or {}) do
    if key ~= "db" then out[#out + 1] = key:sub(4) end
  end
  return out
end

return M
