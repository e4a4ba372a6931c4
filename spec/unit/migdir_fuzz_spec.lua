-- A bounded run of the migration-directory fuzzer (spec/support/migdir_fuzz.lua; `make fuzz`
-- runs it longer): random trees (odd names, FIFOs, links to /dev/zero, loops) are scanned
-- and planned without a hang or a db-tool bug, in both layouts.
package.path = "spec/support/?.lua;" .. package.path
local fuzz = require "migdir_fuzz"

describe("migration directory fuzz (quick)", function()
  it("holds its properties on a fixed seed", function()
    local s = fuzz.run { iterations = 400, seed = 20261207 }
    assert.are.equal(400, s.iterations)
    assert.is_true(s.entries > 100 and s.prepared > 50 and s.refused > 50,
      string.format("too little exercised: %d migrations, %d prepared, %d refused", s.entries, s.prepared,
        s.refused))
  end)

  it("holds its properties on a new seed each run", function()
    local seed = os.time()
    local ok, err = pcall(fuzz.run, { iterations = 300, seed = seed })
    assert(ok, tostring(err) .. "\n(seed " .. seed .. ")")
  end)
end)
