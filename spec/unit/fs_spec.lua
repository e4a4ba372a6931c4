-- dbtool.core.fs: the in-process tree copy and removal used for cluster data directories.
local t = require "testutil"
local fs = require "dbtool.core.fs"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local function mode_of(path)
  return stat.lstat(path).st_mode & 4095
end

-- A tree with what a data directory holds, and a few things it does not.
local function sample(root)
  t.mkdir_p(root .. "/base/1")
  t.mkdir_p(root .. "/empty")
  t.write(root .. "/PG_VERSION", "15\n")
  t.write(root .. "/base/1/1259", string.rep("\1\2\3\4", 2048))
  t.write(root .. "/base/1/zero", "")
  -- a large file, mostly zeros (like a preallocated WAL segment) with data at both ends
  t.write(root .. "/wal", "head" .. string.rep("\0", 3 * 1024 * 1024) .. "tail")
  stat.chmod(root .. "/PG_VERSION", 384)          -- 0600
  stat.chmod(root .. "/base/1/1259", 416)         -- 0640
  stat.chmod(root .. "/empty", 448)               -- 0700
  unistd.link("base/1/1259", root .. "/link", true)
  unistd.link("/nonexistent/target", root .. "/dangling", true)
end

describe("dbtool.core.fs", function()
  it("copytree copies files, directories, empty files, symlinks (not followed) and modes", function()
    local top = t.tmpdir("fs")
    sample(top .. "/src")
    assert.is_true(fs.copytree(top .. "/src", top .. "/dst"))
    for _, f in ipairs { "PG_VERSION", "base/1/1259", "base/1/zero", "wal" } do
      assert.are.equal(t.read(top .. "/src/" .. f), t.read(top .. "/dst/" .. f), f)
      assert.are.equal(mode_of(top .. "/src/" .. f), mode_of(top .. "/dst/" .. f), f)
    end
    assert.are.equal(448, mode_of(top .. "/dst/empty"))
    assert.are.equal("base/1/1259", unistd.readlink(top .. "/dst/link"))
    assert.are.equal("/nonexistent/target", unistd.readlink(top .. "/dst/dangling"))
    assert.are.equal(3 * 1024 * 1024 + 8, stat.stat(top .. "/dst/wal").st_size)
    -- the copy is independent of the source
    t.write(top .. "/dst/PG_VERSION", "changed")
    assert.are.equal("15\n", t.read(top .. "/src/PG_VERSION"))
  end)

  it("copytree refuses an existing destination and a missing source, naming the path", function()
    local top = t.tmpdir("fs")
    sample(top .. "/src")
    t.mkdir_p(top .. "/dst")
    local ok, msg, code = fs.copytree(top .. "/src", top .. "/dst")
    assert.is_nil(ok)
    assert.matches("mkdir " .. top .. "/dst: File exists", msg, 1, true)
    assert.are.equal(require("posix.errno").EEXIST, code)
    ok, msg = fs.copytree(top .. "/nope", top .. "/dst2")
    assert.is_nil(ok)
    assert.matches(top .. "/nope: No such file or directory", msg, 1, true)
    assert.is_nil(stat.lstat(top .. "/dst2"))
  end)

  it("copytree reports an unreadable file by its path", function()
    local top = t.tmpdir("fs")
    sample(top .. "/src")
    stat.chmod(top .. "/src/base/1/1259", 0)
    local ok, msg = fs.copytree(top .. "/src", top .. "/dst")
    stat.chmod(top .. "/src/base/1/1259", 384)
    if unistd.geteuid() == 0 then return end   -- root reads anything
    assert.is_nil(ok)
    assert.matches("open " .. top .. "/src/base/1/1259: Permission denied", msg, 1, true)
  end)

  it("rmtree removes a tree without following symlinks; a missing path is fine", function()
    local top = t.tmpdir("fs")
    sample(top .. "/keep")
    sample(top .. "/gone")
    unistd.link(top .. "/keep", top .. "/gone/base/outside", true)
    assert.is_true(fs.rmtree(top .. "/gone"))
    assert.is_nil(stat.lstat(top .. "/gone"))
    assert.are.equal("15\n", t.read(top .. "/keep/PG_VERSION"))
    assert.truthy(stat.lstat(top .. "/keep/base/1/1259"))
    assert.is_true(fs.rmtree(top .. "/gone"))
    -- a symlink to a directory: the link goes, the directory stays
    unistd.link(top .. "/keep", top .. "/ln", true)
    assert.is_true(fs.rmtree(top .. "/ln"))
    assert.truthy(stat.lstat(top .. "/keep/PG_VERSION"))
  end)

  it("rmtree reports what it cannot remove", function()
    if unistd.geteuid() == 0 then return end
    local top = t.tmpdir("fs")
    sample(top .. "/locked")
    stat.chmod(top .. "/locked/base", 320)    -- 0500: entries cannot be removed
    local ok, msg = fs.rmtree(top .. "/locked")
    stat.chmod(top .. "/locked/base", 448)
    assert.is_nil(ok)
    assert.matches(top .. "/locked/base/", msg, 1, true)
    assert.matches("Permission denied", msg, 1, true)
  end)
end)
