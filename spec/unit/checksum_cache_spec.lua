-- The checksum cache of unchanged migration files (dbtool.migrate.checksum): files whose stat
-- key (device, inode, size, mtime, ctime) is the cached one are not read again; a change is
-- always seen; the cache is ignored when it is not sure (recent files, corruption, another
-- user or directory). Files are real, in temporary directories; no database.
local checksum = require "dbtool.migrate.checksum"
local env = require "dbtool.env"
local sodium = require "dbtool.core.sodium"
local utime = require "posix.utime"
local stat = require "posix.sys.stat"
local t = require "testutil"

local function setup(n)
  local root = t.tmpdir("cksum")
  env.set("XDG_CACHE_HOME", t.tmpdir("cksum-cache"))
  local rel = {}
  for i = 1, n do
    rel[i] = string.format("2025%010d-m%d/up.sql", i, i)
    t.write(root .. "/" .. rel[i], string.format("SELECT %d; -- migration %d\n", i, i))
  end
  return root, rel
end

local function expected(root, rel)
  local out = {}
  for i, r in ipairs(rel) do out[i] = sodium.sha256(t.read(root .. "/" .. r)) end
  return out
end

local function cache_path(root)
  local real = require("posix.stdlib").realpath(root)
  return env.cache_dir() .. "/checksums/" .. checksum.string(real):sub(1, 32)
end

