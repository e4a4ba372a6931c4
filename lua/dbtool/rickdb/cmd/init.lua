-- rickdb init: install the Migration Manager (the _migration table) on a database.
local M = {
  name = "init",
  summary = "install Migration Manager on a database",
  usage = "rickdb [database] init",
  options = {
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
  },
  rest = "ARGS",
  help = [[
Creates the _migration table (and _migration_checksum, where db-tool keeps checksums).]],
}

function M.run(ctx, opts)
  local common = require "dbtool.rickdb.common"
  local errors = require "dbtool.errors"
  common.setup(ctx, opts, 0)
  local s <close> = common.open_store(ctx, true)
  s:lock(ctx.lock_wait, ctx.log)
  return errors.finally(function() s:unlock() end, function()
    if s:installed() then
      if s.checksums then pcall(s.ensure_checksums, s) end
      common.write(1, common.style("yellow", "Warning : Migration Manager is already installed") .. "\n")
      return 0
    end
    local ok, err = errors.try(s.install, s)
    if not ok then
      if err.bug or err.interrupted then error(err, 0) end
      common.fail(err.msg, { detail = err.detail, hint = err.hint })
    end
    common.write(1, common.style("green", "Migration Manager installed sucessfully!") .. "\n")
    return 0
  end)
end

return M
