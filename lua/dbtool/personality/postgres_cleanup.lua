-- placeholder until its issue lands: fails clearly instead of pretending
local errors = require "dbtool.errors"
return { main = function(argv)
  if argv[1] == "-h" or argv[1] == "--help" or argv[1] == "help" then
    io.stdout:write("Usage: postgres_cleanup (not implemented yet in this build)\n")
    return 0
  end
  errors.raise(errors.GENERIC, "postgres_cleanup is not implemented yet in this build")
end }
