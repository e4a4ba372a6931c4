-- rickdb: the TOML parser and the CLI, against baselines measured in the same invocation.
--   1. toml.parse of a large generated document vs load() of the same data written as a
--      Lua table constructor (Lua's own compiler is the baseline for parsing speed);
--   2. `rickdb check` of 1,000 applied migrations on SQLite vs `rickdb list` (the fixed
--      cost: start, read rickdb.toml, open the database);
--   3. `rickdb help` vs `lua5.4 -e ''` (startup).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
local core = require "dbtool.core"
local toml = require "dbtool.toml"

-- 1. parsing
local tparts, lparts = {}, { "return {" }
for i = 1, 5000 do
  tparts[#tparts + 1] = string.format(
    '[db_%d]\nengine = "pgsql"\nhost = "db%d.example.com"\nport = %d\nratio = %d.5\nssl = true\n'
    .. 'tags = ["a", "b", "c"]\n# comment %d\n', i, i, 5000 + i, i, i)
  lparts[#lparts + 1] = string.format(
    'db_%d = { engine = "pgsql", host = "db%d.example.com", port = %d, ratio = %d.5, ssl = true, '
    .. 'tags = {"a", "b", "c"} }, -- comment %d', i, i, 5000 + i, i, i)
end
lparts[#lparts + 1] = "}"
local tsrc, lsrc = table.concat(tparts), table.concat(lparts, "\n")
local function clock(fn)
  local t0 = core.now()
  fn()
  return core.now() - t0
end
local ours = b.sample(7, function() return clock(function() toml.parse(tsrc) end) end, 1)
local base = b.sample(7, function() return clock(function() assert(load(lsrc))() end) end, 1)
b.report(string.format("toml.parse %d KiB vs Lua load()", #tsrc // 1024), ours, base)

-- 2. check of 1,000 migrations
local dir = os.tmpname()
os.remove(dir)
assert(require("posix.sys.stat").mkdir(dir, 448))
local f = assert(io.open(dir .. "/rickdb.toml", "w"))
f:write('[db]\nengine = "sqlite"\ndb_file = "b.db"\n')
f:close()
require("posix.sys.stat").mkdir(dir .. "/m", 448)
for i = 1, 1000 do
  local m = assert(io.open(string.format("%s/m/%04d.sql", dir, i), "w"))
  m:write(string.format("CREATE TABLE t%d (x integer);\n", i))
  m:close()
end
local rickdb = b.build .. "/rickdb"
local env = require("posix.stdlib").getenv()
env.RICKDB_CONFIG = nil
assert(select(2, b.time({ rickdb, "init" }, { cwd = dir, env = env })) == 0)
local t_migrate, code = b.time({ rickdb, "migrate", "m" }, { cwd = dir, env = env })
assert(code == 0, "migrate failed")
io.stdout:write(string.format("%-40s %10s  (%.2f ms per file)\n", "rickdb migrate 1,000 files (SQLite)",
  b.ms(t_migrate), t_migrate))
ours = b.sample(5, function() return b.time({ rickdb, "check", "m" }, { cwd = dir, env = env }) end, 1)
base = b.sample(5, function() return b.time({ rickdb, "list" }, { cwd = dir, env = env }) end, 1)
b.report("rickdb check (1,000 applied) vs list", ours, base)
os.execute("rm -rf '" .. dir .. "'")

-- 3. startup
ours = b.sample(20, function() return b.time { rickdb, "help" } end, 3)
base = b.sample(20, function() return b.time { "lua5.4", "-e", "" } end, 3)
b.report("rickdb help vs lua5.4 -e ''", ours, base)
