-- database diff end to end: a real backup (taken by `database backup` from a cluster at
-- migration 1), the built binary, two real temporary clusters per run. After every run the
-- private TMPDIR must be empty and no server may be left running from it.
local t = require "testutil"
local proc = require "dbtool.core.proc"
local dirent = require "posix.dirent"

local M1 = [[
CREATE SCHEMA app;
CREATE TABLE app.item (id int PRIMARY KEY, name text NOT NULL) INHERITS (hectic.created_at);
CREATE TABLE app.kind (code text PRIMARY KEY, label text, rank int)
  INHERITS (hectic.created_at, hectic.immutable);
CREATE TABLE app."Odd ""name""" (k int PRIMARY KEY, v text) INHERITS (hectic.created_at, hectic.immutable);
INSERT INTO app.kind (code, label, rank) VALUES ('b', 'Bee', 2), ('a', 'A''s', 1);
INSERT INTO app."Odd ""name""" (k, v) VALUES (1, NULL);
]]

local M2 = [[
ALTER TABLE app.item ADD COLUMN price int;
INSERT INTO app.kind (code, label, rank) VALUES ('c', 'C', 3);
]]

-- the sources that match migrations 1 + 2; opts change them
local function sources(opts)
  opts = opts or {}
  return table.concat({
    "CREATE SCHEMA app;",
    "CREATE TABLE app.item (id int PRIMARY KEY, name text NOT NULL, price int"
      .. (opts.note and ", note text" or "") .. ") INHERITS (hectic.created_at);",
    "CREATE TABLE app.kind (code text PRIMARY KEY, label text, rank int)",
    "  INHERITS (hectic.created_at, hectic.immutable);",
    "CREATE TABLE app.\"Odd \"\"name\"\"\" (k int PRIMARY KEY, v text)",
    "  INHERITS (hectic.created_at, hectic.immutable);",
    opts.sleep and "SELECT pg_sleep(60);" or "",
    "BEGIN;",
    "SET LOCAL hectic.migration_mode = 'on';",
    "INSERT INTO app.kind (code, label, rank) VALUES ('a', 'A''s', 1), ('b', 'Bee', 2), ('c', "
      .. (opts.label_c or "'C'") .. ", 3);",
    "INSERT INTO app.\"Odd \"\"name\"\"\" (k, v) VALUES (1, NULL);",
    "COMMIT;",
  }, "\n") .. "\n"
end

