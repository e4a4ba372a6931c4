-- The public Lua API: `local dbtool = require "dbtool"`. Sub-modules load on first use:
-- dbtool.log, dbtool.env, dbtool.errors, dbtool.pg, dbtool.proc, ... (see README, "Lua API").
local core = require "dbtool.core"

local M = { version = core.version }

local aliases = {
  proc = "dbtool.core.proc",
}

return setmetatable(M, {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local ok, mod = pcall(require, aliases[k] or ("dbtool." .. k))
    if not ok then
      if tostring(mod):find("module '[^']*' not found") then return nil end
      error(mod, 2)
    end
    rawset(t, k, mod)
    return mod
  end,
})
