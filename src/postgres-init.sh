#!/bin/sh
# postgres-init — start or reuse the local PostgreSQL cluster (db-tool).
#
# Meant to be sourced, `. postgres-init`, so that PGURL, POSTGRESQL_HOST/PORT/USER/DATABASE
# and $PG_URL_VAR are exported into the calling shell (POSIX sh, dash, bash, zsh, ksh).
# The work is done by the db-tool binary, which prints only `export NAME='value'` lines on
# stdout; this shim evaluates them. It defines nothing else in the caller's shell.
# When sourced, the positional parameters are the caller's, so only -h/--help is looked at.
# Executed as a program it runs the binary, which prints the same lines
# (`eval "$(postgres-init)"` works) and takes the same options.
# Sourced or executed? `(return 0)` cannot tell in dash (top-level return is allowed there),
# so: zsh and bash say it themselves; other shells are executing us when $0 is our name.
__dbt_sourced=1
if [ -n "${ZSH_EVAL_CONTEXT-}" ]; then
  case $ZSH_EVAL_CONTEXT in *:file*) ;; *) __dbt_sourced=0 ;; esac
elif [ -n "${BASH_VERSION-}" ]; then
  [ "${BASH_SOURCE-}" = "$0" ] && __dbt_sourced=0
else
  case ${0##*/} in postgres-init|postgres-init.sh) __dbt_sourced=0 ;; esac
fi
if [ "$__dbt_sourced" = 0 ]; then
  unset __dbt_sourced
  exec "@DB_TOOL@" postgres-init "$@"
fi
unset __dbt_sourced
case "${1-}" in
  -h|--help) "@DB_TOOL@" postgres-init --help; return $? ;;
esac
# (inside `if`, a failure does not end a caller running under `set -e` before we clean up)
if __dbt_env=$("@DB_TOOL@" postgres-init --export-sh); then
  eval "$__dbt_env"
  unset __dbt_env
  return 0
else
  __dbt_rc=$?
fi
unset __dbt_env
eval "unset __dbt_rc; return $__dbt_rc"
