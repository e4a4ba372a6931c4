-- dbtool.testing's pure parts: where a suite's cluster goes.
local testing = require "dbtool.testing"
local env = require "dbtool.env"

describe("dbtool.testing.workdir", function()
  it("recognises a tmpfs mount point in /proc/mounts", function()
    local mounts = table.concat({
      "/dev/vda / ext4 rw,relatime 0 0",
      "tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0",
      "tmpfs /run/user/1000 tmpfs rw 0 0",
      "shm /srv/shm ext4 rw 0 0",
    }, "\n")
    assert.is_true(testing.is_tmpfs(mounts, "/dev/shm"))
    assert.is_true(testing.is_tmpfs(mounts, "/run/user/1000"))
    assert.is_false(testing.is_tmpfs(mounts, "/"))
    assert.is_false(testing.is_tmpfs(mounts, "/srv/shm"))
    assert.is_false(testing.is_tmpfs(mounts, "/tmp"))
    assert.is_false(testing.is_tmpfs(nil, "/dev/shm"))
  end)

  it("takes opts.tmpdir, then DB_TOOL_TESTING_TMPDIR, before any default", function()
    assert.are.equal("/x", testing.workdir { tmpdir = "/x" })
    local saved = env.raw("DB_TOOL_TESTING_TMPDIR")
    env.set("DB_TOOL_TESTING_TMPDIR", "/y")
    finally(function() env.set("DB_TOOL_TESTING_TMPDIR", saved) end)
    assert.are.equal("/y", testing.workdir {})
    assert.are.equal("/x", testing.workdir { tmpdir = "/x" })
    env.set("DB_TOOL_TESTING_TMPDIR", nil)
    local w = testing.workdir {}
    assert.is_true(w == testing.RAM_DIR or w == env.get("TMPDIR", "/tmp"), w)
  end)
end)
