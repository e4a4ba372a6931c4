-- `database cleanup`: stop the local cluster and remove its working directory.
local M = {
  name = "cleanup",
  summary = "stop the local cluster and remove PG_WORKING_DIR",
  usage = "database cleanup",
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s: unexpected argument %s",
  },
  help = [[
Stops the server of PG_WORKING_DIR (default $LOCAL_DIR/focus/postgresql) and removes what
db-tool created there: data/, sock/, moved-aside data.broken-* copies and db-tool's own
.db-tool-* files; then the directory itself. Files that db-tool did not create are kept
(with a warning), so a mistaken PG_WORKING_DIR cannot delete a project. Exits 0 when there
was nothing to remove.]],
}

function M.run(ctx)
  local cluster = require "dbtool.cluster"
  local env = require "dbtool.env"
  local wd = env.pg_working_dir()
  ctx.log:info("stopping cluster at %s", wd)
  local ok, err = require("dbtool.errors").try(cluster.stop, wd, { log = ctx.log })
  if not ok then error(err, 0) end
  ctx.log:info("removing %s", wd)
  local kept = cluster.remove(wd, { log = ctx.log })
  if #kept > 0 then
    ctx.log:warn("kept %s: it holds files db-tool did not create: %s", wd, table.concat(kept, ", "))
  end
  return 0
end

return M
