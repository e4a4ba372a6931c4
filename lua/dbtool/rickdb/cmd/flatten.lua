-- rickdb flatten <name>: replace every _migration row by one.
local M = {
  name = "flatten",
  summary = "replaces all migration entries in the migration manager with a new one, with a specified name",
  usage = "rickdb [database] flatten <name_to_use>",
  options = {
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
  },
  positionals = { { "name", optional = true } },
  rest = "ARGS",
  help = [[
Replaces every row of _migration by one row named <name_to_use>, in one transaction, e.g.
after replacing the migration files by a schema dump. Delete the old files afterwards: they
are not recorded any more, so migrate would run them again.]],
}

function M.run(ctx, opts)
  local common = require "dbtool.rickdb.common"
  local errors = require "dbtool.errors"
  common.setup(ctx, opts, 1)
  local name = ctx.args[1]
  local s <close> = common.open_store(ctx, false)
  common.require_installed(s)
  if name == nil or name == "" then common.fail("missing name for flattened migration to be inserted") end
  s:lock(ctx.lock_wait, ctx.log)
  return errors.finally(function() s:unlock() end, function()
    if #s:list() == 0 then common.fail("no migrations inserted yet, cannot flatten") end
    common.write(1, "Flattening all migrations to " .. name .. "... ")
    local ok, err = errors.try(s.flatten, s, name)
    if not ok then
      common.write(1, common.style("red", "error") .. "\n")
      if err.bug or err.interrupted then error(err, 0) end
      common.fail(err.msg, { detail = err.detail, hint = err.hint })
    end
    common.write(1, common.style("green", "success") .. "\n")
    return 0
  end)
end

return M
