-- database tmp: a throw-away server on demand (URL printed), or around one command.
local M = {
  name = "tmp",
  summary = "a throw-away server: print its URL, or run a command with it (-- CMD)",
  usage = "database tmp [-w SECONDS] [--deploy [-P] [-H] [-m] | --migrate] [-- CMD [ARGS...]]\n"
    .. "       database tmp --stop URL",
  options = {
    { "-w", "--idle", arg = "SECONDS",
      help = "without CMD: remove the server after SECONDS with no client connected (default 60)" },
    { "--deploy", help = "hydrate the project and apply its test data, as `database deploy`" },
    { "--migrate", help = "apply the migrations of MIGRATION_DIR" },
    { "-P", "--no-patch", help = "with --deploy: do not apply the test data" },
    { "-H", "--no-hydrate", help = "with --deploy: do not hydrate" },
    { "-m", "--mock", help = "with --deploy: hydrate with USE_MOCK=1" },
    { "--stop", arg = "URL", help = "stop and remove the throw-away server of URL now" },
  },
  rest = "CMD",
  messages = { unknown = "%s: unknown argument %s", unexpected = "%s: unknown argument %s" },
  help = [[
Without CMD, a fresh server is started and its URL printed on stdout; the command returns at
once. The server stops and removes itself after -w SECONDS (default 60) with no client
connected, or at `database tmp --stop URL`:

  url=$(database tmp -w 300) && psql "$url" -c 'SELECT 1' && database tmp --stop "$url"

With `-- CMD ARGS...`, CMD runs with PGURL, DATABASE_URL, PGHOST, PGPORT, PGDATABASE and
PGUSER naming the server; `database tmp` exits with CMD's exit status (128+N when signal N
ended it) and removes the server when CMD ends: also when CMD is killed, or on Ctrl-C /
SIGTERM (passed on to CMD first).

Every run gets its own server, in a new directory $TMPDIR/db-tool-tmp-XXXXXX (a copy of
db-tool's template cache: about the time PostgreSQL takes to start), reachable through its
Unix socket only, without durability (fsync off). PG_DATABASE (default testdb), PG_PORT,
PG_CONF_FILE and PG_SHARED_PRELOAD_LIBRARIES apply as for postgres-init; LOCAL_DIR is
needed only by --deploy (and --migrate without MIGRATION_DIR). A detached watcher (working
directory /, under TMPDIR only) removes the server when it is no longer wanted, even if
`database tmp` itself is killed.
Exit status: CMD's; without CMD 0 (URL printed); 1 the server or the deploy failed,
9 bad arguments, 127 CMD or PostgreSQL not found.]],
}

function M.run(ctx, opts)
  local tmp = require "dbtool.tmp"
  local errors = require "dbtool.errors"
  local l = ctx.log
  if opts.stop then
    if #opts.args > 0 or opts.deploy or opts.migrate then
      errors.raise(errors.NOT_FOUND, "database tmp: --stop URL takes no other arguments",
        { hint = "see 'database tmp --help'" })
    end
    if not tmp.stop_url(opts.stop) then l:notice("no such server any more (stopped already)") end
    return 0
  end
  if opts.deploy and opts.migrate then
    errors.raise(errors.AMBIGUOUS, "database tmp: --deploy and --migrate exclude each other",
      { hint = "--deploy hydrates the sources, --migrate applies the migrations: pick one" })
  end
  if (opts.no_patch or opts.no_hydrate or opts.mock) and not opts.deploy then
    errors.raise(errors.NOT_FOUND, "database tmp: -P, -H and -m go with --deploy",
      { hint = "see 'database tmp --help'" })
  end
  local idle = tmp.parse_idle(opts.idle)
  local argv = opts.args
  local with_cmd = #argv > 0
  local s = tmp.create { idle = idle, owner = with_cmd, client = opts.deploy or opts.migrate, log = l }
  local function prepare()
    if opts.deploy then
      require("dbtool.workflow").fill(ctx, s.handle, require("dbtool.workflow").phases(l, "tmp"), {
        no_patch = opts.no_patch, no_hydrate = opts.no_hydrate, mock = opts.mock })
    elseif opts.migrate then
      require("dbtool").migrations.up { url = s.url, log = l }
    end
  end
  if not with_cmd then
    local ok, err = errors.try(prepare)
    if not ok then
      tmp.destroy(s)
      error(err, 0)
    end
    io.stdout:write(s.url, "\n")
    io.stdout:flush()
    if require("dbtool.ui").isatty(2) then
      l:info("removed after %s s without a client, or with: database tmp --stop '%s'", tostring(idle), s.url)
    end
    return 0
  end
  return errors.finally(function() tmp.destroy(s) end, function()
    prepare()
    return tmp.run(s, argv)
  end)
end

return M
