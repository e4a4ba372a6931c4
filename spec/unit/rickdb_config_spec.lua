-- dbtool.rickdb.config without a database: locating rickdb.toml, sections, engines,
-- connection parameters, passfiles, [rickdb] settings; and the CLI's argument dispatch.
local t = require "testutil"
local config = require "dbtool.rickdb.config"
local rickdb = require "dbtool.personality.rickdb"
local command = require "dbtool.command"

local function raises(code, pat, f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_table(e, tostring(e))
  assert.are.equal(code, e.exit, e.msg)
  if pat then assert(e.msg:find(pat, 1, true), "'" .. e.msg .. "' lacks '" .. pat .. "'") end
  return e
end

describe("rickdb config", function()
  it("locates the file: --config, then RICKDB_CONFIG, then ./rickdb.toml", function()
    local env = {}
    local function getenv(k) return env[k] end
    assert.are.same({ "rickdb.toml", "default" }, { config.locate(nil, getenv) })
    env.RICKDB_CONFIG = "/etc/x.toml"
    assert.are.same({ "/etc/x.toml", "RICKDB_CONFIG" }, { config.locate(nil, getenv) })
    assert.are.same({ "my.toml", "--config" }, { config.locate("my.toml", getenv) })
    env.RICKDB_CONFIG = ""
    assert.are.same({ "rickdb.toml", "default" }, { config.locate(nil, getenv) })
  end)

  it("names the missing file (exit 255, rick_db's message)", function()
    local dir = t.tmpdir("rcfg")
    local e = raises(255, "Could not locate configuration file - " .. dir .. "/nope.toml", config.load,
      dir .. "/nope.toml")
    assert.are.equal("Error:", e.prefix)
    raises(255, "Could not locate configuration file - " .. dir, config.load, dir) -- a directory
  end)

  it("keeps [db] and [db_*] tables, warns about other db_ keys, ignores the rest", function()
    local cfg = config.parse([[
name = "app"
db_scalar = 1
[db]
engine = "pgsql"
dbname = "x"
[db_app]
engine = "sqlite"
db_file = "a.db"
[other]
x = 1
]], "conf/rickdb.toml")
    assert.are.same({ "db", "db_app" }, cfg.names)
    assert.are.equal("conf", cfg.dir)
    assert.are.equal(1, #cfg.warnings)
    assert.matches("conf/rickdb.toml:2: 'db_scalar' is not a table: ignored", cfg.warnings[1], 1, true)
    assert.are.equal("x", cfg.sections.db.dbname)
    assert.are.equal(".", config.parse("", "rickdb.toml").dir)
    assert.are.equal("/", config.parse("", "/rickdb.toml").dir)
  end)

  it("reports TOML errors at file:line:col with exit 255", function()
    local e = raises(255, "invalid number '54x32'", config.parse, "[db]\nengine = 'pg'\nport = 54x32\n",
      "r.toml")
    assert.are.equal("r.toml:3:8", e.where)
    assert.is_true(e.toml)
    e = raises(255, "table [db] is defined twice", config.parse, "[db]\nengine = 'pg'\n[db]\n", "r.toml")
    assert.are.equal("r.toml:3:1", e.where)
  end)

  it("requires engine in every section, as rick_db does when loading", function()
    local e = raises(255, "missing 'engine' parameter in database configuration key 'db_test' in r.toml",
      config.parse, "[db]\nengine = 'pg'\n\n[db_test]\ndb_file = 'x'\n", "r.toml")
    assert.are.equal("r.toml:4", e.where)
  end)

  it("selects the default and named databases (exit 254 when absent)", function()
    local cfg = config.parse("[db]\nengine='pg'\n[db_app]\nengine='sqlite'\ndb_file='x'\n", "r.toml")
    local s, key = config.select(cfg, nil)
    assert.are.equal("pg", s.engine)
    assert.are.equal("db", key)
    s, key = config.select(cfg, "app")
    assert.are.equal("sqlite", s.engine)
    assert.are.equal("db_app", key)
    local e = raises(254, "database 'nope' not found in the config file", config.select, cfg, "nope")
    assert.matches("databases in r.toml: (default), app", e.hint, 1, true)
    local only = config.parse("[db_app]\nengine='pg'\n", "r.toml")
    raises(254, "default database configuration not found in the config file", config.select, only, nil)
    local empty = config.parse("x = 1\n", "r.toml")
    e = raises(254, "default database", config.select, empty)
    assert.matches("has no [db] or [db_<name>] section", e.hint, 1, true)
  end)

  it("checks [rickdb] settings", function()
    local cfg = config.parse("[rickdb]\nchecksum = 'verify'\nlock_wait = 5\nlock_timeout = '3s'\n"
      .. "dto_template = 'x.lua'\n", "r.toml")
    assert.are.same({ checksum = "verify", lock_wait = 5, lock_timeout = "3s", dto_template = "x.lua" },
      cfg.settings)
    raises(255, "[rickdb] checksum must be one of verify, warn, off", config.parse,
      "[rickdb]\nchecksum = 'no'",
      "r.toml")
    raises(255, "unknown setting 'foo' in [rickdb]", config.parse, "[rickdb]\nfoo = 1", "r.toml")
    raises(255, "lock_wait must be a number", config.parse, "[rickdb]\nlock_wait = 'x'", "r.toml")
    raises(255, "lock_timeout must be a duration", config.parse, "[rickdb]\nlock_timeout = 'soon'", "r.toml")
    raises(255, "[rickdb] must be a table", config.parse, "rickdb = 1", "r.toml")
  end)

  describe("connection", function()
    it("maps the PostgreSQL aliases and keys to libpq keywords", function()
      for _, engine in ipairs { "pgsql", "pg", "postgres" } do
        local c = config.connection({ engine = engine, host = "h", port = 5432, user = "u", password = "p",
          database = "d", sslmode = "disable", connect_timeout = 3, keepalives = true }, "db")
        assert.are.equal("postgresql", c.engine)
        assert.are.same({ host = "h", port = "5432", user = "u", password = "p", dbname = "d",
          sslmode = "disable", connect_timeout = "3", keepalives = "1",
            fallback_application_name = "rickdb" },
          c.params)
        assert.are.equal("p", c.password)
      end
      local c, w = config.connection({ engine = "pg", dbname = "a", database = "b" }, "db_x")
      assert.are.equal("a", c.params.dbname)
      assert.matches("both dbname and database are set", w[1], 1, true)
      c = config.connection({ engine = "pg", isolation_level = "SERIALIZABLE", autocommit = true,
        application_name = "me" }, "db")
      assert.are.equal("-c default_transaction_isolation=serializable", c.params.options)
      assert.is_true(c.autocommit)
      assert.are.equal("me", c.params.application_name)
      assert.is_nil(c.params.autocommit)
      raises(253, "isolation_level must be one of", config.connection, { engine = "pg", isolation_level = 3 },
        "db")
      raises(253, "parameter 'host' must be a string or a number, not array", config.connection,
        { engine = "pg", host = require("dbtool.toml").array { "a" } }, "db")
    end)

    it("maps the SQLite aliases and keys", function()
      for _, engine in ipairs { "sqlite", "sqlite3", "sql3" } do
        local c = config.connection({ engine = engine, db_file = "/tmp/x.db", timeout = 2.5 }, "db")
        assert.are.same({ engine = "sqlite", path = "/tmp/x.db", uri = false, timeout = 2.5 }, c)
      end
      local c, w = config.connection({ engine = "sqlite", db_file = "file:x.db?mode=ro", password = "x" },
        "db")
      assert.is_true(c.uri)
      assert.matches("'password' is ignored for the sqlite engine", w[1], 1, true)
      raises(253, "missing 'db_file' parameter for the sqlite engine in [db_t]", config.connection,
        { engine = "sqlite" }, "db_t")
      raises(253, "'foo' is not a parameter of the sqlite engine", config.connection,
        { engine = "sqlite", db_file = "x", foo = 1 }, "db")
      raises(253, "timeout must be a number", config.connection, { engine = "sqlite", db_file = "x",
        timeout = "soon" }, "db")
    end)

    it("rejects unknown engines (exit 253)", function()
      raises(253, "engine 'oracle' is invalid or not supported", config.connection, { engine = "oracle" },
        "db")
      raises(253, "engine 'PGSQL' is invalid", config.connection, { engine = "PGSQL" },
        "db") -- case-sensitive
      local e = raises(253, "engine 'clickhouse' is invalid or not supported", config.connection,
        { engine = "clickhouse" }, "db")
      assert.matches("ClickHouse is not supported by this build", e.hint, 1, true)
      raises(253, "engine '1' is invalid", config.connection, { engine = 1 }, "db")
    end)

    it("reads the passfile's first line, relative to the configuration file, over password", function()
      local dir = t.tmpdir("rpass")
      t.write(dir .. "/secrets/pw", "  s3cret \r\nsecond line\n")
      os.execute("chmod 600 " .. dir .. "/secrets/pw")
      local cfg = config.parse("[db]\nengine = 'pg'\npassword = 'plain'\npassfile = 'secrets/pw'\n",
        dir .. "/rickdb.toml")
      local c, w = config.connection(cfg.sections.db, "db", cfg)
      assert.are.equal("  s3cret ", c.params.password)
      assert.are.equal("  s3cret ", c.password)
      assert.is_nil(c.params.passfile)
      assert.are.same({}, w)
      -- group/world access: a warning like libpq's
      os.execute("chmod 644 " .. dir .. "/secrets/pw")
      c, w = config.connection(cfg.sections.db, "db", cfg)
      assert.are.equal("  s3cret ", c.params.password)
      assert.matches("has group or world access; permissions should be u=rw (0600) or less", w[1], 1, true)
      -- absolute path, empty file
      t.write(dir .. "/empty", "")
      os.execute("chmod 600 " .. dir .. "/empty")
      c = config.connection({ engine = "pg", passfile = dir .. "/empty" }, "db", cfg)
      assert.are.equal("", c.params.password)
      -- missing, or a directory: rick_db's message, exit 255
      raises(255, "could not open passfile '" .. dir .. "/nope'", config.connection,
        { engine = "pg", passfile = "nope" }, "db", cfg)
      raises(255, "could not open passfile", config.connection, { engine = "pg", passfile = dir }, "db", cfg)
    end)
  end)
end)

describe("rickdb arguments", function()
  it("dispatches [database] <command> [args] like rick_db", function()
    local function plan(argv)
      local p = command.prepare(rickdb, argv)
      return { action = p.action, command = p.entry and p.entry.name, db = p.state.globals.database,
        args = p.opts and p.opts.positional or p.rest }
    end
    assert.are.same({ action = "none", args = {} }, plan {})
    assert.are.same({ action = "run", command = "list", args = {} }, plan { "list" })
    assert.are.same({ action = "run", command = "check", args = { "m/", "x" } }, plan { "check", "m/", "x" })
    assert.are.same({ action = "run", db = "app", command = "migrate", args = { "m" } },
      plan { "app", "migrate", "m" })
    raises(255, "invalid command 'lsit'; try 'rickdb help'", plan, { "lsit" })
    -- command names win over database names (as in rick_db)
    assert.are.same({ action = "run", command = "list", args = { "init" } }, plan { "list", "init" })
  end)

  it("takes options anywhere and rejects unknown ones (exit 255)", function()
    local function plan(argv) return command.prepare(rickdb, argv) end
    local p = plan { "--config", "c.toml", "app", "check", "--json", "m", "--exit-code" }
    assert.are.same({ "m" }, p.opts.positional)
    assert.are.equal("app", p.state.globals.database)
    assert.are.equal("c.toml", p.state.globals.config)
    assert.is_true(p.opts.json)
    assert.is_true(p.opts.exit_code)
    p = plan { "--config=x.toml", "dto", "-f", "--", "--weird", "out.py" }
    assert.are.equal("x.toml", p.state.globals.config)
    assert.is_true(p.opts.force)
    assert.are.same({ "--weird", "out.py" }, p.opts.positional)
    raises(255, "invalid option '--bogus'; try 'rickdb help'", plan, { "--bogus", "list" })
    raises(255, "option --config needs a value", plan, { "list", "--config" })
    raises(255, "option --json takes no value", plan, { "list", "--json=1" })
    raises(255, "option --json does not apply to 'init'", plan, { "init", "--json" })
  end)

  it("prints rick_db's help listing and per-command help", function()
    local text = rickdb.help_text(nil)
    assert.matches("^\nAvailable commands:\n===================\n", text)
    assert.matches("\ncheck\tcompares existing migrations with the applied migrations, and list new ones\n",
      text,
      1, true)
    assert.matches("\nlist\tlist applied migrations, sorted by time\n", text, 1, true)
    assert.are.equal("List applied migrations\nUsage: rickdb [database] list\n",
      rickdb.help_text("list"):match("^[^\n]*\n[^\n]*\n"))
    assert.are.equal("display general help about available commands\nUsage: rickdb help [command]\n",
      rickdb.help_text("help"))
    assert.matches("^generate a python data transfer object %(DTO%) for a given database object\n"
      .. "Usage: rickdb %[database%] dto <%[schema%.%]table_name> <output_file%.py>\n",
        rickdb.help_text("dto"))
  end)
end)
