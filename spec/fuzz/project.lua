-- `make fuzz`: mutation fuzzing of the project-file loader and the sandbox of project code
-- (properties in spec/support/project_fuzz.lua).
--   build/db-tool spec/fuzz/project.lua [SECONDS] [SEED]
-- A failing input is written to build-fuzz/project-crash-<n>; the seed is printed so a run
-- can be repeated.
package.path = "spec/support/?.lua;" .. package.path
local fuzz = require "project_fuzz"

local seconds = tonumber(arg and arg[1]) or tonumber(os.getenv("FUZZ_SECONDS")) or 60
local seed = tonumber(arg and arg[2]) or os.time()
os.execute("mkdir -p build-fuzz")
io.stderr:write(string.format("fuzz project: %ds, seed %d\n", seconds, seed))
local stats = fuzz.run {
  seconds = seconds, seed = seed, crash_dir = "build-fuzz",
  log = function(s, n)
    io.stderr:write(string.format("fuzz project: %d inputs (%d loaded, %d refused)\n", n, s.loaded, s.failed))
  end,
}
io.stdout:write(string.format("fuzz project: %d inputs, %d loaded, %d refused, no failure (seed %d)\n",
  stats.iterations, stats.loaded, stats.failed, stats.seed))
