-- database test: run $DATABASE_DIR/test/test.sql inside a transaction that is rolled back.
local M = {
  name = "test",
  summary = "run $DATABASE_DIR/test/test.sql inside BEGIN … ROLLBACK",
  usage = "database test [--tap]",
  options = {
    { "--tap", help = "print a TAP result for the file (pgTAP output is always printed)" },
  },
  help = [[
The tests pass when the file runs without error and, when it returns TAP lines (pgTAP's
`SELECT plan(n)`, `ok(...)`, `finish()`), none is "not ok" and the plan is met. Nothing the
tests change is kept: the whole file runs in one transaction that is rolled back.]],
}

function M.run(ctx, opts)
  return require("dbtool.workflow").test(ctx, { tap = opts.tap }) and 0 or 1
end

return M
