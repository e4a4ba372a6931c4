local args = require "dbtool.args"

local spec = {
  name = "deploy",
  options = {
    { "-c", "--cleanup" },
    { "-u", "--url", arg = "URL" },
    { "-v", "--set", arg = "NAME=VALUE", multi = true },
    { "--no-patch" },
  },
  positionals = { { "backup", optional = true } },
}

describe("dbtool.args", function()
  it("parses flags, values, repeated values and --opt=value", function()
    local o = args.parse(spec, { "-c", "--url", "postgresql:///x", "-v", "a=1", "--set=b=2", "--no-patch" })
    assert.is_true(o.cleanup)
    assert.are.equal("postgresql:///x", o.url)
    assert.are.same({ "a=1", "b=2" }, o.set)
    assert.is_true(o.no_patch)
  end)

  it("takes named positionals and stops options at --", function()
    local o = args.parse(spec, { "--", "-c" })
    assert.are.equal("-c", o.backup)
    assert.is_nil(o.cleanup)
  end)

  it("reports -h/--help without failing on the rest", function()
    assert.is_true(args.parse(spec, { "--bogus", "-h" }).help)
    assert.is_true(args.parse(spec, { "-h", "--bogus" }).help)
  end)

  it("rejects unknown options with exit 9", function()
    local ok, e = pcall(args.parse, spec, { "--bogus" })
    assert.is_false(ok)
    assert.are.equal(9, e.exit)
    assert.matches("unknown option '%-%-bogus'", e.msg)
  end)

  it("rejects a missing value with exit 3", function()
    local ok, e = pcall(args.parse, spec, { "--url" })
    assert.is_false(ok)
    assert.are.equal(3, e.exit)
  end)

  it("rejects unexpected positionals with exit 9", function()
    local ok, e = pcall(args.parse, spec, { "a", "b" })
    assert.is_false(ok)
    assert.are.equal(9, e.exit)
    assert.matches("unexpected argument 'b'", e.msg)
  end)

  it("uses a command's own message formats", function()
    local s = { name = "init", options = {}, messages = { unknown = "%s argument %s does not exists" } }
    local ok, e = pcall(args.parse, s, { "--wat" })
    assert.is_false(ok)
    assert.are.equal("init argument --wat does not exists", e.msg)
  end)

  it("generates help listing every option", function()
    local h = args.help(spec)
    assert.matches("%-%-cleanup", h)
    assert.matches("%-u, %-%-url URL", h)
    assert.matches("%-h, %-%-help", h)
  end)
end)