-- Rewrite a cache file's body and give it a valid trailer (a cache that is well-formed but
-- not ours must be refused for what it says, not for its checksum).
local function rewrite(path, f)
  local text = t.read(path)
  local body = text:sub(1, #text - 73)
  body = f(body)
  t.write(path, body .. "\nsha256 " .. sodium.sha256(body) .. "\n")
end

describe("checksum cache", function()
  local margin
  before_each(function() margin = checksum.MARGIN end)
  after_each(function()
    checksum.MARGIN = margin
    env.set("XDG_CACHE_HOME", nil)
  end)

  -- files written by a spec are seconds old at most: within the real margin they are never
  -- trusted, so these specs move the margin to "anything before 10 s from now" (as if the
  -- files were old) unless they test the margin itself
  local function old_files() checksum.MARGIN = -10 end

  it("reads unchanged files once, then takes their hashes from the cache", function()
    old_files()
    local root, rel = setup(50)
    local h1, read1 = checksum.files_cached(root, rel)
    assert.are.equal(50, read1)
    assert.are.same(expected(root, rel), h1)
    local h2, read2 = checksum.files_cached(root, rel)
    assert.are.equal(0, read2)
    assert.are.same(h1, h2)
    local st = stat.stat(cache_path(root))
    assert.are.equal(384, st.st_mode & 511) -- 0600
    assert.are.equal(448, stat.stat(env.cache_dir() .. "/checksums").st_mode & 511) -- 0700
  end)

  it("sees a file edited with the same size and its mtime set back (ctime differs)", function()
    old_files()
    local root, rel = setup(20)
    local path = root .. "/" .. rel[7]
    -- whole seconds (utime cannot set nanoseconds): setting it back below is then exact
    assert(utime.utime(path, os.time() - 100, os.time() - 100))
    local before = checksum.files_cached(root, rel)
    local st = stat.stat(path)
    local text = t.read(path)
    local edited = text:gsub("SELECT 7;", "SELECT 8;")
    assert.are.equal(#text, #edited)
    t.write(path, edited)
    assert(utime.utime(path, st.st_mtime, st.st_atime)) -- mtime back to what it was
    assert.are.equal(st.st_size, stat.stat(path).st_size)
    assert.are.equal(st.st_mtime, stat.stat(path).st_mtime)
    local after, read = checksum.files_cached(root, rel)
    assert.are.equal(1, read)
    assert.are_not.equal(before[7], after[7])
    assert.are.equal(sodium.sha256(edited), after[7])
    assert.are.same(expected(root, rel), after)
  end)

  it("sees a file replaced by another (rename over it), a new file and a removed one", function()
    old_files()
    local root, rel = setup(10)
    checksum.files_cached(root, rel)
    t.write(root .. "/other4.sql", "SELECT 40; -- migration 4\n")
    assert(os.rename(root .. "/other4.sql", root .. "/" .. rel[4]))
    rel[11] = "2025000000011-m11/up.sql"
    t.write(root .. "/" .. rel[11], "SELECT 11;\n")
    table.remove(rel, 2)
    local h, read = checksum.files_cached(root, rel)
    assert.are.same(expected(root, rel), h)
    assert.are.equal(2, read) -- the replaced file and the new one
    local _, again = checksum.files_cached(root, rel)
    assert.are.equal(0, again)
  end)

  it("does not trust files changed within the margin before the stat (racy)", function()
    local root, rel = setup(5) -- just written: mtime and ctime are now
    local _, read1 = checksum.files_cached(root, rel)
    local _, read2 = checksum.files_cached(root, rel)
    assert.are.equal(5, read1)
    assert.are.equal(5, read2) -- not cached: a change in the same clock tick could keep the key
    -- with the same files, but a stat taken as if 10 s later, they are cached
    old_files()
    checksum.files_cached(root, rel)
    local _, read3 = checksum.files_cached(root, rel)
    assert.are.equal(0, read3)
  end)

  it("ignores a corrupt cache: a flipped byte, a truncated file, garbage", function()
    old_files()
    local root, rel = setup(10)
    local good = checksum.files_cached(root, rel)
    local path = cache_path(root)
    local text = t.read(path)
    -- a flipped hex digit inside the stored hashes: the trailer no longer matches
    local pos = #text - 73 - 10
    local flipped = text:sub(1, pos - 1) .. (text:sub(pos, pos) == "0" and "1" or "0") .. text:sub(pos + 1)
    for _, bad in ipairs { flipped, text:sub(1, #text // 2), "garbage\n", "" } do
      t.write(path, bad)
      local c, why = checksum.load_cache(root)
      assert.is_nil(c)
      assert.is_string(why)
      local h, read = checksum.files_cached(root, rel)
      assert.are.same(good, h)
      assert.are.equal(10, read) -- everything read again (and the cache rebuilt)
      local _, again = checksum.files_cached(root, rel)
      assert.are.equal(0, again)
    end
  end)

  it("ignores a cache of another directory, of another user, or writable by others", function()
    old_files()
    local root, rel = setup(5)
    local root2 = t.tmpdir("cksum2")
    for i, r in ipairs(rel) do t.write(root2 .. "/" .. r, "SELECT 'other', " .. i .. ";\n") end
    checksum.files_cached(root, rel)
    -- root's cache placed where root2's would be: its header names root
    t.write(cache_path(root2), t.read(cache_path(root)))
    local c, why = checksum.load_cache(root2)
    assert.is_nil(c)
    assert.matches("another", why)
    local h2, read = checksum.files_cached(root2, rel)
    assert.are.equal(5, read)
    assert.are.same(expected(root2, rel), h2)
    -- a well-formed cache naming another user id
    local uid = require("posix.unistd").geteuid()
    rewrite(cache_path(root), function(body)
      return (body:gsub("\nuid %d+\n", "\nuid " .. (uid + 1) .. "\n", 1))
    end)
    c, why = checksum.load_cache(root)
    assert.is_nil(c)
    assert.matches("another", why)
    -- a cache file that others may write
    checksum.files_cached(root, rel)
    assert.is_table((checksum.load_cache(root)))
    stat.chmod(cache_path(root), 438)
    c, why = checksum.load_cache(root)
    assert.is_nil(c)
    assert.matches("writable", why)
    local _, read3 = checksum.files_cached(root, rel)
    assert.are.equal(5, read3)
  end)

  it("keeps going when the cache cannot be written", function()
    old_files()
    local root, rel = setup(3)
    local blocker = t.tmpdir("cksum-ro") .. "/file"
    t.write(blocker, "not a directory")
    env.set("XDG_CACHE_HOME", blocker) -- the cache directory cannot be made under a file
    local h, read = checksum.files_cached(root, rel)
    assert.are.same(expected(root, rel), h)
    assert.are.equal(3, read)
  end)

  it("stat_keys: a key per regular file, false for the rest, recent after `before`", function()
    local root = t.tmpdir("keys")
    t.write(root .. "/a", "x")
    stat.mkdir(root .. "/d", 448)
    local fs = require "dbtool.core.fs"
    local keys, recent = fs.stat_keys({ "a", "d", "missing" }, os.time() - 60, root)
    assert.matches("^%x+:%x+:1:%d+%.%d%d%d%d%d%d%d%d%d:%d+%.%d%d%d%d%d%d%d%d%d$", keys[1])
    assert.is_false(keys[2])
    assert.is_false(keys[3])
    assert.is_true(recent[1])
    local _, recent2 = fs.stat_keys({ root .. "/a" }, os.time() + 60)
    assert.is_nil(recent2[1])
    assert.are.same({ "a", "d" }, fs.names(root))
    assert.is_nil((fs.names(root .. "/missing")))
  end)
end)
