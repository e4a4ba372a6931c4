-- busted output handler: gtest-style lines for each test, then appends the counts to the
-- file named by DB_TOOL_SUMMARY_FILE ("passed failed" per run) so that run-busted.sh can
-- print the single `N passed, N failed` line CI looks for.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.gtest")(options)
  busted.subscribe({ "suite", "end" }, function()
    local passed = handler.successesCount or 0
    local failed = (handler.failuresCount or 0) + (handler.errorsCount or 0)
    local file = os.getenv("DB_TOOL_SUMMARY_FILE")
    if file and file ~= "" then
      local f = io.open(file, "a")
      if f then
        f:write(passed, " ", failed, "\n")
        f:close()
      end
    end
    return nil, true
  end)
  return handler
end
