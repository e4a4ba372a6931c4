-- The `migrator` binary without a database: arguments, help, version, create, list
-- (reference/migrator-upstream.md §5.2: arguments, create-migration, help-and-version,
-- migrations-list), URL errors.
local t = require "testutil"

local function run(dir, ...)
  local r = t.run { argv = { "migrator", ... }, cwd = dir, env = { DB_URL = false, MIGRATION_DIR = false,
    NO_COLOR = "1" } }
  r.out = r.stdout .. r.stderr
  return r
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

describe("migrator (CLI)", function()
  it("rejects ambiguous and unknown arguments like the original (arguments)", function()
    local dir = t.tmpdir("mcli")
    local r = run(dir, "--inherits", "a", "--inherits", "b", "list", "migrate")
    assert.are.equal(2, r.code)
    has(r.stderr, "ambiguous subcommand, decide list or migrate")
    has(r.stderr, "--inherits is deprecated and ignored")
    r = run(dir, "migrate", "to", "up")
    assert.are.equal(2, r.code)
    has(r.stderr, "ambiguous migrate subcommand, decide to or up")
    r = run(dir, "init", "--wat")
    assert.are.equal(9, r.code)
    has(r.stderr, "init argument --wat does not exists")
    r = run(dir, "list", "--wat")
    assert.are.equal(9, r.code)
    has(r.stderr, "list argument --wat does not exists")
    r = run(dir, "list", "extra")
    assert.are.equal(9, r.code)
    has(r.stderr, "list subcommand extra does not exists")
    r = run(dir, "create", "--raw")
    assert.are.equal(9, r.code)
    has(r.stderr, "create argument --raw does not exists")
    r = run(dir, "--migration-dir")
    assert.are.equal(3, r.code)
    has(r.stderr, "requires a value")
    r = run(dir, "-d", dir)
    assert.are.equal(1, r.code)
    has(r.stderr, "no subcommand specified. Use 'migrator help' for usage information.")
  end)

  it("prints help and version (help-and-version)", function()
    local dir = t.tmpdir("mcli")
    local r = run(dir, "--version")
    assert.are.equal(0, r.code)
    -- the line of every program; it names the migrator version (the original's test greps both)
    has(r.stdout, "migrator version")
    has(r.stdout, "0.0.1")
    assert.are.equal(t.run({ "database", "--version" }).stdout, r.stdout)
    assert.are.equal(r.stdout, run(dir, "list", "-V").stdout)
    for _, args in ipairs { {}, { "help" }, { "--help" }, { "-h" } } do
      r = run(dir, table.unpack(args))
      assert.are.equal(0, r.code)
      has(r.stdout, "Usage: migrator [OPTIONS] COMMAND")
      has(r.stdout, "migrate to NAME|PREFIX|latest|head|last")
      has(r.stdout, "Exit codes:")
    end
    -- a command's help is that command's (never the whole page)
    for _, args in ipairs { { "migrate", "--help" }, { "help", "migrate" }, { "-h", "migrate" } } do
      r = run(dir, table.unpack(args))
      assert.are.equal(0, r.code)
      has(r.stdout, "Usage: migrator migrate up [N|all|latest|head] | down [N|all] | to NAME|PREFIX")
      has(r.stdout, "--single-transaction")
      assert.is_nil(r.stdout:find("Migration layout", 1, true))
    end
    r = run(dir, "create", "-h")
    has(r.stdout, "Usage: migrator create [-n|--name NAME]")
    assert.is_nil(r.stdout:find("--single-transaction", 1, true))
  end)

  it("takes its directory from -d, MIGRATION_DIR, $DATABASE_DIR/migration, then ./migration", function()
    local dir = t.tmpdir("mcli")
    for _, p in ipairs { "migration/20260101000000-cwd", "db/migration/20260101000000-dbdir",
      "proj/db/migration/20260101000000-local", "env/20260101000000-env", "flag/20260101000000-flag" } do
      t.write(dir .. "/" .. p .. "/up.sql", "SELECT 1;\n")
    end
    local function list(env, ...)
      local e = { DB_URL = false, MIGRATION_DIR = false, DATABASE_DIR = false, LOCAL_DIR = false }
      for k, v in pairs(env) do e[k] = v end
      local r = t.run { argv = { "migrator", "list", "-r", ... }, cwd = dir, env = e }
      assert.are.equal(0, r.code, r.stderr)
      return r.stdout
    end
    assert.are.equal("20260101000000-cwd\n", list {})
    assert.are.equal("20260101000000-dbdir\n", list { DATABASE_DIR = dir .. "/db" })
    assert.are.equal("20260101000000-local\n", list { LOCAL_DIR = dir .. "/proj" })
    assert.are.equal("20260101000000-env\n",
      list { DATABASE_DIR = dir .. "/db", MIGRATION_DIR = dir .. "/env" })
    assert.are.equal("20260101000000-flag\n", list({ MIGRATION_DIR = dir .. "/env" }, "-d", dir .. "/flag"))
  end)

  it("shows a clean status table for long names; `migrate down all` reverts everything", function()
    local dir = t.tmpdir("mcli")
    local long = "20260101000000-" .. string.rep("a_very_long_description_", 7) .. "%s-%d"
    local names = { long, "20260102000000-short" }
    for _, n in ipairs(names) do
      t.write(dir .. "/migration/" .. n .. "/up.sql", "CREATE TABLE \"" .. n .. "\" (x);\n")
      t.write(dir .. "/migration/" .. n .. "/down.sql", "DROP TABLE \"" .. n .. "\";\n")
    end
    local function m(...)
      return t.run { argv = { "migrator", ... }, cwd = dir, env = { DB_URL = "sqlite://" .. dir .. "/m.db",
        MIGRATION_DIR = false, DATABASE_DIR = false, LOCAL_DIR = false, NO_COLOR = "1" } }
    end
    local r = m("migrate", "up")
    assert.are.equal(0, r.code, r.stderr)
    r = m("status")
    assert.are.equal(0, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(3, #lines, r.stdout)
    assert.matches("^applied   " .. long:gsub("%p", "%%%0") .. "  %d%d%d%d%-", lines[1])
    assert.matches("^pending   20260102000000%-short" .. string.rep(" ", #long - 20) .. "  %-  ", lines[2])
    assert.are.equal("1 applied, 0 modified, 1 pending, 0 missing", lines[3])
    r = m("migrate", "up")
    assert.are.equal(0, r.code, r.stderr)
    r = m("migrate", "down", "all")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("unknown migration", 1, true))
    has(r.stderr, "clean state")
    assert.matches("0 applied, 0 modified, 2 pending", m("status").stdout, 1, true)
    r = m("migrate", "down", "all")
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "already at clean state")
  end)

  it("suggests the nearest command or direction for a typo (exit 9)", function()
    local dir = t.tmpdir("mcli")
    local r = run(dir, "mgirate")
    assert.are.equal(9, r.code)
    has(r.stderr, "unknown subcommand 'mgirate'")
    has(r.stderr, "did you mean 'migrate'?")
    r = run(dir, "migrate", "upp", "all")
    assert.are.equal(9, r.code)
    has(r.stderr, "unknown direction 'upp'")
    has(r.stderr, "did you mean 'up'?")
    r = run(dir, "lsit", "-r")
    assert.are.equal(9, r.code)
    has(r.stderr, "did you mean 'list'?")
    r = run(dir, "list", "--rwa")
    assert.are.equal(9, r.code)
    has(r.stderr, "list argument --rwa does not exists")
    has(r.stderr, "did you mean '--raw'?")
  end)

  it("creates the directory layout migrate reads, with clean names (create-migration)", function()
    local dir = t.tmpdir("mcli")
    local r = run(dir, "create")
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "created migration: migration/")
    local first = r.stdout:match("^(%S+)\n$")
    assert.matches("^migration/%d%d%d%d%d%d%d%d%d%d%d%d%d%d%-[a-z][a-z][a-z][a-z][a-z][a-z]$", first)
    assert.is_truthy(t.read(dir .. "/" .. first .. "/up.sql"))
    assert.is_truthy(t.read(dir .. "/" .. first .. "/down.sql"))
    -- the timestamp is UTC
    local ts = first:match("/(%d+)%-")
    local now = os.time()
    local ok_ts = false
    for d = -5, 1 do if os.date("!%Y%m%d%H%M%S", now + d) == ts then ok_ts = true end end
    assert.is_true(ok_ts, ts)
    r = run(dir, "create", "--name", "test")
    assert.matches("^migration/%d+%-test\n$", r.stdout)
    r = run(dir, "create", "-n", "test name/../x")
    assert.matches("^migration/%d+%-test%-name%-x\n$", r.stdout)
    r = run(dir, "create", "--name", "list")
    assert.matches("^migration/%d+%-list\n$", r.stdout)
    r = run(dir, "create", "--name", "///")
    assert.are.equal(9, r.code)
    has(r.stderr, "invalid migration name")
    r = run(dir, "list", "--raw")
    local n = 0
    for _ in r.stdout:gmatch("[^\n]+") do n = n + 1 end
    assert.are.equal(4, n)
    -- refuses to overwrite: every name it could pick in the next seconds exists already
    now = os.time()
    for d = 0, 4 do
      t.write(dir .. "/migration/" .. os.date("!%Y%m%d%H%M%S", now + d) .. "-taken/up.sql", "-- mine\n")
    end
    r = run(dir, "create", "--name", "taken")
    assert.are.equal(1, r.code)
    has(r.stderr, "migration already exists")
    assert.are.equal("-- mine\n", t.read(dir .. "/migration/" .. os.date("!%Y%m%d%H%M%S", now)
      .. "-taken/up.sql"))
    -- MIGRATION_DIR and -d
    local r2 = t.run { argv = { "migrator", "create", "-n", "x" }, cwd = dir,
      env = { MIGRATION_DIR = "deep/er" } }
    assert.matches("^deep/er/%d+%-x\n$", r2.stdout)
    r2 = run(dir, "-d", dir .. "/other", "create", "-n", "y")
    assert.matches("/other/%d+%-y\n$", r2.stdout)
  end)

  it("lists migrations and what they miss (migrations-list)", function()
    local dir = t.tmpdir("mcli")
    local m = dir .. "/migration/"
    t.write(m .. "20251004192425-some-changes/placeholder", "")
    t.write(m .. "20251004292448-hour-29/up.sql", "")
    t.write(m .. "20251004292448-hour-29/down.sql", "")
    t.write(m .. "20251101000000-multi/up/entrypoint.sql", "")
    t.write(m .. "20251101000000-multi/down/entrypoint.sql", "")
    t.write(m .. "20251102000000-only-up/up.sql", "")
    t.write(m .. "20251103000000-only-down/down/entrypoint.sql", "")
    t.write(m .. "20251104000000-mixed/up.sql", "")
    t.write(m .. "20251104000000-mixed/down/entrypoint.sql", "")
    t.write(m .. "20251105000000-/up.sql", "")
    t.write(m .. "20251105000000-/down.sql", "")
    t.write(m .. "20251106000000-up-dir-no-entry/up/other.sql", "")
    t.write(m .. "20251107000000-file.sql", "")
    t.write(m .. "README/up.sql", "")
    local r = run(dir, "list", "--raw")
    assert.are.equal(0, r.code)
    assert.are.equal(table.concat({ "20251004192425-some-changes", "20251004292448-hour-29",
      "20251101000000-multi",
      "20251102000000-only-up", "20251103000000-only-down", "20251104000000-mixed", "20251105000000-",
      "20251106000000-up-dir-no-entry" }, "\n") .. "\n", r.stdout)
    r = run(dir, "list")
    assert.are.equal(table.concat({ "20251004192425-some-changes: missing up.sql down.sql",
      "20251004292448-hour-29",
      "20251101000000-multi", "20251102000000-only-up: missing down.sql",
        "20251103000000-only-down: missing up.sql",
      "20251104000000-mixed", "20251105000000-", "20251106000000-up-dir-no-entry: missing up.sql down.sql" },
        "\n")
      .. "\n", r.stdout)
    -- --db-url is accepted everywhere (list does not use it)
    assert.are.equal(0, run(dir, "-u", "postgresql://nowhere/x", "list", "-r").code)
    r = run(dir, "list", "-d", dir .. "/none")
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
    has(r.stderr, "migration directory not found")
  end)

  it("needs a supported database URL (exit 3)", function()
    local dir = t.tmpdir("mcli")
    local r = run(dir, "migrate", "up")
    assert.are.equal(3, r.code)
    has(r.stderr, "no database URL: pass --db-url URL or set DB_URL")
    r = run(dir, "status", "--db-url", "mysql://u@h/db")
    assert.are.equal(3, r.code)
    has(r.stderr, "unsupported database URL format: mysql://u@h/db")
    r = run(dir, "init", "-u", "postgresql://bob:secret@nowhere.invalid/x?connect_timeout=1")
    assert.are_not.equal(0, r.code)
    assert.is_nil(r.out:find("secret", 1, true)) -- passwords never shown
  end)
end)
