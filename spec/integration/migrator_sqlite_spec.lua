-- `migrator` on SQLite, end to end: the built binary on real database files. Ports the
-- SQLite scenarios of the original's test suite (reference/migrator-upstream.md §5.3, the
-- vacuous rollback cases made real) and covers its fixes: .read relative to the including
-- file and quoted, paths with spaces, UNIQUE(hash) dropped from tables it created, checksums.
local t = require "testutil"
local sqlite = require "dbtool.core.sqlite"
local checksum = require "dbtool.migrate.checksum"

local function setup_project(dbname)
  local dir = t.tmpdir("migsq")
  local db = dir .. "/" .. (dbname or "test.db")
  return { dir = dir, mdir = dir .. "/migration", db = db, url = "sqlite://" .. db }
end

local function mig(p, name, up, down)
  if up then t.write(p.mdir .. "/" .. name .. "/up.sql", up) end
  if down then t.write(p.mdir .. "/" .. name .. "/down.sql", down) end
  return name
end

local function run(p, ...)
  local r = t.run { argv = { "migrator", ... }, cwd = p.dir, env = { DB_URL = p.url, NO_COLOR = "1" } }
  r.out = r.stdout .. r.stderr
  return r
end

local function ok(r)
  assert(r.code == 0, "exit " .. r.code .. "\n" .. r.out)
  return r
end

local function query(p, sql, ...)
  local db <close> = assert(sqlite.open(p.db))
  return (db:query(sql, ...))
end

local function count(p, tbl)
  return query(p, "SELECT count(*) AS n FROM " .. (tbl or "hectic_migration"))[1].n
end

local function has_table(p, name)
  return #query(p, "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", name) > 0
end

local function has_column(p, tbl, col)
  for _, c in ipairs(query(p, "PRAGMA table_info('" .. tbl .. "')")) do
    if c.name == col then return true end
  end
  return false
end

local function applied(p)
  local out = {}
  for i, r in ipairs(query(p, "SELECT name FROM hectic_migration ORDER BY id")) do out[i] = r.name end
  return out
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local DROP_EMAIL = [[
CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO users_new (id, name) SELECT id, name FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
]]

