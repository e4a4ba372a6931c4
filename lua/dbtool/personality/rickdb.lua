-- `rickdb`: rick_db's forward-only migration manager, on the shared migration engine.
--
--   rickdb [--config FILE] [database] <command> [args]
--   commands: init, list, check <path>, migrate <path>, flatten <name>,
--             dto <[schema.]object> <file.py>, help [command]
--
-- Compatible with rick_db's CLI (reference/rickdb-upstream.md): rickdb.toml and
-- RICKDB_CONFIG, [db] / [db_<name>] sections, the `_migration` table, the lines scripts read
-- (`Checking 001.sql... new migration`, `Executing 003.sql... success`, ...), its messages
-- and exit codes (255 usage/configuration, 254 unknown database, 253 engine/connection, 252
-- command failed). Improvements that keep those: help without a configuration or database,
-- colour only on a terminal, each file applied together with its row in one transaction
-- under an advisory lock (SQLite: statement by statement with sqlite3_prepare, no naive `;`
-- splitter), flatten in one transaction, `check --exit-code`, `--json` for list and check,
-- checksums in a side table `_migration_checksum`, a dto generator that writes valid Python
-- and can be replaced by a project template. Policy lives in dbtool.rickdb.config and
-- dbtool.rickdb.dto; this file parses arguments, calls them and prints.
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local ui = require "dbtool.ui"
local config = require "dbtool.rickdb.config"

local M = {}

local PROG = "rickdb"

-- rick_db's commands: description (its text), usage, options accepted
M.COMMANDS = {
  check = { desc = "compares existing migrations with the applied migrations, and list new ones",
    usage = "check <path_to_sql_files>", options = { json = true, exit_code = true } },
  dto = { desc = "generate a python data transfer object (DTO) for a given database object",
    usage = "dto <[schema.]table_name> <output_file.py>", options = { force = true, template = true } },
  flatten = { desc = "replaces all migration entries in the migration manager with a new one, with a "
    .. "specified name", usage = "flatten <name_to_use>", options = { lock_wait = true } },
  help = { desc = "display general help about available commands", usage = "help [command]" },
  init = { desc = "install Migration Manager on a database", usage = "init", options = { lock_wait = true } },
  list = { desc = "list applied migrations, sorted by time", usage = "list",
    title = "List applied migrations",
    options = { json = true } },
  migrate = { desc = "execute migrations from the specified location", usage = "migrate <path_to_sql_files>",
    options = { lock_wait = true } },
}
M.ORDER = { "check", "dto", "flatten", "help", "init", "list", "migrate" }

-- options: accepted anywhere on the line
local OPTIONS = {
  { "--config", key = "config", arg = "FILE" },
  { "--json", key = "json" },
  { "--exit-code", key = "exit_code" },
  { "-f", "--force", key = "force" },
  { "--template", key = "template", arg = "MODULE" },
  { "--lock-wait", key = "lock_wait", arg = "SECONDS" },
  { "--all", key = "all" },
  { "-v", "--verbose", key = "verbose" },
  { "--no-color", key = "no_color" },
  { "-h", "--help", key = "help" },
}
local BY_FLAG = {}
for _, o in ipairs(OPTIONS) do
  for _, f in ipairs(o) do BY_FLAG[f] = o end
end

local function usage_error(msg, hint)
  errors.raise(config.EXIT_USAGE, msg, { hint = hint })
end

