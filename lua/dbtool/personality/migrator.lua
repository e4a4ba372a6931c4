-- `migrator`: hectic-compatible migrations on PostgreSQL and SQLite, over dbtool.migrate.
--
--   migrator [OPTIONS] COMMAND [ARGS]     commands: init, create, list, status (fetch), migrate
--
-- Compatible with the original shell tool (reference/migrator-upstream.md): the same layout,
-- tables, exit codes and the messages scripts grep for. Its bugs are fixed as its help
-- promised: --force works, create writes the layout migrate reads, checksums are verified,
-- --db-url is global, a URL-less run says so (exit 3).
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"
local migrate = require "dbtool.migrate"

local M = {}

M.VERSION = migrate.VERSION

local COMMANDS = { init = true, migrate = true, create = true, list = true, status = true, fetch = true,
  baseline = true }
local DIRECTIONS = { up = true, down = true, to = true }

-- Options: where they are valid (nil = everywhere), whether they take a value.
local OPTIONS = {
  { "-d", "--migration-dir", key = "dir", arg = "DIR" },
  { "-u", "--db-url", key = "url", arg = "URL" },
  { "-v", "--set", key = "set", arg = "NAME=VALUE", multi = true },
  { "--inherits", key = "inherits", arg = "TABLE", multi = true },
  { "--verbose", key = "verbose" },
  { "-q", "--quiet", key = "quiet" },
  { "--dry-run", key = "dry_run", only = { init = true, migrate = true, baseline = true } },
  { "--sql", key = "sql", only = { migrate = true } },
  { "--exit-code", key = "exit_code", only = { status = true, fetch = true } },
  { "--wait", key = "wait", optarg = "SECONDS", only = { migrate = true, status = true, fetch = true,
    init = true, baseline = true } },
  { "-f", "--force", key = "force", only = { migrate = true } },
  { "--allow-modified", key = "allow_modified", only = { migrate = true } },
  { "--single-transaction", key = "single", only = { migrate = true } },
  { "--lock-wait", key = "lock_wait", arg = "SECONDS",
    only = { migrate = true, init = true, baseline = true } },
  { "--lock-timeout", key = "lock_timeout", arg = "DURATION", only = { migrate = true } },
  { "--json", key = "json", only = { status = true, fetch = true, migrate = true } },
  { "--targets", key = "targets", arg = "FILE", only = { migrate = true } },
  { "--all-targets", key = "all_targets", only = { migrate = true } },
  { "-j", "--jobs", key = "jobs", arg = "N", only = { migrate = true } },
  { "--fail-fast", key = "fail_fast", only = { migrate = true } },
  { "--log-dir", key = "log_dir", arg = "DIR", only = { migrate = true } },
  { "--result-file", key = "result_file", arg = "FILE", only = { migrate = true } },
  { "-r", "--raw", key = "raw", only = { list = true } },
  { "-n", "--name", key = "name", arg = "NAME", only = { create = true } },
}

local BY_FLAG = {}
for _, o in ipairs(OPTIONS) do
  for _, f in ipairs(o) do BY_FLAG[f] = o end
end

