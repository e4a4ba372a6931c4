-- A bounded run of the project-file fuzzer (spec/support/project_fuzz.lua; `make fuzz` runs
-- it longer): every mutated db-tool.lua loads, or fails as the project's structured error;
-- its commands and hooks give an exit code or such an error; never a db-tool bug.
package.path = "spec/support/?.lua;" .. package.path
local fuzz = require "project_fuzz"

describe("project file fuzz (quick)", function()
  it("holds its properties on a fixed seed", function()
    local s = fuzz.run { iterations = 1500, seed = 20261207 }
    assert.are.equal(1500, s.iterations)
    assert.is_true(s.loaded > 50, "too few inputs loaded to say much: " .. s.loaded)
  end)

  it("holds its properties on a new seed each run", function()
    local seed = os.time()
    local ok, err = pcall(fuzz.run, { iterations = 1000, seed = seed })
    assert(ok, tostring(err) .. "\n(seed " .. seed .. ")")
  end)

  it("can fail: a db-tool bug in the loader is caught", function()
    local project = require "dbtool.project"
    local real = project.validate
    project.validate = function() error("a bug in validate") end
    local ok, err = pcall(fuzz.run, { iterations = 5, seed = 1 })
    project.validate = real
    assert.is_false(ok)
    assert.matches("project fuzz: not a structured error: .*a bug in validate", err)
  end)
end)
