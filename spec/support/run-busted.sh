#!/bin/sh
# Run the busted specs with our own binary as the Lua interpreter and print the single
# `N passed, N failed` line. Must run as an unprivileged user (PostgreSQL refuses root);
# run-checks.sh arranges that. Usage: run-busted.sh [spec files or dirs]
#
# The run gets a private TMPDIR (/tmp/dbtool-run.XXXXXX): every spec directory, server and
# summary file lives under it. However the run ends (success, failure, a broken spec file,
# Ctrl-C, TERM), any PostgreSQL server whose data directory is under it is stopped and the
# directory is removed: nothing of the run is left in /tmp.
set -u
BUILD=${DB_TOOL_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
run=$(mktemp -d "${TMPDIR:-/tmp}/dbtool-run.XXXXXX") || { echo "cannot create a temporary directory"; echo "0 passed, 1 failed"; exit 1; }
bpid=

# The postmasters working under $run: the pid in each postmaster.pid, kept only when that
# process is a postgres (argv[0]) whose working directory (the data directory) is under $run.
postmasters() {
  find "$run" -name postmaster.pid -type f 2>/dev/null | while read -r f; do
    pid=$(head -n 1 "$f" 2>/dev/null)
    case "$pid" in ''|*[!0-9]*) continue ;; esac
    argv0=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -n 1)
    case "${argv0##*/}" in postgres|postmaster) ;; *) continue ;; esac
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$run"/*) echo "$pid" ;; esac
  done
}

# Stop what the run left: its busted process group, then the servers (SIGQUIT: immediate
# shutdown, which also ends their backends; SIGKILL after 10 s), then the directory.
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$bpid" ] && kill -0 "-$bpid" 2>/dev/null; then
    kill -TERM "-$bpid" 2>/dev/null
    i=0
    while kill -0 "-$bpid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "-$bpid" 2>/dev/null
  fi
  pids=$(postmasters)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -QUIT $pids 2>/dev/null
    i=0
    while [ $i -lt 100 ]; do
      alive=
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
      [ -z "$alive" ] && break
      sleep 0.1; i=$((i + 1))
    done
    # shellcheck disable=SC2086
    [ -n "$alive" ] && kill -KILL $alive 2>/dev/null
  fi
  # a detached `rm` of a spec may still be deleting in there: try again for a moment
  i=0
  while [ -e "$run" ] && [ $i -lt 50 ]; do
    rm -rf "$run" 2>/dev/null || sleep 0.1
    i=$((i + 1))
  done
}
trap cleanup EXIT
trap 'cleanup; echo "interrupted"; echo "0 passed, 1 failed"; exit 130' INT HUP
trap 'cleanup; echo "terminated"; echo "0 passed, 1 failed"; exit 143' TERM

summary="$run/summary"
: > "$summary"
# No secret in any output: testutil plants this password in the connection URLs it hands
# out and appends everything the programs it runs print to $DB_TOOL_OUTPUT_LOG; busted's own
# output goes to $run/busted.out. Both are searched for it at the end (one more test).
planted="dbtoolPlant$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
export DB_TOOL_PLANTED_PASSWORD="$planted"
export DB_TOOL_OUTPUT_LOG="$run/output.log"
: > "$DB_TOOL_OUTPUT_LOG"
export TMPDIR="$run"
export DB_TOOL_SUMMARY_FILE="$summary"
export DB_TOOL_BIN="$top/$BUILD/db-tool"
export DB_TOOL_BUILD_DIR="$top/$BUILD"
export DB_TOOL_TOP="$top"
unset DB_TOOL_LUA_PATH DATABASE_DIR LOCAL_DIR PGURL DB_URL PG_WORKING_DIR MIGRATION_DIR \
  DATABASE_SOURCE PG_URL_VAR HECTIC_LOG NO_COLOR DB_TOOL_COLOR DB_TOOL_TTY
if [ $# -eq 0 ]; then set -- spec examples/spec; fi
# in its own process group (setsid), in the background: an interrupt reaches this shell at
# once (wait returns), and cleanup can stop the whole run
setsid sh -c '{ busted --lua="$DB_TOOL_BIN" -o spec/support/summary.lua "$@" 2>&1; echo $? > "$0/busted.rc"; } |
  tee "$0/busted.out"' "$run" "$@" &
bpid=$!
wait "$bpid"
rc=$(cat "$run/busted.rc" 2>/dev/null || echo 1)
passed=0; failed=0
while read -r p f; do
  passed=$((passed + p)); failed=$((failed + f))
done < "$summary"
# the planted password: used (testutil marks it), and in no output
if [ -s "$run/planted-used" ]; then
  if grep -F -q -- "$planted" "$run/busted.out" "$DB_TOOL_OUTPUT_LOG"; then
    echo "FAILED: a connection password planted by the specs appears in their output:"
    grep -F -h -- "$planted" "$run/busted.out" "$DB_TOOL_OUTPUT_LOG" | head -n 20 | sed "s/$planted/<PLANTED>/g"
    failed=$((failed + 1))
  else
    echo "no secret in any output: the planted password is in none of $(wc -l < "$DB_TOOL_OUTPUT_LOG") lines of output"
    passed=$((passed + 1))
  fi
fi
cleanup
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # busted itself broke
[ -n "${DB_TOOL_EXTRA_FAILED:-}" ] && failed=$((failed + DB_TOOL_EXTRA_FAILED))
[ -n "${DB_TOOL_EXTRA_PASSED:-}" ] && passed=$((passed + DB_TOOL_EXTRA_PASSED))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
