-- Startup cost: `database --help` against `lua5.4 -e ''`, same invocation. Goal: ≤ 10 ms.
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"

local n = tonumber(arg[1]) or 50
local ours = b.sample(n, function() return b.time { b.build .. "/database", "--help" } end, 3)
local base = b.sample(n, function() return b.time { "lua5.4", "-e", "" } end, 3)
b.report("database --help vs lua5.4 -e ''", ours, base, "<= 10 ms")
local interp = b.sample(n, function() return b.time { b.bin, "-e", "" } end, 3)
b.report("db-tool -e '' vs lua5.4 -e ''", interp, base)