describe("migrator on SQLite", function()
  it("inits, migrates up and down (sqlite-basic)", function()
    local p = setup_project()
    local r = ok(run(p, "init", "--dry-run"))
    has(r.stdout, "CREATE TABLE IF NOT EXISTS hectic_migration")
    assert.is_nil(t.read(p.db)) -- nothing created
    ok(run(p, "init"))
    assert.is_true(has_table(p, "hectic_version"))
    assert.is_true(has_table(p, "hectic_migration"))
    assert.are.equal("0.0.1", query(p,
      "SELECT version FROM hectic_version WHERE name = 'migrator'")[1].version)
    ok(run(p, "init"))
    mig(p, "20250101000000-users", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
      "DROP TABLE users;\n")
    mig(p, "20250102000000-email", "ALTER TABLE users ADD COLUMN email TEXT;\n", DROP_EMAIL)
    ok(run(p, "migrate", "up"))
    assert.are.equal(1, count(p))
    assert.is_true(has_table(p, "users"))
    ok(run(p, "migrate", "up"))
    assert.is_true(has_column(p, "users", "email"))
    r = ok(run(p, "migrate", "down"))
    has(r.stderr, "successfully migrated down to 20250101000000-users")
    assert.are.equal(1, count(p))
    assert.is_false(has_column(p, "users", "email"))
  end)

  it("runs multi-file migrations, .read relative to the including file (sqlite-multi-file)", function()
    local p = setup_project()
    local A, B = "20250101000000-schema", "20250102000000-email"
    t.write(p.mdir .. "/" .. A .. "/up/entrypoint.sql",
      ".read tables/users.sql\n.read 'with space/posts.sql'\n")
    t.write(p.mdir .. "/" .. A .. "/up/tables/users.sql",
      "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n")
    t.write(p.mdir .. "/" .. A .. "/up/with space/posts.sql",
      "-- nested\n.read ../tables/none.sql.inc\n"
        .. "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER);\n")
    t.write(p.mdir .. "/" .. A .. "/up/tables/none.sql.inc", "CREATE TABLE nested (x);\n")
    t.write(p.mdir .. "/" .. A .. "/down/entrypoint.sql",
      "DROP TABLE posts;\nDROP TABLE users;\nDROP TABLE nested;\n")
    t.write(p.mdir .. "/" .. B .. "/up/entrypoint.sql", ".read add.sql\n")
    t.write(p.mdir .. "/" .. B .. "/up/add.sql", "ALTER TABLE users ADD COLUMN email TEXT;\n")
    t.write(p.mdir .. "/" .. B .. "/down/entrypoint.sql", ".read rebuild.sql\n")
    t.write(p.mdir .. "/" .. B .. "/down/rebuild.sql", DROP_EMAIL)
    -- run from elsewhere: includes do not depend on the working directory
    local r = t.run { argv = { "migrator", "-d", p.mdir, "migrate", "up" }, cwd = "/",
      env = { DB_URL = p.url } }
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(has_table(p, "users"))
    assert.is_true(has_table(p, "posts"))
    assert.is_true(has_table(p, "nested"))
    ok(run(p, "migrate", "up"))
    assert.is_true(has_column(p, "users", "email"))
    local row = query(p, "SELECT hash, tree_hash FROM hectic_migration WHERE name = ?", A)[1]
    assert.are.equal(checksum.file(p.mdir .. "/" .. A .. "/up/entrypoint.sql"), row.hash)
    assert.are.equal(checksum.tree(p.mdir .. "/" .. A .. "/up"), row.tree_hash)
    ok(run(p, "migrate", "down"))
    assert.is_false(has_column(p, "users", "email"))
    ok(run(p, "migrate", "down"))
    assert.is_false(has_table(p, "users"))
    assert.are.equal(0, count(p))
  end)

  it("applies all, is a no-op after, records names and hashes (migrate-up-all)", function()
    local p = setup_project()
    for i = 1, 5 do
      mig(p, string.format("2025010100000%d-m%d", i, i),
        string.format("CREATE TABLE t%d (id INTEGER PRIMARY KEY, v TEXT);\n", i),
          string.format("DROP TABLE t%d;\n", i))
    end
    ok(run(p, "migrate", "up", "all"))
    assert.are.equal(5, count(p))
    local r = ok(run(p, "migrate", "up", "all"))
    has(r.stderr, "database already at 20250101000005-m5")
    assert.are.equal(5, count(p))
    do
      local db <close> = assert(sqlite.open(p.db))
      db:exec("INSERT INTO t1 (v) VALUES ('keep')")
    end
    mig(p, "20250101000006-m6", "CREATE TABLE t6 (id INTEGER PRIMARY KEY, v TEXT DEFAULT 'default6');\n"
      .. "INSERT INTO t6 (id) VALUES (1);\n", "DROP TABLE t6;\n")
    ok(run(p, "migrate", "up", "all"))
    assert.are.equal(6, count(p))
    assert.are.equal("keep", query(p, "SELECT v FROM t1")[1].v)
    assert.are.equal("default6", query(p, "SELECT v FROM t6")[1].v)
    local names = applied(p)
    assert.are.equal("20250101000001-m1", names[1])
    assert.are.equal("20250101000006-m6", names[6])
    for _, row in ipairs(query(p, "SELECT name, hash, applied_at FROM hectic_migration")) do
      assert.are.equal(checksum.file(p.mdir .. "/" .. row.name .. "/up.sql"), row.hash)
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", row.applied_at)
    end
    assert.are.equal("0.0.1", query(p,
      "SELECT version FROM hectic_version WHERE name = 'migrator'")[1].version)
  end)

  it("goes to latest and stays (migrate-to-latest)", function()
    local p = setup_project()
    for i = 1, 3 do
      mig(p, string.format("2025010100000%d-c%d", i, i), string.format("CREATE TABLE c%d (x);\n", i),
        "-- nothing to undo\n")
    end
    ok(run(p, "migrate", "up", "all"))
    for i = 1, 3 do assert.is_true(has_table(p, "c" .. i)) end
    local r = ok(run(p, "migrate", "to", "latest"))
    has(r.stderr, "database already at 20250101000003-c3")
    assert.are.equal(3, count(p))
  end)

  local GOOD = "20250101000000-good"
  local cases = {
    { "syntax error", "ALTER TABLE items ADD COLUMN status TEXT;\nSELEC 1;\n", "syntax error", ":2:" },
    { "a later statement fails", "ALTER TABLE items ADD COLUMN status TEXT;\nUPDATE items SET status = 'x';\n"
      .. "INSERT INTO nope VALUES (1);\n", "no such table: nope", ":3:" },
    { "a unique violation", "ALTER TABLE items ADD COLUMN status TEXT;\nINSERT INTO items (id) VALUES (1);\n",
      "UNIQUE constraint failed", ":2:" },
  }
  for _, c in ipairs(cases) do
    it("leaves no row and no partial schema: " .. c[1] .. " (migration-failure-rollback)", function()
      local p = setup_project()
      mig(p, GOOD, "CREATE TABLE items (id INTEGER PRIMARY KEY, first TEXT);\n"
        .. "INSERT INTO items (id) VALUES (1);\n",
        "DROP TABLE items;\n")
      ok(run(p, "migrate", "up"))
      local BAD = mig(p, "20250102000000-bad", c[2], "SELECT 1;\n")
      local r = run(p, "migrate", "up")
      assert.are.equal(4, r.code)
      has(r.stderr, "migration failed: " .. BAD)
      has(r.stderr, c[3])
      has(r.stderr, "migration/" .. BAD .. "/up.sql" .. c[4])
      assert.are.same({ GOOD }, applied(p))
      assert.is_false(has_column(p, "items", "status"))
      assert.is_true(has_column(p, "items", "first"))
      assert.are.equal(1, count(p, "items"))
    end)
  end

  it("applies byte-identical migrations both", function()
    local p = setup_project()
    mig(p, "20250101000000-noop", "-- noop\n", "-- noop\n")
    mig(p, "20250102000000-noop", "-- noop\n", "-- noop\n")
    ok(run(p, "migrate", "up", "all"))
    assert.are.equal(2, count(p))
  end)

  it("upgrades a table the original created (UNIQUE(hash)), keeping rows, ids and the sequence", function()
    local p = setup_project()
    local A = mig(p, "20250101000000-a", "CREATE TABLE a (x);\n", "DROP TABLE a;\n")
    local B = mig(p, "20250102000000-same", "-- same\n", "-- same\n")
    local C = mig(p, "20250103000000-same", "-- same\n", "-- same\n")
    do
      local db <close> = assert(sqlite.open(p.db))
      db:exec([[
CREATE TABLE hectic_version (name TEXT PRIMARY KEY, version TEXT NOT NULL,
  installed_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE hectic_migration (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT UNIQUE NOT NULL
    CHECK (name GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-*'),
  hash TEXT UNIQUE NOT NULL CHECK (length(hash) = 64 AND hash = lower(hash)),
  applied_at TEXT NOT NULL DEFAULT (datetime('now')));
INSERT INTO hectic_version (name, version) VALUES ('migrator', '0.0.1');
CREATE TABLE a (x);
]])
      db:query("INSERT INTO hectic_migration (name, hash) VALUES ('20240101000000-gone', ?)", string.rep("b",
        64))
      db:query("INSERT INTO hectic_migration (name, hash) VALUES (?, ?)", A, checksum.file(p.mdir .. "/" .. A
        .. "/up.sql"))
      db:exec("DELETE FROM hectic_migration WHERE name = '20240101000000-gone'")
    end
    local r = ok(run(p, "migrate", "up", "all"))
    has(r.stderr, "dropped UNIQUE(hash)")
    local rows = query(p, "SELECT id, name, tree_hash FROM hectic_migration ORDER BY id")
    assert.are.equal(3, #rows)
    assert.are.same({ 2, A }, { rows[1].id, rows[1].name })
    assert.are.same({ 3, B }, { rows[2].id, rows[2].name })
    assert.are.same({ 4, C }, { rows[3].id, rows[3].name })
    r = ok(run(p, "status"))
    has(r.stdout, "3 applied, 0 modified, 0 pending, 0 missing")
  end)

  it("refuses an incompatible migrator version (exit 13)", function()
    local p = setup_project()
    ok(run(p, "init"))
    do
      local db <close> = assert(sqlite.open(p.db))
      db:exec("UPDATE hectic_version SET version = '9.9.9' WHERE name = 'migrator'")
    end
    mig(p, "20250101000000-a", "CREATE TABLE a (x);\n", "DROP TABLE a;\n")
    local r = run(p, "migrate", "up")
    assert.are.equal(13, r.code)
    has(r.stderr, "Incompatible migrator versions")
    has(r.stderr, "init failed")
    assert.is_false(has_table(p, "a"))
  end)

  it("rejects other dot-commands at file:line, and COMMIT in a script is recorded with a warning", function()
    local p = setup_project()
    local A = mig(p, "20250101000000-dot", "CREATE TABLE a (x);\n.mode csv\n", "DROP TABLE a;\n")
    local r = run(p, "migrate", "up")
    assert.are.equal(4, r.code)
    has(r.stderr, "migration/" .. A .. "/up.sql:2:1: unsupported sqlite3 dot-command .mode")
    assert.is_false(has_table(p, "a"))
    mig(p, A, "CREATE TABLE a (x);\nCOMMIT;\nCREATE TABLE b (x);\n", "DROP TABLE a; DROP TABLE b;\n")
    r = ok(run(p, "migrate", "up"))
    has(r.stderr, "ended the migration transaction itself")
    assert.is_true(has_table(p, "b"))
    assert.are.equal(1, count(p))
  end)

  it("detects modified migrations, reports status, dry-runs, warns about --set", function()
    local p = setup_project("dir with space.sqlite3")
    p.url = p.db -- a bare *.sqlite3 path, with a space
    local A = mig(p, "20250101000000-a", "CREATE TABLE a (x);\n", "DROP TABLE a;\n")
    mig(p, "20250102000000-b", "CREATE TABLE b (x);\n", "DROP TABLE b;\n")
    local r = ok(run(p, "status", "--json"))
    has(r.stdout, '"initialized":false')
    has(r.stdout, '"engine":"sqlite"')
    assert.is_nil(t.read(p.db)) -- status does not create the database
    r = ok(run(p, "migrate", "up", "all", "--dry-run"))
    has(r.stdout, "2 to apply")
    assert.is_nil(t.read(p.db))
    r = ok(run(p, "migrate", "up", "--set", "x=1"))
    has(r.stderr, "--set variables are ignored for SQLite")
    t.write(p.mdir .. "/" .. A .. "/up.sql", "CREATE TABLE a (x, y);\n")
    r = run(p, "migrate", "up")
    assert.are.equal(2, r.code)
    has(r.stderr, "an applied migration was modified")
    r = ok(run(p, "status"))
    has(r.stdout, "modified  " .. A)
    has(r.stdout, "pending   20250102000000-b")
    ok(run(p, "migrate", "up", "--allow-modified"))
    assert.is_true(has_table(p, "b"))
  end)
  it("takes policy and hooks from the project's db-tool.lua, shows progress on a TTY", function()
    local p = setup_project()
    local A = mig(p, "20250101000000-a", "CREATE TABLE a (x);\n", "DROP TABLE a;\n")
    mig(p, "20250102000000-b", "CREATE TABLE b (x);\n", "DROP TABLE b;\n")
    mig(p, "20250103000000-c", "CREATE TABLE c (x);\n", "DROP TABLE c;\n")
    local hooklog = p.dir .. "/hooks.log"
    local proj = [[
local out = os.getenv("HOOK_LOG")
local function w(s) local f = assert(io.open(out, "a")); f:write(s, "\n"); f:close() end
return {
  hooks = {
    before_migrate = function(info) w("before_migrate " .. #info.plan.steps) end,
    before_each_migration = function(info) w("before " .. info.name) end,
    after_each_migration = function(info) w("after " .. info.name .. " " .. info.outcome) end,
    after_migrate = function(info) w("after_migrate " .. info.done) end,
  },
  settings = { migration = { checksum = "warn" } },
}]]
    t.write(p.dir .. "/db/db-tool.lua", proj)
    local function prun(...)
      return t.run { argv = { "migrator", ... }, cwd = p.dir, env = { DB_URL = p.url, NO_COLOR = "1",
        DATABASE_DIR = p.dir .. "/db", MIGRATION_DIR = p.mdir, HOOK_LOG = hooklog, DB_TOOL_TTY = "1" } }
    end
    local r = prun("migrate", "up", "2")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("before_migrate 2\nbefore " .. A .. "\nafter " .. A .. " applied\n"
      .. "before 20250102000000-b\nafter 20250102000000-b applied\nafter_migrate 2\n", t.read(hooklog))
    has(r.stderr, "migrating [")
    has(r.stderr, "applied " .. A .. " (up) in ")
    has(r.stderr, "2 migration(s) in ")
    -- checksum = "warn" from the project: a modified migration only warns
    t.write(p.mdir .. "/" .. A .. "/up.sql", "CREATE TABLE a (x, y);\n")
    r = prun("migrate", "up")
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "an applied migration was modified")
    assert.is_true(has_table(p, "c"))
    -- a bad setting stops everything
    t.write(p.dir .. "/db/db-tool.lua", "return { settings = { migration = { colour = 1 } } }")
    r = prun("migrate", "down")
    assert.are.equal(1, r.code)
    has(r.stderr, "unknown setting 'colour'")
    assert.is_true(has_table(p, "c"))
  end)
end)
