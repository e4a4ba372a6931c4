-- luacheck: no max line length
-- The command engine without processes: option parsing (bundles, --opt=value, --, choices,
-- messages and codes), suggestions, help, groups (routing, aliases, help words, leading
-- words), and a program's plan without running it.
local command = require "dbtool.command"

local function raises(code, pattern, f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.are.equal(code, e.exit, tostring(e.msg))
  assert.matches(pattern, e.msg)
  return e
end

local SPEC = {
  name = "deploy",
  options = {
    { "-c", "--cleanup" }, { "-P", "--no-patch" }, { "-H", "--no-hydrate" },
    { "-u", "--url", arg = "URL" },
    { "-v", "--set", arg = "NAME=VALUE", multi = true },
    { "--color", arg = "WHEN", choices = { "auto", "always", "never" } },
  },
  positionals = { { "backup", optional = true } },
}

describe("dbtool.command.parse", function()
  it("takes bundled short flags, a value glued to the last one or the next word", function()
    local o = command.parse(SPEC, { "-cPH" })
    assert.is_true(o.cleanup and o.no_patch and o.no_hydrate)
    o = command.parse(SPEC, { "-Pupostgresql:///x" })
    assert.are.equal("postgresql:///x", o.url)
    o = command.parse(SPEC, { "-Hu", "U", "-va=1", "-v", "b=2" })
    assert.are.equal("U", o.url)
    assert.are.same({ "a=1", "b=2" }, o.set)
    raises(9, "unknown option '%-Px'", command.parse, SPEC, { "-Px" })
    raises(3, "%-u requires a value", command.parse, SPEC, { "-Pu" })
  end)

  it("takes --opt=value, checks choices, and stops options at --", function()
    local o = command.parse(SPEC, { "--color=never", "--url=a=b", "--", "-c" })
    assert.are.equal("never", o.color)
    assert.are.equal("a=b", o.url)
    assert.are.equal("-c", o.backup)
    assert.is_nil(o.cleanup)
    local e = raises(9, "invalid value 'alwys' for %-%-color", command.parse, SPEC, { "--color=alwys" })
    assert.matches("did you mean 'always'?", e.hint, 1, true)
    raises(9, "option %-%-cleanup takes no value", command.parse, SPEC, { "--cleanup=yes" })
  end)

  it("suggests the nearest option; uses a command's own messages and codes", function()
    local e = raises(9, "unknown option '%-%-no%-pach'", command.parse, SPEC, { "--no-pach" })
    assert.matches("did you mean '--no-patch'?", e.hint, 1, true)
    local s = { name = "init", options = {}, messages = { unknown = "%s argument %s does not exists" } }
    raises(9, "^init argument %-%-wat does not exists$", command.parse, s, { "--wat" })
    local f = { name = "x", options = {}, usage_exit = 255,
      messages = { unknown = function(_, a) return "invalid option '" .. a .. "'" end } }
    raises(255, "^invalid option '%-%-q'$", command.parse, f, { "--q" })
    -- pass_unknown: the command reports them itself
    local p = command.parse({ name = "m", pass_unknown = true, rest = "ARGS" }, { "down", "-1" })
    assert.are.same({ "-1" }, p.unknown)
    assert.are.same({ "down" }, p.args)
  end)

  it("reports -h/--help anywhere before --, and stops at the first word when asked", function()
    assert.is_true(command.parse(SPEC, { "--bogus", "-h" }).help)
    assert.is_nil(command.parse(SPEC, { "--", "-h" }).help)
    local lua = { name = "lua", stop_at_positional = true, no_help = true,
      options = { { "-e", arg = "STAT", list = "actions" }, { "-l", arg = "MOD", list = "actions" } } }
    local o = command.parse(lua, { "-e", "x=1", "-lm", "script.lua", "-e", "y" })
    assert.are.same({ { "-e", "x=1" }, { "-l", "m" } }, o.actions)
    assert.are.same({ "script.lua", "-e", "y" }, o.args)
    assert.are.equal(4, o.rest_index)
  end)
end)

describe("dbtool.command suggestions", function()
  it("finds typos (transpositions too) and unambiguous starts", function()
    assert.are.equal(1, command.distance("mgirate", "migrate"))
    assert.are.equal(1, command.distance("lsit", "list"))
    assert.are.equal(3, command.distance("", "abc"))
    local names = { "deploy", "diff", "hydrate", "init", "migrator", "normalize-backup", "patch" }
    assert.are.same({ "deploy" }, command.suggest("deplyo", names))
    assert.are.same({ "deploy" }, command.suggest("de", names))
    assert.are.same({ "normalize-backup" }, command.suggest("normalize", names))
    assert.are.same({}, command.suggest("zzzzzz", names))
    assert.are.same({ "up" }, command.suggest("upp", { "up", "down", "to" }))
    assert.is_nil(command.did_you_mean("xyz", { "up", "down", "to" }))
  end)
end)

describe("dbtool.command groups", function()
  local ran
  local G = {
    name = "prog",
    commands = {
      list = { name = "list", summary = "list things", options = { { "-r", "--raw" } },
        run = function(_, opts) ran = opts; return 0 end },
      status = { name = "status", summary = "status", options = { { "--json" } }, run = function() return 4 end },
      sub = { name = "sub", summary = "a nested group", commands = {
        one = { name = "one", summary = "one", run = function() return 7 end } } },
    },
    aliases = { fetch = "status" },
    help_words = { "help" },
    options = { { "-d", "--dir", arg = "DIR", anywhere = true }, { "--loud" } },
  }

  it("routes to commands, aliases and nested groups, with the program's options before or after", function()
    local p = command.prepare(G, { "-d", "x", "list", "-r" })
    assert.are.equal("run", p.action)
    assert.are.equal("list", p.entry.name)
    assert.is_true(p.opts.raw)
    assert.are.equal("x", p.state.globals.dir)
    p = command.prepare(G, { "list", "--dir=y" })
    assert.are.equal("y", p.state.globals.dir)
    assert.are.equal("status", command.prepare(G, { "fetch" }).entry.name)
    p = command.prepare(G, { "sub", "one" })
    assert.are.equal("one", p.entry.name)
    assert.are.equal("prog sub one", p.path)
    assert.are.equal(4, command.dispatch(G, { "fetch" }))
    assert.are.equal(0, command.dispatch(G, { "list", "-r" }))
    assert.is_true(ran.raw)
  end)

  it("suggests commands, rejects options of another command, knows help and version", function()
    local e = raises(9, "unknown subcommand 'lsit'", command.prepare, G, { "lsit" })
    assert.matches("did you mean 'list'?", e.hint, 1, true)
    e = raises(9, "unknown option '%-%-json'", command.prepare, G, { "list", "--json" })
    assert.matches("--json is an option of 'status'", e.hint, 1, true)
    raises(9, "unknown option '%-%-loud'", command.prepare, G, { "list", "--loud" }) -- not `anywhere`
    assert.are.equal("help", command.prepare(G, { "--help" }).action)
    assert.are.equal("list", command.prepare(G, { "help", "list" }).topic)
    assert.are.equal("list", command.prepare(G, { "list", "-h" }).entry.name)
    assert.are.equal("version", command.prepare(G, { "list", "-V" }).action)
    assert.are.equal("none", command.prepare(G, {}).action)
    raises(9, "invalid value", command.prepare, G, { "--color", "pink", "list" })
  end)

  it("generates help from the specs", function()
    local h = command.group_help(G, command.prepare(G, { "--help" }).state)
    assert.matches("\n  list +list things\n", h)
    assert.matches("\n  %-d, %-%-dir DIR", h)
    assert.matches("%-V, %-%-version", h)
    h = command.help(G.commands.list, { path = "prog list" })
    assert.matches("^Usage: prog list\n", h)
    assert.matches("%-r, %-%-raw", h)
  end)
end)
