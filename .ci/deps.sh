#!/bin/sh
# Install what db-tool needs on Debian 12 (bookworm), idempotently: does nothing when all
# is present. luaposix for Lua 5.4 comes from Debian trixie's lua-posix package, fetched
# with a private sources list built from this machine's own apt configuration.
set -eu
# postgresql-15-pgtap, libxml2-utils (xmllint) and perl (prove): the specs of `database test`;
# zsh, fish and groff-base: the specs of the shell completions and manual pages;
# pgbouncer: the specs of migrations through a transaction-pooling PgBouncer
PKGS="build-essential pkg-config lua5.4 liblua5.4-dev libpq-dev libsodium-dev libsqlite3-dev
sqlite3 postgresql postgresql-15-cron lua-busted lua-check
postgresql-15-pgtap libxml2-utils perl zsh fish groff-base pgbouncer"

missing=
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
has_posix54() { lua5.4 -e 'require "posix.unistd"' >/dev/null 2>&1; }

if [ -z "$missing" ] && command -v lua5.4 >/dev/null && has_posix54; then
  exit 0
fi

# something is missing: installing needs root (or sudo)
SUDO=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "deps: not root and no sudo; install these packages: $PKGS lua-posix (>= 36, Lua 5.4)" >&2
    exit 1
  fi
fi

updated=
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  $SUDO apt-get update -qq
  updated=1
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if ! has_posix54; then
  echo "deps: installing lua-posix for Lua 5.4 from Debian trixie"
  uri=
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "deps: cannot find a Debian archive URI in /etc/apt" >&2
    exit 1
  fi
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  echo "deb $uri trixie main" > "$tmp/sources.list"
  aptopts="-o Dir::Etc::SourceList=$tmp/sources.list -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists=$tmp/lists -o Dir::Cache=$tmp/cache -o APT::Get::List-Cleanup=0
    -o APT::Sandbox::User=root"
  # shellcheck disable=SC2086
  $SUDO apt-get $aptopts update -qq
  # shellcheck disable=SC2086
  (cd "$tmp" && $SUDO apt-get $aptopts download lua-posix)
  [ -n "$updated" ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$tmp"/lua-posix_*.deb >/dev/null
  rm -rf "$tmp"
  has_posix54 || { echo "deps: luaposix for Lua 5.4 still missing" >&2; exit 1; }
fi
echo "deps: ok"
