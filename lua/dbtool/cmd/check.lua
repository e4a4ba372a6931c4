-- database check: the whole deploy in an isolated, temporary cluster, always removed.
local M = {
  name = "check",
  summary = "run hydrate + patch (and the tests) in an isolated temporary cluster (always removed)",
  usage = "database check [-P|--no-patch] [-H|--no-hydrate] [-m|--mock] [--test [--tap] [--junit FILE] "
    .. "[-j N] [PATH...]] [--json]",
  options = {
    { "-P", "--no-patch", help = "do not apply the test data" },
    { "-H", "--no-hydrate", help = "do not hydrate" },
    { "-m", "--mock", help = "hydrate with USE_MOCK=1" },
    { "--reuse", help = "accepted for compatibility: like the original, implies -P -H" },
    { "--test", help = "then run the tests (PATH..., default $DATABASE_DIR/test/test.sql) as database test" },
    { "--tap", help = "with --test: TAP 13 on stdout" },
    { "--junit", arg = "FILE", help = "with --test: write a JUnit XML report to FILE" },
    { "-j", "--jobs", arg = "N", help = "with --test: run N test files at a time" },
    { "--json", help = "print one JSON document with the steps, timings and results at the end" },
  },
  rest = "PATH",
  messages = { unknown = "%s: unknown argument %s", unexpected = "%s: unknown argument %s" },
  help = [[
A fresh cluster is started in a temporary directory under TMPDIR (from the template cache,
with the environment of postgres-init: PG_DATABASE, PG_PORT, PG_CONF_FILE,
PG_SHARED_PRELOAD_LIBRARIES; no server logs), then hydrate and patch run against it exactly
as `database deploy` does (the hectic bundle, secrets, $DATABASE_SOURCE/entrypoint.sql, the
test data; HYDRATE_LOG and PATCH_LOG apply). With --test the tests then run on it as
`database test [--tap] [--junit FILE] [-j N] [PATH...]` would (in CI:
`database check --test --junit report.xml`). Your own cluster and data are not touched. The
temporary cluster is stopped and removed on success, on failure and on Ctrl-C. Hooks
before_check/after_check of ${DATABASE_DIR}/db-tool.lua run around it.
--json prints one JSON document on stdout when the check ends (script output goes to
stderr): schema_version, ok, exit_code, steps with their duration, the tests' results, and
on failure the error as data (message, file, line, column, sqlstate, exit code).
Exit status: 0 when the deploy completed cleanly (and the tests passed), 1 when a test
failed, else the failing step's.]],
}

function M.run(ctx, opts)
  local errors = require "dbtool.errors"
  local workflow = require "dbtool.workflow"
  local test = require "dbtool.cmd.test"
  if not opts.test and (opts.tap or opts.junit or opts.jobs or #opts.args > 0) then
    errors.raise(errors.NOT_FOUND, "database check: --tap, --junit, -j and test paths go with --test",
      { hint = "see 'database check --help'" })
  end
  local tests = opts.test
    and { paths = opts.args, tap = opts.tap, junit = opts.junit, jobs = test.jobs(opts.jobs) } or nil
  if opts.json and opts.tap then
    errors.raise(errors.AMBIGUOUS, "database check: --json and --tap both write to stdout",
      { hint = "pick one" })
  end
  local function go(doc)
    local ph = workflow.phases(ctx.log, "check")
    local ok, passed, summary = errors.try(workflow.check, ctx, {
      no_patch = opts.no_patch or opts.reuse,
      no_hydrate = opts.no_hydrate or opts.reuse,
      mock = opts.mock, test = tests, phases = ph,
    })
    if doc then
      doc.steps = require("dbtool.report").steps(ph)
      doc.failed_step = ph.failed and ph.failed.name
      if ok and summary then doc.tests = require("dbtool.report").tests(summary) end
    end
    if not ok then error(passed, 0) end
    return passed and 0 or 1
  end
  if not opts.json then return go() end
  return require("dbtool.report").run("database check", go)
end

return M
