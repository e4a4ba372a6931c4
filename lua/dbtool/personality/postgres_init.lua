-- `postgres-init`: start (or reuse) the local PostgreSQL cluster and print the variables to
-- export. A one-command program of the engine (dbtool.command). Installed as a POSIX sh shim
-- (src/postgres-init.sh) so that `. postgres-init` exports them into the calling shell; the
-- policy is in dbtool.cluster.
local cluster = require "dbtool.cluster"
local env = require "dbtool.env"
local ui = require "dbtool.ui"

local M = {}

M.environment = {
  { "PG_WORKING_DIR", "cluster directory: data/ (PGDATA), sock/ (socket, mode 0700) (default: "
    .. "$LOCAL_DIR/focus/postgresql; one of the two is required)" },
  { "PG_DATABASE", "database created if missing (default: testdb)" },
  { "PG_PORT", "port of the socket (default: 5432); the server listens on no TCP address" },
  { "PG_REUSE", "when set (any value, even empty or 0), reuse the existing cluster and its data; unset: a "
    .. "fresh, empty cluster (the old data directory is discarded)" },
  { "PG_CONF_FILE", "postgresql.conf copied in on a fresh init; it replaces the generated settings "
    .. "(logging, preload); port and socket directory are still imposed" },
  { "PG_SHARED_PRELOAD_LIBRARIES", "shared_preload_libraries (default: pg_cron; empty: none). Each library "
    .. "must exist, else exit 127 before anything is changed" },
  { "PG_DISABLE_LOGGING", "1: no logging collector (server output then goes to postmaster.log)" },
  { "PG_LOG_PATH", "directory of the server logs (default: $PG_WORKING_DIR/data/log)" },
  { "PG_URL_VAR", "also export the URL under this name (default: PGURL only)" },
  { "PG_BINDIR", "server binaries (default: pg_config --bindir, PATH, /usr/lib/postgresql)" },
  { "PGCTLTIMEOUT", "seconds to wait for the server to accept connections (default: 60)" },
  { "NO_TTY", "accepted for compatibility. The server never inherits the caller's terminal, pipes or "
    .. "descriptors (its output goes to <log dir>/postmaster.log), so `$(postgres-init)` cannot hang." },
  { "DB_TOOL_SPARES", "prepared copies of each template kept in its spares/ (default 1; 0: none)" },
  { "XDG_CACHE_HOME", "the initdb templates live in ${XDG_CACHE_HOME:-~/.cache}/db-tool/" },
}

M.exit_codes = {
  { 0, "ok" },
  { 1, "error (unusable working directory, unreadable PG_CONF_FILE, invalid PG_URL_VAR or PG_PORT, "
    .. "database creation failed)" },
  { 2, "the cluster cannot be started here (running as root, socket used by another server, server start "
    .. "failure, another postgres-init holding the directory too long)" },
  { 3, "neither PG_WORKING_DIR nor LOCAL_DIR" },
  { 9, "unknown argument" },
  { 127, "PostgreSQL or a preload library missing" },
}

M.NOTES = [[
Output:
  stdout gets only `export NAME='value'` lines: POSTGRESQL_HOST (the socket directory),
  POSTGRESQL_PORT, POSTGRESQL_USER, POSTGRESQL_DATABASE, PGURL (and $PG_URL_VAR), with
  PGURL=postgresql://<user>@/<database>?host=<socket dir>&port=<port>. Sourced
  (`. postgres-init`) the shim evaluates them in your shell; executed, they are printed, so
  `eval "$(postgres-init)"` works too. Messages go to stderr.

Speed: initdb runs once per server version, options and database name into
${XDG_CACHE_HOME:-~/.cache}/db-tool/; a fresh cluster is a copy of that template (and the
next copy is prepared in the background inside the working directory; DB_TOOL_SPARES
copies per template wait in its spares/ for other fresh clusters). The server is started
directly; it is ready when its postmaster.pid says so (what pg_ctl -w waits for).

Safety: PG_REUSE never deletes data. A reused cluster that fails to start is moved aside
to data.broken-<timestamp> and a fresh one is created. A socket served by another
process is an error. Concurrent runs on one directory wait for each other. Root is refused.

Differences from the original postgres-init (its bugs, fixed): createdb honours PG_PORT;
PG_CONF_FILE really disables the generated logging/preload settings; logging_collector
lines no longer pile up; a broken reused cluster is moved aside, never wiped; a busy socket
is an error instead of a re-initialisation; PG_URL_VAR is checked before anything is
started; a stale postmaster.pid whose pid now belongs to another process no longer blocks
the start; sourcing leaves no helper variables, functions or PATH changes and does not
rewrite PG_REUSE.]]

M.name = "postgres-init"
M.usage = ". postgres-init    |    eval \"$(postgres-init)\"    |    postgres-init"
M.summary = "Start the local PostgreSQL cluster (or reuse it with PG_REUSE) and export its URL."
M.options = {
  { "--export-sh", help = "print only the export lines on stdout (used by the sh shim)" },
}
M.help = M.NOTES

function M.run(ctx, opts)
  local l = ctx.log
  cluster.check_root(require("posix.unistd").geteuid(), "postgres-init")
  local url_var = env.pg_url_var()          -- validated before anything is touched
  local t0 = require("dbtool.core").now()
  local h = cluster.start(cluster.options_from_env { spare = true, log = l, prog = "postgres-init" })
  io.stdout:write(cluster.export_lines(cluster.exports(h, url_var)))
  io.stdout:flush()
  l:info("cluster %s in %s (%d ms): %s", h.reused and "reused" or "ready", h.dir,
    math.floor((require("dbtool.core").now() - t0) * 1000 + 0.5), h.url)
  if not opts.export_sh and ui.isatty(1) then
    l:notice("executed, not sourced: these variables are not set in your shell; " ..
      "use `. postgres-init` or `eval \"$(postgres-init)\"`")
  end
  return 0
end

return M
