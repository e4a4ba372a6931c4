-- Where the peers of the benchmarks are (installed by bench/peers.sh): each function returns
-- the program's path, or nil and why it is missing (its rows then say "not measured").
local unistd = require "posix.unistd"
local glob = require "posix.glob"

local M = {}

local function which(name)
  for d in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local p = d .. "/" .. name
    if unistd.access(p, "x") then return p end
  end
  return nil
end
M.which = which

--- dbmate's Go binary from the npm package (not node's wrapper script), else PATH.
function M.dbmate()
  local cache = (os.getenv("XDG_CACHE_HOME") or ((os.getenv("HOME") or "") .. "/.cache"))
    .. "/db-tool-bench/npm/node_modules/@dbmate/*/bin/dbmate"
  local found = glob.glob(cache, 0)
  if found and found[1] and unistd.access(found[1], "x") then return found[1] end
  return which("dbmate"), "dbmate is not installed (bench/peers.sh npm dbmate)"
end

local function debian(name, pkg)
  return function()
    local p = which(name)
    if p then return p end
    return nil, name .. " is not installed (Debian package " .. pkg .. ")"
  end
end
M["sql-migrate"] = debian("sql-migrate", "sql-migrate")
M.sqitch = debian("sqitch", "sqitch")
M.pg_prove = debian("pg_prove", "libtap-parser-sourcehandler-pgtap-perl")
M.pg_virtualenv = debian("pg_virtualenv", "postgresql-common")

return M
