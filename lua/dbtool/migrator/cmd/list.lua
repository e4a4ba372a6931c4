-- migrator list: the migrations on disk (no database needed).
local M = {
  name = "list",
  summary = "migrations on disk (no database needed)",
  usage = "migrator list [-r|--raw]",
  options = {
    { "-r", "--raw", help = "names only" },
  },
  help = [[
One line per migration directory, in the order they apply; `<name>: missing up.sql`
(or down.sql) when a direction is missing.]],
}

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local dir = common.migration_dir(ctx.globals)
  local eng = require("dbtool.migrate").new { layout = "dirs", dir = dir, log = ctx.log }
  local fs = eng:discover()
  if eng.dir_missing then ctx.log:warn("migration directory not found: %s", dir) end
  local out = {}
  for _, m in ipairs(fs) do
    if opts.raw then
      out[#out + 1] = m.name
    else
      local missing = {}
      if not m.up then missing[#missing + 1] = "up.sql" end
      if not m.down then missing[#missing + 1] = "down.sql" end
      out[#out + 1] = #missing == 0 and m.name or (m.name .. ": missing " .. table.concat(missing, " "))
    end
  end
  if #out > 0 then io.stdout:write(table.concat(out, "\n"), "\n") end
  return 0
end

return M
