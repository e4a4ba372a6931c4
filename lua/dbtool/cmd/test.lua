-- database test: test SQL files, each inside a transaction that is rolled back.
local M = {
  name = "test",
  summary = "run test SQL files (pgTAP or plain) inside BEGIN … ROLLBACK; TAP, JUnit",
  usage = "database test [--tap | --json] [--junit FILE] [-j N] [PATH...]",
  options = {
    { "--tap", help = "TAP 13 on stdout: a test point per pgTAP assertion, per statement for plain SQL" },
    { "--junit", arg = "FILE", help = "also write a JUnit XML report to FILE" },
    { "-j", "--jobs", arg = "N", help = "run N files at a time, each in its own copy of the database" },
    { "--json", help = "print one JSON document with every file's results at the end (only that on stdout)" },
  },
  rest = "PATH",
  messages = { unknown = "%s argument %s does not exist", unexpected = "%s subcommand %s does not exist" },
  help = [[
PATH: test files, or directories whose *.sql files (below them, in name order; names
starting with . or _ are left out, for files the tests include with \ir) are tests.
Default: $DATABASE_DIR/test/test.sql.
Each file runs as a psql script on a connection of its own, inside BEGIN … ROLLBACK: nothing
the tests change is kept. Its own BEGIN/COMMIT/ROLLBACK (a test.sql written for the
original tool wraps itself) become a savepoint inside that transaction.
A file passes when it runs without error and, when its queries return TAP lines (pgTAP's
`SELECT plan(n)`, `ok(...)`, `finish()`), none is "not ok" (TODO and SKIP aside) and the plan
is met. Without --tap, pgTAP's output and the scripts' output are printed as they come.
--tap prints TAP 13 for the whole run (prove reads it: `prove -e 'database test --tap'
--ext .sql db/test`): a test point per pgTAP assertion, or per statement of a plain SQL
file (its failing statement "not ok" with the error), YAML diagnostics with file and line;
the scripts' output becomes comments.
--junit FILE writes JUnit XML: a <testsuite> per file, a <testcase> per test point, failures
with file:line and the message, the scripts' output in <system-out>.
-j N runs N files at a time, each in a database of its own cloned from the target
(CREATE DATABASE … TEMPLATE; needs CREATEDB and no other session on it) and dropped
afterwards, so files cannot see or block each other: the verdicts are those of -j 1.
--json prints one JSON document on stdout when the run ends (script output and pgTAP's lines
go to stderr): schema_version, ok, exit_code, and `tests` with every file's test points
(ok, description, file, line, message, sqlstate), its output and its error as data.
Database: -u URL, else PGURL, else DB_URL, else the running local cluster (exit 3 if none).
Exit status: 0 every file passed, 1 a test failed or a file is missing, 9 bad arguments.]],
}

--- -j/--jobs: a count ≥ 1 (exit 9 otherwise).
function M.jobs(s)
  if s == nil then return 1 end
  local n = math.tointeger(tonumber(s))
  if not n or n < 1 then
    require("dbtool.errors").raise(require("dbtool.errors").NOT_FOUND,
      "database test: -j/--jobs must be a number of files at a time ≥ 1, not '" .. tostring(s) .. "'",
      { hint = "e.g. `database test -j 4 db/test`" })
  end
  return n
end

function M.run(ctx, opts)
  local errors = require "dbtool.errors"
  local jobs = M.jobs(opts.jobs)
  if opts.json and opts.tap then
    errors.raise(errors.AMBIGUOUS, "database test: --json and --tap both write to stdout",
      { hint = "pick one" })
  end
  local function go(doc)
    local passed, summary = require("dbtool.workflow").test(ctx, { paths = opts.args, tap = opts.tap,
      junit = opts.junit, jobs = jobs })
    if doc then doc.tests = require("dbtool.report").tests(summary) end
    return passed and 0 or 1
  end
  if not opts.json then return go() end
  return require("dbtool.report").run("database test", go)
end

return M
