-- The option parser of every command, for scripts (`dbtool.args.parse(spec, arg)`): the
-- command engine's (dbtool.command), where the spec format is described.
local command = require "dbtool.command"

return {
  parse = function(spec, argv, first) return command.parse(spec, argv, first) end,
  help = function(spec) return command.help(spec) end,
}
