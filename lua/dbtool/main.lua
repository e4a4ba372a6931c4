-- Entry point, loaded by the C host (src/main.c) from the embedded tree and called with
-- argv (argv[0] is the program name). Installs the module searcher, then hands over to
-- dbtool.cli, which picks the personality and returns the exit code.
local core = require "dbtool.core"

local argv = ...

local loader = assert(core.load_embedded("lua/dbtool/loader.lua", "@builtin/dbtool/loader.lua"))()
package.loaded["dbtool.loader"] = loader
loader.install()

local code = require("dbtool.cli").main(argv)
-- an error raised in a __gc metamethod is only a warning to Lua (src/main.c keeps them):
-- collect now so that project objects' finalizers run while they can still be reported
collectgarbage()
local n, first = core.gc_errors()
if n > 0 then
  local cli = require "dbtool.cli"
  local e = require("dbtool.project").gc_error(n, first)
  cli.report(e)
  if code == 0 or code == nil or code == true then code = e.exit end
end
return code
