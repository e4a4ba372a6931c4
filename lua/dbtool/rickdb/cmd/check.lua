-- rickdb check <path>: compare the files of a directory with the applied migrations.
local M = {
  name = "check",
  summary = "compares existing migrations with the applied migrations, and list new ones",
  usage = "rickdb [database] check <path_to_sql_files>",
  options = {
    { "--json", help = "machine-readable output" },
    { "--exit-code", help = "exit 1 when new migrations are pending (empty files do not count)" },
  },
  positionals = { { "path", optional = true, complete = "dir" } },
  rest = "ARGS",
  help = [[
Prints `Checking <file>... already applied | empty migration | new migration` for every
*.sql file of the directory, in the order migrate applies them.
  --exit-code   exit 1 when there are new migrations (empty files do not count)
  --json        {"migrations": [{"name", "state": applied|modified|empty|pending}],
                 "missing": [applied names without a file], "counts": {...}}]],
}

local CHECK_TEXT = {
  applied = { "yellow", "already applied" }, modified = { "yellow", "already applied" },
  empty = { "yellow", "empty migration" }, pending = { "bold", "new migration" },
}

function M.run(ctx, opts)
  local common = require "dbtool.rickdb.common"
  common.setup(ctx, opts, 1)
  local s <close> = common.open_store(ctx, false)
  common.require_installed(s)
  local dir = common.migration_dir(ctx)
  local rows, missing = common.classify(ctx, s, dir)
  local counts = { applied = 0, modified = 0, empty = 0, pending = 0, missing = #missing }
  for _, r in ipairs(rows) do counts[r.state] = counts[r.state] + 1 end
  if opts.json then
    local items = {}
    for i, r in ipairs(rows) do
      items[i] = { name = r.name, state = r.state, applied = r.applied and r.applied.applied_at or nil,
        checksum = r.hash or (r.applied and r.applied.hash) or nil, file_checksum = r.file_hash }
    end
    common.write(1, common.json { database = ctx.name_db, engine = ctx.conn.engine, path = dir,
      migrations = common.jarray(items), missing = common.jarray(missing), counts = counts } .. "\n")
  else
    local lines, styled = {}, {}
    for k, t in pairs(CHECK_TEXT) do styled[k] = common.style(t[1], t[2]) end
    for i, r in ipairs(rows) do lines[i] = "Checking " .. r.name .. "... " .. styled[r.state] .. "\n" end
    common.write(1, table.concat(lines)) -- one write for 10,000 files
    for _, r in ipairs(rows) do
      if r.state == "modified" then
        common.warn(r.name .. " changed since it was applied (sha256 " .. r.file_hash:sub(1, 12)
          .. ", applied as " .. r.hash:sub(1, 12)
          .. "); changes to an applied migration are not applied: put them in a new one")
      end
    end
  end
  if opts.exit_code and counts.pending > 0 then return 1 end
  return 0
end

return M
