-- migrator status (alias fetch): applied, pending, modified and missing migrations.
local M = {
  name = "status",
  summary = "applied / pending / modified / missing, with hashes and times (alias: fetch)",
  usage = "migrator status [--json] [--exit-code] [--wait[=SECONDS]]",
  options = {
    { "--json", help = "machine-readable output" },
    { "--exit-code", help = "exit 1 when a migration is pending (or a repeatable one is new or changed)" },
    require("dbtool.migrator.common").WAIT_OPTION,
  },
  help = [[
States: applied (files unchanged), modified (applied, files changed since), pending (on
disk, not applied; "out of order" when older than the newest applied one), missing
(applied, no files on disk). A history mismatch is reported below the table. Repeatable
migrations (MIGRATION_DIR/repeatable/*.sql) follow: applied, changed (applied again by the
next `migrate up all`), pending (never applied), missing (recorded, file gone). Files that
did not change since the checksum cache saw them are not read again.]],
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
    ',"counts":', J(st.counts), ',"migrations":[', table.concat(rows, ","), '],"repeatable":',
    J(M.repeatable_json(st.repeatable)), "}\n" }
end

--- The repeatable migrations of a status, for --json.
function M.repeatable_json(rows)
  local migrate = require "dbtool.migrate"
  local out = migrate.array()
  for i, r in ipairs(rows or {}) do
    out[i] = { name = r.name, state = r.state, hash = r.hash or migrate.null,
      file_hash = r.file_hash or migrate.null, applied_at = r.applied_at or migrate.null }
  end
  return out
end

--- --exit-code: 1 when a versioned migration is pending or a repeatable one new or changed.
function M.exit_code(opts, counts, rcounts)
  if not opts.exit_code then return 0 end
  rcounts = rcounts or {}
  if counts.pending > 0 or (rcounts.pending or 0) > 0 or (rcounts.changed or 0) > 0 then return 1 end
  return 0
end

--- The text lines of the repeatable migrations.
function M.repeatable_lines(rows, style)
  local out = {}
  local colors = { applied = "green", changed = "yellow", pending = "yellow", missing = "red" }
  for _, r in ipairs(rows or {}) do
    out[#out + 1] = style(colors[r.state], r.state .. string.rep(" ", 9 - #r.state)) .. " repeatable/"
      .. r.name .. "  " .. (r.applied_at or "-") .. string.rep(" ", math.max(0, 27 - #(r.applied_at or "-")))
      .. " " .. (r.hash and r.hash:sub(1, 12) or "-")
      .. (r.state == "missing" and "  (recorded, file gone: forgotten by the next migrate)" or "")
  end
  return out
end

function M.run(ctx, opts)
  local common = require "dbtool.migrator.common"
  local store <close> = common.open(ctx, opts, false)
  local eng = require("dbtool.migrate").new { store = store, layout = "dirs",
    dir = common.migration_dir(ctx.globals), policy = common.policy(opts), log = ctx.log }
  local ui = require "dbtool.ui"
  if not opts.json then
    -- everything applied and unchanged (the usual case): the lines are made by the server
    local fast = eng:status_fast { styled = ui.style("green", "applied  ") }
    if fast then
      local c = fast.counts
      io.stdout:write(fast.text, "\n", string.format("%d applied, %d modified, %d pending, %d missing\n",
        c.applied, c.modified, c.pending, c.missing))
      return M.exit_code(opts, c, fast.repeatable_counts)
    end
  end
  local st = eng:status()
  if opts.json then
    io.stdout:write(M.json(st, store, eng.dir))
    return M.exit_code(opts, st.counts, st.repeatable_counts)
  end
  local lines = common.status_lines(st, store.table, eng.dir, ui.style)
  for _, line in ipairs(M.repeatable_lines(st.repeatable, ui.style)) do lines[#lines + 1] = line end
  io.stdout:write(table.concat(lines, "\n"), "\n")
  return M.exit_code(opts, st.counts, st.repeatable_counts)
end

return M
