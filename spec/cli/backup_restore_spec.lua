-- database backup → normalize-backup → restore, end to end with the built binary and real
-- clusters. The "production" cluster's superuser is `postgres` (no role for the OS user), as
-- on a server: its raw backup cannot be restored here until it is normalized.
local t = require "testutil"
local cluster = require "dbtool.cluster"
local pg = require "dbtool.core.pg"

describe("database backup / normalize-backup / restore", function()
  local dir, origin, bk, norm, wd

  local function env(extra)
    local e = { LOCAL_DIR = dir .. "/proj", PG_WORKING_DIR = wd, PG_PORT = false, PG_DATABASE = false,
      DEFAULT_BACKUP_PATH = bk, DEFAULT_NORMALIZED_BACKUP_PATH = norm, PGURL = false, DB_URL = false,
      PG_SHARED_PRELOAD_LIBRARIES = "", PG_REUSE = false, PG_LOG_PATH = false, TMPDIR = dir .. "/tmp" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function db(args, extra)
    local argv = { "database" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return t.run { argv = argv, env = env(extra), timeout = 180 }
  end

  local function query(url, sql)
    local c <close> = pg.connect(url)
    return c:exec(sql)
  end

  local function local_url(database)
    return string.format("postgresql:///%s?host=%s/sock&port=5432", database or "appdb", wd)
  end

  local function tmp_empty()
    local names = {}
    for _, n in ipairs(require("posix.dirent").dir(dir .. "/tmp") or {}) do
      if n ~= "." and n ~= ".." then names[#names + 1] = n end
    end
    return names
  end

  local function files(d)
    local names = {}
    for _, n in ipairs(require("posix.dirent").dir(d) or {}) do
      if n ~= "." and n ~= ".." then names[#names + 1] = n end
    end
    table.sort(names)
    return names
  end

  setup(function()
    dir = t.tmpdir("backup")
    bk = dir .. "/proj/focus/postgresql-backup"
    norm = dir .. "/proj/focus/postgresql-backup-normalized"
    wd = dir .. "/proj/focus/postgresql"
    t.mkdir_p(dir .. "/tmp")
    origin = cluster.start { dir = dir .. "/origin", port = 5432, database = "appdb", user = "postgres",
      preload = "", logging = false }
    query(origin.url, [[
      CREATE TABLE normalize_backup_probe (id int PRIMARY KEY, label text);
      INSERT INTO normalize_backup_probe VALUES (1, 'normalized artifact restored');
    ]])
  end)

  teardown(function()
    if origin then origin:stop() end
    pcall(cluster.stop, wd)
  end)

  it("backup writes a complete backup (focus/ created) and keeps the old one when it fails", function()
    local r = db { "-u", origin.url, "backup" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "backup_manifest", "base.tar.gz", "database_name", "pg_wal.tar.gz" }, files(bk))
    assert.are.equal("appdb\n", t.read(bk .. "/database_name"))
    assert.matches("backup written to " .. bk:gsub("%p", "%%%0"), r.stderr)

    local before = t.read(bk .. "/base.tar.gz")
    r = db { "-u", "postgresql:///appdb?host=" .. dir .. "/nowhere&port=5432&user=postgres", "backup" }
    assert.are.equal(1, r.code)
    assert.matches("pg_basebackup failed", r.stderr)
    assert.matches("the previous backup in .* is unchanged", r.stderr)
    assert.are.equal(before, t.read(bk .. "/base.tar.gz"))
    assert.are.same({ "postgresql-backup" }, files(dir .. "/proj/focus"))  -- no temporary left

    r = db { "backup", "--nope" }
    assert.are.equal(9, r.code)
    assert.matches("backup argument %-%-nope does not exist", r.stderr)
    r = db({ "backup" }, { PG_WORKING_DIR = dir .. "/none" })
    assert.are.equal(3, r.code)
    assert.matches("no database to connect to", r.stderr)
  end)

  it("restore refuses a raw backup without the OS user's role and puts the previous cluster back", function()
    -- a previous local cluster with its own data
    local prev = cluster.start { dir = wd, port = 5432, database = "appdb", preload = "", logging = false }
    query(prev.url, "CREATE TABLE previous_marker (x int); INSERT INTO previous_marker VALUES (42)")
    local r = db { "restore" }
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("restore failed: .*role", r.stderr)
    assert.matches("the previous cluster was put back", r.stderr)
    assert.matches("normalize%-backup", r.stderr)
    -- the backup is untouched, the previous data is back and starts again
    assert.are.same({ "backup_manifest", "base.tar.gz", "database_name", "pg_wal.tar.gz" }, files(bk))
    local again = cluster.start { dir = wd, port = 5432, database = "appdb", preload = "", logging = false,
      reuse = true }
    assert.are.equal(42, query(again.url, "SELECT x FROM previous_marker")[1].x)
    again:stop()
    local left = {}
    for _, n in ipairs(files(wd)) do
      if n:match("^%.db%-tool%-restore") or n:match("broken") then left[#left + 1] = n end
    end
    assert.are.same({}, left)
  end)

  it("normalize-backup → restore round trip: the probe row is readable as the OS user", function()
    local r = db { "normalize-backup" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "base.tar.gz", "database_name" }, files(norm))
    assert.are.equal("appdb\n", t.read(norm .. "/database_name"))   -- detected (first non-postgres db)
    assert.matches("database detected in the backup: appdb", r.stderr)
    assert.are.same({}, tmp_empty())
    -- the input was not modified
    assert.are.same({ "backup_manifest", "base.tar.gz", "database_name", "pg_wal.tar.gz" }, files(bk))

    r = db { "restore", norm }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("restored .* into " .. wd:gsub("%p", "%%%0"), r.stderr)
    local rows = query(local_url(), "SELECT label, current_user AS me FROM normalize_backup_probe")
    assert.are.equal("normalized artifact restored", rows[1].label)
    assert.are.equal(require("dbtool.env").user(), rows[1].me)
    -- normalized: local trust with replication, so the restored cluster can be backed up again
    local hba = t.read(wd .. "/data/pg_hba.conf")
    assert.matches("local%s+replication%s+all%s+trust", hba)
    r = db({ "backup" }, { DEFAULT_BACKUP_PATH = dir .. "/second-backup", PG_DATABASE = "appdb" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("appdb\n", t.read(dir .. "/second-backup/database_name"))
    cluster.stop(wd)
    -- no leftovers next to the restored cluster
    local left = {}
    for _, n in ipairs(files(wd)) do
      if n:match("restore") or n:match("previous") then left[#left + 1] = n end
    end
    assert.are.same({}, left)
  end)

  it("restore --archive takes a tar file holding a backup directory (progress on a terminal)", function()
    local archive = dir .. "/normalized.tar.gz"
    assert(os.execute("tar -czf " .. t.shq(archive) .. " -C " .. t.shq(dir .. "/proj/focus")
      .. " postgresql-backup-normalized"))
    local r = db({ "restore", "--archive", archive }, { DB_TOOL_TTY = "1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("\r\27%[Kunpacking [%d.]+ %a+ / [%d.]+ %a+", r.stderr)  -- progress on a terminal
    assert.are.equal("normalized artifact restored",
      query(local_url(), "SELECT label FROM normalize_backup_probe")[1].label)
    assert.are.same({}, tmp_empty())
    cluster.stop(wd)
    r = db { "restore", "--archive", dir .. "/missing.tar" }
    assert.are.equal(3, r.code)
    assert.matches("restore: archive not found", r.stderr)
    r = db { "restore", "--archive", norm .. "/database_name" }   -- not a tar file
    assert.are.equal(1, r.code)
    assert.matches("unpacking", r.stderr)
    assert.are.same({}, tmp_empty())
  end)

  it("pg_cron can be disabled: PG_SHARED_PRELOAD_LIBRARIES=\"\" overrides the backup's setting", function()
    -- a backup whose postgresql.conf preloads a library that does not exist here
    local work = dir .. "/cron"
    t.mkdir_p(work .. "/data")
    assert(os.execute("tar -xzf " .. t.shq(norm .. "/base.tar.gz") .. " -C " .. t.shq(work .. "/data")))
    local f = assert(io.open(work .. "/data/postgresql.conf", "a"))
    f:write("shared_preload_libraries = 'pg_cron_missing_here'\n")
    f:close()
    t.mkdir_p(work .. "/bk")
    assert(os.execute("tar -czf " .. t.shq(work .. "/bk/base.tar.gz") .. " -C " .. t.shq(work .. "/data")
      .. " ."))
    t.write(work .. "/bk/database_name", "appdb\n")
    local r = db { "restore", work .. "/bk" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", query(local_url(), "SHOW shared_preload_libraries")[1].shared_preload_libraries)
    cluster.stop(wd)
  end)

  it("a backup that does not start: exit 2, previous cluster back, nothing wiped", function()
    local work = dir .. "/broken"
    t.mkdir_p(work .. "/data")
    assert(os.execute("tar -xzf " .. t.shq(norm .. "/base.tar.gz") .. " -C " .. t.shq(work .. "/data")))
    local f = assert(io.open(work .. "/data/postgresql.conf", "a"))
    f:write("no_such_setting_at_all = 1\n")
    f:close()
    t.mkdir_p(work .. "/bk")
    assert(os.execute("tar -czf " .. t.shq(work .. "/bk/base.tar.gz") .. " -C " .. t.shq(work .. "/data")
      .. " ."))
    local r = db { "restore", work .. "/bk" }
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("restore failed: the server failed to start", r.stderr)
    assert.matches("no_such_setting_at_all", r.stderr)
    assert.matches("previous cluster was put back", r.stderr)
    -- the previously restored cluster is intact
    local h = cluster.start { dir = wd, port = 5432, database = "appdb", preload = "", logging = false,
      reuse = true }
    assert.are.equal("normalized artifact restored",
      query(h.url, "SELECT label FROM normalize_backup_probe")[1].label)
    h:stop()
    -- a truncated archive: nothing is stopped or replaced
    h = cluster.start { dir = wd, port = 5432, database = "appdb", preload = "", logging = false,
      reuse = true }
    local whole = t.read(norm .. "/base.tar.gz")
    t.write(work .. "/bk/base.tar.gz", whole:sub(1, #whole // 2))
    r = db { "restore", work .. "/bk" }
    assert.are.equal(1, r.code)
    assert.matches("extracting .*base%.tar%.gz failed", r.stderr)
    assert.are.equal("ok", pg.ping(h.conninfo))                 -- still running
    assert.are.equal(1, query(h.url, "SELECT count(*) AS n FROM normalize_backup_probe")[1].n)
    h:stop()
  end)

  it("normalize-backup: the original's checks, messages and exit codes", function()
    local cases = {
      { { "normalize-backup", "--output" }, 3, "normalize%-backup: %-%-output requires a path" },
      { { "normalize-backup", "--role" }, 3, "normalize%-backup: %-%-role requires a name" },
      { { "normalize-backup", "--bogus" }, 9, "normalize%-backup argument %-%-bogus does not exist" },
      { { "normalize-backup", bk, "extra" }, 9, "normalize%-backup: unexpected argument extra" },
      { { "normalize-backup", "--role", "" }, 3, "role, database, and admin role must be non%-empty" },
      { { "normalize-backup", dir .. "/nope" }, 3, "input backup directory not found: .*/nope" },
      { { "normalize-backup", dir .. "/tmp" }, 3, "missing .*/tmp/base%.tar%.gz" },
      { { "normalize-backup", "-o", bk, bk }, 1, "input and output paths must differ" },
      { { "normalize-backup", "-o", bk .. "/nested-output", bk }, 1, "output path must not be inside input" },
      { { "normalize-backup", "-o", dir .. "/proj", bk }, 1, "input backup must not be inside output path" },
      { { "normalize-backup", "--admin-role", "nobody_here", "-o", dir .. "/n2", bk }, 1,
        "cannot connect to the temporary cluster as nobody_here" },
    }
    for _, c in ipairs(cases) do
      local r = db(c[1])
      assert.are.equal(c[2], r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      assert.matches(c[3], r.stderr)
    end
    assert.is_nil(t.read(bk .. "/nested-output/base.tar.gz"))
    assert.are.same({}, tmp_empty())
    local r = db { "restore", dir .. "/nope" }
    assert.are.equal(3, r.code)
    assert.matches("restore: backup directory not found", r.stderr)
    r = db { "restore", bk, "two" }
    assert.are.equal(9, r.code)
    assert.matches("restore subcommand two does not exist", r.stderr)
    r = db { "restore", "--archived" }
    assert.are.equal(9, r.code)
    assert.matches("restore argument %-%-archived does not exist", r.stderr)
    for _, cmd in ipairs { "backup", "restore", "normalize-backup" } do
      r = t.run { argv = { "database", cmd, "--help" }, env = { LOCAL_DIR = false, PGURL = false } }
      assert.are.equal(0, r.code)
      assert.matches("Usage: database " .. cmd:gsub("%-", "%%-"), r.stdout)
    end
  end)
end)