local HELP = [[
Usage: migrator [OPTIONS] COMMAND [ARGS...]

A database migration tool for PostgreSQL and SQLite: ordered, two-way SQL migrations in
timestamped directories, recorded in hectic.migration (PostgreSQL) or hectic_migration
(SQLite). Compatible with hectic's migrator.

Commands:
  init [--dry-run]             install the bookkeeping (PostgreSQL: the hectic bundle)
  create [--name NAME]         new migration <UTC timestamp>-<name>/ with up.sql and down.sql
  list [--raw]                 migrations on disk (no database needed)
  status [--json] [--exit-code]   applied / pending / modified / missing, with hashes and
                               times (fetch is an alias); --exit-code: exit 1 when anything
                               is pending (a versioned or a new/changed repeatable migration)
  baseline NAME|PREFIX|latest  record the migrations up to NAME as applied without running
                               them (a database that has their schema already adopts them);
                               refused when any migration is recorded
  migrate up [N|all|latest|head]         apply the next N (default 1) or all pending
  migrate down [N]                       revert the last N (default 1)
  migrate to NAME|PREFIX|latest|head|last   go up or down to a migration

Options (accepted before or after the command):
  -u, --db-url URL             database (default: $DB_URL, $PGURL, $DATABASE_URL, else
                               libpq's PGHOST, PGPORT, PGDATABASE, PGUSER, PGSERVICE, with
                               PGPASSWORD or .pgpass). postgresql://..., postgres://...,
                               key=value conninfo, sqlite://PATH, or a *.db, *.sqlite,
                               *.sqlite3 path
  --wait[=SECONDS]             wait for the server to accept connections (default 60 s)
  -d, --migration-dir DIR      migrations directory (default: $MIGRATION_DIR or ./migration)
  -v, --set NAME=VALUE         psql variable for the scripts (:NAME, :'NAME'); repeatable
  --verbose / -q, --quiet      more / less logging (or HECTIC_LOG=level)
  -V, --version                print the version
  -h, --help                   this help

Migrate options:
  --dry-run                    print the plan (files, directions), change nothing
  --dry-run --sql              print the statements that would run (PostgreSQL), with the
                               scripts' \i, \ir, :variables and COPY data resolved
  -f, --force                  go on although the applied history does not match the
                               files (warns)
  --allow-modified             go on although applied migrations changed on disk (warns)
  --single-transaction         all migrations of the run in one transaction
  --lock-wait SECONDS          wait for a concurrent migration at most this long (default 60)
  --lock-timeout DURATION      lock_timeout for migration statements (default 10s; 0 = off)
Fleets (migrate over many databases):
  --targets FILE|-             one URL a line (or NAME=URL; # comments), each a target
  --all-targets                the `targets` of db-tool.lua (a table, or a function
                               returning one)
  -j, --jobs N                 targets migrated at once (default 1)
  --fail-fast                  after a failure, start no other target
  --json                       one JSON document (schema_version 1): every target's result
  --log-dir DIR                where each target's log is kept (default
                               ${XDG_STATE_HOME:-~/.local/state}/db-tool/migrator/<time>)
  Exit 0 when every target succeeded, 4 when any failed, 130 interrupted (Ctrl-C: no new
  target starts; the running ones roll back their current migration and stop).
  --result-file FILE           (one target) write from/to/applied names to FILE
Init options:   --dry-run (print the SQL)
Create options: -n, --name NAME
List options:   -r, --raw (names only)
Status options: --json

Migration layout (MIGRATION_DIR/<YYYYMMDDHHMMSS>-<description>/):
  up.sql, down.sql                      single-file form
  up/entrypoint.sql, down/entrypoint.sql  multi-file form (\ir part.sql; .read on SQLite)
  repeatable/*.sql                      repeatable migrations: applied again whenever their
                                        content changes, in name order, after the versioned
                                        ones, by a run that leaves all of those applied
  A script whose first line is `-- db-tool: no-transaction` runs outside a transaction
  (CREATE INDEX CONCURRENTLY ...); every other migration runs in one transaction together
  with its bookkeeping row, so a failure leaves neither.

Safety: one migration run at a time per database (PostgreSQL advisory lock; SQLite write
lock); applied names must be the first ones on disk in byte order (else exit 2 with a
report); the SHA-256 of applied scripts is verified (else exit 2).

Environment: DB_URL, MIGRATION_DIR, HECTIC_LOG (log levels), HECTIC_NAMESPACE (log prefix),
NO_COLOR.

Exit codes: 0 success, 1 error, 2 ambiguous arguments / history mismatch / modified
migration, 3 missing or unsupported database URL, 4 migration failed, 9 invalid argument,
13 init failed, 127 missing dependency.

migrator version ]] .. M.VERSION .. "\n"

local exit_code, policy_mod_merge

local function fail(code, msg, hint)
  errors.raise(code, msg, hint and { hint = hint } or nil)
end

--- Parse argv. Returns {command = ..., words = {...}, opts = {...}, unknown = {...}} or
--- {action = "version"|"help"}.
function M.parse(argv)
  local opts = { set = {}, inherits = {} }
  local words, unknown = {}, {}
  local command
  local i = 1
  local only_words = false
  while i <= #argv do
    local a = argv[i]
    if only_words then
      words[#words + 1] = a
    elseif a == "--" then
      only_words = true
    elseif a == "-V" or a == "--version" then
      return { action = "version" }
    elseif a == "-h" or a == "--help" then
      return { action = "help" }
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local flag, value = a, nil
      local eq = a:find("=", 3, true)
      if a:sub(1, 2) == "--" and eq then flag, value = a:sub(1, eq - 1), a:sub(eq + 1) end
      local o = BY_FLAG[flag]
      if not o then
        unknown[#unknown + 1] = a
      elseif o.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then
            fail(errors.MISSING, "option " .. flag .. " requires a value (" .. o.arg .. ")")
          end
        end
        if o.multi then table.insert(opts[o.key], value) else opts[o.key] = value end
        opts["_" .. o.key] = flag
        if o.key == "inherits" then
          log.ns(env.get("HECTIC_NAMESPACE") or "migrator"):warn("--inherits is deprecated and ignored: "
            .. "hectic schema is auto-exempt from inheritance enforcement")
        end
      elseif o.optarg then -- --wait or --wait=SECONDS
        opts[o.key] = value or true
        opts["_" .. o.key] = flag
      else
        if value ~= nil then unknown[#unknown + 1] = a else opts[o.key] = true end
        opts["_" .. o.key] = flag
      end
    elseif a == "help" and not command then
      return { action = "help" }
    elseif COMMANDS[a] then
      if command then
        fail(errors.AMBIGUOUS, "ambiguous subcommand, decide " .. command .. " or " .. a)
      end
      command = a
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  return { command = command, words = words, opts = opts, unknown = unknown }
end

--- Validate options against the command (the original's messages and codes).
local function check_scope(p)
  local cmd = p.command
  local label = cmd == "fetch" and "status" or cmd
  for _, o in ipairs(OPTIONS) do
    if o.only and p.opts["_" .. o.key] and not o.only[cmd] then
      table.insert(p.unknown, 1, p.opts["_" .. o.key])
    end
  end
  if cmd == "migrate" or cmd == "baseline" then return end -- checked by the command
  if #p.unknown > 0 then
    fail(errors.NOT_FOUND, label .. " argument " .. p.unknown[1] .. " does not exists",
      "see 'migrator --help'")
  end
  if #p.words > 0 then
    fail(errors.NOT_FOUND, label .. " subcommand " .. p.words[1] .. " does not exists",
      "see 'migrator --help'")
  end
end

--- `migrate` arguments → target for dbtool.migrate.plan (the original's rules and messages).
function M.migrate_target(words, unknown)
  local dir
  local args = {}
  for _, w in ipairs(words) do
    if DIRECTIONS[w] then
      if dir then fail(errors.AMBIGUOUS, "ambiguous migrate subcommand, decide " .. dir .. " or " .. w) end
      dir = w
    else
      args[#args + 1] = w
    end
  end
  if not dir then
    fail(errors.MISSING, "migrate: missing direction: up, down or to",
      "e.g. `migrator migrate up all`, `migrator migrate down`, `migrator migrate to latest`")
  end
  if #unknown > 0 then
    fail(errors.GENERIC, "`migrate " .. dir .. "` argument " .. unknown[1] .. " does not exists")
  end
  if dir == "up" then
    local n, all = 1, false
    for _, a in ipairs(args) do
      if a == "all" or a == "latest" or a == "head" then
        all = true
      elseif a:match("^%d+$") then
        n = tonumber(a)
      else
        fail(errors.GENERIC, "up argument not a number or 'all'")
      end
    end
    return { kind = "up", n = all and "all" or n }
  elseif dir == "down" then
    local n = 1
    for _, a in ipairs(args) do
      if a:match("^%d+$") then n = tonumber(a) else fail(errors.GENERIC, "down argument not a number") end
    end
    return { kind = "down", n = n }
  else
    if #args == 0 then fail(errors.GENERIC, "no migration name specified") end
    if #args > 1 then fail(errors.GENERIC, "`migrate to` too many arguments") end
    return { kind = "to", name = args[1] }
  end
end

-- ---------------------------------------------------------------- helpers

local function namespace()
  return env.get("HECTIC_NAMESPACE") or "migrator"
end

local function migration_dir(opts)
  return opts.dir or env.get("MIGRATION_DIR") or "migration"
end

--- The database: --db-url, else DB_URL, PGURL, DATABASE_URL, else libpq's environment
--- (dbtool.db.resolve); exit 3 when there is none or it is not one.
local function database(opts)
  local db = require "dbtool.db"
  local url, source = db.resolve { url = opts.url, migrator = true }
  if not url then
    fail(errors.MISSING, "no database URL: pass --db-url URL or set DB_URL (looked at "
      .. db.order { migrator = true } .. ")",
      "postgresql://user@host/db, key=value conninfo, sqlite://path, or a *.db file")
  end
  if source == "libpq" then return { engine = "postgresql", target = "", source = source } end
  local d, msg = migrate.detect(url)
  if not d then
    errors.raise(errors.MISSING, msg,
      { hint = "supported formats: postgresql://... or sqlite://... or *.db" })
  end
  return d
end

--- Migration policy and hooks from the project (${DATABASE_DIR}/db-tool.lua, if any):
--- settings (migration = {...}, lock_timeout, lock_wait, checksum) and the hooks
--- before_/after_migrate, before_/after_each_migration (see dbtool.project).
local function project_policy()
  local project = require "dbtool.project"
  return project.migration_policy(project.load())
end
M.project_policy = project_policy

local function parse_vars(list)
  local vars = {}
  for _, s in ipairs(list) do
    local k, v = s:match("^([^=]+)=(.*)$")
    if not k or not k:match("^[%a_][%w_]*$") then
      fail(errors.NOT_FOUND, "--set expects NAME=VALUE, not '" .. s .. "'",
        "e.g. --set schema=public (used as :schema or :'schema' in the scripts)")
    end
    vars[k] = v
  end
  return vars
end

local function mkdir_p(path)
  local stat = require "posix.sys.stat"
  local acc = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not stat.stat(acc) then
      local ok, msg = stat.mkdir(acc, 493)
      if not ok and not stat.stat(acc) then
        fail(errors.GENERIC, "cannot create " .. acc .. ": " .. tostring(msg))
      end
    end
  end
end

local function write_new(path, content)
  local fcntl = require "posix.fcntl"
  local unistd = require "posix.unistd"
  local fd, msg = fcntl.open(path, fcntl.O_WRONLY | fcntl.O_CREAT | fcntl.O_EXCL, 420)
  if not fd then fail(errors.GENERIC, "cannot create " .. path .. ": " .. tostring(msg)) end
  unistd.write(fd, content)
  unistd.close(fd)
end

--- A name for `create`: runs of anything but letters, digits, '_', '.' and '-' become '-'.
function M.clean_name(name)
  local s = name:gsub("[^%w_.%-]+", "-"):gsub("%.%.+", "-"):gsub("[-.]*%-[-.]*", "-")
    :gsub("^[-.]+", ""):gsub("[-.]+$", "")
  if #s > 100 then s = s:sub(1, 100):gsub("[-.]+$", "") end
  return s
end

--- A random pronounceable 6-letter word (consonant-vowel × 3), as the original generated.
function M.generate_word()
  local c, v = "bcdfghjklmnprstvwz", "aeiou"
  local out = {}
  for _ = 1, 3 do
    local i, j = math.random(#c), math.random(#v)
    out[#out + 1] = c:sub(i, i) .. v:sub(j, j)
  end
  return table.concat(out)
end

-- ---------------------------------------------------------------- commands

local function cmd_create(p, l)
  local dir = migration_dir(p.opts)
  local name
  if p.opts.name then
    name = M.clean_name(p.opts.name)
    if name == "" then
      fail(errors.NOT_FOUND, "invalid migration name '" .. p.opts.name .. "'",
        "use letters, digits, '-', '_' and '.'")
    end
    if name ~= p.opts.name then l:info("migration name cleaned: '%s' → '%s'", p.opts.name, name) end
  else
    name = M.generate_word()
  end
  local ts = os.date("!%Y%m%d%H%M%S")
  local full = ts .. "-" .. name
  local path = dir .. "/" .. full
  mkdir_p(dir)
  local stat = require "posix.sys.stat"
  if stat.lstat(path) then
    fail(errors.GENERIC, "migration already exists: " .. path, "pick another --name, or wait a second")
  end
  local ok, msg = stat.mkdir(path, 493)
  if not ok then
    if stat.lstat(path) then
      fail(errors.GENERIC, "migration already exists: " .. path, "pick another --name, or wait a second")
    end
    fail(errors.GENERIC, "cannot create " .. path .. ": " .. tostring(msg))
  end
  write_new(path .. "/up.sql", "-- " .. full .. ": write your migration SQL here\n")
  write_new(path .. "/down.sql", "-- " .. full .. ": write the SQL that reverts it here\n")
  l:notice("created migration: %s", path)
  io.stdout:write(path, "\n")
  return 0
end

local function cmd_list(p, l)
  local dir = migration_dir(p.opts)
  local eng = migrate.new { layout = "dirs", dir = dir, log = l }
  local fs = eng:discover()
  if eng.dir_missing then l:warn("migration directory not found: %s", dir) end
  local out = {}
  for _, m in ipairs(fs) do
    if p.opts.raw then
      out[#out + 1] = m.name
    else
      local missing = {}
      if not m.up then missing[#missing + 1] = "up.sql" end
      if not m.down then missing[#missing + 1] = "down.sql" end
      out[#out + 1] = #missing == 0 and m.name or (m.name .. ": missing " .. table.concat(missing, " "))
    end
  end
  if #out > 0 then io.stdout:write(table.concat(out, "\n"), "\n") end
  return 0
end

--- --wait[=SECONDS]: wait for the server of `d` (PostgreSQL) to accept connections.
local function wait_for(p, d)
  local w = p.opts.wait
  if not w or d.engine ~= "postgresql" then return end
  local secs = w == true and 60 or tonumber(w)
  if not secs or secs < 0 then
    fail(errors.NOT_FOUND, "--wait expects a number of seconds, not '" .. tostring(w) .. "'")
  end
  require("dbtool.db").wait(d.target, secs, d.source or "DB_URL")
end

local function open(p, l, create)
  local d = database(p.opts)
  wait_for(p, d)
  local lock_wait = tonumber(p.opts.lock_wait)
  if p.opts.lock_wait and (not lock_wait or lock_wait < 0) then
    fail(errors.NOT_FOUND, "--lock-wait expects a number of seconds, not '" .. p.opts.lock_wait .. "'")
  end
  return migrate.open_store("hectic", d, { log = l, create = create, lock_wait = lock_wait }), d
end

local function cmd_init(p, l)
  local d = database(p.opts)
  if p.opts.dry_run then
    wait_for(p, d)
    if d.engine == "postgresql" then
      io.stdout:write(require("dbtool.migrate.store_pg").init_sql())
    else
      local store_sqlite = require "dbtool.migrate.store_sqlite"
      io.stdout:write("BEGIN;\n", store_sqlite.INIT_SQL, "COMMIT;\n")
    end
    return 0
  end
  local store <close> = open(p, l, true)
  local pol = policy_mod_merge(project_policy())
  store:lock(tonumber(p.opts.lock_wait) or 60, l, { mode = pol.lock, expiry = pol.lock_expiry })
  errors.finally(function() store:unlock() end, function() store:init() end)
  l:info("%s is ready", store.table)
  return 0
end

function policy_mod_merge(over)
  local policy = require "dbtool.migrate.policy"
  return policy.merge(policy.defaults(), over) or policy.defaults()
end

local function policy_for(p)
  local pol = project_policy() or {}
  if p.opts.single then pol.transaction = "single" end
  if p.opts.lock_wait then pol.lock_wait = tonumber(p.opts.lock_wait) end
  if p.opts.lock_timeout then
    local v = p.opts.lock_timeout
    if v:match("^%d+$") then v = math.tointeger(tonumber(v)) end
    pol.lock_timeout = (v == 0 or v == "0") and false or v
  end
  return pol
end

-- Options that belong to the fleet and are not passed to each target's migrator.
local FLEET_ONLY = { ["--targets"] = true, ["--all-targets"] = true, ["-j"] = true, ["--jobs"] = true,
  ["--fail-fast"] = true, ["--json"] = true, ["--log-dir"] = true, ["-u"] = true, ["--db-url"] = true,
  ["--result-file"] = true }

--- The arguments of each target's migrator: argv without the fleet's own options.
function M.child_argv(argv)
  local out, i = {}, 1
  while i <= #argv do
    local a = argv[i]
    local flag = a:match("^(%-%-[^=]+)=") or a
    if FLEET_ONLY[flag] then
      local o = BY_FLAG[flag]
      if o and o.arg and not a:find("=", 1, true) then i = i + 1 end
    else
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out
end

local function cmd_fleet(p, l, argv)
  local fleet = require "dbtool.migrate.fleet"
  M.migrate_target(p.words, p.unknown) -- the arguments are checked once, here
  if p.opts.url then fail(errors.AMBIGUOUS, "--db-url and --targets: one or the other") end
  if p.opts.dry_run and p.opts.sql then
    fail(errors.NOT_FOUND, "--dry-run --sql prints one database's statements: use it without --targets")
  end
  local jobs = 1
  if p.opts.jobs then
    jobs = tonumber(p.opts.jobs)
    if not jobs or jobs < 1 or math.type(jobs) ~= "integer" then
      fail(errors.NOT_FOUND, "--jobs expects a number of targets >= 1, not '" .. p.opts.jobs .. "'")
    end
  end
  local targets
  if p.opts.targets then
    local f = p.opts.targets
    local text
    if f == "-" then
      text = io.stdin:read("a") or ""
    else
      local h, msg = io.open(f, "rb")
      if not h then fail(errors.MISSING, "cannot read the targets file: " .. tostring(msg)) end
      text = h:read("a") or ""
      h:close()
    end
    targets = fleet.parse(text, f == "-" and "stdin" or f)
  else
    local project = require("dbtool.project").load()
    if not project or project.targets == nil then
      fail(errors.MISSING, "--all-targets: db-tool.lua has no `targets`",
        "add targets = { ... } (or a function returning them) to ${DATABASE_DIR}/db-tool.lua, or pass "
          .. "--targets FILE")
    end
    targets = fleet.from_project(project.targets, project.file or "db-tool.lua")
  end
  local log_dir = fleet.log_dir(p.opts.log_dir)
  local ui = require "dbtool.ui"
  local results, interrupted = fleet.run { targets = targets, argv = M.child_argv(argv), jobs = jobs,
    fail_fast = p.opts.fail_fast, log_dir = log_dir, tty = ui.isatty(2), log = l,
    out = function(line) io.stderr:write(line, "\n") end }
  if p.opts.json then
    io.stdout:write(fleet.json_doc(results, { jobs = jobs, fail_fast = p.opts.fail_fast, log_dir = log_dir,
      interrupted = interrupted }), "\n")
  else
    io.stdout:write(table.concat(fleet.summary_lines(results, log_dir), "\n"), "\n")
  end
  return fleet.exit_code(results, interrupted)
end

--- --result-file / --json of one run: what it did.
local function write_result(p, res, eng)
  local lines = {}
  if res.from then lines[#lines + 1] = "from\t" .. res.from end
  if res.to then lines[#lines + 1] = "to\t" .. res.to end
  for _, s in ipairs(res.steps) do
    local kind = s.repeatable and "repeatable" or (s.direction == "up" and "applied" or "reverted")
    if s.outcome ~= "skipped" then lines[#lines + 1] = kind .. "\t" .. s.name end
  end
  if p.opts.result_file then
    local f = io.open(p.opts.result_file, "wb")
    if f then
      f:write(table.concat(lines, "\n"), #lines > 0 and "\n" or "")
      f:close()
    end
  end
  if p.opts.json and not p.opts.dry_run then
    local applied, reverted, rep = {}, {}, 0
    for _, s in ipairs(res.steps) do
      if s.repeatable then rep = rep + 1
      elseif s.outcome ~= "skipped" and s.direction == "up" then applied[#applied + 1] = s.name
      elseif s.outcome ~= "skipped" then reverted[#reverted + 1] = s.name end
    end
    io.stdout:write(migrate.json { schema_version = 1, migration_dir = eng.dir,
      from = res.from or migrate.null, to = res.to or migrate.null, applied = migrate.array(applied),
      reverted = migrate.array(reverted), repeatable = rep, status = res.failed and "failed" or "ok" }, "\n")
  end
end

local function cmd_migrate(p, l, argv)
  if p.opts.targets or p.opts.all_targets then return cmd_fleet(p, l, argv) end
  for _, k in ipairs { "jobs", "fail_fast", "log_dir" } do
    if p.opts[k] then
      fail(errors.NOT_FOUND, p.opts["_" .. k] .. " goes with --targets or --all-targets")
    end
  end
  local target = M.migrate_target(p.words, p.unknown)
  local vars = parse_vars(p.opts.set)
  if p.opts.sql and not p.opts.dry_run then
    fail(errors.NOT_FOUND, "--sql goes with --dry-run", "migrator migrate up all --dry-run --sql")
  end
  local store <close> = open(p, l, not p.opts.dry_run)
  local eng = migrate.new { store = store, layout = "dirs", dir = migration_dir(p.opts),
    policy = policy_for(p), vars = vars, log = l, force = p.opts.force,
    allow_modified = p.opts.allow_modified, dry_run = p.opts.dry_run, sql = p.opts.sql }
  if p.opts.force then l:warn("--force: the migration history check is skipped") end
  local res = { steps = {} }
  if p.opts.result_file or p.opts.json then
    eng.on_step = function(info) res.steps[#res.steps + 1] = info end
  end
  local ok, err = errors.try(eng.migrate, eng, target)
  if ok and err and err.plan then res.from, res.to = err.plan.from, err.plan.to end
  if p.opts.result_file or p.opts.json then
    res.failed = not ok
    write_result(p, res, eng)
  end
  if not ok then
    -- the original's "no migrations found" when the directory itself is missing: say where
    if errors.is(err) and err.msg == "no migrations found" and eng.dir_missing then
      err.hint = "migration directory not found: " .. eng.dir
    end
    error(err, 0)
  end
  return 0
end

local function cmd_baseline(p, l)
  if #p.unknown > 0 then
    fail(errors.NOT_FOUND, "baseline argument " .. p.unknown[1] .. " does not exists",
      "see 'migrator --help'")
  end
  if #p.words == 0 then
    fail(errors.MISSING, "baseline: which migration? baseline NAME|PREFIX|latest",
      "the migrations up to NAME are recorded as applied without running them")
  end
  if #p.words > 1 then fail(errors.NOT_FOUND, "baseline: too many arguments") end
  local store <close> = open(p, l, not p.opts.dry_run)
  local eng = migrate.new { store = store, layout = "dirs", dir = migration_dir(p.opts),
    policy = policy_for(p), log = l, dry_run = p.opts.dry_run }
  eng:baseline(p.words[1])
  return 0
end

local function short(h)
  return h and h:sub(1, 12) or "-"
end

local function repeatable_json(rows)
  local out = {}
  for i, r in ipairs(rows or {}) do
    out[i] = { name = r.name, state = r.state, hash = r.hash or migrate.null,
      file_hash = r.file_hash or migrate.null, applied_at = r.applied_at or migrate.null }
  end
  return out
end

--- status --exit-code: 1 when a versioned migration is pending or a repeatable one is new or
--- changed.
function exit_code(p, st)
  if not p.opts.exit_code then return 0 end
  local r = st.repeatable_counts or {}
  if st.counts.pending > 0 or (r.pending or 0) > 0 or (r.changed or 0) > 0 then return 1 end
  return 0
end

local function cmd_status(p, l)
  local store <close> = open(p, l, false)
  local eng = migrate.new { store = store, layout = "dirs", dir = migration_dir(p.opts),
    policy = policy_for(p), log = l }
  if not p.opts.json then
    -- everything applied and unchanged (the usual case): the lines are made by the server
    local ui = require "dbtool.ui"
    local fast = eng:status_fast { styled = ui.style("green", string.format("%-9s", "applied")) }
    if fast then
      local c = fast.counts
      io.stdout:write(fast.text, "\n", string.format("%d applied, %d modified, %d pending, %d missing\n",
        c.applied, c.modified, c.pending, c.missing))
      return 0
    end
  end
  local st = eng:status()
  if p.opts.json then
    -- rows encoded directly (fixed key order, no per-row sorting: 10,000 rows stay fast)
    local J, js = migrate.json, migrate.json_string
    local function str(v) return v == nil and "null" or js(v) end
    local rows = {}
    for i, r in ipairs(st.rows) do
      rows[i] = table.concat { '{"name":', js(r.name), ',"state":"', r.state, '","applied_at":',
        str(r.applied_at),
        ',"hash":', str(r.hash), ',"file_hash":', str(r.file_hash), ',"tree_hash":', str(r.tree_hash),
        ',"file_tree_hash":', str(r.file_tree_hash), ',"duration_ms":', r.duration_ms
          and tostring(r.duration_ms)
        or "null", ',"out_of_order":', r.out_of_order and "true" or "false", "}" }
    end
    io.stdout:write('{"engine":', js(store.engine), ',"table":', js(store.table), ',"initialized":',
      tostring(st.initialized), ',"migration_dir":', js(eng.dir), ',"migration_dir_exists":',
      tostring(not st.dir_missing), ',"current":', str(st.current), ',"history_ok":',
        tostring(st.mismatch == nil),
      ',"counts":', J(st.counts), ',"migrations":[', table.concat(rows, ","), "],\"repeatable\":",
      J(migrate.array(repeatable_json(st.repeatable))), "}\n")
    return exit_code(p, st)
  end
  local ui = require "dbtool.ui"
  local out = {}
  if not st.initialized then out[#out + 1] = "(" .. store.table
    .. " is not installed: run `migrator init`)" end
  if st.dir_missing then out[#out + 1] = "(migration directory not found: " .. eng.dir .. ")" end
  local width = 10
  for _, r in ipairs(st.rows) do if #r.name > width then width = #r.name end end
  local colors = { applied = "green", pending = "yellow", modified = "red", missing = "red" }
  local styled = {}
  for k, c in pairs(colors) do styled[k] = ui.style(c, string.format("%-9s", k)) end
  local fmt = "%s %-" .. width .. "s  %-27s %s%s"
  local format = string.format
  for _, r in ipairs(st.rows) do
    local note = ""
    if r.state == "modified" then
      note = r.changed == "files" and "  (an included file changed)"
        or ("  (file " .. short(r.file_hash) .. ")")
    elseif r.state == "missing" then
      note = "  (applied, no files on disk)"
    elseif r.out_of_order then
      note = "  (out of order: older than the last applied)"
    end
    local h = r.hash
    out[#out + 1] = format(fmt, styled[r.state], r.name, r.applied_at or "-", h and h:sub(1, 12) or "-", note)
  end
  local c = st.counts
  out[#out + 1] = string.format("%d applied, %d modified, %d pending, %d missing", c.applied, c.modified,
    c.pending, c.missing)
  if st.mismatch then
    out[#out + 1] = string.format("history mismatch at #%d: database has %s, filesystem has %s",
      st.mismatch.position, st.mismatch.db, st.mismatch.fs or "nothing")
  end
  local rstyle = { applied = "green", changed = "yellow", pending = "yellow", missing = "red" }
  for _, r in ipairs(st.repeatable or {}) do
    out[#out + 1] = string.format("%s %s  %-27s %s%s",
      ui.style(rstyle[r.state], string.format("%-9s", r.state)),
      "repeatable/" .. r.name, r.applied_at or "-", short(r.hash),
      r.state == "missing" and "  (recorded, file gone: forgotten by the next migrate)" or "")
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  return exit_code(p, st)
end

-- ---------------------------------------------------------------- main

function M.main(argv)
  local ns = namespace()
  require("dbtool.cli").namespace = ns
  local l = log.ns(ns)
  if #argv == 0 then
    require("dbtool.ui").page(HELP)
    return 0
  end
  local p = M.parse(argv)
  if p.action == "version" then
    io.stdout:write("migrator version ", M.VERSION, "\n")
    return 0
  elseif p.action == "help" then
    require("dbtool.ui").page(HELP)
    return 0
  end
  if p.opts.verbose then
    log.configure { level = "debug" }
  elseif p.opts.quiet then
    log.configure { level = "warn" }
  end
  if not p.command then
    fail(errors.GENERIC, "no subcommand specified. Use 'migrator help' for usage information.")
  end
  check_scope(p)
  local cmd = p.command
  if cmd == "create" then return cmd_create(p, l) end
  if cmd == "list" then return cmd_list(p, l) end
  if cmd == "init" then return cmd_init(p, l) end
  if cmd == "migrate" then return cmd_migrate(p, l, argv) end
  if cmd == "baseline" then return cmd_baseline(p, l) end
  return cmd_status(p, l)
end

return M
