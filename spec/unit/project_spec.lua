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
    assert.is_nil(project.run_hook(nil, "pull_staging_transform", "same")) -- nil: keep the line
  end)

  it("names the hook when it fails, as a project error (exit 1), not a bug", function()
    local p = project.validate({ hooks = { after_patch = function() error("nope") end } }, "inline")
    local ok, e = pcall(project.run_hook, p, "after_patch")
    assert.is_false(ok)
    assert.are.equal(1, e.exit)
    assert.matches("hook after_patch failed: .*nope", e.msg)
  end)
  it("chains pull_staging_transform functions; false drops and stops", function()
    local calls = {}
    local p = project.validate({ hooks = { pull_staging_transform = {
      function(line) calls[#calls + 1] = "1:" .. line; return line .. "b" end,
      function(line) calls[#calls + 1] = "2:" .. line; return nil end,
      function(line, st)
        calls[#calls + 1] = "3:" .. line
        if st.drop then return false end
        return line .. "c"
      end,
      function(line) calls[#calls + 1] = "4:" .. line; return line .. "d" end,
    } } }, "inline")
    assert.are.equal("abcd", project.run_hook(p, "pull_staging_transform", "a", {}))
    assert.are.same({ "1:a", "2:ab", "3:ab", "4:abc" }, calls)
    calls = {}
    assert.is_false(project.run_hook(p, "pull_staging_transform", "a", { drop = true }))
    assert.are.same({ "1:a", "2:ab", "3:ab" }, calls)
    local q = project.validate({ hooks = { pull_staging_transform = function() return 42 end } }, "inline")
    local ok, e = pcall(project.run_hook, q, "pull_staging_transform", "x", {})
    assert.is_false(ok)
    assert.matches("returned a number %(42%)", e.msg)
  end)

  it("validates settings and points at the offending line", function()
    local dir = t.tmpdir()
    local file = t.write(dir .. "/db-tool.lua", table.concat({
      "return {",
      "  settings = {",
      "    log_level = 'debug',",
      "    lock_timeout = 'soon',",
      "  },",
      "}" }, "\n"))
    local ok, e = pcall(project.load, file)
    assert.is_false(ok)
    assert.are.equal(1, e.exit)
    assert.are.equal(file .. ":4", e.where)
    assert.matches("setting lock_timeout: must be a duration", e.msg)
    for src, want in pairs {
      ["return {\n settings = {\n  colour = true } }"] = { 3, "unknown setting 'colour'" },
      ["return {\n settings = { migration = {\n history = 'x' } } }"] = { 2, "history must be one of" },
      ["return {\n\n settings = { checksum = 'md5' } }"] = { 3, "checksum: must be" },
      ["return {\n settings = { log_level = 'loud' } }"] = { 2, "invalid HECTIC_LOG entry 'loud'" },
      ["return {\n commands = {\n  ['bad name'] = print } }"] = { 3, "invalid command name 'bad name'" },
      ["return {\n commands = {\n  ['migrator a b'] = print } }"] =
        { 3, "invalid command name 'migrator a b'" },
      ["return {\n commands = {\n  ['rickdb -x'] = print } }"] = { 3, "invalid command name 'rickdb %-x'" },
      ["return {\n commands = {\n  x = { run = print, options = { 'o' } } } }"] = { 3, "options%[1%] must" },
      ["return { hooks = 3 }"] = { 1, "hooks must be a table" },
    } do
      project.reset()
      local f = t.write(dir .. "/p.lua", src)
      ok, e = pcall(project.load, f)
      assert.is_false(ok, src)
      assert.matches(want[2], e.msg)
      assert.are.equal(f .. ":" .. want[1], e.where, src)
    end
  end)

  it("locates keys, not mentions or comparisons", function()
    local text = "-- lock_timeout is nice\nif x.lock_timeout == 1 then end\nreturn { lock_timeout = 1 }"
    assert.are.equal(3, project.locate(text, "lock_timeout"))
    assert.are.equal(2, project.locate("a\n['x-y'] = 1", "x-y"))
    assert.are.equal(1, project.locate("mentions nope here", "nope"))
    assert.is_nil(project.locate("nothing", "nope"))
  end)

  it("builds the migration policy from settings and hooks", function()
    local seen = {}
    local p = project.validate({
      hooks = {
        before_each_migration = function(info) seen[#seen + 1] = "project " .. info.name end,
      },
      settings = {
        lock_timeout = "3s", checksum = "warn",
        migration = { lock_timeout = "7s", history = "set",
          hooks = { before_each = function(info) seen[#seen + 1] = "policy " .. info.name end } },
      },
    }, "inline")
    local pol = project.migration_policy(p)
    assert.are.equal("7s", pol.lock_timeout) -- settings.migration wins over the shorthand
    assert.are.equal("warn", pol.checksum)
    assert.are.equal("set", pol.history)
    pol.hooks.before_each { name = "m1" }
    assert.are.same({ "policy m1", "project m1" }, seen)
    local policy = require "dbtool.migrate.policy"
    local merged = assert(policy.merge(policy.defaults(), pol))
    assert.are.equal("set", merged.history)
    assert.are.same({}, project.migration_policy(nil))
  end)
end)