--- Split argv into options and words. Raises (255) on an unknown option or a missing value.
function M.parse(argv)
  local opts, words = {}, {}
  local i, only_words = 1, false
  while i <= #argv do
    local a = argv[i]
    if only_words or a == "-" or a:sub(1, 1) ~= "-" then
      words[#words + 1] = a
    elseif a == "--" then
      only_words = true
    else
      local flag, value = a, nil
      local eq = a:find("=", 3, true)
      if a:sub(1, 2) == "--" and eq then flag, value = a:sub(1, eq - 1), a:sub(eq + 1) end
      local o = BY_FLAG[flag]
      if not o then
        usage_error("invalid option '" .. a .. "'; try '" .. PROG .. " help'")
      end
      if o.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then usage_error("option " .. flag .. " needs a value (" .. o.arg .. ")") end
        end
        opts[o.key] = value
      else
        if value ~= nil then usage_error("option " .. flag .. " takes no value") end
        opts[o.key] = true
      end
      opts["_" .. o.key] = flag
    end
    i = i + 1
  end
  return opts, words
end

--- rick_db's dispatch: `[database] <command> [args]`. Returns {db, command, args, invalid}
--- (db nil = the default [db]; invalid = the word that is not a command). Pure.
function M.dispatch(words)
  local w1 = words[1]
  if w1 == nil then return { command = "help", args = {} } end
  local rest = {}
  if M.COMMANDS[w1] then
    for i = 2, #words do rest[#rest + 1] = words[i] end
    return { command = w1, args = rest }
  end
  if #words == 1 then return { invalid = w1, args = {} } end
  for i = 3, #words do rest[#rest + 1] = words[i] end
  local w2 = words[2]
  if M.COMMANDS[w2] then return { db = w1, command = w2, args = rest } end
  return { db = w1, invalid = w2, args = rest }
end

-- ---------------------------------------------------------------- output

local function write(fd, text)
  local f = fd == 2 and io.stderr or io.stdout
  f:write(text)
  f:flush()
end

local function style(name, text, fd)
  return ui.style(name, text, fd or 1)
end

local function warn(msg)
  write(2, style("yellow", "Warning : " .. log.redact(msg), 2) .. "\n")
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
  write(2, style("red", prefix .. " " .. log.redact(head), 2) .. "\n")
  if e.where and not e.toml then lines[#lines + 1] = "  at " .. e.where end
  if e.excerpt then lines[#lines + 1] = log.redact(e.excerpt) end
  if e.detail then lines[#lines + 1] = indent("detail: " .. e.detail) end
  if e.sqlstate then lines[#lines + 1] = "  sqlstate: " .. e.sqlstate end
  if e.hint then lines[#lines + 1] = indent("hint: " .. e.hint) end
  if #lines > 0 then write(2, log.redact(table.concat(lines, "\n")) .. "\n") end
end

--- The logger handed to the engine and the stores: warnings as rickdb prints them
--- (`Warning : ...`), everything else as dbtool.log lines (shown with --verbose).
local function logger()
  local base = log.ns(PROG)
  local l = setmetatable({}, { __index = base })
  function l.warn(self, fmt, ...)
    if base.enabled(self, "warn") then warn(select("#", ...) > 0 and string.format(fmt, ...) or fmt) end
  end
  return l
end

local function fail(msg, fields)
  errors.raise(config.EXIT_FAILED, msg, fields)
end

-- ---------------------------------------------------------------- help

function M.help_text(topic)
  local c = topic and M.COMMANDS[topic]
  if c then
    local out = {
      style("bold", c.title or c.desc),
      style("bold", "Usage: " .. PROG .. (topic == "help" and " " or " [database] ") .. c.usage),
    }
    local extra = M.EXTRA_HELP[topic]
    if extra then out[#out + 1] = "\n" .. extra end
    return table.concat(out, "\n") .. "\n"
  end
  local out = { "", "Available commands:", string.rep("=", 19) }
  for _, name in ipairs(M.ORDER) do
    out[#out + 1] = style("bold", name) .. style("bold", "\t") .. style("green", M.COMMANDS[name].desc)
  end
  out[#out + 1] = ""
  out[#out + 1] = M.GENERAL_HELP
  return table.concat(out, "\n")
end

M.GENERAL_HELP = [[
Usage: rickdb [--config FILE] [database] <command> [args]      (rickdb help <command>)

The database is [db] of the configuration file, or [db_<name>] when <name> comes first.
Configuration: --config FILE, else $RICKDB_CONFIG, else ./rickdb.toml:

  [db]                          # the default database
  engine = "pgsql"              # pgsql, pg, postgres | sqlite, sqlite3, sql3
  host = "localhost"            # host, port, user, password, dbname (or database),
  port = 5432                   # sslmode, connect_timeout: any libpq keyword
  user = "me"
  dbname = "app"
  passfile = "secrets/db.pw"    # first line is the password (relative to this file)

  [db_test]                     # rickdb test <command>
  engine = "sqlite"
  db_file = "/tmp/test.db"      # relative to the working directory

  [rickdb]                      # optional settings of this implementation
  checksum = "warn"             # applied files that changed: warn | verify (fail) | off
  lock_wait = 60                # seconds to wait for a concurrent migration
  lock_timeout = "10s"          # lock_timeout of migration statements (PostgreSQL)
  dto_template = "dbtool.rickdb.dto_python"   # module, or a .lua file (relative to this file)

Options:
  --config FILE        configuration file
  --json               list, check: machine-readable output
  --exit-code          check: exit 1 when new migrations are pending
  -f, --force          dto: overwrite the output file
  --template MODULE    dto: the generator (a module name or a .lua file)
  --lock-wait SECONDS  init, migrate, flatten: wait at most this long for a concurrent run
  --all                the command on every database of the configuration ([db], then each
                       [db_<name>] by name); each one's output follows a line [db_<name>];
                       exit: the first failure's code, 0 when all succeeded
  -v, --verbose        more logging (or HECTIC_LOG=debug)
  --no-color           no colour (also NO_COLOR=1; colour is used only on a terminal)
  -h, --help           help

Migrations are the *.sql files of a directory, applied once each in byte order of their
names, recorded in the table _migration. Each file runs in one transaction together with
its row (a first line `-- db-tool: no-transaction` runs it outside one, for CREATE INDEX
CONCURRENTLY), one migration run at a time per database.

Exit codes: 0 ok, 1 new migrations pending (check --exit-code), 252 command failed,
253 engine or connection error, 254 database not in the configuration file,
255 configuration or usage error, 130 interrupted.
]]

M.EXTRA_HELP = {
  check = [[
Prints `Checking <file>... already applied | empty migration | new migration` for every
*.sql file of the directory, in the order migrate applies them.
  --exit-code   exit 1 when there are new migrations (empty files do not count)
  --json        {"migrations": [{"name", "state": applied|modified|empty|pending}],
                 "missing": [applied names without a file], "counts": {...}}]],
  migrate = [[
Applies every *.sql file of the directory that is not recorded yet, in byte order of the
file names, printing `Executing <file>... success` (or `skipping, already applied`,
`skipping, empty migration`). Each file and its _migration row are committed together; on
an error nothing of that file stays, earlier files stay applied, and the run stops (252).
Empty files are skipped and not recorded (as rick_db does).
  --lock-wait SECONDS   wait for a concurrent migration at most this long (default 60)]],
  flatten = [[
Replaces every row of _migration by one row named <name_to_use>, in one transaction, e.g.
after replacing the migration files by a schema dump. Delete the old files afterwards: they
are not recorded any more, so migrate would run them again.]],
  dto = [[
Writes a rick_db @fieldmapper class for a table or view (PostgreSQL: schema.table, public
by default; SQLite: main by default). Columns that would not work as Python attributes
(keywords, leading '_', record method names such as pk or values) get a trailing '_'; a
composite primary key sets no pk=. Renames are explained in comments.
  -f, --force          overwrite an existing output file
  --template MODULE    another generator: a Lua module name or a .lua file returning
                       {render = function(obj, dto) return text end} (see README)]],
  list = [[
Prints `<applied>\t<name>` for every recorded migration, oldest first.
  --json   {"migrations": [{"id", "name", "applied", "checksum"}]}]],
  init = [[
Creates the _migration table (and _migration_checksum, where db-tool keeps checksums).]],
}

-- ---------------------------------------------------------------- connection

local function section_engine_name(ctx)
  return ctx.conn.engine
end

--- Open the rickdb store of the selected database. create: SQLite may create the file.
local function open_store(ctx, create)
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

local function require_installed(s)
  if not s:installed() then
    fail("Migration Manager is not installed", { hint = "run `" .. PROG .. " init` first" })
  end
end

local function is_dir(path)
  local stat = require "posix.sys.stat"
  local st = stat.stat(path)
  return st ~= nil and stat.S_ISDIR(st.st_mode) ~= 0
end

--- The migration directory argument (rick_db's checks and messages).
local function migration_dir(ctx)
  local dir = ctx.args[1]
  if dir == nil or dir == "" then fail("missing path to migration files") end
  if not is_dir(dir) then fail("migration path must be a directory", { hint = dir
    .. " is not a directory" }) end
  local trimmed = dir:gsub("/+$", "")
  if trimmed == "" then trimmed = "/" end
  return trimmed
end

local function flat_files(dir)
  local files = require("dbtool.migrate.layout_flat").discover(dir)
  return require("dbtool.migrate.policy").sort(files)
end

local function read_file(path)
  local f, msg = io.open(path, "rb")
  if not f then fail("cannot read " .. tostring(msg)) end
  local text = f:read("a")
  f:close()
  if text == nil then fail("cannot read " .. path) end
  return text
end

local function json(v)
  return require("dbtool.migrate").json(v)
end

local function jarray(t)
  return require("dbtool.migrate").array(t)
end

-- ---------------------------------------------------------------- commands

local commands = {}

function commands.init(ctx)
  local s <close> = open_store(ctx, true)
  s:lock(ctx.lock_wait, ctx.log)
  return errors.finally(function() s:unlock() end, function()
    if s:installed() then
      if s.checksums then pcall(s.ensure_checksums, s) end
      write(1, style("yellow", "Warning : Migration Manager is already installed") .. "\n")
      return 0
    end
    local ok, err = errors.try(s.install, s)
    if not ok then
      if err.bug or err.interrupted then error(err, 0) end
      fail(err.msg, { detail = err.detail, hint = err.hint })
    end
    write(1, style("green", "Migration Manager installed sucessfully!") .. "\n")
    return 0
  end)
end

function commands.list(ctx)
  local s <close> = open_store(ctx, false)
  require_installed(s)
  local rows = s:list()
  if ctx.opts.json then
    local sums = {}
    if s.has_checksums and s:has_checksums() then
      for _, a in ipairs(s:applied()) do sums[a.name] = a.hash end
    end
    local items = {}
    for i, r in ipairs(rows) do
      items[i] = { id = r.id, name = r.name, applied = r.applied, checksum = sums[r.name] }
    end
    write(1, json { database = ctx.name, engine = section_engine_name(ctx), migrations = jarray(items) }
      .. "\n")
    return 0
  end
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = tostring(r.applied or "None") .. "\t" .. style("bold", r.name)
  end
  if #out > 0 then write(1, table.concat(out, "\n") .. "\n") end
  return 0
end

-- the state of every file for check: rows {name, path, state, applied = record | nil}
local function classify(ctx, s, dir)
  local files = flat_files(dir)
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
      local text = read_file(f.path)
      row.state = text:match("^%s*$") and "empty" or "pending"
    end
    rows[i] = row
  end
  local missing = {}
  for _, a in ipairs(applied) do if not on_disk[a.name] then missing[#missing + 1] = a.name end end
  return rows, missing
end

local CHECK_TEXT = {
  applied = { "yellow", "already applied" }, modified = { "yellow", "already applied" },
  empty = { "yellow", "empty migration" }, pending = { "bold", "new migration" },
}

function commands.check(ctx)
  local s <close> = open_store(ctx, false)
  require_installed(s)
  local dir = migration_dir(ctx)
  local rows, missing = classify(ctx, s, dir)
  local counts = { applied = 0, modified = 0, empty = 0, pending = 0, missing = #missing }
  for _, r in ipairs(rows) do counts[r.state] = counts[r.state] + 1 end
  if ctx.opts.json then
    local items = {}
    for i, r in ipairs(rows) do
      items[i] = { name = r.name, state = r.state, applied = r.applied and r.applied.applied_at or nil,
        checksum = r.hash or (r.applied and r.applied.hash) or nil, file_checksum = r.file_hash }
    end
    write(1, json { database = ctx.name, engine = section_engine_name(ctx), path = dir,
      migrations = jarray(items), missing = jarray(missing), counts = counts } .. "\n")
  else
    local lines, styled = {}, {}
    for k, t in pairs(CHECK_TEXT) do styled[k] = style(t[1], t[2]) end
    for i, r in ipairs(rows) do lines[i] = "Checking " .. r.name .. "... " .. styled[r.state] .. "\n" end
    write(1, table.concat(lines)) -- one write for 10,000 files
    for _, r in ipairs(rows) do
      if r.state == "modified" then
        warn(r.name .. " changed since it was applied (sha256 " .. r.file_hash:sub(1, 12) .. ", applied as "
          .. r.hash:sub(1, 12) .. "); changes to an applied migration are not applied: put them in a new one")
      end
    end
  end
  if ctx.opts.exit_code and counts.pending > 0 then return 1 end
  return 0
end

function commands.migrate(ctx)
  local s <close> = open_store(ctx, false)
  require_installed(s)
  local dir = migration_dir(ctx)
  local store_rickdb = require "dbtool.migrate.store_rickdb"
  local migrate = require "dbtool.migrate"

  -- the lines: every file in order; those the run does not apply are "already applied"
  local files, planned, nextf = nil, {}, 1
  local open_line = false
  local function skip_until(name)
    while files and files[nextf] and files[nextf].name ~= name do
      local f = files[nextf]
      if not planned[f.name] then
        write(1, "Executing " .. f.name .. "... " .. style("yellow", "skipping, already applied") .. "\n")
      end
      nextf = nextf + 1
    end
    if files and files[nextf] then nextf = nextf + 1 end
  end
  local hooks = {
    before_migrate = function(info)
      files = flat_files(dir)
      for _, st in ipairs(info.plan.steps) do planned[st.m.name] = true end
    end,
    before_each = function(info)
      skip_until(info.name)
      write(1, "Executing " .. info.name .. "... ")
      open_line = true
    end,
    after_each = function(info)
      local text = ({ applied = { "green", "success" }, empty = { "yellow", "skipping, empty migration" },
        skipped = { "yellow", "skipping, already applied" } })[info.outcome] or { "green", "success" }
      write(1, style(text[1], text[2]) .. "\n")
      open_line = false
    end,
  }
  local pol = {}
  for k, v in pairs(store_rickdb.POLICY) do pol[k] = v end
  pol.checksum = ctx.settings.checksum or "warn"
  pol.lock_wait = ctx.lock_wait
  if ctx.settings.lock_timeout ~= nil then pol.lock_timeout = ctx.settings.lock_timeout end
  if ctx.conn.autocommit then pol.transaction = "none" end
  pol.hooks = hooks
  local eng = migrate.new { store = s, layout = "flat", dir = dir, policy = pol, log = ctx.log,
    report_errors = false, progress = false }
  local ok, err = errors.try(eng.migrate, eng, { kind = "up", n = "all" })
  if not ok then
    if open_line then write(1, style("red", "error") .. "\n") end
    if err.bug or err.interrupted then error(err, 0) end
    local cause = err.cause or err
    if err.cause and err.hint then cause.hint = cause.hint or err.hint end
    if err.note then cause.hint = err.note end
    fail(cause.msg, { where = cause.where, excerpt = cause.excerpt, detail = cause.detail,
      hint = cause.hint, sqlstate = cause.sqlstate })
  end
  if not files then files = flat_files(dir) end
  skip_until(nil)
  return 0
end

function commands.flatten(ctx)
  local name = ctx.args[1]
  local s <close> = open_store(ctx, false)
  require_installed(s)
  if name == nil or name == "" then fail("missing name for flattened migration to be inserted") end
  s:lock(ctx.lock_wait, ctx.log)
  return errors.finally(function() s:unlock() end, function()
    if #s:list() == 0 then fail("no migrations inserted yet, cannot flatten") end
    write(1, "Flattening all migrations to " .. name .. "... ")
    local ok, err = errors.try(s.flatten, s, name)
    if not ok then
      write(1, style("red", "error") .. "\n")
      if err.bug or err.interrupted then error(err, 0) end
      fail(err.msg, { detail = err.detail, hint = err.hint })
    end
    write(1, style("green", "success") .. "\n")
    return 0
  end)
end

-- Python's OSError text for a file that cannot be created ("[Errno 2] No such file or
-- directory: 'x/y.py'"), as rick_db printed it.
local function os_error(msg, errno, path)
  local text = tostring(msg):match(": ([^:]*)$") or tostring(msg)
  return string.format("[Errno %d] %s: '%s'", errno or 0, text, path)
end

local function write_output(path, text, force)
  local fcntl = require "posix.fcntl"
  local unistd = require "posix.unistd"
  local flags = fcntl.O_WRONLY | fcntl.O_CREAT | (force and fcntl.O_TRUNC or fcntl.O_EXCL)
  local fd, msg, errno = fcntl.open(path, flags, 420)
  if not fd then
    if errno == require("posix.errno").EEXIST then
      fail("Output file already exists", { hint = "pass --force to overwrite " .. path })
    end
    fail(os_error(msg, errno, path))
  end
  local n, wmsg = unistd.write(fd, text)
  unistd.close(fd)
  if n ~= #text then fail("cannot write " .. path .. ": " .. tostring(wmsg)) end
end

function commands.dto(ctx)
  local object, file = ctx.args[1], ctx.args[2]
  if object == nil or object == "" then fail("Missing table name") end
  if file == nil or file == "" then fail("Missing output file") end
  local exists = require("posix.sys.stat").stat(file) ~= nil
  if exists and not ctx.opts.force then
    fail("Output file already exists", { hint = "pass --force to overwrite " .. file })
  end
  local dto = require "dbtool.rickdb.dto"
  local tpl
  do
    local spec, base = ctx.opts.template, "."
    if not spec and ctx.settings.dto_template then spec, base = ctx.settings.dto_template, ctx.cfg.dir end
    local ok, res = errors.try(dto.load_template, spec, base)
    if not ok then
      if res.bug then error(res, 0) end
      fail(res.msg)
    end
    tpl = res
  end
  local s <close> = open_store(ctx, false)
  local obj = dto.describe(s, object)
  if not obj then
    fail("Database object '" .. object .. "' not found",
      { hint = s.engine == "postgresql" and "name a table or view as [schema.]name (schema public by default)"
        or "name a table or view of the database" })
  end
  local ok, text = errors.try(dto.render, obj, tpl)
  if not ok then
    if text.bug then error(text, 0) end
    fail(text.msg)
  end
  write_output(file, text, ctx.opts.force)
  write(1, style("bold", "DTO written to file " .. file) .. "\n")
  return 0
end

-- ---------------------------------------------------------------- main

local function run(argv)
  local opts, words = M.parse(argv)
  if opts.no_color then require("posix.stdlib").setenv("NO_COLOR", "1") end -- read by dbtool.ui
  if opts.verbose then
    log.configure { level = "debug" }
  elseif not os.getenv("HECTIC_LOG") then
    log.configure { level = "warn" }
  end
  local d = M.dispatch(words)
  -- help needs no configuration and no database
  if opts.help or d.command == "help" then
    local topic
    if d.command == "help" then topic = d.args[1] else topic = d.command or d.invalid end
    write(1, M.help_text(topic))
    return 0
  end
  if d.invalid and not d.db then
    usage_error("invalid command '" .. d.invalid .. "'; try '" .. PROG .. " help'")
  end
  if d.command then
    local allowed = M.COMMANDS[d.command].options or {}
    for _, o in ipairs(OPTIONS) do
      if opts["_" .. o.key] and not allowed[o.key] and o.key ~= "config" and o.key ~= "verbose"
        and o.key ~= "no_color" and o.key ~= "help" and o.key ~= "all" then
        usage_error("option " .. opts["_" .. o.key] .. " does not apply to '" .. d.command .. "'",
          "see '" .. PROG .. " help " .. d.command .. "'")
      end
    end
  end
  local lock_wait = 60
  if opts.lock_wait then
    lock_wait = tonumber(opts.lock_wait)
    if not lock_wait or lock_wait < 0 then
      usage_error("--lock-wait expects a number of seconds, not '" .. opts.lock_wait .. "'")
    end
  end

  local path = config.locate(opts.config)
  local cfg = config.load(path)
  for _, w in ipairs(cfg.warnings) do warn(w) end
  if opts.all and d.db then
    usage_error("--all runs the command on every database: name none ('" .. d.db .. "' given)")
  end
  if not opts.all then config.select(cfg, d.db) end -- a missing section first (254), as rick_db
  if d.invalid then
    usage_error("invalid command '" .. d.invalid .. "'; try '" .. PROG .. " help'")
  end
  if not opts.lock_wait and cfg.settings.lock_wait then lock_wait = cfg.settings.lock_wait end
  if #d.args > (({ check = 1, migrate = 1, flatten = 1, dto = 2 })[d.command] or 0) then
    warn("ignoring extra arguments after '" .. d.command .. "'")
  end
  local function one(name)
    local section, key = config.select(cfg, name)
    local conn, warnings = config.connection(section, key, cfg)
    for _, w in ipairs(warnings) do warn(w) end
    if conn.password then log.add_secret(conn.password) end
    local ctx = { cfg = cfg, settings = cfg.settings, section = section, key = key, name = name or "db",
      conn = conn, opts = opts, args = d.args, lock_wait = lock_wait, log = logger() }
    return commands[d.command](ctx)
  end
  if not opts.all then return one(d.db) end
  return M.run_all(cfg, d.command, one)
end

--- `rickdb --all COMMAND`: the command on every database of the configuration ([db], then
--- every [db_<name>] in name order), one after the other; each one's output follows a line
--- "[db_<name>]". A failing database does not stop the others. Exit: 0 when all succeeded,
--- else the first failure's code; a summary line on stderr.
function M.run_all(cfg, command, one)
  local names = {}
  for _, key in ipairs(cfg.names) do names[#names + 1] = key end
  if #names == 0 then
    fail(config.EXIT_NO_DB, "no database in " .. cfg.file .. " (no [db] or [db_<name>] section)")
  end
  local code, failed = 0, {}
  for _, key in ipairs(names) do
    write(1, "[" .. key .. "]\n")
    io.stdout:flush()
    local ok, res = errors.try(one, key ~= "db" and key:sub(4) or nil)
    local c
    if ok then
      c = res or 0
    else
      if res.interrupted or res.bug then error(res, 0) end
      if res.exit < config.EXIT_FAILED then res.exit = config.EXIT_FAILED end
      M.report(res)
      c = res.exit
    end
    io.stdout:flush()
    if c ~= 0 then
      failed[#failed + 1] = key .. " (exit " .. c .. ")"
      if code == 0 then code = c end
    end
  end
  warn(string.format("%s --all %s: %d database(s), %d failed%s", PROG, command, #names, #failed,
    #failed > 0 and (": " .. table.concat(failed, ", ")) or ""))
  return code
end

function M.main(argv)
  require("dbtool.cli").namespace = PROG
  local ok, res = errors.try(run, argv)
  io.stdout:flush()
  if ok then return res end
  local e = res
  if e.bug then error(e, 0) end
  if e.interrupted then
    M.report(e)
    return e.exit
  end
  if e.exit < config.EXIT_FAILED then e.exit = config.EXIT_FAILED end -- library errors: the command failed
  M.report(e)
  return e.exit
end

M.commands = commands

return M
