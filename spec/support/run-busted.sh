#!/bin/sh
# Run the busted specs with our own binary as the Lua interpreter and print the single
# `N passed, N failed` line. Must run as an unprivileged user (PostgreSQL refuses root);
# run-checks.sh arranges that. Usage: run-busted.sh [spec files or dirs]
set -u
BUILD=${DB_TOOL_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
summary=$(mktemp "${TMPDIR:-/tmp}/dbtool-summary.XXXXXX")
export DB_TOOL_SUMMARY_FILE="$summary"
export DB_TOOL_BIN="$top/$BUILD/db-tool"
export DB_TOOL_BUILD_DIR="$top/$BUILD"
export DB_TOOL_TOP="$top"
unset DB_TOOL_LUA_PATH DATABASE_DIR LOCAL_DIR PGURL DB_URL PG_WORKING_DIR MIGRATION_DIR \
  DATABASE_SOURCE PG_URL_VAR HECTIC_LOG NO_COLOR DB_TOOL_COLOR DB_TOOL_TTY
if [ $# -eq 0 ]; then set -- spec examples/spec; fi
busted --lua="$DB_TOOL_BIN" -o spec/support/summary.lua "$@"
rc=$?
passed=0; failed=0
while read -r p f; do
  passed=$((passed + p)); failed=$((failed + f))
done < "$summary"
rm -f "$summary"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi   # busted itself broke
[ -n "${DB_TOOL_EXTRA_FAILED:-}" ] && failed=$((failed + DB_TOOL_EXTRA_FAILED))
[ -n "${DB_TOOL_EXTRA_PASSED:-}" ] && passed=$((passed + DB_TOOL_EXTRA_PASSED))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
