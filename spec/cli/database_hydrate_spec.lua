-- `database hydrate` and `database patch` end to end against fresh databases of the shared
-- test cluster: the built binary, connection order, the hectic bundle hook, mock mode,
-- nested includes, secrets, output logs and every error path.
local t = require "testutil"
local d = require "dbproject"

local function hectic(url)
  return d.value(url, "SELECT count(*) > 0 FROM pg_namespace WHERE nspname = 'hectic'")
end

describe("database hydrate", function()
  it("applies the bundle, then the entrypoint with nested \\ir includes (relative to each file)",
  function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "\\echo entry\n\\ir schema/main.sql\n",
      ["db/src/schema/main.sql"] = "\\ir tables/a.sql\n\\ir ../extra/b.sql\n",
      ["db/src/schema/tables/a.sql"] =
        "CREATE TABLE a (x int) INHERITS (hectic.created_at);\n\\echo a done\n",
      ["db/src/extra/b.sql"] = "CREATE TABLE b (y int) INHERITS (hectic.created_at, hectic.updated_at);\n",
    }
    local url = t.fresh_db("hyd")
    local r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("entry\na done\n", r.stdout)
    assert.is_true(d.has(url, "public.a"))
    assert.is_true(d.has(url, "public.b"))
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM hectic.version"))
    assert.matches("db hydrate> hectic bundle hook", r.stderr, 1, true)
    assert.matches("db hydrate> installed the hectic bundle 0.1.0", r.stderr, 1, true)
    assert.matches("db hydrate> hydrate done in [%d.]+ m?s %(bundle [^)]*sources", r.stderr)
    -- b got the updated_at trigger from the bundle's event trigger
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM pg_trigger "
      .. "WHERE tgrelid = 'public.b'::regclass AND tgname = 'hectic_set_updated_at'"))
    -- idempotent bundle: a second hydrate fails only on the sources' own CREATE TABLE
    t.write(dir .. "/db/src/entrypoint.sql", "SELECT 1;\n")
    r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(1, d.value(url, "SELECT count(*)::int FROM hectic.version"))
  end)

  it("--no-hook skips the bundle; -m sets USE_MOCK for \\if :{?USE_MOCK}", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] =
        "\\if :{?USE_MOCK}\n\\echo mocked :USE_MOCK\n\\else\n\\echo real\n\\endif\n",
    }
    local url = t.fresh_db("hyd")
    local r = d.database(dir, { "hydrate", "--no-hook" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("skipping hectic bundle hook", r.stderr, 1, true)
    assert.are.equal("real\n", r.stdout)
    assert.is_false(hectic(url))
    r = d.database(dir, { "hydrate", "-H", "-m" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("mocked 1\n", r.stdout)
    assert.matches("mock mode enabled — external API calls will be stubbed", r.stderr, 1, true)
    assert.is_false(hectic(url))
    r = d.database(dir, { "hydrate", "--mock" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("mocked 1\n", r.stdout)
    assert.is_true(hectic(url))
  end)

  it("keeps \\echo and \\warn in order with the log lines on one pipe (2>&1 | cat): hydrate, sql, migrator",
  function()
    local script = "\\echo one\nDO $$BEGIN RAISE NOTICE 'hello'; END$$;\n\\echo two\n\\warn three-warn\n"
      .. "\\echo four\n"
    local dir = d.project {
      ["db/src/entrypoint.sql"] = script,
      ["script.sql"] = script,
      ["db/migration/20260101000000-first/up.sql"] = script,
      ["db/migration/20260101000000-first/down.sql"] = "SELECT 1;\n",
    }
    local url = t.fresh_db("hyd")
    -- stdout and stderr are the same pipe: stdout is block-buffered there, stderr is not
    local function piped(args)
      local cmd = t.shq(t.build .. "/database")
      for _, a in ipairs(args) do cmd = cmd .. " " .. t.shq(a) end
      local r = t.run { argv = { "sh", "-c", cmd .. " 2>&1 | cat" }, env = d.env(dir, { PGURL = url }),
        cwd = dir }
      assert.are.equal(0, r.code, r.stdout)
      assert.are.equal("", r.stderr)
      -- the script's lines and the log lines around them, in the order they came out
      local seen = {}
      for line in r.stdout:gmatch("[^\n]+") do
        if line == "one" or line == "two" or line == "three-warn" or line == "four" then
          seen[#seen + 1] = line
        elseif line:find("NOTICE: hello", 1, true) then
          seen[#seen + 1] = "NOTICE"
        elseif line:find("hydrate database sources", 1, true) or line:find("applying migration", 1, true) then
          seen[#seen + 1] = "start"
        elseif line:find("hydrate done", 1, true) or line:find("successfully migrated", 1, true) then
          seen[#seen + 1] = "done"
        end
      end
      return seen, r.stdout
    end
    local seen, out = piped { "hydrate" }
    assert.are.same({ "start", "one", "NOTICE", "two", "three-warn", "four", "done" }, seen, out)
    seen, out = piped { "sql", "script.sql" }
    assert.are.same({ "one", "NOTICE", "two", "three-warn", "four" }, seen, out)
    seen, out = piped { "migrator", "migrate", "up", "all" }
    assert.are.same({ "start", "one", "NOTICE", "two", "three-warn", "four", "done" }, seen, out)
  end)

  it("connects to -u, else PGURL, else DB_URL", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "CREATE TABLE here (x int) INHERITS (hectic.created_at);\n" }
    local a, b, c = t.fresh_db("conn"), t.fresh_db("conn"), t.fresh_db("conn")
    local r = d.database(dir, { "hydrate" }, { PGURL = a, DB_URL = b })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(a, "public.here"))
    assert.is_false(d.has(b, "public.here"))
    r = d.database(dir, { "hydrate" }, { DB_URL = b })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(b, "public.here"))
    -- -u anywhere on the line, --url=, both win over the environment
    r = d.database(dir, { "hydrate", "-u", c }, { PGURL = a, DB_URL = b })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(c, "public.here"))
    local e = t.fresh_db("conn")
    r = d.database(dir, { "--url=" .. e, "hydrate" }, { PGURL = a })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(d.has(e, "public.here"))
  end)

  it("loads secrets from HECTIC_DOTENV_FILE, else .env.$ENVIRONMENT, after the bundle", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "SELECT 1;\n",
      [".env.staging"] = "FROM_ENVIRONMENT=yes\n",
      ["custom.env"] = "# comment\nAPI_KEY=\"quoted value\"\nDELIM=before$ps_env$after\n",
    }
    local url = t.fresh_db("sec")
    local r = d.database(dir, { "hydrate" }, { PGURL = url, HECTIC_DOTENV_FILE = dir .. "/custom.env",
      ENVIRONMENT = "staging" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("quoted value", d.value(url, "SELECT hectic.get_secret('API_KEY')"))
    assert.are.equal("before$ps_env$after", d.value(url, "SELECT hectic.get_secret('DELIM')"))
    assert.is_nil(d.value(url, "SELECT hectic.get_secret('FROM_ENVIRONMENT')"))
    -- values never reach the output
    assert.is_nil((r.stdout .. r.stderr):find("quoted value", 1, true))
    r = d.database(dir, { "hydrate" }, { PGURL = url, ENVIRONMENT = "staging" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("yes", d.value(url, "SELECT hectic.get_secret('FROM_ENVIRONMENT')"))
    assert.is_nil(d.value(url, "SELECT hectic.get_secret('API_KEY')"))
    -- --no-hook leaves the secrets alone
    r = d.database(dir, { "hydrate", "-H" }, { PGURL = url, HECTIC_DOTENV_FILE = dir .. "/custom.env" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("yes", d.value(url, "SELECT hectic.get_secret('FROM_ENVIRONMENT')"))
  end)

  it("writes the scripts' output to HYDRATE_LOG (truncated each run) or $PG_LOG_PATH/hydrate.stdout.log",
  function()
    local dir = d.project { ["db/src/entrypoint.sql"] = "\\echo to the log\nSELECT 1;\n" }
    local url = t.fresh_db("hyd")
    local logfile = dir .. "/logs/hydrate.log"
    t.write(logfile, "old content\n")
    local r = d.database(dir, { "hydrate", "-H" }, { PGURL = url, HYDRATE_LOG = logfile })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.are.equal("to the log\n", t.read(logfile))
    r = d.database(dir, { "hydrate", "-H" }, { PGURL = url, PG_LOG_PATH = dir .. "/pglogs" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.are.equal("to the log\n", t.read(dir .. "/pglogs/hydrate.stdout.log"))
    -- HYDRATE_LOG wins over PG_LOG_PATH
    os.remove(logfile)
    r = d.database(dir, { "hydrate", "-H" },
      { PGURL = url, PG_LOG_PATH = dir .. "/pglogs", HYDRATE_LOG = logfile })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("to the log\n", t.read(logfile))
  end)

  it("fails with file:line and exit 1 on an SQL error, naming the log", function()
    local dir = d.project {
      ["db/src/entrypoint.sql"] = "\\ir part.sql\n",
      ["db/src/part.sql"] = "CREATE TABLE first_ok (x int) INHERITS (hectic.created_at);\n"
        .. "INSERT INTO missing_table VALUES (1);\nCREATE TABLE never (x int);\n",
    }
    local url = t.fresh_db("hyd")
    local r = d.database(dir, { "hydrate" }, { PGURL = url, HYDRATE_LOG = dir .. "/h.log" })
    assert.are.equal(1, r.code)
    assert.matches("part.sql:2:13: relation \"missing_table\" does not exist", r.stderr, 1, true)
    assert.matches("the output of the run is in " .. dir .. "/h.log", r.stderr, 1, true)
    assert.is_true(d.has(url, "public.first_ok")) -- statement by statement, as psql -f
    assert.is_false(d.has(url, "public.never"))
  end)

  it("fails with exit 13 on a bundle version mismatch and runs no source", function()
    local dir = d.project { ["db/src/entrypoint.sql"] = "CREATE TABLE after_bundle (x int);\n" }
    local url = t.fresh_db("hyd")
    local r = d.database(dir, { "hydrate", "-H" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    d.exec(url, "DROP TABLE after_bundle")
    r = d.database(dir, { "migrator", "init" }, { DB_URL = url })
    assert.are.equal(0, r.code, r.stderr)
    d.exec(url, "UPDATE hectic.version SET version = '0.0.9' WHERE name = 'hectic'")
    r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(13, r.code)
    assert.matches("hectic schema version mismatch: database has 0.0.9, code expects 0.1.0", r.stderr, 1,
      true)
    assert.is_false(d.has(url, "public.after_bundle"))
    assert.are.equal("0.0.9", d.value(url, "SELECT version FROM hectic.version WHERE name = 'hectic'"))
  end)

  it("reports a missing entrypoint, bad arguments and an unreachable database", function()
    local dir = d.project {}
    local url = t.fresh_db("hyd")
    local r = d.database(dir, { "hydrate" }, { PGURL = url })
    assert.are.equal(1, r.code)
    assert.matches("hydrate entrypoint not found: " .. dir .. "/db/src/entrypoint.sql", r.stderr, 1, true)
    assert.is_false(hectic(url))
    -- DATABASE_SOURCE and an absolute HYDRATE_ENTRYPOINT
    t.write(dir .. "/elsewhere/entrypoint.sql", "\\echo elsewhere\n")
    t.write(dir .. "/abs.sql", "\\echo absolute\n")
    r = d.database(dir, { "hydrate", "-H" }, { PGURL = url, DATABASE_SOURCE = dir .. "/elsewhere" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("elsewhere\n", r.stdout)
    r = d.database(dir, { "hydrate", "-H" }, { PGURL = url, HYDRATE_ENTRYPOINT = dir .. "/abs.sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("absolute\n", r.stdout)
    r = d.database(dir, { "hydrate", "--wat" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("hydrate argument --wat does not exist", r.stderr, 1, true)
    r = d.database(dir, { "hydrate", "thing" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("hydrate subcommand thing does not exist", r.stderr, 1, true)
    r = d.database(dir, { "hydrate", "-H" },
      { PGURL = "postgresql:///nope?host=" .. dir .. "/no-socket-here",
        DATABASE_SOURCE = dir .. "/elsewhere" })
    assert.are.equal(1, r.code)
    assert.matches("is the server running?", r.stderr, 1, true)
  end)
end)

describe("database patch", function()
  it("creates the file empty when missing, then applies it", function()
    local dir = d.project {}
    local url = t.fresh_db("patch")
    local r = d.database(dir, { "patch" }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", t.read(dir .. "/test-data.sql"))
    assert.matches("created empty " .. dir .. "/test-data.sql", r.stderr, 1, true)
    assert.matches("db patch> patch done in", r.stderr, 1, true)
    -- PROFILE_DIR, then PATCH_SQL, choose the file (directories made as needed)
    r = d.database(dir, { "patch" }, { PGURL = url, PROFILE_DIR = dir .. "/profiles/alice" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", t.read(dir .. "/profiles/alice/test-data.sql"))
    t.write(dir .. "/data/custom.sql", "CREATE TABLE p (id int, v text);\n"
      .. "COPY p (id, v) FROM stdin;\n1\tone\n2\ttwo\n\\.\n\\echo copied\n")
    r = d.database(dir, { "patch" }, { PGURL = url, PATCH_SQL = dir .. "/data/custom.sql",
      PROFILE_DIR = dir .. "/profiles/alice" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("restoring " .. dir .. "/data/custom.sql in database", r.stderr, 1, true)
    assert.are.equal("copied\n", r.stdout)
    assert.are.equal("two", d.value(url, "SELECT v FROM p WHERE id = 2"))
  end)

  it("applies all or nothing, exit 1 with file:line; output to PATCH_LOG or PG_LOG_PATH", function()
    local dir = d.project {
      ["test-data.sql"] = "\\echo patching\nCREATE TABLE half (x int);\nINSERT INTO half VALUES (1);\n"
        .. "INSERT INTO half VALUES ('not a number');\n",
    }
    local url = t.fresh_db("patch")
    local r = d.database(dir, { "patch" }, { PGURL = url, PATCH_LOG = dir .. "/patch.log" })
    assert.are.equal(1, r.code)
    assert.matches("test-data.sql:4:26: invalid input syntax for type integer", r.stderr, 1, true)
    assert.matches("the output of the run is in " .. dir .. "/patch.log", r.stderr, 1, true)
    assert.are.equal("patching\n", t.read(dir .. "/patch.log"))
    assert.is_false(d.has(url, "public.half"))
    t.write(dir .. "/test-data.sql", "\\echo fixed\nCREATE TABLE half (x int);\n")
    r = d.database(dir, { "patch" }, { PGURL = url, PG_LOG_PATH = dir .. "/pglogs" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.are.equal("fixed\n", t.read(dir .. "/pglogs/patch.stdout.log"))
    assert.is_true(d.has(url, "public.half"))
  end)

  it("--edit opens $EDITOR on the file, then applies what was saved", function()
    local dir = d.project {}
    local url = t.fresh_db("patch")
    local editor = t.write(dir .. "/editor.sh", "#!/bin/sh\n"
      .. "echo \"$0 $*\" > \"$(dirname \"$0\")/editor.args\"\n"
      .. "printf 'CREATE TABLE edited (x int);\\n' >> \"$1\"\n")
    require("posix.sys.stat").chmod(editor, tonumber("755", 8))
    local r = d.database(dir, { "patch", "--edit" }, { PGURL = url, EDITOR = editor })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("opening " .. dir .. "/test-data.sql in " .. editor, r.stderr, 1, true)
    assert.are.equal(editor .. " " .. dir .. "/test-data.sql\n", t.read(dir .. "/editor.args"))
    assert.is_true(d.has(url, "public.edited"))
    -- an editor that fails: nothing applied, exit 1
    t.write(dir .. "/test-data.sql", "CREATE TABLE not_applied (x int);\n")
    r = d.database(dir, { "patch", "-e" }, { PGURL = url, EDITOR = "false" })
    assert.are.equal(1, r.code)
    assert.matches("the editor exited with code 1; nothing was applied", r.stderr, 1, true)
    assert.is_false(d.has(url, "public.not_applied"))
    r = d.database(dir, { "patch", "-e" }, { PGURL = url, EDITOR = "no-such-editor-xyz" })
    assert.are.equal(127, r.code)
    assert.matches("cannot run the editor 'no-such-editor-xyz'", r.stderr, 1, true)
    r = d.database(dir, { "patch", "--wat" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("patch argument --wat does not exist", r.stderr, 1, true)
    r = d.database(dir, { "patch", "file.sql" }, { PGURL = url })
    assert.are.equal(9, r.code)
    assert.matches("patch subcommand file.sql does not exist", r.stderr, 1, true)
  end)
end)
