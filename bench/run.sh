#!/bin/sh
# Run every benchmark: bench/*.lua with our binary (ratios against baselines measured in
# the same invocation), then bench/*.sh. PostgreSQL-based ones need an unprivileged user:
# as root they are re-run as dbtool-test (see spec/support/run-checks.sh).
# Usage: sh bench/run.sh [NAME...] [-- ARGS...]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
BUILD=${DB_TOOL_BUILD:-build}
# the peers the selected benchmarks name on their `-- peers:` line (bench/peers.sh)
peers() {
  for f in bench/*.lua bench/*.sh; do
    if [ -n "$names" ]; then
      b=$(basename "$f"); b=${b%.*}
      case "$names " in *" $b "*) ;; *) continue ;; esac
    fi
    sed -n 's/^-- peers: *//p; s/^# peers: *//p' "$f"
  done | tr ' ' '\n' | sort -u | tr '\n' ' '
}
names=
for a in "$@"; do
  [ "$a" = "--" ] && break
  names="$names $a"
done
if [ -z "${DB_TOOL_BENCH_PEERS_DONE:-}" ]; then
  # shellcheck disable=SC2046
  sh bench/peers.sh debian $(peers)
fi
if [ "$(id -u)" = 0 ]; then
  user=${DB_TOOL_TEST_USER:-dbtool-test}
  id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
  exec runuser -u "$user" -- env -u TMPDIR HOME="$(getent passwd "$user" | cut -d: -f6)" \
    DB_TOOL_BENCH_PEERS_DONE=1 sh "$0" "$@"
fi
export DB_TOOL_TOP="$top" DB_TOOL_BIN="$top/$BUILD/db-tool"
# shellcheck disable=SC2046
sh bench/peers.sh npm $(peers)
# names before `--` pick benchmarks; what follows `--` is passed to each of them
# (sh bench/run.sh sqlrun -- 5 1: a 5 MB dump, one round)
names=
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; break; fi
  names="$names $1"
  shift
done
for f in bench/*.lua; do
  case "$f" in bench/lib.lua|bench/peers.lua) continue ;; esac
  if [ -n "$names" ]; then case "$names " in *" $(basename "$f" .lua) "*) ;; *) continue ;; esac; fi
  echo "== $f"
  "$DB_TOOL_BIN" "$f" "$@"
done
for f in bench/*.sh; do
  case "$f" in bench/run.sh|bench/peers.sh) continue ;; esac
  if [ -n "$names" ]; then case "$names " in *" $(basename "$f" .sh) "*) ;; *) continue ;; esac; fi
  echo "== $f"
  sh "$f" "$@"
done
