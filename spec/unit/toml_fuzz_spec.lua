-- A bounded run of the TOML fuzzer (spec/support/fuzz_toml.lua; `make fuzz` runs it longer):
-- mutated documents give a value or a structured error, never a Lua error; generated values
-- written as TOML parse back unchanged.
local fuzz = require "fuzz_toml"

describe("toml fuzz (quick)", function()
  it("survives 5,000 mutated documents and round trips with a fixed seed", function()
    assert.are.equal(5000, fuzz.run { iterations = 5000, seed = 20260101 })
  end)

  it("survives 5,000 more with a fresh seed (the seed is in the failure message)", function()
    assert.are.equal(5000, fuzz.run { iterations = 5000, seed = os.time() })
  end)

  it("detects a parser that raises or returns unstructured errors", function()
    local toml = require "dbtool.toml"
    local orig = toml.decode
    toml.decode = function() error("boom") end
    local bad1 = fuzz.check("a = 1")
    toml.decode = function() return nil, "oops" end
    local bad2 = fuzz.check("a = 1")
    toml.decode = orig
    assert.matches("decode raised: .*boom", bad1)
    assert.matches("error is not structured: oops", bad2)
  end)
end)
