-- Entry point, loaded by the C host (src/main.c) from the embedded tree and called with
-- argv (argv[0] is the program name). Installs the module searcher, then hands over to
-- dbtool.cli, which picks the personality and returns the exit code.
local core = require "dbtool.core"

local argv = ...

local loader = assert(core.load_embedded("lua/dbtool/loader.lua", "@builtin/dbtool/loader.lua"))()
package.loaded["dbtool.loader"] = loader
loader.install()

return require("dbtool.cli").main(argv)
