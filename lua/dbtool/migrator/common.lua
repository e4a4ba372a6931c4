-- What the `migrator` subcommands share (lua/dbtool/migrator/cmd/*.lua): the database URL,
-- the migration directory, the store, the project's policy, and the original's rules for
-- `migrate` arguments and `create` names. Plain functions; the engine is dbtool.migrate.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

local function fail(code, msg, hint)
  errors.raise(code, msg, hint and { hint = hint } or nil)
end

--- The log namespace: HECTIC_NAMESPACE (`database migrator` sets "db migrator"), else migrator.
function M.namespace()
  return env.get("HECTIC_NAMESPACE") or "migrator"
end

--- The migration directory: -d, else MIGRATION_DIR, else $DATABASE_DIR/migration when the
--- project is known (DATABASE_DIR or LOCAL_DIR set), else ./migration (the original's).
function M.migration_dir(globals)
  local d = globals and globals.dir or env.get("MIGRATION_DIR")
  if d then return d end
  if env.get("DATABASE_DIR") or env.get("LOCAL_DIR") then return env.migration_dir() end
  return "migration"
end

--- The database URL and where it came from: --db-url, else DB_URL, PGURL, DATABASE_URL, else
--- libpq's environment ("" with source "libpq"): dbtool.db.resolve; nil when there is none.
function M.url(globals)
  return require("dbtool.db").resolve { url = globals and globals.url, migrator = true }
end

--- The database of the URL (dbtool.migrate.detect); exit 3 when there is none or it is not one.
function M.database(globals)
  local db = require "dbtool.db"
  local url, source = M.url(globals)
  if not url then
    fail(errors.MISSING, "no database URL: pass --db-url URL or set DB_URL (looked at "
      .. db.order { migrator = true } .. ")",
      "postgresql://user@host/db, key=value conninfo, sqlite://path, or a *.db file")
  end
  if source == "libpq" then return { engine = "postgresql", target = "", source = source } end
  local d, msg = require("dbtool.migrate").detect(url)
  if not d then
    errors.raise(errors.MISSING, msg,
      { hint = "supported formats: postgresql://... or sqlite://... or *.db" })
  end
  return d
end

--- --lock-wait SECONDS as a number (exit 9 when it is not one), or nil.
function M.lock_wait(opts)
  if opts.lock_wait == nil then return nil end
  local n = tonumber(opts.lock_wait)
  if not n or n < 0 then
    fail(errors.NOT_FOUND, "--lock-wait expects a number of seconds, not '" .. opts.lock_wait .. "'")
  end
  return n
end

--- --wait[=SECONDS]: wait for the server of `d` (PostgreSQL) to accept connections (default
--- 60 s; dbtool.db.wait). Exit 9 for a value that is not a number.
function M.wait(opts, d)
  local w = opts.wait
  if not w or d.engine ~= "postgresql" then return end
  local secs = w == true and 60 or tonumber(w)
  if not secs or secs < 0 then
    fail(errors.NOT_FOUND, "--wait expects a number of seconds, not '" .. tostring(w) .. "'")
  end
  require("dbtool.db").wait(d.target, secs, d.source or "DB_URL")
end

--- The --wait option of the commands that connect.
M.WAIT_OPTION = { "--wait", optional = "SECONDS",
  help = "wait for the server to accept connections (default 60 s), e.g. a container starting" }

--- Open the hectic store of the URL (create: SQLite may create the file). Returns store, db.
function M.open(ctx, opts, create)
  local d = M.database(ctx.globals)
  M.wait(opts, d)
  return require("dbtool.migrate").open_store("hectic", d, { log = ctx.log, create = create,
    lock_wait = M.lock_wait(opts) }), d
end

--- Migration policy and hooks from the project (${DATABASE_DIR}/db-tool.lua, if any):
--- settings (migration = {...}, lock_timeout, lock_wait, checksum) and the hooks
--- before_/after_migrate, before_/after_each_migration (see dbtool.project).
function M.project_policy()
  local project = require "dbtool.project"
  return project.migration_policy(project.load())
end

--- The policy of a run: the project's, then the command line (--single-transaction,
--- --lock-wait, --lock-timeout).
function M.policy(opts)
  local pol = M.project_policy() or {}
  if opts.single_transaction then pol.transaction = "single" end
  local lw = M.lock_wait(opts)
  if lw then pol.lock_wait = lw end
  if opts.lock_timeout then
    local v = opts.lock_timeout
    if v:match("^%d+$") then v = math.tointeger(tonumber(v)) end
    pol.lock_timeout = (v == 0 or v == "0") and false or v
  end
  return pol
end

--- --set NAME=VALUE list → {NAME = VALUE}; exit 9 on a malformed one.
function M.vars(list)
  local vars = {}
  for _, s in ipairs(list or {}) do
    local k, v = s:match("^([^=]+)=(.*)$")
    if not k or not k:match("^[%a_][%w_]*$") then
      fail(errors.NOT_FOUND, "--set expects NAME=VALUE, not '" .. s .. "'",
        "e.g. --set schema=public (used as :schema or :'schema' in the scripts)")
    end
    vars[k] = v
  end
  return vars
end

local DIRECTIONS = { up = true, down = true, to = true }
M.DIRECTIONS = { "up", "down", "to" }

--- `migrate` arguments → target for dbtool.migrate.plan (the original's rules and messages).
--- words: the positional words; unknown: the options migrate does not know (the original
--- reported them with the direction, exit 1).
function M.migrate_target(words, unknown)
  unknown = unknown or {}
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
    if #args > 0 then
      local command = require "dbtool.command"
      errors.raise(errors.NOT_FOUND, "migrate: unknown direction '" .. args[1] .. "' (up, down or to)",
        { hint = (command.did_you_mean(args[1], M.DIRECTIONS) or "e.g. `migrator migrate up all`")
          .. "\nsee 'migrator migrate --help'" })
    end
    fail(errors.MISSING, "migrate: missing direction: up, down or to",
      "e.g. `migrator migrate up all`, `migrator migrate down`, `migrator migrate to latest`")
  end
  if #unknown > 0 then
    local command = require "dbtool.command"
    local flags = { "--dry-run", "--force", "--allow-modified", "--single-transaction", "--lock-wait",
      "--lock-timeout" }
    errors.raise(errors.GENERIC, "`migrate " .. dir .. "` argument " .. unknown[1] .. " does not exists",
      { hint = command.did_you_mean(unknown[1], flags) })
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
      if a == "all" then
        return { kind = "to", index = 0, all = true } -- every applied migration, newest first
      elseif a:match("^%d+$") then
        n = tonumber(a)
      else
        fail(errors.GENERIC, "down argument not a number")
      end
    end
    return { kind = "down", n = n }
  else
    if #args == 0 then fail(errors.GENERIC, "no migration name specified") end
    if #args > 1 then fail(errors.GENERIC, "`migrate to` too many arguments") end
    return { kind = "to", name = args[1] }
  end
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

-- TODO(dbtool.fs): mkdir_p / exclusive writes come from dbtool.fs once it lands
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

--- Create the migration directory `dir`/`name` with up.sql and down.sql (files.up, files.down);
--- an existing one is never touched (exit 1).
function M.create(dir, name, files)
  local path = dir .. "/" .. name
  mkdir_p(dir)
  local stat = require "posix.sys.stat"
  local exists = "migration already exists: " .. path
  if stat.lstat(path) then fail(errors.GENERIC, exists, "pick another --name, or wait a second") end
  local ok, msg = stat.mkdir(path, 493)
  if not ok then
    if stat.lstat(path) then fail(errors.GENERIC, exists, "pick another --name, or wait a second") end
    fail(errors.GENERIC, "cannot create " .. path .. ": " .. tostring(msg))
  end
  write_new(path .. "/up.sql", files.up)
  write_new(path .. "/down.sql", files.down)
  return path
end

local function short(h)
  return h and h:sub(1, 12) or "-"
end

--- The status table as text lines (st: engine:status(); style: ui.style or nil). Names of
--- any length line up (the column is as wide as the longest name, in terminal columns).
function M.status_lines(st, store_table, dir, style)
  local ui = require "dbtool.ui"
  style = style or function(_, text) return text end
  local out = {}
  if not st.initialized then
    out[#out + 1] = "(" .. store_table .. " is not installed: run `migrator init`)"
  end
  if st.dir_missing then out[#out + 1] = "(migration directory not found: " .. dir .. ")" end
  local width = 10
  for _, r in ipairs(st.rows) do
    local w = ui.width(r.name)
    if w > width then width = w end
  end
  local colors = { applied = "green", pending = "yellow", modified = "red", missing = "red" }
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
    local state = r.state .. string.rep(" ", 9 - #r.state)
    local name = r.name .. string.rep(" ", width - ui.width(r.name))
    local at = r.applied_at or "-"
    out[#out + 1] = style(colors[r.state], state) .. " " .. name .. "  " .. at
      .. string.rep(" ", math.max(0, 27 - #at)) .. " " .. short(r.hash) .. note
  end
  local c = st.counts
  out[#out + 1] = string.format("%d applied, %d modified, %d pending, %d missing", c.applied, c.modified,
    c.pending, c.missing)
  if st.mismatch then
    out[#out + 1] = string.format("history mismatch at #%d: database has %s, filesystem has %s",
      st.mismatch.position, st.mismatch.db, st.mismatch.fs or "nothing")
  end
  return out
end

--- Names of the migrations on disk (for completions): [] when the directory is missing.
function M.names(dir)
  local ok, eng = pcall(require("dbtool.migrate").new, { layout = "dirs", dir = dir })
  if not ok then return {} end
  local okd, fs = pcall(eng.discover, eng)
  if not okd then return {} end
  local out = {}
  for i, m in ipairs(fs) do out[i] = m.name end
  return out
end

return M
