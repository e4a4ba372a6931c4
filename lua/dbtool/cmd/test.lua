-- database test: run $DATABASE_DIR/test/test.sql inside a transaction that is rolled back.
local M = {
  name = "test",
  summary = "run $DATABASE_DIR/test/test.sql inside BEGIN … ROLLBACK",
  usage = "database test [--tap]",
  options = {
    { "--tap", help = "print a TAP result for the file (pgTAP output is always printed)" },
  },
  messages = { unknown = "%s argument %s does not exist", unexpected = "%s subcommand %s does not exist" },
  help = [[
The file ($DATABASE_DIR/test/test.sql) runs as a psql script inside BEGIN … ROLLBACK:
nothing the tests change is kept. Its own BEGIN/COMMIT/ROLLBACK (a test.sql written for the
original tool wraps itself) become a savepoint inside that transaction.
The tests pass when the file runs without error and, when its queries return TAP lines
(pgTAP's `SELECT plan(n)`, `ok(...)`, `finish()`), those are printed, none is "not ok" and
the plan is met. --tap prints TAP for a plain SQL file: one test point per statement, the
failing statement as "not ok" with the error.
Database: -u URL, else PGURL, else DB_URL, else the running local cluster (exit 3 if none).
Exit status: 0 passed, 1 failed or test file missing.]],
}

function M.run(ctx, opts)
  return require("dbtool.workflow").test(ctx, { tap = opts.tap }) and 0 or 1
end

return M
