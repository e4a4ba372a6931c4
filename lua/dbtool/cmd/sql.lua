-- database sql: run a psql script in process (dbtool.sqlrun), like `psql -X -v ON_ERROR_STOP=1 -f`.
local M = {
  name = "sql",
  summary = "run a psql script (\\i, \\set, \\if, \\gset, \\copy, COPY … FROM stdin) on the database",
  usage = "database sql [-u URL] [-v NAME=VALUE]... [-1] [-p] FILE | -c SQL",
  options = {
    { "-v", "--set", arg = "NAME=VALUE", multi = true, help = "set the psql variable NAME (:NAME)" },
    { "-1", "--single-transaction", help = "run the whole script in one transaction" },
    { "-c", "--command", arg = "SQL", help = "run SQL (a psql script) instead of a file" },
    { "-p", "--print-results", help = "print the rows of queries (tab-separated)" },
    { "--continue-on-error", help = "report failing statements and go on (psql's default)" },
    { "--wait", optional = "SECONDS",
      help = "wait for the server to accept connections first (default 60 s), e.g. a container starting" },
  },
  positionals = { { "file", optional = true, help = "the script; - reads standard input" } },
  help = [[
The script runs over one connection (-u URL, else PGURL, DB_URL, DATABASE_URL, else the
local cluster, else libpq's environment: README "Which database"; --wait for it to start)
as `psql -X -q -v ON_ERROR_STOP=1 -f` would run it: each statement sent as psql builds it,
stopping at the first error, which is reported as file:line:col with the statement and a
caret. Meta-commands run as in psql 15: \i \ir \include \include_relative \cd \q \set
\unset \getenv \if \elif \else \endif \g \gx \gset \gexec \crosstabview \gdesc \r \p \w
\copy (from stdin|pstdin|file|program, to stdout|pstdout|file|program) \c \connect \o \echo
\qecho \warn \timing \pset \a \t \x \f \C \H \T \conninfo \encoding \! \restrict
\unrestrict; variables :name :'name' :"name" :{?name}; AUTOCOMMIT and ON_ERROR_ROLLBACK as in
psql; a UTF-8 byte-order mark is dropped. Other meta-commands (\d..., \watch, \lo_* ...) are
errors at their line. Unlike psql: rows are printed only with -p (as psql -A -F '<tab>'), or
to \o FILE / \g FILE; the data lines of a COPY ... FROM stdin that failed are skipped, never
run as SQL; \c is refused with -1. pg_dump's plain output restores as with psql -f.
Exit status: 0 ok, 1 a statement or meta-command failed, 3 no database, a missing argument or
a bad input file (a custom-format dump, includes nested too deep, a FIFO or device over
16 MiB).]],
}

function M.run(ctx, opts)
  local errors = require "dbtool.errors"
  local sqlrun = require "dbtool.sqlrun"
  local vars = {}
  for _, s in ipairs(opts.set or {}) do
    local name, value = s:match("^([^=]*)=(.*)$")
    if not name then name, value = s, "" end
    if not sqlrun.valid_var_name(name) then
      errors.raise(errors.NOT_FOUND, string.format("database sql: -v %s: invalid variable name %q", s, name),
        { hint = "names are letters, digits and _: -v NAME=VALUE" })
    end
    vars[name] = value
  end
  if opts.file == nil and opts.command == nil then
    errors.raise(errors.MISSING, "database sql: a FILE or -c SQL is required",
      { hint = "see 'database sql --help'" })
  end
  if opts.file and opts.command then
    errors.raise(errors.AMBIGUOUS, "database sql: give either FILE or -c SQL, not both")
  end
  local db = require "dbtool.db"
  if opts.wait then
    local secs = opts.wait == true and 60 or tonumber(opts.wait)
    if not secs or secs < 0 then
      errors.raise(errors.NOT_FOUND, "--wait expects a number of seconds, not '"
        .. tostring(opts.wait) .. "'")
    end
    local url, source = db.require_url(ctx)
    db.wait(url, secs, source)
  end
  local conn <close> = db.connect(ctx)
  local run_opts = {
    vars = vars,
    single_transaction = opts.single_transaction,
    on_error_stop = not opts.continue_on_error,
    print_results = opts.print_results,
    output = io.stdout,
    log = ctx.log,
    connect = true,         -- \c opens connections of the run's own (closed at its end)
  }
  local summary
  if opts.command then
    run_opts.name = "<command>"
    summary = sqlrun.string(conn, opts.command, run_opts)
  else
    summary = sqlrun.file(conn, opts.file, run_opts)
  end
  ctx.log:debug("%d statement%s in %.1f ms", summary.statements, summary.statements == 1 and "" or "s",
    summary.time * 1000)
  if summary.open_transaction then
    ctx.log:warn("the script ended inside a transaction block (BEGIN without COMMIT, or AUTOCOMMIT off): " ..
      "it is rolled back, as when psql exits")
  end
  if summary.errors > 0 then
    ctx.log:error("%d error%s", summary.errors, summary.errors == 1 and "" or "s")
    return errors.GENERIC
  end
  return 0
end

return M
