-- dbtool.env: private variables (the secrets private key) are read by db-tool and passed on
-- to no child process.
local env = require "dbtool.env"
local stdlib = require "posix.stdlib"

describe("dbtool.env private variables", function()
  after_each(function()
    stdlib.setenv("DB_TOOL_SECRET_KEY", nil)
    env.reset()
  end)

  it("child_env leaves DB_TOOL_SECRET_KEY out, from the environment or set in-process", function()
    stdlib.setenv("DB_TOOL_SECRET_KEY", "from-env")
    stdlib.setenv("DB_TOOL_SECRET_KEY_FILE", "/some/key/file")
    local c = env.child_env { EXTRA = "x" }
    assert.is_nil(c.DB_TOOL_SECRET_KEY)
    assert.are.equal("/some/key/file", c.DB_TOOL_SECRET_KEY_FILE)   -- a path, not the secret
    assert.are.equal("x", c.EXTRA)
    assert.are.equal(os.getenv("PATH"), c.PATH)
    env.set("DB_TOOL_SECRET_KEY", "in-process")
    assert.are.equal("in-process", env.get("DB_TOOL_SECRET_KEY"))
    assert.is_nil(env.child_env().DB_TOOL_SECRET_KEY)
    -- only a caller naming it explicitly passes it on
    assert.are.equal("explicit", env.child_env({ DB_TOOL_SECRET_KEY = "explicit" }).DB_TOOL_SECRET_KEY)
    stdlib.setenv("DB_TOOL_SECRET_KEY_FILE", nil)
  end)

  it("seal takes it out of the process environment and keeps it readable through env", function()
    stdlib.setenv("DB_TOOL_SECRET_KEY", "sealed-value")
    env.seal()
    assert.is_nil(os.getenv("DB_TOOL_SECRET_KEY"))
    assert.is_nil(stdlib.getenv().DB_TOOL_SECRET_KEY)
    assert.are.equal("sealed-value", env.get("DB_TOOL_SECRET_KEY"))
    assert.is_nil(env.child_env().DB_TOOL_SECRET_KEY)
    -- what a child started without child_env sees (os.execute, io.popen, proc.spawn without env)
    local p = io.popen("printenv DB_TOOL_SECRET_KEY || echo unset")
    assert.are.equal("unset\n", p:read("a"))
    p:close()
    -- an in-process value still wins; unset hides the sealed one
    env.set("DB_TOOL_SECRET_KEY", "override")
    assert.are.equal("override", env.get("DB_TOOL_SECRET_KEY"))
    env.set("DB_TOOL_SECRET_KEY", nil)
    assert.is_nil(env.get("DB_TOOL_SECRET_KEY"))
  end)

  it("seal without the variable changes nothing", function()
    env.seal()
    assert.is_nil(env.get("DB_TOOL_SECRET_KEY"))
    assert.is_nil(os.getenv("DB_TOOL_SECRET_KEY"))
  end)
end)

describe("dbtool.env.tmpfile", function()
  after_each(function() env.reset() end)

  it("makes a private empty file under TMPDIR (os.tmpname ignores it)", function()
    local dir = require("testutil").tmpdir("envtmp")
    env.set("TMPDIR", dir)
    local path = env.tmpfile()
    assert.are.equal(dir .. "/db-tool-", path:sub(1, #dir + 9))
    local st = require("posix.sys.stat").stat(path)
    assert.are.equal(0, st.st_size)
    assert.are.equal(384, st.st_mode & 511)
    os.remove(path)
  end)

  it("says which TMPDIR is unusable (exit 1)", function()
    env.set("TMPDIR", "/nonexistent/dir")
    local ok, e = pcall(env.tmpfile)
    assert.is_false(ok)
    assert.are.equal(1, e.exit)
    assert.matches("cannot create a temporary file in /nonexistent/dir", e.msg, 1, true)
    assert.are.equal("TMPDIR", e.variable)
  end)
end)
