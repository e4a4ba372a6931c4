#!/bin/sh
# Install the peers that the selected benchmarks compare with, when missing (`make bench`
# only: `make check` never installs them). A benchmark names its peers on a line of its
# own header: `-- peers: dbmate sql-migrate sqitch pg_prove pg_virtualenv`.
#   sh bench/peers.sh debian PEER...   Debian packages (as root, or with sudo)
#   sh bench/peers.sh npm PEER...      npm packages, into the bench user's cache directory
#                                      ${XDG_CACHE_HOME:-~/.cache}/db-tool-bench/npm
# A peer that cannot be installed is reported; its rows say "not measured".
set -u
phase=$1
shift
missing_pkgs() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$p"
  done
}
case "$phase" in
  debian)
    pkgs=
    major=$(pg_config --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
    for peer in "$@"; do
      case "$peer" in
        sql-migrate) pkgs="$pkgs sql-migrate" ;;
        sqitch) pkgs="$pkgs sqitch libdbd-pg-perl" ;;
        pg_prove) pkgs="$pkgs libtap-parser-sourcehandler-pgtap-perl${major:+ postgresql-$major-pgtap}" ;;
        pg_virtualenv) pkgs="$pkgs postgresql-common" ;;
      esac
    done
    # shellcheck disable=SC2086
    missing=$(missing_pkgs $pkgs)
    [ -z "$missing" ] && exit 0
    SUDO=
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "bench: not root and no sudo; the peers need:$missing" >&2
        exit 0
      fi
    fi
    echo "bench: installing$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
      $missing >/dev/null || echo "bench: could not install$missing" >&2
    ;;
  npm)
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/db-tool-bench/npm
    for peer in "$@"; do
      case "$peer" in
        dbmate)
          # the package ships dbmate's Go binary (@dbmate/<os>-<arch>); the benchmarks run
          # that binary directly, not node's wrapper
          set -- "$cache"/node_modules/@dbmate/*/bin/dbmate
          [ -x "$1" ] && continue
          command -v npm >/dev/null 2>&1 || { echo "bench: npm is missing: dbmate not measured" >&2; continue; }
          echo "bench: installing dbmate into $cache"
          mkdir -p "$cache"
          npm install --prefix "$cache" --no-audit --no-fund --loglevel=error --no-update-notifier dbmate@2.36.0 >/dev/null ||
            echo "bench: could not install dbmate" >&2
          ;;
      esac
    done
    ;;
esac
exit 0
