-- rickdb list: the applied migrations, oldest first.
local M = {
  name = "list",
  summary = "list applied migrations, sorted by time",
  title = "List applied migrations",
  usage = "rickdb [database] list",
  options = {
    { "--json", help = "machine-readable output" },
  },
  rest = "ARGS",
  help = [[
Prints `<applied>\t<name>` for every recorded migration, oldest first.
  --json   {"migrations": [{"id", "name", "applied", "checksum"}]}]],
}

function M.run(ctx, opts)
  local common = require "dbtool.rickdb.common"
  common.setup(ctx, opts, 0)
  local s <close> = common.open_store(ctx, false)
  common.require_installed(s)
  local rows = s:list()
  if opts.json then
    local sums = {}
    if s.has_checksums and s:has_checksums() then
      for _, a in ipairs(s:applied()) do sums[a.name] = a.hash end
    end
    local items = {}
    for i, r in ipairs(rows) do
      items[i] = { id = r.id, name = r.name, applied = r.applied, checksum = sums[r.name] }
    end
    common.write(1, common.json { database = ctx.name_db, engine = ctx.conn.engine,
      migrations = common.jarray(items) } .. "\n")
    return 0
  end
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = tostring(r.applied or "None") .. "\t" .. common.style("bold", r.name)
  end
  if #out > 0 then common.write(1, table.concat(out, "\n") .. "\n") end
  return 0
end

return M
