-- Physical backups of the local cluster: `backup` (pg_basebackup), `restore` (into
-- PG_WORKING_DIR) and `normalize-backup` (make a backup restore-safe on this machine), plus
-- the helpers `diff` shares (extraction, data-directory preparation, migrations).
--
-- A backup directory holds base.tar.gz, optionally pg_wal.tar.gz and backup_manifest
-- (pg_basebackup -Ft -X stream -z), and database_name (the database to work on; written by
-- `backup` and `normalize-backup`).
--
-- Differences from the original tool (its bugs): nothing is ever deleted before its
-- replacement is complete — a backup, a normalized backup and the restored cluster are each
-- built next to their target and swapped in only on success; `restore` never wipes the
-- restored data to re-initialise a cluster that failed to start (the previous cluster is
-- put back and the error says why); `restore --archive` works; PG_SHARED_PRELOAD_LIBRARIES=""
-- really disables pg_cron (also for normalize-backup); `backup` creates focus/ if needed and
-- reports its own errors; normalized backups keep a `local replication` line in pg_hba.conf
-- so that a restored cluster can be backed up again.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

-- Files a data directory must not carry into a new start.
M.LEFTOVERS = { "postmaster.pid", "postmaster.opts", "recovery.signal", "standby.signal", "backup_label.old" }

M.HBA = "# db-tool: local connections only, no passwords (development copy)\n"
  .. "local all all trust\nlocal replication all trust\n"

-- ====================================================================== pure helpers

