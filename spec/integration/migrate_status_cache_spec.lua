-- `migrator status` and `rickdb check` with the checksum cache (dbtool.migrate.checksum) on
-- a real PostgreSQL: an applied migration edited with the same size and its mtime set back
-- is still reported as modified, once the cache holds its old hash (its files are older than
-- the cache's margin, so the cache is really used); an unchanged tree stays clean.
local t = require "testutil"
local checksum = require "dbtool.migrate.checksum"
local utime = require "posix.utime"
local stat = require "posix.sys.stat"

-- mtime and atime back to what they were, nanoseconds included (touch -r of a copy)
local function edit_same_size_mtime_back(path, from, to)
  local ref = path .. ".times"
  assert.are.equal(0, t.run({ "touch", "-r", path, ref }).code)
  local text = t.read(path)
  local edited = text:gsub(from, to, 1)
  assert(#edited == #text and edited ~= text)
  t.write(path, edited)
  assert.are.equal(0, t.run({ "touch", "-r", ref, path }).code)
  os.remove(ref)
end

-- the files the spec writes, with whole-second times (as utime sets them): `touch -r` then
-- restores them exactly
local function age(path)
  local s = stat.stat(path)
  assert(utime.utime(path, s.st_mtime - 100, s.st_atime - 100))
end

describe("status with the checksum cache", function()
  local dir, cache, url, name, rk
  setup(function()
    dir = t.tmpdir("stcache")
    cache = t.tmpdir("stcache-xdg")
    url = t.fresh_db("stcache")
    local _
    _, name = t.fresh_db("stcache_rk") -- rickdb's _migration would be refused by the hectic bundle
    for i = 1, 3 do
      local m = string.format("%s/m/2025000000000%d-m%d/", dir, i, i)
      t.write(m .. "up.sql", string.format("CREATE TABLE m%d (x int) INHERITS (hectic.created_at);\n", i))
      t.write(m .. "down.sql", string.format("DROP TABLE m%d;\n", i))
      t.write(string.format("%s/r/%03d.sql", dir, i), string.format("CREATE TABLE r%d (x int);\n", i))
    end
    for i = 1, 3 do
      age(string.format("%s/m/2025000000000%d-m%d/up.sql", dir, i, i))
      age(string.format("%s/r/%03d.sql", dir, i))
    end
    local c = t.cluster()
    t.write(dir .. "/rickdb.toml", string.format('[db]\nengine = "pgsql"\nhost = "%s"\nport = %d\n'
      .. 'dbname = "%s"\n', c.host, c.port, name))
    rk = function(...)
      return t.run { argv = { "rickdb", "--config", dir .. "/rickdb.toml", ... }, cwd = dir,
        env = { XDG_CACHE_HOME = cache, NO_COLOR = "1", RICKDB_CONFIG = false } }
    end
    -- files younger than the margin are never cached: wait until these are older (once)
    require("dbtool.core").sleep(checksum.MARGIN + 0.2)
  end)

  local function migrator(...)
    return t.run { argv = { "migrator", "-d", dir .. "/m", ... },
      env = { DB_URL = url, XDG_CACHE_HOME = cache, NO_COLOR = "1", MIGRATION_DIR = false } }
  end

  it("migrator status: same size, mtime set back → modified", function()
    local r = migrator("migrate", "up", "all")
    assert.are.equal(0, r.code, r.stderr)
    r = migrator("status")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("3 applied, 0 modified, 0 pending, 0 missing", r.stdout)
    local files = require("dbtool.core.fs").names(cache .. "/db-tool/checksums")
    assert.are.equal(1, #files) -- the cache was written
    r = migrator("status")
    assert.matches("3 applied, 0 modified", r.stdout)
    edit_same_size_mtime_back(dir .. "/m/20250000000002-m2/up.sql", "m2", "m9")
    r = migrator("status")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("2 applied, 1 modified, 0 pending, 0 missing", r.stdout)
    assert.matches("modified%s+20250000000002%-m2", r.stdout)
    -- and `migrate` refuses it (checksum = verify), from the cache's point of view too
    r = migrator("migrate", "up", "all")
    assert.are.equal(2, r.code)
    assert.matches("20250000000002%-m2", r.stderr)
  end)

  it("the server-made status lines (all applied, unchanged) are those Lua makes", function()
    local migrate = require "dbtool.migrate"
    local env = require "dbtool.env"
    local mt = getmetatable(migrate.new { dir = dir })
    local fast_fn = mt.__index.status_fast
    local function status_text(use_fast)
      local used = false
      mt.__index.status_fast = function(...)
        local r = use_fast and fast_fn(...) or nil
        used = r ~= nil
        return r
      end
      local out = t.tmpdir("stout") .. "/out"
      local real = io.stdout
      io.stdout = assert(io.open(out, "w")) -- luacheck: ignore 122
      env.set("DB_URL", url)
      env.set("XDG_CACHE_HOME", cache)
      local ok, err = pcall(require("dbtool.command").main, require("dbtool.personality.migrator"),
        { "-d", dir .. "/m2", "status" })
      io.stdout:close()
      io.stdout = real -- luacheck: ignore 122
      env.set("DB_URL", nil)
      env.set("XDG_CACHE_HOME", nil)
      mt.__index.status_fast = fast_fn
      assert(ok, tostring(err))
      return t.read(out), used
    end
    -- names of several widths, one longer than the rest
    for i, desc in ipairs { "a", "a-much-longer-description", "mid" } do
      local m = string.format("%s/m2/2025010100000%d-%s/", dir, i, desc)
      t.write(m .. "up.sql", "SELECT " .. i .. ";\n")
      t.write(m .. "down.sql", "SELECT 1;\n")
      age(m .. "up.sql")
    end
    require("dbtool.core").sleep(checksum.MARGIN + 0.2)
    local url2 = t.fresh_db("stfast")
    local r = t.run { argv = { "migrator", "-d", dir .. "/m2", "migrate", "up", "all" },
      env = { DB_URL = url2, XDG_CACHE_HOME = cache, MIGRATION_DIR = false } }
    assert.are.equal(0, r.code, r.stderr)
    url = url2
    local slow, used_slow = status_text(false)
    assert.is_false(used_slow)
    local fast, used_fast = status_text(true)
    assert.is_true(used_fast)
    assert.are.equal(slow, fast)
    assert.matches("3 applied, 0 modified, 0 pending, 0 missing\n$", fast)
    -- a damaged cache (a hash digit flipped, trailer left as it was): the fast path does not
    -- match it, and the checked read refuses it: the lines are still right
    local real = require("posix.stdlib").realpath(dir .. "/m2")
    local cfile = cache .. "/db-tool/checksums/" .. checksum.string(real):sub(1, 32)
    local text = t.read(cfile)
    local pos = #text - 73 - 5
    t.write(cfile, text:sub(1, pos - 1) .. (text:sub(pos, pos) == "0" and "1" or "0") .. text:sub(pos + 1))
    local damaged, used_damaged = status_text(true)
    assert.is_false(used_damaged)
    assert.are.equal(slow, damaged)
    -- a pending one: the server's lines are not used
    t.write(dir .. "/m2/20250101000009-new/up.sql", "SELECT 9;\n")
    local _, used = status_text(true)
    assert.is_false(used)
    os.remove(dir .. "/m2/20250101000009-new/up.sql")
    os.remove(dir .. "/m2/20250101000009-new")
  end)

  it("rickdb check: same size, mtime set back → reported", function()
    local r = rk("init")
    assert.are.equal(0, r.code, r.stderr)
    r = rk("migrate", "r")
    assert.are.equal(0, r.code, r.stderr)
    r = rk("check", "r")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("changed since", 1, true))
    assert.is_nil(r.stderr:find("changed since", 1, true))
    edit_same_size_mtime_back(dir .. "/r/002.sql", "r2", "r7")
    r = rk("check", "r")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("002%.sql changed since it was applied", r.stderr)
  end)
end)
