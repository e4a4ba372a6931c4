-- No secret in any message (issue 15): a password written into a connection string — also a
-- malformed one, whatever libpq makes of it — never appears in what our programs print, for
-- every way a connection string reaches them (-u, PGURL, DB_URL, rickdb.toml, the Lua API)
-- and every command that connects (sql, hydrate, patch, migrator, backup, secrets load,
-- rickdb). The password is made of two distinctive halves, so that a piece of it libpq quotes
-- as a port, a host or a database name is caught too. (The whole suite is also searched for
-- a planted password at the end of every run: spec/support/run-busted.sh.)
local t = require "testutil"
local d = require "dbproject"

local A, B = "Alpha9Qx", "Bravo7Zy"

-- Malformed (and well-formed) URLs and conninfo strings holding A and B in their password.
local function targets()
  local c = t.cluster()
  local sock = "host=" .. c.host .. "&port=" .. c.port
  return {
    -- libpq: invalid percent-encoded token: "<the password>"
    "postgresql://u:" .. A .. "%ZZ" .. B .. "@localhost/db",
    -- an unencoded '/' ends the authority: "u" is the host, the password's first half the port
    "postgresql://u:" .. A .. "/" .. B .. "@localhost/db",
    -- …and with digits first, the server is reached: the database is named after the second half
    "postgresql://:5432/" .. A .. B .. "@/db?" .. sock,
    -- an unencoded '@': the second half becomes the host name
    "postgresql://u:" .. A .. "@" .. B .. "@localhost:1/db",
    -- blanks, '#', '?', ':' in the password; a bad port; a malformed IPv6 host; a bad option
    "postgresql://u:" .. A .. " " .. B .. "@[::1/db",
    "postgresql://u:" .. A .. "#" .. B .. "@/db?host=/nonexistent",
    "postgresql://u:" .. A .. "?" .. B .. "@/db?host=/nonexistent&port=x",
    "postgresql://u:" .. A .. ":" .. B .. "@/db?host=/nonexistent&bogus=1",
    "postgresql://u:" .. A .. "%00" .. B .. "@/db?host=/nonexistent",
    -- the password as a query parameter, badly encoded or cut by an '&'
    "postgresql:///db?host=/nonexistent&password=" .. A .. "%ZZ" .. B,
    "postgresql:///db?host=/nonexistent&password=" .. A .. "&" .. B .. "&port=1",
    -- conninfo: an unquoted blank, an unterminated quote
    "host=/nonexistent password=" .. A .. " " .. B,
    "host=/nonexistent password='" .. A .. " " .. B,
    -- well formed, against the real server: a wrong database
    "postgresql://:" .. A .. B .. "@/no_such_db?" .. sock,
  }
end

local function clean(where, r, may_succeed)
  local out = r.stdout .. r.stderr
  for _, s in ipairs { A, B } do
    assert(not out:find(s, 1, true), string.format("%s printed a piece of the password (exit %d):\n%s",
      where, r.code, out))
  end
  assert(may_succeed or r.code ~= 0, where .. " succeeded")
end

