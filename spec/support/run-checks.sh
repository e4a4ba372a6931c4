#!/bin/sh
# `make check`: luacheck and every busted spec, as an unprivileged user. As root, creates
# the user `dbtool-test` if needed and re-runs itself as that user (in place when the tree
# is readable by it, else from a copy in /tmp). Always ends with `N passed, N failed`.
set -u
BUILD=${DB_TOOL_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
user=${DB_TOOL_TEST_USER:-dbtool-test}

if [ "$(id -u)" = 0 ]; then
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/sh "$user" || { echo "cannot create user $user"; echo "0 passed, 1 failed"; exit 1; }
  fi
  dir=$top
  copy=
  if ! runuser -u "$user" -- sh -c "test -r '$top/Makefile' && test -x '$top/$BUILD/db-tool' && cd '$top'" 2>/dev/null; then
    dir=$(mktemp -d /tmp/dbtool-check.XXXXXX)
    copy=$dir
    # the copy goes when we do (run-busted.sh cleans up its own run on INT/TERM)
    trap 'rm -rf "$dir"' EXIT
    trap 'rm -rf "$dir"; exit 130' INT HUP
    trap 'rm -rf "$dir"; exit 143' TERM
    tar -C "$top" --exclude=./.git -cf - . | tar -C "$dir" -xf -
    chown -R "$user" "$dir"
    chmod 755 "$dir"
  fi
  # a small tmpfs owned by the test user for the disk-full specs (spec/cli/fault_spec.lua):
  # only root can mount; without it those specs are pending
  full=
  if [ -z "${DB_TOOL_FULL_DISK:-}" ]; then
    full=$(mktemp -d /tmp/dbtool-full.XXXXXX)
    if mount -t tmpfs -o "size=96m,mode=0700,uid=$(id -u "$user"),gid=$(id -g "$user")" tmpfs "$full" 2>/dev/null; then
      DB_TOOL_FULL_DISK=$full
    else
      rmdir "$full"; full=
    fi
  fi
  release_full() { if [ -n "$full" ]; then umount -l "$full" 2>/dev/null; rmdir "$full" 2>/dev/null; fi; }
  trap 'release_full; [ -z "$copy" ] || rm -rf "$copy"' EXIT
  trap 'release_full; [ -z "$copy" ] || rm -rf "$copy"; exit 130' INT HUP
  trap 'release_full; [ -z "$copy" ] || rm -rf "$copy"; exit 143' TERM
  # root-only checks first (the refusal to start a server as root), counted in the summary
  root_passed=0; root_failed=0
  if [ -z "${SPEC:-}" ]; then
    echo "== as root: spec/cli/root_spec.lua"
    last=$(sh spec/support/run-busted.sh spec/cli/root_spec.lua | tee /dev/stderr | tail -n 1)
    case "$last" in
      *" passed, "*" failed") root_passed=${last%% *}; root_failed=${last#*, }; root_failed=${root_failed%% *} ;;
      *) root_failed=1 ;;
    esac
  fi
  runuser -u "$user" -- env -u TMPDIR HOME="$(getent passwd "$user" | cut -d: -f6)" \
    DB_TOOL_BUILD="$BUILD" DB_TOOL_ROOT_PASSED="$root_passed" DB_TOOL_ROOT_FAILED="$root_failed" \
    ${DB_TOOL_FULL_DISK:+DB_TOOL_FULL_DISK="$DB_TOOL_FULL_DISK"} \
    ${SPEC:+SPEC="$SPEC"} sh "$dir/spec/support/run-checks.sh" "$@"
  exit $?
fi

extra=0
if [ -z "${SPEC:-}" ]; then
  echo "== luacheck"
  # shellcheck disable=SC2046
  if ! luacheck -q --no-color $(ls -d lua spec examples bench 2>/dev/null); then extra=$((extra + 1)); fi
fi
echo "== busted"
extra=$((extra + ${DB_TOOL_ROOT_FAILED:-0}))
DB_TOOL_EXTRA_PASSED=${DB_TOOL_ROOT_PASSED:-0} DB_TOOL_EXTRA_FAILED=$extra sh spec/support/run-busted.sh ${SPEC:-}
