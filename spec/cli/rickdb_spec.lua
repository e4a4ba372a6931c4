-- The `rickdb` binary end to end on SQLite (and without any database): help, every
-- configuration error with its exit code, every command and error message, several named
-- databases in one file, dto output and templates, colours.
local t = require "testutil"
local sqlite = require "dbtool.core.sqlite"

local function run(dir, args, env)
  local e = { RICKDB_CONFIG = false, NO_COLOR = false, DB_TOOL_TTY = false, DB_TOOL_COLOR = false,
    HECTIC_LOG = false, DATABASE_DIR = false, LOCAL_DIR = false }
  for k, v in pairs(env or {}) do e[k] = v end
  local argv = { "rickdb" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return t.run { argv = argv, cwd = dir, env = e }
end

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function query(path, sql, ...)
  local db <close> = assert(sqlite.open(path, { create = false }))
  return db:query(sql, ...)
end

local function project(files)
  local dir = t.tmpdir("rick")
  for name, content in pairs(files or {}) do t.write(dir .. "/" .. name, content) end
  return dir
end

local TWO_DBS = [[
# two SQLite databases
[db]
engine = "sqlite"
db_file = "main.db"

[db_other]
engine = "sqlite3"
db_file = "other.db"
]]

describe("rickdb (CLI, SQLite)", function()
  it("shows help without a configuration file or database", function()
    local dir = project()
    for _, args in ipairs { {}, { "help" }, { "--help" }, { "-h" }, { "app", "help" }, { "help", "nope" } } do
      local r = run(dir, args)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
      has(r.stdout, "\nAvailable commands:\n===================\n")
      has(r.stdout, "migrate\texecute migrations from the specified location\n")
      has(r.stdout, "Exit codes:")
    end
    local r = run(dir, { "help", "migrate" })
    assert.are.equal(0, r.code)
    assert.matches("^execute migrations from the specified location\nUsage: rickdb %[database%] migrate "
      .. "<path_to_sql_files>\n", r.stdout)
    for _, args in ipairs { { "migrate", "--help" }, { "app", "migrate", "-h" } } do
      assert.are.equal(r.stdout, run(dir, args).stdout)
    end
    r = run(dir, { "list", "--help" })
    assert.matches("^List applied migrations\nUsage: rickdb %[database%] list\n", r.stdout)
  end)

  it("reports a missing configuration file (255), naming it", function()
    local dir = project()
    local r = run(dir, { "list" })
    assert.are.equal(255, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("^Error: Could not locate configuration file %- rickdb%.toml\n", r.stderr)
    r = run(dir, { "list" }, { RICKDB_CONFIG = dir .. "/conf/x.toml" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error: Could not locate configuration file - " .. dir .. "/conf/x.toml")
    r = run(dir, { "--config", "y.toml", "list" }, { RICKDB_CONFIG = dir .. "/conf/x.toml" })
    has(r.stderr, "Error: Could not locate configuration file - y.toml")
  end)

  it("shows where a configuration file is broken (255)", function()
    local dir = project { ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "x.db"\nport = 54x32\n' }
    local r = run(dir, { "list" })
    assert.are.equal(255, r.code)
    assert.are.equal("Error : rickdb.toml:4:8: invalid number '54x32'\n    4 | port = 54x32\n"
      .. "      |        ^\n",
      r.stderr)
    t.write(dir .. "/rickdb.toml", '[db]\nengine = "sqlite"\n[db]\n')
    r = run(dir, { "init" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error : rickdb.toml:3:1: table [db] is defined twice (first on line 1)")
    t.write(dir .. "/rickdb.toml",
      '[db]\nengine = "sqlite"\ndb_file = "x.db"\n\n[db_test]\ndb_file = "t.db"\n')
    r = run(dir, { "list" })
    assert.are.equal(255, r.code)
    has(r.stderr,
      "Error : missing 'engine' parameter in database configuration key 'db_test' in rickdb.toml\n"
      .. "  at rickdb.toml:5\n")
    assert.is_nil(t.read(dir .. "/x.db"))
  end)

  it("reports missing sections (254) and invalid commands (255) in rick_db's order", function()
    local dir = project { ["rickdb.toml"] = '[db_app]\nengine = "sqlite"\ndb_file = "a.db"\n' }
    local r = run(dir, { "list" })
    assert.are.equal(254, r.code)
    has(r.stderr, "Error : default database configuration not found in the config file\n")
    has(r.stderr, "databases in rickdb.toml: app")
    r = run(dir, { "nope", "list" })
    assert.are.equal(254, r.code)
    has(r.stderr, "Error : database 'nope' not found in the config file")
    r = run(dir, { "nope", "lsit" })
    assert.are.equal(254, r.code)
    r = run(dir, { "app", "lsit" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error : invalid command 'lsit'; try 'rickdb help'")
    r = run(project(), { "lsit" }) -- no configuration needed to see this
    assert.are.equal(255, r.code)
    assert.are.equal("Error : invalid command 'lsit'; try 'rickdb help'\n  hint: did you mean 'list'?\n",
      r.stderr)
    r = run(dir, { "--bogus", "list" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error : invalid option '--bogus'; try 'rickdb help'")
    r = run(dir, { "app", "init", "--json" })
    assert.are.equal(255, r.code)
    has(r.stderr, "Error : option --json does not apply to 'init'")
    r = run(dir, { "app", "migrate", "m", "--lock-wait", "soon" })
    assert.are.equal(255, r.code)
    has(r.stderr, "--lock-wait expects a number of seconds")
  end)

  it("reports unknown engines and bad parameters (253)", function()
    local dir = project()
    local cases = {
      { 'engine = "oracle"', "Error : engine 'oracle' is invalid or not supported" },
      { 'engine = "clickhouse"', "ClickHouse is not supported by this build" },
      { 'engine = "sqlite"', "Error : missing 'db_file' parameter for the sqlite engine in [db]" },
      { 'engine = "sqlite"\ndb_file = "x.db"\nfoo = 1',
        "Error : 'foo' is not a parameter of the sqlite engine" },
    }
    for _, c in ipairs(cases) do
      t.write(dir .. "/rickdb.toml", "[db]\n" .. c[1] .. "\n")
      local r = run(dir, { "init" })
      assert.are.equal(253, r.code, r.stderr)
      has(r.stderr, c[2])
    end
    -- a broken section that is not used does not matter (only engine is checked for all)
    t.write(dir .. "/rickdb.toml", '[db]\nengine = "sqlite"\ndb_file = "x.db"\n[db_b]\nengine = "oracle"\n')
    assert.are.equal(0, run(dir, { "init" }).code)
    -- a directory that cannot hold the file
    t.write(dir .. "/rickdb.toml", '[db]\nengine = "sqlite"\ndb_file = "no/such/dir/x.db"\n')
    local r = run(dir, { "init" })
    assert.are.equal(253, r.code)
    has(r.stderr, "Error: cannot open SQLite database")
  end)

  it("runs every command on two named databases of one file", function()
    local dir = project {
      ["rickdb.toml"] = TWO_DBS,
      ["m/001.sql"] = "CREATE TABLE users (id_user INTEGER PRIMARY KEY, name TEXT);\n",
      ["m/002.sql"] = "-- a ; in a comment\nCREATE TABLE page (id_page INTEGER PRIMARY KEY, title TEXT);\n"
        .. "CREATE TRIGGER page_t AFTER INSERT ON page WHEN NEW.title IS NULL\nBEGIN\n"
        .. "  UPDATE page SET title = 'x;y' WHERE id_page = NEW.id_page;\nEND;\n",
      ["m/003.sql"] = "  \n\n",
      ["m/004.sql"] = "INSERT INTO page (id_page) VALUES (1);\n",
      ["m/README.txt"] = "not a migration",
      ["m/X.SQL"] = "not a migration either (suffix is case-sensitive)",
    }
    -- not installed: 252, and nothing created
    for _, args in ipairs { { "list" }, { "check", "m" }, { "migrate", "m" }, { "flatten", "s.sql" } } do
      local r = run(dir, args)
      assert.are.equal(252, r.code, table.concat(args, " "))
      assert.are.equal("Error : Migration Manager is not installed\n  hint: run `rickdb init` first\n",
        r.stderr)
    end
    assert.is_nil(t.read(dir .. "/main.db"))

    local r = run(dir, { "init" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Migration Manager installed sucessfully!\n", r.stdout)
    r = run(dir, { "init" })
    assert.are.equal(0, r.code)
    assert.are.equal("Warning : Migration Manager is already installed\n", r.stdout)
    -- _migration exactly as rick_db creates it on SQLite
    local info = query(dir .. "/main.db", "PRAGMA table_info('_migration')")
    local shape = {}
    for i, c in ipairs(info) do shape[i] = c.name .. " " .. c.type .. " " .. c.notnull .. " " .. c.pk end
    assert.are.same({ "id_migration INTEGER 0 1", "applied TIMESTAMP WITH TIME ZONE 0 0", "name TEXT 1 0" },
      shape)
    assert.are.equal(1, #query(dir .. "/main.db",
      "SELECT 1 AS x FROM sqlite_master WHERE name = 'sqlite_sequence'"))

    r = run(dir, { "list" })
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
    r = run(dir, { "check", "m/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Checking 001.sql... new migration\nChecking 002.sql... new migration\n"
      .. "Checking 003.sql... empty migration\nChecking 004.sql... new migration\n", r.stdout)
    r = run(dir, { "check", "--exit-code", "m" })
    assert.are.equal(1, r.code)
    r = run(dir, { "migrate", "m/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr)
    assert.are.equal("Executing 001.sql... success\nExecuting 002.sql... success\n"
      .. "Executing 003.sql... skipping, empty migration\nExecuting 004.sql... success\n", r.stdout)
    assert.are.equal("x;y", query(dir .. "/main.db", "SELECT title FROM page")[1].title)
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code)
    assert.are.equal("Executing 001.sql... skipping, already applied\n"
      .. "Executing 002.sql... skipping, already applied\n"
      .. "Executing 003.sql... skipping, empty migration\nExecuting 004.sql... skipping, already applied\n",
      r.stdout)
    r = run(dir, { "check", "m", "--exit-code" })
    assert.are.equal(0, r.code) -- empty files are not pending work
    assert.are.equal("Checking 001.sql... already applied\nChecking 002.sql... already applied\n"
      .. "Checking 003.sql... empty migration\nChecking 004.sql... already applied\n", r.stdout)
    r = run(dir, { "list" })
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(3, #lines)
    for i, name in ipairs { "001.sql", "002.sql", "004.sql" } do
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d\t" .. name:gsub("%.", "%%.") .. "$",
        lines[i])
    end
    -- the rows rick_db would read
    local rows = query(dir .. "/main.db", "SELECT id_migration, name FROM _migration ORDER BY id_migration")
    assert.are.same({ "001.sql", "002.sql", "004.sql" }, { rows[1].name, rows[2].name, rows[3].name })

    -- the other database is separate
    r = run(dir, { "other", "list" })
    assert.are.equal(252, r.code)
    assert.are.equal(0, run(dir, { "other", "init" }).code)
    r = run(dir, { "other", "check", "m" })
    assert.are.equal("Checking 001.sql... new migration\nChecking 002.sql... new migration\n"
      .. "Checking 003.sql... empty migration\nChecking 004.sql... new migration\n", r.stdout)
    r = run(dir, { "other", "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, #query(dir .. "/other.db", "SELECT * FROM _migration"))

    -- flatten
    r = run(dir, { "flatten" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : missing name for flattened migration to be inserted\n", r.stderr)
    r = run(dir, { "flatten", "schema.sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Flattening all migrations to schema.sql... success\n", r.stdout)
    rows = query(dir .. "/main.db", "SELECT name FROM _migration")
    assert.are.same({ "schema.sql" }, { rows[1].name })
    r = run(dir, { "list" })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+\tschema%.sql\n$", r.stdout)
    -- the old files are new again, as rick_db warns
    r = run(dir, { "check", "m" })
    has(r.stdout, "Checking 001.sql... new migration\n")
    assert.are.equal(3, #query(dir .. "/other.db", "SELECT * FROM _migration"))

    -- an empty table cannot be flattened
    query(dir .. "/other.db", "DELETE FROM _migration")
    r = run(dir, { "other", "flatten", "x.sql" })
    assert.are.equal(252, r.code)
    assert.are.equal("", r.stdout)
    assert.are.equal("Error : no migrations inserted yet, cannot flatten\n", r.stderr)

    -- extra arguments are ignored, with a warning
    r = run(dir, { "list", "extra" })
    assert.are.equal(0, r.code)
    has(r.stderr, "Warning : ignoring extra arguments after 'list'")
  end)

  it("checks the migration path, and stops at a failing file with nothing of it applied", function()
    local dir = project {
      ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n',
      ["m/001.sql"] = "CREATE TABLE a (x INTEGER);\n",
      ["m/002.sql"] = "CREATE TABLE half (x INTEGER);\nINSERT INTO nope VALUES (1);\n",
      ["m/003.sql"] = "CREATE TABLE c (x INTEGER);\n",
      ["notadir"] = "x",
    }
    assert.are.equal(0, run(dir, { "init" }).code)
    for _, cmd in ipairs { "check", "migrate" } do
      local r = run(dir, { cmd })
      assert.are.equal(252, r.code)
      assert.are.equal("Error : missing path to migration files\n", r.stderr)
      r = run(dir, { cmd, "notadir" })
      assert.are.equal(252, r.code)
      has(r.stderr, "Error : migration path must be a directory\n")
      r = run(dir, { cmd, "nowhere" })
      assert.are.equal(252, r.code)
      has(r.stderr, "Error : migration path must be a directory\n")
    end
    -- an unreadable file: named, nothing run
    os.execute("chmod 000 " .. dir .. "/m/003.sql")
    local r = run(dir, { "check", "m" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : cannot read m/003.sql: Permission denied\n", r.stderr)
    os.execute("chmod 644 " .. dir .. "/m/003.sql")
    r = run(dir, { "migrate", "m" })
    assert.are.equal(252, r.code)
    assert.are.equal("Executing 001.sql... success\nExecuting 002.sql... error\n", r.stdout)
    assert.matches("^Error : no such table: nope\n  at m/002%.sql:2:%d+\n", r.stderr)
    has(r.stderr, "INSERT INTO nope")
    has(r.stderr, "1 earlier migration(s) of this run stay applied")
    local rows = query(dir .. "/r.db", "SELECT name FROM _migration")
    assert.are.same({ "001.sql" }, { rows[1].name })
    assert.are.equal(1, #rows)
    assert.are.equal(0, #query(dir .. "/r.db",
      "SELECT 1 AS x FROM sqlite_master WHERE name IN ('half', 'c')"))
    -- fixed: the run goes on from there
    t.write(dir .. "/m/002.sql", "CREATE TABLE b (x INTEGER);\n")
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... skipping, already applied\nExecuting 002.sql... success\n"
      .. "Executing 003.sql... success\n", r.stdout)
  end)

  it("keeps checksums aside and warns about (or refuses) changed applied files", function()
    local dir = project {
      ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n',
      ["m/001.sql"] = "CREATE TABLE a (x INTEGER);\n",
    }
    assert.are.equal(0, run(dir, { "init" }).code)
    assert.are.equal(0, run(dir, { "migrate", "m" }).code)
    local sums = query(dir .. "/r.db", "SELECT name, checksum FROM _migration_checksum")
    assert.are.equal(1, #sums)
    assert.are.equal(64, #sums[1].checksum)
    t.write(dir .. "/m/001.sql", "CREATE TABLE a (x INTEGER, y INTEGER);\n")
    t.write(dir .. "/m/002.sql", "CREATE TABLE b (x INTEGER);\n")
    local r = run(dir, { "check", "m" })
    assert.are.equal(0, r.code)
    assert.are.equal("Checking 001.sql... already applied\nChecking 002.sql... new migration\n", r.stdout)
    has(r.stderr, "Warning : 001.sql changed since it was applied")
    r = run(dir, { "check", "m", "--json" })
    local json = r.stdout
    has(json, '"name":"001.sql"')
    has(json, '"state":"modified"')
    has(json, '"counts":{"applied":0,"empty":0,"missing":0,"modified":1,"pending":1}')
    -- verify mode refuses to go on
    t.write(dir .. "/rickdb.toml",
      '[db]\nengine = "sqlite"\ndb_file = "r.db"\n[rickdb]\nchecksum = "verify"\n')
    r = run(dir, { "migrate", "m" })
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : an applied migration was modified since it was applied:")
    assert.are.equal(0, #query(dir .. "/r.db", "SELECT 1 AS x FROM sqlite_master WHERE name = 'b'"))
    -- warn mode (the default) applies the new file and says so
    t.write(dir .. "/rickdb.toml", '[db]\nengine = "sqlite"\ndb_file = "r.db"\n')
    r = run(dir, { "migrate", "m" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Executing 001.sql... skipping, already applied\nExecuting 002.sql... success\n",
      r.stdout)
    has(r.stderr, "001.sql")
  end)

  it("writes machine-readable list and check output", function()
    local dir = project {
      ["rickdb.toml"] = TWO_DBS,
      ["m/001.sql"] = "CREATE TABLE a (x INTEGER);\n",
      ["m/002.sql"] = "\n",
      ["m/003.sql"] = "CREATE TABLE c (x INTEGER);\n",
    }
    assert.are.equal(0, run(dir, { "init" }).code)
    assert.are.equal(0, run(dir, { "migrate", "m" }).code)
    os.remove(dir .. "/m/001.sql")
    t.write(dir .. "/m/004.sql", "SELECT 1;\n")
    local r = run(dir, { "check", "--json", "m" })
    assert.are.equal(0, r.code, r.stderr)
    has(r.stdout, '"database":"db","engine":"sqlite"')
    has(r.stdout, '"missing":["001.sql"]')
    has(r.stdout, '{"name":"002.sql","state":"empty"}')
    has(r.stdout, '"counts":{"applied":1,"empty":1,"missing":1,"modified":0,"pending":1}')
    r = run(dir, { "list", "--json" })
    assert.matches('^{"database":"db","engine":"sqlite","migrations":%[{"applied":"[^"]+","checksum":"%x+",'
      .. '"id":1,"name":"001%.sql"},{', r.stdout)
    assert.are.equal(0, run(dir, { "other", "init" }).code)
    r = run(dir, { "other", "list", "--json" })
    assert.are.equal('{"database":"other","engine":"sqlite","migrations":[]}\n', r.stdout)
  end)

  it("generates DTOs for tables and views, fixing rick_db's defects, never overwriting silently", function()
    local dir = project {
      ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n',
      ["m/001.sql"] = [[
CREATE TABLE users (id_user INTEGER PRIMARY KEY, name TEXT, "select" TEXT, "class" TEXT, _secret TEXT);
CREATE TABLE pair (a INTEGER, b INTEGER, note TEXT, PRIMARY KEY (a, b));
CREATE VIEW user_names AS SELECT id_user, name FROM users;
]],
    }
    assert.are.equal(0, run(dir, { "init" }).code)
    assert.are.equal(0, run(dir, { "migrate", "m" }).code)
    local r = run(dir, { "dto", "users", "out/users.py" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : [Errno 2] No such file or directory: 'out/users.py'\n", r.stderr)
    r = run(dir, { "dto", "users", "users.py" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("DTO written to file users.py\n", r.stdout)
    assert.are.equal(t.read(t.top .. "/spec/fixtures/rickdb/sqlite_users.py"), t.read(dir .. "/users.py"))
    r = run(dir, { "dto", "main.users", "users2.py" })
    assert.are.equal(0, r.code, r.stderr)
    has(t.read(dir .. "/users2.py"), "@fieldmapper(tablename='users', schema='main', pk='id_user')\n")
    r = run(dir, { "dto", "user_names", "v.py" })
    assert.are.equal(0, r.code)
    assert.are.equal("from rick_db import fieldmapper\n\n\n@fieldmapper(tablename='user_names')\n"
      .. "class UserNamesRecord:\n    id_user = 'id_user'\n    name = 'name'\n", t.read(dir .. "/v.py"))
    assert.are.equal(0, run(dir, { "dto", "pair", "pair.py" }).code)
    assert.are.equal(t.read(t.top .. "/spec/fixtures/rickdb/sqlite_pair.py"), t.read(dir .. "/pair.py"))
    -- errors
    r = run(dir, { "dto" })
    assert.are.equal(252, r.code)
    assert.are.equal("Error : Missing table name\n", r.stderr)
    r = run(dir, { "dto", "users" })
    assert.are.equal("Error : Missing output file\n", r.stderr)
    r = run(dir, { "dto", "nope", "nope.py" })
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : Database object 'nope' not found\n")
    assert.is_nil(t.read(dir .. "/nope.py"))
    r = run(dir, { "dto", "other.users", "o.py" })
    has(r.stderr, "Error : Database object 'other.users' not found\n")
    t.write(dir .. "/keep.py", "mine\n")
    r = run(dir, { "dto", "users", "keep.py" })
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : Output file already exists\n")
    assert.are.equal("mine\n", t.read(dir .. "/keep.py"))
    r = run(dir, { "dto", "users", "keep.py", "--force" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(t.read(dir .. "/users.py"), t.read(dir .. "/keep.py"))
  end)

  it("lets a project replace the DTO template (module override, setting, --template)", function()
    local dir = project {
      ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n',
      ["m/001.sql"] = "CREATE TABLE page (id_page INTEGER PRIMARY KEY, title TEXT, "
        .. "\"class\" TEXT NOT NULL);\n",
      -- ${DATABASE_DIR}/lua override that wraps the built-in template
      ["db/lua/dbtool/rickdb/dto_python.lua"] = [[
local builtin = require "dbtool.builtin.rickdb.dto_python"
return { extension = "py", render = function(obj, dto)
  return "# generated for my project\n" .. builtin.render(obj, dto)
end }
]],
      -- a Lua record template, chosen by file name
      ["tpl/lua_record.lua"] = [[
return { extension = "lua", render = function(obj, dto)
  local out = { "return {", "  table = " .. string.format("%q", obj.object) .. "," }
  for _, c in ipairs(obj.columns) do
    out[#out + 1] = string.format("  %s = %q,", c.attr, c.name)
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n")
end }
]],
    }
    assert.are.equal(0, run(dir, { "init" }).code)
    assert.are.equal(0, run(dir, { "migrate", "m" }).code)
    local r = run(dir, { "dto", "page", "p.py" }, { DATABASE_DIR = dir .. "/db" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("# generated for my project\nfrom rick_db import fieldmapper\n\n\n"
      .. "# column 'class' is attribute class_: is a Python keyword\n"
      .. "@fieldmapper(tablename='page', pk='id_page')\nclass PageRecord:\n    id = 'id_page'\n"
      .. "    title = 'title'\n    class_ = 'class'\n", t.read(dir .. "/p.py"))
    r = run(dir, { "dto", "page", "p.lua", "--template", "tpl/lua_record.lua" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('return {\n  table = "page",\n  id = "id_page",\n  title = "title",\n'
      .. '  class_ = "class",\n}\n',
      t.read(dir .. "/p.lua"))
    -- the example TypeScript template, chosen in rickdb.toml (path relative to the file)
    t.write(dir .. "/conf/rickdb.toml", '[db]\nengine = "sqlite"\ndb_file = "r.db"\n[rickdb]\n'
      .. 'dto_template = "../tpl/dto_typescript.lua"\n')
    t.write(dir .. "/tpl/dto_typescript.lua", t.read(t.top
      .. "/examples/rickdb/templates/dto_typescript.lua"))
    r = run(dir, { "--config", "conf/rickdb.toml", "dto", "page", "page.ts" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("// table page (generated by rickdb dto)\nexport interface Page {\n  id?: number;\n"
      .. "  title?: string;\n  class_: string;\n}\n\nexport const PageColumns = {\n  id: 'id_page',\n"
      .. "  title: 'title',\n  class_: 'class',\n} as const;\n"
      .. "export const PagePrimaryKey = ['id_page'] as const;\n",
      t.read(dir .. "/page.ts"))
    r = run(dir, { "dto", "page", "x.py", "--template", "no.such.template" })
    assert.are.equal(252, r.code)
    has(r.stderr, "Error : cannot load DTO template 'no.such.template'")
    assert.is_nil(t.read(dir .. "/x.py"))
  end)

  it("colours only on a terminal, never with NO_COLOR or --no-color", function()
    local dir = project { ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n' }
    local r = run(dir, { "init" })
    assert.is_nil(r.stdout:find("\27", 1, true))
    r = run(dir, { "init" }, { DB_TOOL_TTY = "1" })
    assert.are.equal("\27[33mWarning : Migration Manager is already installed\27[0m\n", r.stdout)
    r = run(dir, { "init" }, { DB_TOOL_TTY = "1", NO_COLOR = "1" })
    assert.are.equal("Warning : Migration Manager is already installed\n", r.stdout)
    r = run(dir, { "init", "--no-color" }, { DB_TOOL_TTY = "1" })
    assert.are.equal("Warning : Migration Manager is already installed\n", r.stdout)
    r = run(dir, { "lsit" }, { DB_TOOL_TTY = "1" })
    assert.are.equal("\27[31mError : invalid command 'lsit'; try 'rickdb help'\27[0m\n"
      .. "  hint: did you mean 'list'?\n", r.stderr)
  end)

  it("never applies a file twice when two runs race on one SQLite database", function()
    local files = { ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "r.db"\n' }
    for i = 1, 20 do files[string.format("m/%03d.sql",
      i)] = string.format("CREATE TABLE t%d (x INTEGER);\n", i) end
    local dir = project(files)
    assert.are.equal(0, run(dir, { "init" }).code)
    local proc = require "dbtool.core.proc"
    local env = require("posix.stdlib").getenv()
    env.RICKDB_CONFIG = nil
    local procs = {}
    for i = 1, 2 do
      procs[i] = assert(proc.spawn { argv = { t.build .. "/rickdb", "migrate", "m" }, cwd = dir, env = env,
        stdout = { path = t.watch_output(dir .. "/out" .. i) },
        stderr = { path = t.watch_output(dir .. "/err" .. i) } })
    end
    for i = 1, 2 do
      local how, code = procs[i]:wait(120)
      assert.are.equal("exited", how)
      assert.are.equal(0, code, t.read(dir .. "/err" .. i))
    end
    local both = t.read(dir .. "/out1") .. t.read(dir .. "/out2")
    for i = 1, 20 do
      local name = string.format("%03d%%.sql", i)
      local _, ok = both:gsub("Executing " .. name .. "%.%.%. success", "")
      local _, skip = both:gsub("Executing " .. name .. "%.%.%. skipping, already applied", "")
      assert.are.equal(1, ok, both)
      assert.are.equal(1, skip, both)
    end
    assert.are.equal(20, #query(dir .. "/r.db", "SELECT DISTINCT name FROM _migration"))
    assert.are.equal(20, #query(dir .. "/r.db", "SELECT name FROM _migration"))
  end)

  it("opens SQLite URIs (db_file = \"file:...\")", function()
    local dir = project { ["rickdb.toml"] = '[db]\nengine = "sqlite"\ndb_file = "file:u.db?cache=private"\n' }
    local r = run(dir, { "init" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_truthy(t.read(dir .. "/u.db"))
    assert.is_nil(t.read(dir .. "/file:u.db?cache=private"))
  end)
end)
