local project = require "dbtool.project"
local t = require "testutil"

describe("dbtool.project", function()
  before_each(function() project.reset() end)

  it("loads commands, hooks and settings, normalising functions", function()
    local dir = t.tmpdir()
    local file = t.write(dir .. "/db-tool.lua", [[
      return {
        commands = { hello = function(ctx, opts) return 0 end },
        hooks = { before_deploy = function() end, after_deploy = { function() end } },
        settings = { migration = { lock_timeout = "5s" } },
      }]])
    local p = project.load(file)
    assert.is_function(p.commands.hello.run)
    assert.are.equal(1, #p.hooks.before_deploy)
    assert.are.equal("5s", project.setting(p, "migration.lock_timeout"))
    assert.are.equal("x", project.setting(p, "migration.nope", "x"))
    assert.are.equal(file, p.file)
  end)

  it("returns nil when there is no project file", function()
    assert.is_nil(project.load("/nonexistent/db-tool.lua"))
  end)

  it("reports a syntax error at file:line", function()
    local dir = t.tmpdir()
    local file = t.write(dir .. "/db-tool.lua",
      "return {\n  hooks = {\n    before_deploy = function( end\n  }\n}\n")
    local ok, e = pcall(project.load, file)
    assert.is_false(ok)
    assert.are.equal(1, e.exit)
    assert.are.equal(file .. ":3", e.where)
  end)

  it("reports a runtime error, a wrong type and unknown hooks", function()
    local dir = t.tmpdir()
    local ok, e = pcall(project.load, t.write(dir .. "/a.lua", "local x = nil\nreturn x.y"))
    assert.is_false(ok)
    assert.are.equal(dir .. "/a.lua:2", e.where)
    ok, e = pcall(project.load, t.write(dir .. "/b.lua", "return 42"))
    assert.is_false(ok)
    assert.matches("must return a table", e.msg)
    ok, e = pcall(project.load, t.write(dir .. "/c.lua", "return { hooks = { before_deplyo = print } }"))
    assert.is_false(ok)
    assert.matches("unknown hook 'before_deplyo'", e.msg)
  end)

  it("runs hooks in order and threads transform results", function()
    local seen = {}
    local p = project.validate({ hooks = {
      before_deploy = {
        function(x) seen[#seen + 1] = "a" .. x end,
        function(x) seen[#seen + 1] = "b" .. x end,
      },
      pull_staging_transform = function(line) return line:upper() end,
    } }, "inline")
    project.run_hook(p, "before_deploy", 1)
    assert.are.same({ "a1", "b1" }, seen)
    assert.are.equal("ABC", project.run_hook(p, "pull_staging_transform", "abc"))
    assert.are.equal("same", project.run_hook(nil, "pull_staging_transform", "same"))
  end)

  it("names the hook when it fails, as a project error (exit 1), not a bug", function()
    local p = project.validate({ hooks = { after_patch = function() error("nope") end } }, "inline")
    local ok, e = pcall(project.run_hook, p, "after_patch")
    assert.is_false(ok)
    assert.are.equal(1, e.exit)
    assert.matches("hook after_patch failed: .*nope", e.msg)
  end)
end)
