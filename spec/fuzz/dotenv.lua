-- `make fuzz`: mutation fuzzing of the dotenv parser (properties in spec/support/dotenv_fuzz.lua).
--   build/db-tool spec/fuzz/dotenv.lua [SECONDS] [SEED]
-- Failing inputs are written to build-fuzz/dotenv-crash-<n>; the seed is printed so a run can
-- be repeated.
package.path = "spec/support/?.lua;" .. package.path
local fuzz = require "dotenv_fuzz"

local seconds = tonumber(arg and arg[1]) or tonumber(os.getenv("FUZZ_SECONDS")) or 60
local seed = tonumber(arg and arg[2]) or os.time()
os.execute("mkdir -p build-fuzz")
io.stderr:write(string.format("fuzz dotenv: %ds, seed %d\n", seconds, seed))
local stats = fuzz.run {
  seconds = seconds, seed = seed, crash_dir = "build-fuzz",
  log = function(s, n)
    io.stderr:write(string.format("fuzz dotenv: %d inputs (%d valid, %d invalid)\n", n, s.valid, s.invalid))
  end,
}
io.stdout:write(string.format("fuzz dotenv: %d inputs, %d valid, %d invalid, no failure (seed %d)\n",
  stats.iterations, stats.valid, stats.invalid, stats.seed))
