# postgres-init — start or reuse the local PostgreSQL cluster (db-tool).
#
# Meant to be sourced, `. postgres-init`, so that PGURL, POSTGRESQL_HOST/PORT/USER/DATABASE
# and $PG_URL_VAR are exported into the calling shell; running it as a program works too.
# The work is done by the db-tool binary; this POSIX sh shim only evals the assignments it
# prints. It defines nothing else in the caller's shell (its two variables are unset).
__dbt_sourced=0
(return 0 2>/dev/null) && __dbt_sourced=1
case "${1-}" in
  -h|--help|help)
    "@DB_TOOL@" postgres-init "$@"
    __dbt_rc=$?
    ;;
  *)
    __dbt_env=$("@DB_TOOL@" postgres-init --export-sh "$@")
    __dbt_rc=$?
    if [ "$__dbt_rc" -eq 0 ]; then
      eval "$__dbt_env"
    fi
    unset __dbt_env
    ;;
esac
if [ "$__dbt_sourced" -eq 1 ]; then
  unset __dbt_sourced
  eval "unset __dbt_rc; return $__dbt_rc"
fi
exit "$__dbt_rc"
