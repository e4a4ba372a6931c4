-- migrator create: a new migration directory <UTC timestamp>-<name>/ with up.sql and down.sql.
local M = {
  name = "create",
  summary = "new migration <UTC timestamp>-<name>/ with up.sql and down.sql",
  usage = "migrator create [-n|--name NAME]",
  options = {
    { "-n", "--name", arg = "NAME", help = "its name (cleaned: letters, digits, '-', '_', '.'); "
      .. "default: a random word" },
  },
  help = [[
Prints the path of the new directory. The migration directory is created when missing; an
existing migration of the same name is never overwritten (exit 1).]],
}

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local errors = require "dbtool.errors"
  local dir = common.migration_dir(ctx.globals)
  local name
  if opts.name then
    name = common.clean_name(opts.name)
    if name == "" then
      errors.raise(errors.NOT_FOUND, "invalid migration name '" .. opts.name .. "'",
        { hint = "use letters, digits, '-', '_' and '.'" })
    end
    if name ~= opts.name then ctx.log:info("migration name cleaned: '%s' → '%s'", opts.name, name) end
  else
    name = common.generate_word()
  end
  local full = os.date("!%Y%m%d%H%M%S") .. "-" .. name
  local path = dir .. "/" .. full
  common.create(dir, full, {
    up = "-- " .. full .. ": write your migration SQL here\n",
    down = "-- " .. full .. ": write the SQL that reverts it here\n",
  })
  ctx.log:notice("created migration: %s", path)
  io.stdout:write(path, "\n")
  return 0
end

return M
