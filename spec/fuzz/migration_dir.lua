-- `make fuzz`: random migration directory trees through the scanners of both layouts and
-- the engine's planning (properties in spec/support/migdir_fuzz.lua).
--   build/db-tool spec/fuzz/migration_dir.lua [SECONDS] [SEED]
-- A failing tree is described in build-fuzz/migdir-crash-<n>; the seed is printed so a run
-- can be repeated. A hang (a FIFO opened) ends the run by SIGALRM.
package.path = "spec/support/?.lua;" .. package.path
local fuzz = require "migdir_fuzz"

local seconds = tonumber(arg and arg[1]) or tonumber(os.getenv("FUZZ_SECONDS")) or 60
local seed = tonumber(arg and arg[2]) or os.time()
os.execute("mkdir -p build-fuzz")
io.stderr:write(string.format("fuzz migration_dir: %ds, seed %d\n", seconds, seed))
local stats = fuzz.run {
  seconds = seconds, seed = seed, crash_dir = "build-fuzz",
  log = function(s, n)
    io.stderr:write(string.format("fuzz migration_dir: %d trees, %d migrations\n", n, s.entries))
  end,
}
io.stdout:write(string.format("fuzz migration_dir: %d trees, %d migrations, %d plans prepared, %d refused, "
  .. "no failure (seed %d)\n", stats.iterations, stats.entries, stats.prepared, stats.refused, stats.seed))
