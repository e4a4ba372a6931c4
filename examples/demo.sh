#!/bin/sh
# `make demo`: start a local PostgreSQL cluster, deploy the example project into it, run its
# tests and its project command, apply its migrations to a second database with the
# project's deploy script, and print how to connect. The cluster keeps running.
#
# PostgreSQL refuses to run as root: as root, the demo runs as the unprivileged user
# dbtool-test (created if needed; DB_TOOL_DEMO_USER overrides), from a copy of the tree
# when that user cannot read this one. As any other user it runs directly.
#
# Where the cluster goes: PG_WORKING_DIR if set, else examples/focus/postgresql when that
# is writable, else /tmp/db-tool-demo-<user>.
set -eu
BUILD=${DB_TOOL_BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
  user=${DB_TOOL_DEMO_USER:-dbtool-test}
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/sh "$user"
  fi
  dir=$top
  if ! runuser -u "$user" -- sh -c "test -r '$top/examples/db/src/entrypoint.sql' && test -x '$top/$BUILD/db-tool'" \
      2>/dev/null; then
    dir=/tmp/db-tool-demo-tree
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -C "$top" -cf - examples "$BUILD/db-tool" "$BUILD/database" "$BUILD/postgres-cleanup" \
      "$BUILD/migrator" "$BUILD/rickdb" | tar -C "$dir" -xf -
    chown -R "$user" "$dir"
  fi
  home=$(getent passwd "$user" | cut -d: -f6)
  exec runuser -u "$user" -- env -u TMPDIR HOME="$home" DB_TOOL_BUILD="$BUILD" \
    ${PG_WORKING_DIR:+PG_WORKING_DIR="$PG_WORKING_DIR"} DB_TOOL_DEMO_AS_ROOT=1 \
    sh "$dir/examples/demo.sh"
fi

bin=$top/$BUILD
export LOCAL_DIR="$top/examples"
unset DATABASE_DIR MIGRATION_DIR DATABASE_SOURCE PATCH_SQL PROFILE_DIR PGURL DB_URL DB_TOOL_LUA_PATH
export ENVIRONMENT=development        # secrets from examples/.env.development
export PATH="$bin:$PATH"              # db-tool for the scripts' #!/usr/bin/env db-tool
if [ -z "${PG_WORKING_DIR:-}" ]; then
  if mkdir -p "$LOCAL_DIR/focus" 2>/dev/null && [ -w "$LOCAL_DIR/focus" ]; then
    PG_WORKING_DIR="$LOCAL_DIR/focus/postgresql"
  else
    PG_WORKING_DIR="/tmp/db-tool-demo-$(id -un)"
  fi
fi
export PG_WORKING_DIR
PG_PORT=${PG_PORT:-5432}
export PG_PORT
if [ -z "${PG_SHARED_PRELOAD_LIBRARIES+x}" ]; then
  # pg_cron (the seed's default) when this server has it; none otherwise
  libdir=$("$bin/db-tool" -e 'io.write(require("dbtool.cluster").pkglibdir(require("dbtool.cluster").bindir()) or "")' \
    2>/dev/null || true)
  if [ -n "$libdir" ] && [ ! -e "$libdir/pg_cron.so" ]; then
    export PG_SHARED_PRELOAD_LIBRARIES=""
  fi
fi

step() { printf '\n== %s\n' "$*"; }

step "database deploy   (fresh cluster in $PG_WORKING_DIR, bundle, secrets, db/src, test-data.sql)"
"$bin/database" deploy
url="postgresql://$(id -un)@/$("$bin/db-tool" -e 'io.write(require("dbtool.env").pg_database())')?host=$PG_WORKING_DIR/sock&port=$PG_PORT"

step "database test     (db/test/test.sql inside BEGIN … ROLLBACK)"
"$bin/database" -u "$url" test

step "database stats    (a subcommand added by examples/db/db-tool.lua)"
"$bin/database" -u "$url" stats

step "scripts/deploy.lua  (migrations + secrets into a second database, with the Lua API)"
migrated="postgresql://$(id -un)@/shop_migrated?host=$PG_WORKING_DIR/sock&port=$PG_PORT"
"$LOCAL_DIR/scripts/deploy.lua" --create "$migrated"

step "done: the example database is running"
cat <<EOF
Connect with:
  psql '$url'
or export it for db-tool and psql:
  export PGURL='$url'
The migrated copy:     psql '$migrated'
Try:                   LOCAL_DIR=$LOCAL_DIR PG_WORKING_DIR=$PG_WORKING_DIR $bin/database --help
Specs of its SQL:      cd $LOCAL_DIR && busted --lua=$bin/db-tool spec
Stop the cluster:      PG_WORKING_DIR=$PG_WORKING_DIR $bin/postgres-cleanup
EOF
if [ -n "${DB_TOOL_DEMO_AS_ROOT:-}" ]; then
  echo "(the cluster runs as $(id -un); as root, psql connects to it with the URL above)"
fi