describe("database diff", function()
  local dir, proj, backup, tmp

  local function write_migration(name, up)
    t.write(proj .. "/db/migration/" .. name .. "/up.sql", up)
    t.write(proj .. "/db/migration/" .. name .. "/down.sql", "SELECT 1;\n")
  end

  local function diff_env(extra)
    local e = {
      LOCAL_DIR = proj, DATABASE_DIR = false, MIGRATION_DIR = false, DATABASE_SOURCE = false,
      DEFAULT_BACKUP_PATH = backup, TMPDIR = tmp, PG_SHARED_PRELOAD_LIBRARIES = "",
      PG_DATABASE = false, PG_PORT = false, PGURL = false, DB_URL = false, PAGER = false,
      HYDRATE_LOG = false, PG_LOG_PATH = false, PG_REUSE = false, NO_COLOR = false, DB_TOOL_TTY = false,
      HECTIC_DOTENV_FILE = false, ENVIRONMENT = false,
    }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function diff(args, extra)
    local argv = { "database", "diff" }
    for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
    return t.run { argv = argv, env = diff_env(extra), timeout = 180 }
  end

  -- processes whose command line mentions `path` (a postmaster names its data directory)
  local function procs_with(path)
    local found = {}
    for _, pid in ipairs(dirent.dir("/proc") or {}) do
      if pid:match("^%d+$") then
        local cmd = t.read("/proc/" .. pid .. "/cmdline")
        if cmd and cmd:find(path, 1, true) then found[#found + 1] = pid .. ": " .. cmd:gsub("%z", " ") end
      end
    end
    return found
  end

  local function assert_clean()
    local left = {}
    for _, n in ipairs(dirent.dir(tmp) or {}) do
      if n ~= "." and n ~= ".." then left[#left + 1] = n end
    end
    assert.are.same({}, left)
    assert.are.same({}, procs_with(tmp))
  end

  setup(function()
    dir = t.tmpdir("diff")
    proj = dir .. "/proj"
    backup = dir .. "/backup"
    tmp = dir .. "/tmp"
    t.mkdir_p(tmp)
    -- the "production" database: migration 1 applied, then backed up
    write_migration("20260101000000-one", M1)
    local origin = require("dbtool.cluster").start { dir = dir .. "/origin", port = 5432, database = "appdb",
      preload = "", logging = false }
    local r = t.run { argv = { "database", "-u", origin.url, "migrator", "migrate", "up", "all" },
      env = { MIGRATION_DIR = proj .. "/db/migration" } }
    assert.are.equal(0, r.code, r.stderr)
    r = t.run { argv = { "database", "-u", origin.url, "backup" }, env = { DEFAULT_BACKUP_PATH = backup } }
    assert.are.equal(0, r.code, r.stderr)
    origin:stop()
    assert.are.equal("appdb\n", t.read(backup .. "/database_name"))
    write_migration("20260102000000-two", M2)
  end)

  before_each(function()
    t.write(proj .. "/db/src/entrypoint.sql", sources())
    t.rm_rf(proj .. "/db/migration/20260103000000-three")
  end)

  after_each(function()
    assert_clean()
  end)

  it("exits 0 with no output when the backup plus migrations match the sources", function()
    local r = diff()
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.matches("no schema differences found", r.stderr)
    assert.matches("no data differences in 2 tables", r.stderr)
    assert.matches("no differences found", r.stderr)
    assert.matches("applying migration 20260102000000%-two", r.stderr)
    assert.is_nil(r.stderr:find("20260101000000-one (up)", 1, true)) -- already in the backup
  end)

  it("shows a schema difference as a unified diff and exits 1; -o writes it as plain text", function()
    t.write(proj .. "/db/src/entrypoint.sql", sources { note = true })
    local out = dir .. "/out/diff.txt"
    t.mkdir_p(dir .. "/out")
    local r = diff({ "-o", out }, { DB_TOOL_TTY = "1" })   -- a terminal, but -o: no pager, no colour
    assert.are.equal(1, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.matches("differences written to " .. out:gsub("%p", "%%%0"), r.stderr)
    assert.matches("schema differences found", r.stderr)
    local text = t.read(out)
    assert.matches("^%-%-%- backup%+migrations\n%+%+%+ sources\n@@ ", text)
    assert.matches("\n%-    price integer\n%+    price integer,\n%+    note text\n", text)
    assert.is_nil(text:find("\\restrict", 1, true))
    assert.is_nil(text:find("\27", 1, true))
    assert.matches("=== app%.kind ===\n%(no differences%)", text)
  end)

  it("shows a difference in immutable rows, in primary-key order, and exits 1", function()
    t.write(proj .. "/db/src/entrypoint.sql", sources { label_c = "'C!'" })
    local r = diff()
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("no schema differences found", r.stderr)
    assert.matches("data differences in 1 of 2 tables: app%.kind", r.stderr)
    local expected = table.concat({
      "(no schema differences)",
      "",
      "--- IMMUTABLE TABLE DATA ---",
      "",
      '=== app."Odd ""name""" ===',
      "(no differences)",
      "",
      "=== app.kind ===",
      "--- backup+migrations: app.kind",
      "+++ sources: app.kind",
      "@@ -1,3 +1,3 @@",
      " INSERT INTO app.kind (code, label, rank) VALUES ('a', 'A''s', 1);",
      " INSERT INTO app.kind (code, label, rank) VALUES ('b', 'Bee', 2);",
      "-INSERT INTO app.kind (code, label, rank) VALUES ('c', 'C', 3);",
      "+INSERT INTO app.kind (code, label, rank) VALUES ('c', 'C!', 3);",
      "" }, "\n")
    assert.are.equal(expected, r.stdout)
  end)

  it("--tables compares only those tables, schema and rows; an unknown one exits 5", function()
    t.write(proj .. "/db/src/entrypoint.sql", sources { note = true })
    local r = diff { "--tables", "app.kind" }
    assert.are.equal(0, r.code, r.stderr .. r.stdout)   -- app.item differs, but is not compared
    assert.are.equal("", r.stdout)

    r = diff { "--tables", 'app.item, app."Odd ""name"""' }
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("%+    note text", r.stdout)
    assert.is_nil(r.stdout:find("app.kind", 1, true))
    assert.is_nil(r.stdout:find("IMMUTABLE", 1, true))
    assert.matches("%-%-%- TABLE DATA %-%-%-\n\n=== app%.item ===\n%(no differences%)\n\n"
      .. '=== app%."Odd ""name""" ===\n%(no differences%)\n$', r.stdout)

    r = diff { "--tables", "app.kind,app.nope" }
    assert.are.equal(5, r.code)
    assert.matches("table does not exist on either side: app%.nope", r.stderr)
  end)

  it("a failing migration: exit 4, or a comparison with --ignore-migration-fail", function()
    write_migration("20260103000000-three", "ALTER TABLE app.item ADD COLUMN broken int;\nSELECT 1/0;\n")
    local r = diff()
    assert.are.equal(4, r.code, r.stderr)
    assert.matches("migrations failed", r.stderr)
    assert.matches("division by zero", r.stderr)
    assert.matches("ignore%-migration%-fail", r.stderr)
    assert.are.equal("", r.stdout)
    assert_clean()

    r = diff { "--ignore-migration-fail" }
    assert.are.equal(0, r.code, r.stderr)              -- migration 3 rolled back: 1 + 2 match
    assert.matches("migrations failed; continuing because %-%-ignore%-migration%-fail is set", r.stderr)
    assert.matches("no differences found", r.stderr)
  end)

  it("colours on a terminal (through the pager), never with NO_COLOR; `diff log` shows the run", function()
    t.write(proj .. "/db/src/entrypoint.sql", sources { note = true })
    local r = diff({}, { DB_TOOL_TTY = "1", PAGER = "cat" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("\27%[32m%+    note text\27%[0m", r.stdout)
    r = diff({}, { DB_TOOL_TTY = "1", PAGER = "cat", NO_COLOR = "1" })
    assert.are.equal(1, r.code, r.stderr)
    assert.matches("%+    note text", r.stdout)
    assert.is_nil(r.stdout:find("\27", 1, true))

    -- `diff log` shows the last run: summary, hydrate output, server logs, the report
    r = t.run { argv = { "database", "diff", "log" }, env = diff_env() }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("==> [^\n]*/focus/database%-diff/summary%.log <==", r.stdout)
    assert.matches("result: differences found", r.stdout)
    assert.matches("==> [^\n]*/source%-hydrate%.log <==", r.stdout)
    assert.matches("==> [^\n]*/backup%-server/postmaster%.log <==", r.stdout)
    assert.matches("==> [^\n]*/diff%.txt <==\n%-%-%- backup%+migrations", r.stdout)
  end)

  it("errors: missing backup (3), bad arguments (9), a hydrate failure (2)", function()
    local r = diff { dir .. "/no-such-backup" }
    assert.are.equal(3, r.code)
    assert.matches("diff: backup directory not found: .*no%-such%-backup", r.stderr)
    r = diff { "--with-data" }
    assert.are.equal(9, r.code)
    assert.matches("diff argument %-%-with%-data does not exist", r.stderr)
    r = diff { backup, "extra" }
    assert.are.equal(9, r.code)
    assert.matches("diff: unexpected argument extra", r.stderr)
    t.write(proj .. "/db/src/entrypoint.sql", "CREATE TABLE broken (;\n")
    r = diff()
    assert.are.equal(2, r.code)
    assert.matches("entrypoint%.sql:1", r.stderr)
    r = t.run { argv = { "database", "diff", "log" }, env = diff_env { LOCAL_DIR = dir .. "/elsewhere" } }
    assert.are.equal(1, r.code)
    assert.matches("no diff logs yet", r.stderr)
    r = t.run { argv = { "database", "diff", "--help" }, env = { LOCAL_DIR = false } }
    assert.are.equal(0, r.code)
    assert.matches("IMMUTABLE TABLE DATA", r.stdout)
  end)

  it("Ctrl-C stops and removes both clusters", function()
    t.write(proj .. "/db/src/entrypoint.sql", sources { sleep = true })
    local errfile = dir .. "/int.err"
    local e = require("posix.stdlib").getenv()
    for k, v in pairs(diff_env()) do e[k] = v or nil end
    local p = assert(proc.spawn { argv = { t.build .. "/database", "diff" }, env = e, stdin = "null",
      stdout = "null", stderr = { path = t.watch_output(errfile) } })
    local core = require "dbtool.core"
    local deadline = core.now() + 60
    -- wait until the hydrate is sleeping on the sources side
    while core.now() < deadline and not (t.read(errfile) or ""):find("hydrate database sources", 1, true) do
      core.sleep(0.05)
    end
    core.sleep(0.3)
    assert.are_not.same({}, procs_with(tmp))             -- a server is running from TMPDIR
    p:kill("INT")
    local how, code = p:wait(60)
    assert.are.equal("exited", how)
    assert.are.equal(130, code)
    assert.matches("interrupted", t.read(errfile))
  end)
end)
