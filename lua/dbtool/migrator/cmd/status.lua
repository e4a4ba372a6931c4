-- migrator status (alias fetch): applied, pending, modified and missing migrations.
local M = {
  name = "status",
  summary = "applied / pending / modified / missing, with hashes and times (alias: fetch)",
  usage = "migrator status [--json]",
  options = {
    { "--json", help = "machine-readable output" },
  },
  help = [[
States: applied (files unchanged), modified (applied, files changed since), pending (on
disk, not applied; "out of order" when older than the newest applied one), missing
(applied, no files on disk). A history mismatch is reported below the table.]],
}

--- The JSON document of a status (rows encoded directly, in a fixed key order: 10,000 rows
--- stay fast).
function M.json(st, store, dir)
  local migrate = require "dbtool.migrate"
  local J, js = migrate.json, migrate.json_string
  local function str(v) return v == nil and "null" or js(v) end
  local rows = {}
  for i, r in ipairs(st.rows) do
    rows[i] = table.concat { '{"name":', js(r.name), ',"state":"', r.state, '","applied_at":',
      str(r.applied_at),
      ',"hash":', str(r.hash), ',"file_hash":', str(r.file_hash), ',"tree_hash":', str(r.tree_hash),
      ',"file_tree_hash":', str(r.file_tree_hash), ',"duration_ms":', r.duration_ms
        and tostring(r.duration_ms)
      or "null", ',"out_of_order":', r.out_of_order and "true" or "false", "}" }
  end
  return table.concat { '{"engine":', js(store.engine), ',"table":', js(store.table), ',"initialized":',
    tostring(st.initialized), ',"migration_dir":', js(dir), ',"migration_dir_exists":',
    tostring(not st.dir_missing), ',"current":', str(st.current), ',"history_ok":',
    tostring(st.mismatch == nil),
    ',"counts":', J(st.counts), ',"migrations":[', table.concat(rows, ","), "]}\n" }
end

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local store <close> = common.open(ctx, opts, false)
  local eng = require("dbtool.migrate").new { store = store, layout = "dirs",
    dir = common.migration_dir(ctx.globals), policy = common.policy(opts), log = ctx.log }
  local st = eng:status()
  if opts.json then
    io.stdout:write(M.json(st, store, eng.dir))
    return 0
  end
  local ui = require "dbtool.ui"
  local lines = common.status_lines(st, store.table, eng.dir, ui.style)
  io.stdout:write(table.concat(lines, "\n"), "\n")
  return 0
end

return M