describe("a password in a connection string", function()
  local dir

  setup(function()
    dir = d.project({
      ["db/src/entrypoint.sql"] = "SELECT 1;\n",
      ["test-data.sql"] = "SELECT 1;\n",
      ["db/migration/20250101000000-a/up.sql"] = "SELECT 1;\n",
      [".env.dev"] = "TOKEN=x\n",
      ["rk/m/001.sql"] = "SELECT 1;\n",
    }, "secrets")
  end)

  -- every command that connects, with the URL given the ways it accepts
  local function entry_points(url)
    return {
      { "database sql -u", { "sql", "-u", url, "-c", "SELECT 1" }, {} },
      { "database sql, PGURL", { "sql", "-c", "SELECT 1" }, { PGURL = url } },
      { "database sql, DB_URL", { "sql", "-c", "SELECT 1" }, { DB_URL = url } },
      { "database -u … hydrate", { "-u", url, "hydrate" }, {} },
      { "database patch, PGURL", { "patch" }, { PGURL = url } },
      { "database migrator status, PGURL", { "migrator", "status" }, { PGURL = url } },
      { "database backup -u", { "backup", "-u", url }, {} },
      { "database secrets load -u", { "secrets", "load", "-u", url, "-f", dir .. "/.env.dev" }, {} },
    }
  end

  it("never shows up in what `database` prints, however it is malformed", function()
    for _, url in ipairs(targets()) do
      for _, e in ipairs(entry_points(url)) do
        -- every log line too (HECTIC_LOG=trace); pg_basebackup ignores the database name: a
        -- backup of the server is fine
        e[3].HECTIC_LOG = "trace"
        clean(e[1] .. " " .. url, d.database(dir, e[2], e[3]), e[1]:find("backup", 1, true))
      end
    end
  end)

  it("never shows up in what `migrator` prints (-u and DB_URL)", function()
    for _, url in ipairs(targets()) do
      local mdir = dir .. "/db/migration"
      clean("migrator -u " .. url, t.run { argv = { "migrator", "-u", url, "-d", mdir, "status" },
        env = d.env(dir) })
      clean("migrator, DB_URL " .. url, t.run { argv = { "migrator", "-d", mdir, "migrate", "up" },
        env = d.env(dir, { DB_URL = url }) })
    end
  end)

  it("never shows up in what the Lua API raises (dbtool.connect, dbtool.pg.connect)", function()
    local script = t.write(dir .. "/connect.lua", [[
      local dbtool = require "dbtool"
      local which = arg[1]
      if which == "pg" then require("dbtool.pg").connect(arg[2]) else dbtool.connect(arg[2]) end
    ]])
    for _, url in ipairs(targets()) do
      clean("db-tool run (dbtool.connect) " .. url, t.run { argv = { "db-tool", "run", script, "api", url },
        env = d.env(dir) })
      clean("db-tool run (dbtool.pg.connect) " .. url, t.run { argv = { "db-tool", "run", script, "pg", url },
        env = d.env(dir) })
      -- a caught error's fields, printed by the script itself
      local r = t.run { argv = { "db-tool", "-e", [[
        local ok, e = pcall(require("dbtool.pg").connect, arg[1] or os.getenv("U"))
        assert(not ok)
        for _, k in ipairs { "msg", "detail", "hint", "url" } do print(k, e[k]) end
        os.exit(1)]] }, env = d.env(dir, { U = url }) }
      clean("dbtool.pg.connect's error fields " .. url, r)
      assert.matches("msg\t", r.stdout, 1, true)
    end
  end)

  it("never shows up in what `rickdb` prints, from rickdb.toml", function()
    local c = t.cluster()
    local sections = {
      -- a wrong database on the real server, a missing socket, a bad port, libpq options
      string.format('host = "%s"\nport = %d\ndbname = "no_such_db"', c.host, c.port),
      'host = "/nonexistent"\ndbname = "x"',
      string.format('host = "%s"\nport = "x%d"', c.host, c.port),
      'host = "/nonexistent"\nsslmode = "bogus"',
    }
    for _, extra in ipairs(sections) do
      t.write(dir .. "/rk/rickdb.toml", string.format(
        '[db]\nengine = "pgsql"\nuser = "u"\npassword = "%s%s"\n%s\n', A, B, extra))
      for _, args in ipairs { { "init" }, { "list" }, { "check", "m" }, { "migrate", "m" } } do
        local argv = { "rickdb" }
        for _, a in ipairs(args) do argv[#argv + 1] = a end
        clean("rickdb " .. table.concat(args, " ") .. " with " .. extra, t.run { argv = argv,
          cwd = dir .. "/rk", env = { RICKDB_CONFIG = false, PGPASSWORD = false, HECTIC_LOG = "debug" } })
      end
    end
    -- a rickdb.toml that does not parse on the password's line
    for _, value in ipairs { '"' .. A .. '\\q' .. B .. '"', '"' .. A .. " " .. B, A .. B,
      '"' .. A .. '"' .. B .. '"', "'" .. A .. " " .. B } do
      t.write(dir .. "/rk/rickdb.toml", '[db]\nengine = "pgsql"\npassword = ' .. value .. "\n")
      clean("rickdb list with password = " .. value, t.run { argv = { "rickdb", "list" }, cwd = dir .. "/rk",
        env = { RICKDB_CONFIG = false } })
    end
  end)

  it("keeps the hints to the cause: no 'start the local cluster' for an explicit URL", function()
    local url = "postgresql://u:" .. A .. B .. "@/db?host=/nonexistent"
    for _, e in ipairs {
      { { "sql", "-u", url, "-c", "SELECT 1" }, {} },
      { { "sql", "-c", "SELECT 1" }, { PGURL = url } },
      { { "hydrate" }, { DB_URL = url } },
    } do
      local r = d.database(dir, e[1], e[2])
      assert.are.equal(1, r.code, r.stderr)
      assert.matches("No such file or directory", r.stderr, 1, true)
      assert.matches("hint: is the server running? check the host and port of the connection string",
        r.stderr, 1, true)
      assert.is_nil(r.stderr:find("start the local cluster", 1, true), r.stderr)
    end
    -- backup: a wrong password is a password problem, not a replication one
    local c = t.cluster()
    local hba = c.dir .. "/data/pg_hba.conf"
    local old = t.read(hba)
    if not old:find("db_tool_bk", 1, true) then
      t.write(hba, "local replication db_tool_bk scram-sha-256\n"
        .. "local all db_tool_bk scram-sha-256\n" .. old)
      local admin <close> = t.connect()
      admin:exec("CREATE ROLE db_tool_bk LOGIN REPLICATION PASSWORD 'the-right-one'")
      admin:exec("CREATE ROLE db_tool_norepl LOGIN")
      admin:exec("SELECT pg_reload_conf()")
    end
    local bad = string.format("postgresql://db_tool_bk:%s%s@/postgres?host=%s&port=%d", A, B, c.host, c.port)
    local r
    for _ = 1, 50 do -- the reload is asynchronous: until the password is really asked for
      r = d.database(dir, { "backup", "-u", bad })
      if r.stderr:find("password authentication failed", 1, true) then break end
      require("dbtool.core").sleep(0.1)
    end
    clean("backup with a wrong password", r)
    assert.matches('password authentication failed for user "db_tool_bk"', r.stderr, 1, true)
    assert.matches("hint: check the user and password of the connection string", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("replication", 1, true), r.stderr)
    -- a role that may not replicate gets the replication hint
    r = d.database(dir, { "backup", "-u", string.format(
      "postgresql://db_tool_norepl:%s%s@/postgres?host=%s&port=%d", A, B, c.host, c.port) })
    clean("backup by a role without REPLICATION", r)
    assert.matches("hint: the server needs to allow replication connections", r.stderr, 1, true)

    -- the local cluster of PG_WORKING_DIR, when it is the one in use, gets that hint
    local pg = require "dbtool.pg"
    local ok, e = pcall(pg.connect, "postgresql:///x?host=/nonexistent", { source = "cluster" })
    assert.is_false(ok)
    assert.matches("start the local cluster", e.hint, 1, true)
  end)
end)