--- Is `path` inside `dir` (or equal to it)? Both absolute and normalised.
function M.inside(path, dir)
  if path == dir then return true end
  local d = dir:sub(-1) == "/" and dir or (dir .. "/")
  return path:sub(1, #d) == d
end

--- Lexically normalised absolute path (no symlinks resolved): //, ., .. removed.
function M.clean(path, cwd)
  if path:sub(1, 1) ~= "/" then path = (cwd or ".") .. "/" .. path end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 then parts[#parts] = nil end
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. table.concat(parts, "/")
end

--- The normalize-backup checks on paths (realpath'd input, realpath -m'd output): nil when
--- fine, else the original's message (all exit 1).
function M.path_conflict(input, output)
  if input == output then return "input and output paths must differ" end
  if M.inside(output, input) then return "output path must not be inside input backup" end
  if M.inside(input, output) then return "input backup must not be inside output path" end
  return nil
end

--- The database to pick in a backup when none was named: the first (lowest oid) database
--- that allows connections and is neither a template nor `postgres`. rows: {datname, oid,
--- datistemplate, datallowconn}.
function M.pick_database(rows)
  local best
  for _, r in ipairs(rows) do
    if r.datallowconn and not r.datistemplate and r.datname ~= "postgres" then
      if not best or r.oid < best.oid then best = r end
    end
  end
  return best and best.datname or nil
end

--- A libpq keyword → value table as a conninfo string (values quoted), leaving out `skip`.
function M.conninfo(opts, skip)
  local keys = {}
  for k, v in pairs(opts) do
    if v ~= nil and v ~= "" and not (skip and skip[k]) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = k .. "='" .. tostring(opts[k]):gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
  end
  return table.concat(out, " ")
end

-- ====================================================================== file helpers

local function stat() return require "posix.sys.stat" end

local function exists(path) return stat().lstat(path) ~= nil end

local function is_dir(path)
  local st = stat().stat(path)
  return st ~= nil and stat().S_ISDIR(st.st_mode) ~= 0
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, text, mode)
  local f, err = io.open(path, "wb")
  if not f then errors.raise(errors.GENERIC, "cannot write " .. path .. ": " .. tostring(err)) end
  f:write(text)
  f:close()
  if mode then stat().chmod(path, mode) end
end

local function cwd() return require("dbtool.core").getcwd() or "." end

--- Absolute path (lexically cleaned).
function M.absolute(path)
  return M.clean(path, cwd())
end

--- realpath, or for a path that does not exist (yet) its cleaned absolute form with the
--- longest existing prefix resolved (`realpath -m`).
function M.realpath(path)
  local stdlib = require "posix.stdlib"
  local abs = M.absolute(path)
  local r = stdlib.realpath(abs)
  if r then return r end
  local head, rest = abs, {}
  while head ~= "/" and not stdlib.realpath(head) do
    rest[#rest + 1] = head:match("([^/]+)$")
    head = head:match("^(.*)/[^/]+$")
    if head == "" then head = "/" end
  end
  local base = stdlib.realpath(head) or head
  for i = #rest, 1, -1 do base = (base == "/" and "" or base) .. "/" .. rest[i] end
  return base
end

--- The database name recorded in a backup directory (database_name), or nil.
function M.database_name(dir)
  local text = read_file(dir .. "/database_name")
  if not text then return nil end
  text = text:gsub("[\r\n]", "")
  if text == "" then return nil end
  return text
end

local function which(name)
  local p = require("dbtool.core.proc").which(name, env.get("PATH", "/usr/bin:/bin"))
  if not p then
    errors.raise(errors.NO_DEPENDENCY, name .. " not found in PATH", { hint = "install " .. name })
  end
  return p
end

--- Path of `tar` (exit 127 when missing).
function M.tar_bin()
  return which("tar")
end

local function tail(text, n)
  local lines = {}
  for l in (text or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-- A child process whose stderr is kept in a temporary file.
local Job = {}
Job.__index = Job

--- Start argv (never through a shell). opts: stdout (proc redirect), env (extra variables),
--- stderr ("inherit" to show it). Exit 127 when the program cannot be run.
function M.spawn(argv, what, opts)
  opts = opts or {}
  local proc = require "dbtool.core.proc"
  local errfile = env.tmpfile()
  local p, err = proc.spawn { argv = argv, env = env.child_env(opts.env), stdin = opts.stdin or "null",
    stdout = opts.stdout or "null", stderr = opts.stderr or { path = errfile } }
  if not p then
    os.remove(errfile)
    errors.raise(errors.NO_DEPENDENCY, "cannot run " .. argv[1] .. ": " .. tostring(err),
      { hint = "install it, or check PATH / PG_BINDIR" })
  end
  return setmetatable({ p = p, what = what, errfile = errfile }, Job)
end

--- Wait for the job; raise (exit 1) "<what> failed (...): <stderr tail>" when it failed.
--- Returns its stderr. An interrupt while waiting stops the job and is raised.
function Job:wait()
  if self.done then return self.stderr end
  local ok, how, code = errors.try(self.p.wait, self.p)
  if not ok then
    self:abort()
    error(how, 0)
  end
  self.done = true
  self.stderr = read_file(self.errfile) or ""
  os.remove(self.errfile)
  if how ~= "exited" or code ~= 0 then
    local msg = self.stderr
    errors.raise(errors.GENERIC, self.what .. " failed (" .. (how == "exited" and ("exit status " .. code)
      or ("signal " .. tostring(code))) .. ")" .. (msg:find("%S") and (":\n" .. tail(msg, 15)) or ""))
  end
  return self.stderr
end

--- Stop the job if it still runs (TERM, then wait up to 5 s); idempotent.
function Job:abort()
  if self.done then return end
  self.done = true
  pcall(self.p.kill, self.p, "TERM")
  pcall(self.p.wait, self.p, 5)
  os.remove(self.errfile)
end

--- Run argv to completion (see spawn / Job:wait).
function M.run(argv, what, opts)
  return M.spawn(argv, what, opts):wait()
end

-- Several jobs as one: wait for all (first failure raised once all ended), abort all.
local Group = {}
Group.__index = Group

function Group:wait()
  local failure
  for _, j in ipairs(self) do
    local ok, err = errors.try(j.wait, j)
    if not ok then
      if err.interrupted then
        self:abort()
        error(err, 0)
      end
      failure = failure or err
    end
  end
  if failure then
    failure.hint = failure.hint or "is the backup complete? (`database backup` makes one)"
    error(failure, 0)
  end
end

function Group:abort()
  for _, j in ipairs(self) do j:abort() end
end

--- Start extracting backup directory `src` (base.tar.gz, optional pg_wal.tar.gz) into data
--- directory `data` (created with mode 0700); both archives are unpacked at the same time.
--- Returns a handle with :wait() (raises on failure) and :abort(). With `feed`, tar reads
--- base.tar.gz from a pipe that the caller fills (see M.extract).
function M.extract_start(src, data, feed)
  local cluster = require "dbtool.cluster"
  cluster.mkdir_p(data .. "/pg_wal", 448)
  stat().chmod(data, 448)
  local tar = M.tar_bin()
  local g = setmetatable({}, Group)
  g[1] = M.spawn({ tar, "-xzf", feed and "-" or (src .. "/base.tar.gz"), "-C", data },
    "extracting " .. src .. "/base.tar.gz", { stdin = feed and "pipe" or nil })
  if exists(src .. "/pg_wal.tar.gz") then
    local ok, err = errors.try(M.spawn, { tar, "-xzf", src .. "/pg_wal.tar.gz", "-C", data .. "/pg_wal" },
      "extracting " .. src .. "/pg_wal.tar.gz")
    if not ok then
      g:abort()
      error(err, 0)
    end
    g[2] = err
  end
  return g
end

--- Extract a backup directory into `data` and wait (see extract_start).
--- Copy file `path` into the job's stdin pipe, drawing a progress line (`label`) with the
--- bytes sent; stops early if the reader goes away (its exit status then tells why).
local function pump(path, job, label)
  local ui = require "dbtool.ui"
  local f = io.open(path, "rb")
  local total = stat().stat(path)
  total = total and total.st_size or 0
  local progress = ui.progress(label, nil)
  local sent = 0
  local out = job.p.stdin
  errors.finally(function()
    progress:finish()
    if f then f:close() end
    pcall(out.close, out)
  end, function()
    while f do
      local chunk = f:read(65536)
      if not chunk then break end
      local ok = out:write(chunk)
      if not ok then
        require("dbtool.core").check_interrupt()
        break
      end
      sent = sent + #chunk
      progress:update(ui.bytes(sent) .. " / " .. ui.bytes(total))
    end
  end)
end

--- Extract a backup directory into `data` and wait (see extract_start); on a terminal with a
--- progress line (bytes of base.tar.gz unpacked).
function M.extract(src, data)
  local tty = require("dbtool.ui").isatty(2)
  local g = M.extract_start(src, data, tty)
  if tty then
    local ok, err = errors.try(pump, src .. "/base.tar.gz", g[1], "unpacking")
    if not ok then
      g:abort()
      error(err, 0)
    end
  end
  g:wait()
  stat().chmod(data, 448)
end

--- A backup directory (`diff`, `restore`): a directory holding base.tar.gz. Exit 3 otherwise,
--- with "<cmd>: ..." messages.
function M.check_backup(path, cmd)
  if not is_dir(path) then
    errors.raise(errors.MISSING, cmd .. ": backup directory not found: " .. path,
      { hint = "make one with `database backup`, or pass the backup directory" })
  end
  if not exists(path .. "/base.tar.gz") then
    errors.raise(errors.MISSING, cmd .. ": missing " .. path .. "/base.tar.gz",
      { hint = "a backup directory holds base.tar.gz (and pg_wal.tar.gz) from `database backup`" })
  end
end

--- Make an extracted data directory startable here: remove leftovers of the server it came
--- from (pid files, recovery/standby signals, WAL .ready marks). With opts.trust, pg_hba.conf
--- becomes local trust (replication included) and pg_ident.conf empty.
function M.prepare_data(data, opts)
  opts = opts or {}
  for _, name in ipairs(M.LEFTOVERS) do os.remove(data .. "/" .. name) end
  local dirent = require "posix.dirent"
  local okd, names = pcall(dirent.dir, data .. "/pg_wal/archive_status")
  if okd and names then
    for _, n in ipairs(names) do
      if n:match("%.ready$") then os.remove(data .. "/pg_wal/archive_status/" .. n) end
    end
  end
  if opts.trust then
    write_file(data .. "/pg_hba.conf", M.HBA, 384)
    write_file(data .. "/pg_ident.conf", "", 384)
  end
end

--- A new empty sibling directory of `target` for building its replacement.
local function sibling_tmp(target, tag, prefix)
  local stdlib = require "posix.stdlib"
  local parent = target:match("^(.*)/[^/]+$")
  if parent == "" then parent = "/" end
  require("dbtool.cluster").mkdir_p(parent, 493)
  local name = target:match("([^/]+)$")
  local dir, err = stdlib.mkdtemp(parent .. "/" .. (prefix or ("." .. name .. ".")) .. tag .. "-XXXXXX")
  if not dir then errors.raise(errors.GENERIC, "cannot create a directory next to " .. target .. ": "
    .. tostring(err), { hint = "check the permissions of " .. parent }) end
  return dir
end

--- Put the finished directory `new` in place of `target`: the old one (if any) is renamed
--- away first and removed only once the new one is in place.
local function swap_in(new, target)
  local cluster = require "dbtool.cluster"
  local old
  if exists(target) then
    old = sibling_tmp(target, "old")
    os.remove(old)
    local ok, err = os.rename(target, old)
    if not ok then errors.raise(errors.GENERIC, "cannot move " .. target .. " aside: " .. tostring(err)) end
  end
  local ok, err = os.rename(new, target)
  if not ok then
    if old then os.rename(old, target) end
    errors.raise(errors.GENERIC, "cannot rename " .. new .. " to " .. target .. ": " .. tostring(err))
  end
  if old then cluster.rm_rf(old) end
end

-- ====================================================================== migrations

--- Apply every migration of `dir` to `url` (in process, the migrator engine, the project's
--- migration settings). Writes the engine's report lines to opts.out_file. Returns a short
--- description. Any failure is raised as exit 4 "migrations failed" (its cause attached),
--- except an interrupt.
function M.migrate(url, dir, opts)
  opts = opts or {}
  local migrate = require "dbtool.migrate"
  local out = opts.out_file and io.open(opts.out_file, "w")
  local ok, res = errors.try(function()
    local store <close> = migrate.open_store("hectic", url, { log = opts.log })
    local eng = migrate.new { store = store, layout = "dirs", dir = dir, log = opts.log,
      policy = require("dbtool.migrator.common").project_policy(),
      out = function(line) if out then out:write(line, "\n") end end }
    local fs = eng:discover()
    if #fs == 0 then
      if eng.dir_missing then
        opts.log:warn("migration directory not found: %s (set MIGRATION_DIR); no migrations applied", dir)
      end
      store:ensure()
      return "none in " .. dir
    end
    local r = eng:migrate { kind = "up", n = "all" }
    return string.format("%d applied (%d on disk)", r.done, #fs)
  end)
  if out then
    if not ok then out:write("FAILED: ", errors.wrap(res).msg, "\n") end
    out:close()
  end
  if ok then return res end
  res = errors.wrap(res)
  if res.interrupted then error(res, 0) end
  if res.exit == errors.MIGRATION_FAILED then error(res, 0) end
  errors.raise(errors.MIGRATION_FAILED, "migrations failed: " .. res.msg, { cause = res })
end

-- ====================================================================== backup

--- What to do about a failed pg_basebackup, from its message; `source` is where the URL
--- came from (db.url). Ends with "; " or is nil.
function M.backup_hint(msg, source)
  msg = msg or ""
  if msg:find("password authentication failed", 1, true) or msg:find("no password supplied", 1, true) then
    return "check the user and password of the connection string (or ~/.pgpass); "
  elseif msg:find("replication", 1, true) or msg:find("pg_hba.conf", 1, true) then
    return "the server needs to allow replication connections (pg_hba.conf: "
      .. "`local replication all trust`); "
  elseif msg:find("No such file or directory", 1, true) or msg:find("Connection refused", 1, true) then
    return source == "cluster" and "start the local cluster (`database init`); "
      or "is the server running? check the host and port of the connection string; "
  end
end

--- `backup`: pg_basebackup of the database server (-u/PGURL/DB_URL, else the local
--- cluster) into DEFAULT_BACKUP_PATH ($LOCAL_DIR/focus/postgresql-backup).
function M.backup(ctx, opts)
  opts = opts or {}
  local l = ctx.log
  local ui = require "dbtool.ui"
  local core = require "dbtool.core"
  local pg = require "dbtool.pg"
  local url, source = require("dbtool.db").require_url(ctx)
  local target = M.absolute(opts.path or env.default_backup_path())
  local parsed, perr = pg.parse_conninfo(url)
  if not parsed then
    errors.raise(errors.GENERIC, "invalid connection URL: " .. tostring(perr), { hint = "check -u / PGURL" })
  end
  -- the password travels in the environment, not on a command line others can read
  local child_env = { PGPASSWORD = parsed.password }
  local conninfo = M.conninfo(parsed, { password = true })
  local bindir = require("dbtool.cluster").bindir()
  local t0 = core.now()
  l:notice("backing up %s into %s", require("dbtool.log").redact(url), target)
  local tmp = sibling_tmp(target, "new")
  local progress = ui.isatty(2)
  local argv = { bindir .. "/pg_basebackup", "--dbname=" .. conninfo, "--pgdata=" .. tmp, "--format=tar",
    "--wal-method=stream", "--gzip", "--checkpoint=fast" }
  if progress then argv[#argv + 1] = "--progress" end
  local ok, err = errors.try(M.run, argv, "pg_basebackup", { env = child_env,
    stderr = progress and "inherit" or nil })
  if not ok then
    pg.redact_error(err, url) -- libpq in pg_basebackup may quote pieces of a malformed URL
    require("dbtool.cluster").rm_rf(tmp)
    if not err.interrupted then
      local kept = exists(target) and ("the previous backup in " .. target .. " is unchanged")
        or "nothing was written"
      err.hint = err.hint or ((M.backup_hint(err.msg, source) or "") .. kept)
    end
    error(err, 0)
  end
  if parsed.dbname and parsed.dbname ~= "" then
    write_file(tmp .. "/database_name", parsed.dbname .. "\n")
  end
  local ok2, err2 = errors.try(swap_in, tmp, target)
  if not ok2 then
    require("dbtool.cluster").rm_rf(tmp)
    error(err2, 0)
  end
  local st = stat().stat(target .. "/base.tar.gz")
  l:notice("backup written to %s (%s, %s)", target, ui.bytes(st and st.st_size or 0),
    ui.duration(core.now() - t0))
  return target
end

-- ====================================================================== restore

-- `restore --archive FILE`: unpack FILE (any compression tar knows) into a temporary
-- directory and find the backup in it (at its top, or in its only directory).
local function unpack_archive(file, l)
  local st = stat().stat(file)
  if not st or stat().S_ISREG(st.st_mode) == 0 then
    errors.raise(errors.MISSING, "restore: archive not found: " .. file,
      { hint = "--archive takes a tar file holding a backup directory (base.tar.gz, pg_wal.tar.gz)" })
  end
  local stdlib = require "posix.stdlib"
  local tmp = assert(stdlib.mkdtemp(env.get("TMPDIR", "/tmp") .. "/db-tool-restore-XXXXXX"))
  l:info("unpacking %s", file)
  local ok, err = errors.try(M.run, { M.tar_bin(), "-xf", file, "-C", tmp }, "unpacking " .. file)
  if not ok then
    require("dbtool.cluster").rm_rf(tmp)
    error(err, 0)
  end
  if exists(tmp .. "/base.tar.gz") then return tmp, tmp end
  local names = {}
  for _, n in ipairs(require("posix.dirent").dir(tmp) or {}) do
    if n ~= "." and n ~= ".." then names[#names + 1] = n end
  end
  if #names == 1 and exists(tmp .. "/" .. names[1] .. "/base.tar.gz") then
    return tmp .. "/" .. names[1], tmp
  end
  require("dbtool.cluster").rm_rf(tmp)
  errors.raise(errors.MISSING, "restore: no base.tar.gz in archive " .. file,
    { hint = "the archive must hold a backup directory (base.tar.gz, pg_wal.tar.gz, database_name)" })
end

--- `restore [--archive] [PATH]`: replace the cluster in PG_WORKING_DIR by the backup and
--- start it. The previous cluster is kept aside until the restored one runs; if it does not
--- start, the previous one is put back (stopped) and nothing else changes.
function M.restore(ctx, opts)
  opts = opts or {}
  local l = ctx.log
  local cluster = require "dbtool.cluster"
  local ui = require "dbtool.ui"
  local core = require "dbtool.core"
  local t0 = core.now()
  local path = M.absolute(opts.path or env.default_backup_path())
  local unpacked
  if opts.archive then path, unpacked = unpack_archive(path, l) end
  return errors.finally(function()
    if unpacked then cluster.rm_rf(unpacked) end
  end, function()
    M.check_backup(path, "restore")
    local dbname = M.database_name(path) or env.pg_database()
    local o = cluster.options_from_env { reuse = true, reinit = false, database = dbname, spare = false,
      log = l }
    local wd = M.absolute(o.dir)
    o.dir = wd
    cluster.check_root(require("posix.unistd").geteuid(), "database restore")
    cluster.mkdir_p(wd, 448)
    local data = wd .. "/data"
    local timings = {}
    local t_step = core.now()
    local function mark(name)
      timings[#timings + 1] = name .. " " .. ui.duration(core.now() - t_step)
      t_step = core.now()
    end
    -- unpacked next to the cluster while it still runs: a bad backup never stops it
    -- (named .db-tool-*: `database cleanup` removes it if a crash leaves it behind)
    local staging = sibling_tmp(data, "restore", ".db-tool-")
    local ok, err = errors.try(function()
      l:notice("restoring %s into %s (database %s)", path, wd, dbname)
      M.extract(path, staging)
      M.prepare_data(staging)
    end)
    if not ok then
      cluster.rm_rf(staging)
      error(err, 0)
    end
    mark("extract")
    local oks0, stopped = errors.try(cluster.stop, wd)
    if not oks0 then
      cluster.rm_rf(staging)
      error(stopped, 0)
    end
    if stopped then l:info("stopped the running cluster in %s", wd) end
    mark("stop")
    local previous
    if exists(data) then
      previous = sibling_tmp(data, "previous", ".db-tool-")
      os.remove(previous)
      local okr, rerr = os.rename(data, previous)
      if not okr then
        cluster.rm_rf(staging)
        errors.raise(errors.GENERIC, "cannot move " .. data .. " aside: " .. tostring(rerr))
      end
    end
    local okr, rerr = os.rename(staging, data)
    if not okr then
      cluster.rm_rf(staging)
      if previous then os.rename(previous, data) end
      errors.raise(errors.GENERIC, "cannot rename " .. staging .. " to " .. data .. ": " .. tostring(rerr))
    end

    local oks, h = errors.try(cluster.start, o)
    if not oks then
      pcall(cluster.stop, wd)
      local failed = h
      -- keep what failed for inspection only if it is not just a copy of the backup: it is,
      -- so remove it; the backup itself is untouched
      cluster.rm_rf(data)
      local back = ""
      if previous then
        os.rename(previous, data)
        back = "; the previous cluster was put back in " .. data .. (stopped and " (stopped)" or "")
      end
      if failed.interrupted then error(failed, 0) end
      local msg = failed.msg
      if msg:find("role", 1, true) and msg:find("does not exist", 1, true) then
        failed.hint = "the backup has no role " .. env.user() .. ": make it restore-safe first with "
          .. "`database normalize-backup " .. path .. "` and restore the normalized copy"
      elseif not failed.hint or failed.hint:find("data directory is", 1, true) then
        failed.hint = "a preload library missing? PG_SHARED_PRELOAD_LIBRARIES=\"\" disables pg_cron"
      end
      failed.msg = "restore failed: " .. msg .. back .. "; the backup in " .. path .. " is unchanged"
      error(failed, 0)
    end
    mark("start")
    if previous then
      -- removed in process (tens of ms for a data directory), so that nothing is left behind
      -- when we return; a leftover .db-tool-previous-* (interrupted) goes with `database cleanup`
      local okrm, rmerr = cluster.rm_rf(previous)
      if not okrm then l:warn("could not remove the previous cluster %s: %s", previous, tostring(rmerr)) end
    end
    l:debug("timings: %s", table.concat(timings, ", "))
    l:notice("restored %s into %s in %s; connect with: psql '%s'", path, wd, ui.duration(core.now() - t0),
      h.url)
    return h
  end)
end

-- ====================================================================== normalize-backup

local function refresh_collation(conn, db)
  pcall(conn.exec, conn, "ALTER DATABASE " .. conn:escape_identifier(db) .. " REFRESH COLLATION VERSION")
end

--- `normalize-backup`: a copy of a raw backup that restores here: local trust
--- authentication, the role (default: the OS user) as LOGIN SUPERUSER, the database
--- present and owned by it, collation versions refreshed, no listen address, leftovers of
--- the source server removed. opts: input, output, role, database (nil = detect),
--- admin_role. The input is never modified.
function M.normalize(ctx, opts)
  local l = ctx.log
  local cluster = require "dbtool.cluster"
  local core = require "dbtool.core"
  local ui = require "dbtool.ui"
  local t0 = core.now()
  local N = "normalize-backup"
  local role = opts.role or env.user()
  local database = opts.database or env.pg_database()
  local admin = opts.admin_role or "postgres"
  -- without --admin-role: postgres (the original's default), else the OS user (the superuser
  -- of clusters made by db-tool, hence of `database backup`'s backups)
  local admins = opts.admin_role and { admin } or { "postgres", env.user() }
  if role == "" or database == "" or admin == "" then
    errors.raise(errors.MISSING, N .. ": role, database, and admin role must be non-empty")
  end
  local input = opts.input or env.default_backup_path()
  local output = opts.output or env.default_normalized_backup_path()
  if not is_dir(input) then
    errors.raise(errors.MISSING, N .. ": input backup directory not found: " .. input,
      { hint = "make one with `database backup`, or pass the backup directory" })
  end
  if not exists(input .. "/base.tar.gz") then
    errors.raise(errors.MISSING, N .. ": missing " .. input .. "/base.tar.gz")
  end
  local rin, rout = M.realpath(input), M.realpath(output)
  local conflict = M.path_conflict(rin, rout)
  if conflict then errors.raise(errors.GENERIC, N .. ": " .. conflict) end
  output = rout

  local stdlib = require "posix.stdlib"
  local T, terr = stdlib.mkdtemp(env.get("TMPDIR", "/tmp") .. "/db-tool-normalize-XXXXXX")
  if not T then errors.raise(errors.GENERIC, "cannot create a temporary directory: " .. tostring(terr)) end
  local data = T .. "/data"
  local newdir
  return errors.finally(function()
    pcall(cluster.stop, T, { lock = false })
    cluster.rm_rf(T)
    if newdir then cluster.rm_rf(newdir) end
  end, function()
    l:notice("extracting backup into temporary PGDATA")
    M.extract(rin, data)
    M.prepare_data(data, { trust = true })
    if not exists(data .. "/postgresql.conf") then
      write_file(data .. "/postgresql.conf", "# db-tool normalize-backup: the backup had no postgresql.conf\n"
        .. "listen_addresses = ''\n", 384)
    end
    l:notice("starting temporary local cluster")
    local preload, source = cluster.preload_from_env()
    -- temporary settings (removed from postgresql.auto.conf before the result is written)
    local settings = { listen_addresses = "", fsync = "off" }
    local oks, h = errors.try(cluster.start, { dir = T, port = env.pg_port(), database = "postgres",
      user = admin, reuse = true, reinit = false, create_database = false, preload = preload,
      preload_source = source, logging = false, log_dir = T .. "/log", settings = settings,
      spare = false, log = l })
    if not oks then
      if h.interrupted or h.exit == errors.NO_DEPENDENCY then error(h, 0) end
      errors.raise(errors.GENERIC, N .. ": failed to start temporary cluster", { detail = h.msg,
        hint = "is the backup complete? a preload library missing? (PG_SHARED_PRELOAD_LIBRARIES=\"\" "
          .. "disables pg_cron)" })
    end
    local pg = require "dbtool.pg"
    local conn, cerr
    for _, who in ipairs(admins) do
      local okc, c = errors.try(pg.connect, { host = h.host, port = tostring(h.port), dbname = "postgres",
        user = who }, { log = l, quiet = true })
      if okc then
        conn, admin = c, who
        break
      end
      if c.interrupted then error(c, 0) end
      cerr = cerr or c
    end
    if not conn then
      errors.raise(errors.GENERIC, N .. ": cannot connect to the temporary cluster as "
        .. table.concat(admins, " or "), { detail = cerr.msg,
          hint = "--admin-role must name a superuser that exists in the backup" })
    end
    l:debug("connected as %s", admin)
    errors.finally(function() conn:close() end, function()
      for _, db in ipairs { "postgres", "template1", "template0" } do refresh_collation(conn, db) end
      if not opts.database then
        local r = conn:exec("SELECT datname, oid::int8 AS oid, datistemplate, datallowconn FROM pg_database")
        local rows = {}
        for i = 1, r.n do rows[i] = r[i] end
        local picked = M.pick_database(rows)
        if picked then
          database = picked
          l:info("database detected in the backup: %s", database)
        end
      end
      local qrole = conn:escape_identifier(role)
      if conn:exec("SELECT 1 AS x FROM pg_roles WHERE rolname = $1", role).n > 0 then
        conn:exec("ALTER ROLE " .. qrole .. " LOGIN SUPERUSER")
      else
        l:info("creating role %s", role)
        conn:exec("CREATE ROLE " .. qrole .. " LOGIN SUPERUSER")
      end
      if conn:exec("SELECT 1 AS x FROM pg_database WHERE datname = $1", database).n == 0 then
        l:info("creating database %s", database)
        conn:exec("CREATE DATABASE " .. conn:escape_identifier(database) .. " OWNER " .. qrole)
      end
      refresh_collation(conn, database)
    end)
    l:notice("stopping temporary local cluster")
    cluster.stop(T, { lock = false })
    M.prepare_data(data)
    -- settings that pointed at the temporary directory go; no TCP listening when restored
    local auto = data .. "/postgresql.auto.conf"
    local keys = {}
    for _, k in ipairs(cluster.MANAGED_KEYS) do keys[#keys + 1] = k end
    for k in pairs(settings) do keys[#keys + 1] = k end
    write_file(auto, cluster.rewrite_conf(read_file(auto) or "", keys, { { "listen_addresses", "" } }), 384)

    l:notice("writing normalized backup to %s", output)
    newdir = sibling_tmp(output, "new")
    M.run({ M.tar_bin(), "-czf", newdir .. "/base.tar.gz", "-C", data, "." }, "writing " .. newdir
      .. "/base.tar.gz")
    write_file(newdir .. "/database_name", database .. "\n")
    swap_in(newdir, output)
    newdir = nil
    l:info("normalized in %s: role %s, database %s", ui.duration(core.now() - t0), role, database)
    return output
  end)
end

return M
