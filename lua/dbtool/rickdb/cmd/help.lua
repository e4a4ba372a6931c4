-- rickdb help [command]: rick_db's command listing, or one command's help. Needs no
-- configuration file and no database.
local M = {
  name = "help",
  summary = "display general help about available commands",
  usage = "rickdb help [command]",
  positionals = { { "command", optional = true } },
  rest = "ARGS",
}

function M.run(_, opts)
  local rickdb = require "dbtool.personality.rickdb"
  require("dbtool.rickdb.common").write(1, rickdb.help_text(opts.command))
  return 0
end

return M
