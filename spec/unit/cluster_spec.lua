local cluster = require "dbtool.cluster"
local env = require "dbtool.env"
local pg = require "dbtool.core.pg"

local function settings_map(list)
  local m, order = {}, {}
  for _, kv in ipairs(list) do
    m[kv[1]] = kv[2]
    order[#order + 1] = kv[1]
  end
  return m, order
end

describe("dbtool.cluster (pure parts)", function()
  after_each(function() env.reset() end)

  describe("url", function()
    it("has the original's format", function()
      assert.are.equal("postgresql://alice@/testdb?host=/p/focus/postgresql/sock&port=5432",
        cluster.url { user = "alice", database = "testdb", host = "/p/focus/postgresql/sock", port = 5432 })
    end)

    it("percent-encodes what would break the URL, and libpq decodes it back", function()
      local t = { user = "a b", database = "d&b?#", host = "/tmp/we ird&x=1/sock", port = 6543 }
      local u = cluster.url(t)
      assert.matches("^postgresql://a%%20b@/d%%26b%%3F%%23%?host=/tmp/we%%20ird%%26x%%3D1/sock&port=6543$", u)
      local parsed = assert(pg.parse_conninfo(u))
      assert.are.equal("a b", parsed.user)
      assert.are.equal("d&b?#", parsed.dbname)
      assert.are.equal("/tmp/we ird&x=1/sock", parsed.host)
      assert.are.equal("6543", parsed.port)
    end)
  end)

  describe("export lines", function()
    it("single-quotes values, quotes included", function()
      assert.are.equal("'it'\\''s'", cluster.shell_quote("it's"))
      assert.are.equal("export A='x'\nexport B_2='a'\\''b\nc $HOME `id`'\n",
        cluster.export_lines { { "A", "x" }, { "B_2", "a'b\nc $HOME `id`" } })
    end)

    it("refuses names that are not shell variable names", function()
      assert.is_true(cluster.valid_var_name("PGURL"))
      assert.is_true(cluster.valid_var_name("_x9"))
      for _, bad in ipairs { "", "9A", "A-B", "A B", "A;rm", "A=B", "Ä" } do
        assert.is_false(cluster.valid_var_name(bad), bad)
      end
      local ok, e = pcall(cluster.export_lines, { { "A;B", "x" } })
      assert.is_false(ok)
      assert.are.equal(13, e.exit)
    end)

    it("exports POSTGRESQL_*, PGURL and $PG_URL_VAR in order", function()
      local h = { host = "/w/sock", port = 5433, user = "u", database = "d",
        url = "postgresql://u@/d?host=/w/sock&port=5433" }
      local names = {}
      for _, nv in ipairs(cluster.exports(h, "MY_URL")) do names[#names + 1] = nv[1] end
      assert.are.same({ "POSTGRESQL_HOST", "POSTGRESQL_PORT", "POSTGRESQL_USER", "POSTGRESQL_DATABASE",
        "PGURL", "MY_URL" }, names)
      assert.are.equal(5, #cluster.exports(h, "PGURL"))
      assert.are.equal("5433", cluster.exports(h)[2][2])
    end)
  end)

  describe("configuration", function()
    local base = { port = 5433, sock = "/w/sock", data = "/w/data", database = "testdb" }
    local function with(t)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(t) do o[k] = v end
      return o
    end

    it("parses library lists", function()
      assert.are.same({ "pg_cron", "pg_stat_statements" },
        cluster.parse_libraries(" pg_cron, pg_stat_statements ,"))
      assert.are.same({}, cluster.parse_libraries(""))
      assert.are.same({}, cluster.parse_libraries(nil))
    end)

    it("generates the original's settings on a fresh init", function()
      local m, order = settings_map(cluster.generated_settings(with { logging = true, preload = "pg_cron" }))
      assert.are.same({ "listen_addresses", "logging_collector", "log_directory", "shared_preload_libraries",
        "cron.database_name", "cron.host" }, order)
      assert.are.equal("", m.listen_addresses)
      assert.are.equal("log", m.log_directory)
      assert.are.equal("testdb", m["cron.database_name"])
      assert.are.equal("/w/sock", m["cron.host"])
    end)

    it("leaves out logging and preload when disabled, cron.* without pg_cron", function()
      local _, order = settings_map(cluster.generated_settings(with { logging = false, preload = "" }))
      assert.are.same({ "listen_addresses" }, order)
      local m = settings_map(cluster.generated_settings(with { logging = true, log_dir = "/logs",
        preload = "pg_stat_statements" }))
      assert.are.equal("/logs", m.log_directory)
      assert.are.equal("pg_stat_statements", m.shared_preload_libraries)
      assert.is_nil(m["cron.database_name"])
    end)

    it("generates nothing with PG_CONF_FILE, and imposes only the connection settings", function()
      assert.are.same({},
        cluster.generated_settings(with { conf_file = "/x.conf", logging = true, preload = "pg_cron" }))
      local _, order = settings_map(cluster.runtime_settings(with { conf_file = "/x.conf", logging = true,
        preload = "pg_cron" }))
      assert.are.same({ "port", "unix_socket_directories", "hba_file", "ident_file" }, order)
    end)

    it("rewrites the runtime settings on every start, extra settings last and sorted", function()
      local m, order = settings_map(cluster.runtime_settings(with { logging = false, preload = "pg_cron",
        settings = { max_connections = 50, fsync = "off" } }))
      assert.are.equal("5433", m.port)
      assert.are.equal("/w/data/pg_hba.conf", m.hba_file)
      assert.are.equal("/w/data/pg_ident.conf", m.ident_file)
      assert.are.equal("off", m.logging_collector)
      assert.are.equal("pg_cron", m.shared_preload_libraries)
      assert.are.same({ "fsync", "max_connections" }, { order[#order - 1], order[#order] })
      assert.are.equal("50", m.max_connections)
    end)

    it("quotes configuration values", function()
      assert.are.equal("'it''s a \\\\ path'", cluster.conf_quote("it's a \\ path"))
      assert.are.equal("''", cluster.conf_quote(""))
    end)

    it("rewrite_conf replaces managed keys, keeps the rest, and does not pile up", function()
      local text = table.concat({
        "# a comment about port = 1",
        "port = 5432",
        "  Port 5433  # odd spacing and case",
        "#port = 9",
        "logging_collector = on",
        "work_mem = '4MB'",
        "", "" }, "\n")
      local settings = { { "port", "6000" }, { "logging_collector", "off" } }
      local once = cluster.rewrite_conf(text, { "unix_socket_directories" }, settings)
      local twice = cluster.rewrite_conf(once, { "unix_socket_directories" }, settings)
      assert.are.equal(once, twice)
      assert.are.equal(table.concat({
        "# a comment about port = 1",
        "#port = 9",
        "work_mem = '4MB'",
        "# db-tool: runtime settings, rewritten by postgres-init on every start",
        "port = '6000'",
        "logging_collector = 'off'", "" }, "\n"), once)
      assert.are.equal("x = 1\n", cluster.rewrite_conf("x = 1\n", { "port" }, {}))
    end)
  end)

  describe("plan", function()
    it("reuses only a real cluster, and never discards something else when reuse was asked", function()
      assert.are.equal("reuse", cluster.plan(true, "cluster"))
      assert.are.equal("fresh", cluster.plan(true, "none"))
      assert.are.equal("fresh", cluster.plan(true, "empty"))
      assert.are.equal("move-aside", cluster.plan(true, "other"))
      for _, kind in ipairs { "cluster", "none", "empty", "other" } do
        assert.are.equal("fresh", cluster.plan(false, kind))
      end
    end)

    it("names moved-aside copies by time", function()
      local t = os.time { year = 2025, month = 3, day = 4, hour = 5, min = 6, sec = 7 }
      assert.are.equal("/w/data.broken-20250304-050607", cluster.broken_name("/w/data", t))
    end)
  end)

  describe("parse_pidfile", function()
    it("reads PostgreSQL's postmaster.pid", function()
      local info = cluster.parse_pidfile(
        "4242\n/w/data\n1700000000\n5433\n/w/sock\n\n  5433001     32768\nready   \n")
      assert.are.equal(4242, info.pid)
      assert.are.equal("/w/data", info.data)
      assert.are.equal(5433, info.port)
      assert.are.equal("/w/sock", info.sock)
      assert.are.equal("ready", info.status)
      assert.are.equal(99999999, cluster.parse_pidfile("99999999").pid)
      assert.is_nil(cluster.parse_pidfile("garbage\n"))
      assert.is_nil(cluster.parse_pidfile(""))
      assert.is_nil(cluster.parse_pidfile(nil))
    end)
  end)

  describe("check_root", function()
    it("refuses uid 0 with exit 2 and a clear message", function()
      local ok, e = pcall(cluster.check_root, 0, "postgres-init")
      assert.is_false(ok)
      assert.are.equal(2, e.exit)
      assert.matches("refusing to run as root", e.msg)
      assert.matches("nothing was changed", e.msg)
      assert.matches("runuser", e.hint)
      assert.is_nil(cluster.check_root(1000))
    end)
  end)

  describe("template key", function()
    local base = { bindir = "/b", binary_id = "1:2:3:4", initdb_args = cluster.initdb_args("u"),
      bake = "testdb" }
    it("is deterministic and changes with every input", function()
      local text, h = cluster.template_key(base)
      assert.are.equal(16, #h)
      assert.matches("^[0-9a-f]+$", h)
      assert.are.equal(h, select(2, cluster.template_key(base)))
      assert.matches("initdb=%-%-no%-locale %-E UTF8 %-A trust %-U u %-%-no%-sync", text)
      local seen = { [h] = true }
      for k, v in pairs { bindir = "/c", binary_id = "1:2:3:5", bake = "other", tz = "UTC",
        initdb_args = cluster.initdb_args("v") } do
        local t = {}
        for kk, vv in pairs(base) do t[kk] = vv end
        t[k] = v
        local _, h2 = cluster.template_key(t)
        assert.is_nil(seen[h2], k)
        seen[h2] = true
      end
    end)

    it("hashes with FNV-1a 64", function()
      assert.are.equal("cbf29ce484222325", cluster.hash(""))
      assert.are.equal("af63dc4c8601ec8c", cluster.hash("a"))
    end)
  end)

  describe("pool", function()
    it("keeps POOL_SIZE prepared copies unless DB_TOOL_SPARES says otherwise (0 disables, at most 8)",
      function()
      env.set("DB_TOOL_SPARES", nil)
      assert.are.equal(cluster.POOL_SIZE, cluster.pool_size())
      for v, want in pairs { ["0"] = 0, ["3"] = 3, ["2.7"] = 2, ["99"] = 8, ["-1"] = cluster.POOL_SIZE,
        ["many"] = cluster.POOL_SIZE, [""] = cluster.POOL_SIZE } do
        env.set("DB_TOOL_SPARES", v)
        assert.are.equal(want, cluster.pool_size(), "DB_TOOL_SPARES=" .. v)
      end
      assert.are.equal("/c/initdb-x/spares", cluster.pool_dir("/c/initdb-x"))
      assert.are.equal("/c/initdb-x/spares", cluster.pool_dir { dir = "/c/initdb-x" })
    end)
  end)

  describe("options_from_env", function()
    it("applies the seed defaults", function()
      env.set("PG_WORKING_DIR", "/w")
      for _, v in ipairs { "PG_PORT", "PG_DATABASE", "PG_REUSE", "PG_CONF_FILE",
        "PG_SHARED_PRELOAD_LIBRARIES", "PG_DISABLE_LOGGING", "PG_LOG_PATH" } do env.set(v, nil) end
      local o = cluster.options_from_env()
      assert.are.equal("/w", o.dir)
      assert.are.equal(5432, o.port)
      assert.are.equal("testdb", o.database)
      assert.is_false(o.reuse)
      assert.are.equal("pg_cron", o.preload)
      assert.are.equal("default", o.preload_source)
      assert.is_true(o.logging)
      assert.is_nil(o.conf_file)
    end)

    it("reads the variables: empty preload disables, PG_REUSE set (even empty) reuses", function()
      env.set("LOCAL_DIR", "/proj")
      env.set("PG_WORKING_DIR", nil)
      env.set("PG_PORT", "6001")
      env.set("PG_DATABASE", "app")
      env.set("PG_REUSE", "")
      env.set("PG_SHARED_PRELOAD_LIBRARIES", "")
      env.set("PG_DISABLE_LOGGING", "1")
      env.set("PG_LOG_PATH", "/logs")
      env.set("PG_CONF_FILE", "/c.conf")
      local o = cluster.options_from_env { spare = true }
      assert.are.equal("/proj/focus/postgresql", o.dir)
      assert.are.equal(6001, o.port)
      assert.are.equal("app", o.database)
      assert.is_true(o.reuse)
      assert.are.equal("", o.preload)
      assert.is_false(o.logging)
      assert.are.equal("/logs", o.log_dir)
      assert.are.equal("/c.conf", o.conf_file)
      assert.is_true(o.spare)
      assert.is_true(cluster.options_from_env { reuse = false }.reuse)   -- PG_REUSE wins
      env.set("PG_REUSE", nil)
      assert.is_false(cluster.options_from_env { reuse = false }.reuse)
      assert.is_true(cluster.options_from_env { reuse = true }.reuse)
      assert.are.equal("/logs", cluster.log_dir("/w"))
      env.set("PG_LOG_PATH", nil)
      assert.are.equal("/w/data/log", cluster.log_dir("/w"))
      env.set("PG_SHARED_PRELOAD_LIBRARIES", nil)
      assert.are.same({ "pg_cron", "default" }, { cluster.preload_from_env() })
    end)

    it("fails clearly on a missing working dir, a bad port and a bad PG_URL_VAR", function()
      env.set("PG_WORKING_DIR", nil)
      env.set("LOCAL_DIR", nil)
      local ok, e = pcall(cluster.options_from_env)
      assert.is_false(ok)
      assert.are.equal(3, e.exit)
      assert.matches("PG_WORKING_DIR or LOCAL_DIR", e.msg)
      env.set("PG_WORKING_DIR", "/w")
      env.set("PG_PORT", "70000")
      ok, e = pcall(cluster.options_from_env)
      assert.is_false(ok)
      assert.are.equal(1, e.exit)
      assert.matches("PG_PORT", e.msg)
      env.set("PG_URL_VAR", "1BAD;rm")
      ok, e = pcall(env.pg_url_var)
      assert.is_false(ok)
      assert.are.equal(1, e.exit)
      assert.matches("invalid PG_URL_VAR", e.msg)
    end)
  end)
end)
