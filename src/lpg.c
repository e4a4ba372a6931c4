/*
 * lpg.c — module dbtool.core.pg: a libpq binding.
 *
 *   pg.connect(conninfo_or_url | {keyword = value, ...}) → conn   (raises on failure)
 *   pg.ping(conninfo | table) → "ok" | "reject" | "no_response" | "no_attempt"
 *   pg.parse_conninfo(s) → {keyword = value} | nil, msg
 *   pg.libversion() → integer
 *
 *   conn:exec(sql)              simple query (may hold several statements) → last result
 *   conn:exec(sql, p1, ...)     one statement with parameters $1.. (nil → NULL) → result
 *   conn:send_query(sql)        send without waiting; then conn:get_result() until nil
 *   conn:describe(sql)          {fields =, types =, fmods =} of sql, prepared, not run
 *   conn:busy()                 → true while a sent query's result has not arrived
 *   conn:get_result()           → result | nil; errors come back as a result whose
 *                                 status is "FATAL_ERROR" and field `error` (not raised)
 *   conn:put_copy_data(s), conn:put_copy_end([errmsg]), conn:get_copy_data() → s | nil
 *   conn:escape_literal(s), conn:escape_identifier(s)
 *   conn:on_notice(fn | nil)    fn(notice) with the same fields as errors; returns the
 *                               previous handler
 *   conn:transaction_status(), conn:status(), conn:server_version(), conn:backend_pid(),
 *   conn:parameter_status(name),
 *   conn:info() → {db=, user=, host=, port=}, conn:cancel(), conn:close()
 *   conn:conninfo() → {keyword = value}: every option the connection uses (PQconninfo,
 *                     the password included: for \connect's reuse, never to be printed)
 *   conn:get_result(true)       the same, every value as the server's text (no conversion)
 *
 * A result is a table: rows at 1..n (each keyed by column name and by position), plus
 * n, fields, types, status ("TUPLES_OK", "COMMAND_OK", "COPY_IN", ...), command (the
 * command tag), affected (rows affected, or nil) and, for COPY_IN/COPY_OUT, binary.
 * NULL → nil; int2/int4/int8/oid → integers; float4/float8 → numbers; bool → booleans;
 * everything else → strings (get_result(true): every value a string).
 *
 * Database errors are raised as structured errors (metatable dbtool.error) carrying every
 * PG_DIAG_* field: msg, severity, sqlstate, detail, hint, position, internal_position,
 * internal_query, context, schema, table, column, datatype, constraint, source_file,
 * source_line, source_function; exit = 1.
 *
 * The first SIGINT cancels the query in flight (PQcancel is signal-safe), then the host
 * raises the "interrupted" error.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dbtool.h"

/*
 * libpq is loaded with dlopen on first use of this module rather than linked: its
 * dependency tree (TLS, GSSAPI, LDAP, ...) costs ~7 ms at every start of the binary,
 * which `database --help` and most commands that never connect should not pay.
 * Calls go through this table; `PQexec(...)` expands to `pg_lib.PQexec(...)`.
 */
#define PG_LIB_FUNCS(X) \
  X(PQbackendPID) \
  X(PQbinaryTuples) \
  X(PQcancel) \
  X(PQclear) \
  X(PQclientEncoding) \
  X(PQconsumeInput) \
  X(PQcmdStatus) \
  X(PQcmdTuples) \
  X(PQconnectdb) \
  X(PQconnectdbParams) \
  X(PQconninfo) \
  X(PQconninfoFree) \
  X(PQconninfoParse) \
  X(PQdb) \
  X(PQerrorMessage) \
  X(PQdescribePrepared) \
  X(PQescapeIdentifier) \
  X(PQescapeLiteral) \
  X(PQexec) \
  X(PQexecParams) \
  X(PQfinish) \
  X(PQfmod) \
  X(PQfname) \
  X(PQfreeCancel) \
  X(PQfreemem) \
  X(PQftype) \
  X(PQgetCancel) \
  X(PQgetCopyData) \
  X(PQgetResult) \
  X(PQgetisnull) \
  X(PQgetlength) \
  X(PQgetvalue) \
  X(PQhost) \
  X(PQisBusy) \
  X(PQlibVersion) \
  X(PQnfields) \
  X(PQntuples) \
  X(PQparameterStatus) \
  X(PQping) \
  X(PQpingParams) \
  X(PQport) \
  X(PQprepare) \
  X(PQputCopyData) \
  X(PQputCopyEnd) \
  X(PQresStatus) \
  X(PQresultErrorField) \
  X(PQresultErrorMessage) \
  X(PQresultStatus) \
  X(PQsendQuery) \
  X(PQserverVersion) \
  X(PQsetNoticeReceiver) \
  X(PQstatus) \
  X(PQtransactionStatus) \
  X(PQuser) \
  X(pg_encoding_to_char)

#define PG_LIB_DECL(name) __typeof__(name) *name;
static struct {
  void *handle;
  PG_LIB_FUNCS(PG_LIB_DECL)
} pg_lib;

/* Load libpq and resolve every function, or raise (exit 127: missing dependency). */
static void pg_lib_load(lua_State *L) {
  const char *sonames[] = {"libpq.so.5", "libpq.so", NULL};
  int i;
  void *h = NULL;
  if (pg_lib.handle != NULL)
    return;
  for (i = 0; sonames[i] != NULL && h == NULL; i++)
    h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    dbt_error(L, 127, "cannot load libpq (PostgreSQL client library): %s", dlerror());
#define PG_LIB_SYM(name)                                                       \
  *(void **)(&pg_lib.name) = dlsym(h, #name);                                  \
  if (pg_lib.name == NULL)                                                     \
    dbt_error(L, 127, "libpq lacks %s: the installed libpq is too old", #name);
  PG_LIB_FUNCS(PG_LIB_SYM)
#undef PG_LIB_SYM
  pg_lib.handle = h;
}

#define PQbackendPID pg_lib.PQbackendPID
#define PQbinaryTuples pg_lib.PQbinaryTuples
#define PQcancel pg_lib.PQcancel
#define PQclear pg_lib.PQclear
#define PQclientEncoding pg_lib.PQclientEncoding
#define PQconsumeInput pg_lib.PQconsumeInput
#define PQcmdStatus pg_lib.PQcmdStatus
#define PQcmdTuples pg_lib.PQcmdTuples
#define PQconnectdb pg_lib.PQconnectdb
#define PQconnectdbParams pg_lib.PQconnectdbParams
#define PQconninfo pg_lib.PQconninfo
#define PQconninfoFree pg_lib.PQconninfoFree
#define PQconninfoParse pg_lib.PQconninfoParse
#define PQdb pg_lib.PQdb
#define PQerrorMessage pg_lib.PQerrorMessage
#define PQdescribePrepared pg_lib.PQdescribePrepared
#define PQescapeIdentifier pg_lib.PQescapeIdentifier
#define PQescapeLiteral pg_lib.PQescapeLiteral
#define PQexec pg_lib.PQexec
#define PQexecParams pg_lib.PQexecParams
#define PQfinish pg_lib.PQfinish
#define PQfmod pg_lib.PQfmod
#define PQfname pg_lib.PQfname
#define PQfreeCancel pg_lib.PQfreeCancel
#define PQfreemem pg_lib.PQfreemem
#define PQftype pg_lib.PQftype
#define PQgetCancel pg_lib.PQgetCancel
#define PQgetCopyData pg_lib.PQgetCopyData
#define PQgetResult pg_lib.PQgetResult
#define PQgetisnull pg_lib.PQgetisnull
#define PQgetlength pg_lib.PQgetlength
#define PQgetvalue pg_lib.PQgetvalue
#define PQhost pg_lib.PQhost
#define PQisBusy pg_lib.PQisBusy
#define PQlibVersion pg_lib.PQlibVersion
#define PQnfields pg_lib.PQnfields
#define PQntuples pg_lib.PQntuples
#define PQparameterStatus pg_lib.PQparameterStatus
#define PQping pg_lib.PQping
#define PQpingParams pg_lib.PQpingParams
#define PQport pg_lib.PQport
#define PQprepare pg_lib.PQprepare
#define PQputCopyData pg_lib.PQputCopyData
#define PQputCopyEnd pg_lib.PQputCopyEnd
#define PQresStatus pg_lib.PQresStatus
#define PQresultErrorField pg_lib.PQresultErrorField
#define PQresultErrorMessage pg_lib.PQresultErrorMessage
#define PQresultStatus pg_lib.PQresultStatus
#define PQsendQuery pg_lib.PQsendQuery
#define PQserverVersion pg_lib.PQserverVersion
#define PQsetNoticeReceiver pg_lib.PQsetNoticeReceiver
#define PQstatus pg_lib.PQstatus
#define PQtransactionStatus pg_lib.PQtransactionStatus
#define PQuser pg_lib.PQuser
#define pg_encoding_to_char pg_lib.pg_encoding_to_char


#define PG_CONN_MT "dbtool.pg.conn"

/* type OIDs from pg_type.h (stable across versions) */
#define PG_BOOLOID 16
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_OIDOID 26
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701

typedef struct pg_Conn {
  PGconn *conn;
  PGcancel *cancel;
  PGresult *pending;    /* result being converted; freed on the next call or close */
  char *scratch;        /* libpq-allocated buffer being pushed; same */
  PQconninfoOption *cinfo; /* PQconninfo() array being pushed; same */
  lua_State *L;         /* state of the call in progress (for the notice receiver) */
  int notice_error;     /* a notice handler raised: re-raise after the libpq call */
} pg_Conn;

/* the connection whose query is in flight, for the signal handler */
static PGcancel *volatile pg_active = NULL;

static void pg_on_interrupt(void) {
  char errbuf[256];
  PGcancel *c = pg_active;
  if (c != NULL)
    PQcancel(c, errbuf, (int)sizeof errbuf);
}

/* ---------------------------------------------------------------- helpers */

static pg_Conn *pg_check(lua_State *L, int idx) {
  pg_Conn *c = (pg_Conn *)luaL_checkudata(L, idx, PG_CONN_MT);
  if (c->conn == NULL)
    luaL_error(L, "attempt to use a closed connection");
  c->L = L;
  return c;
}

static void pg_release(pg_Conn *c) {
  if (c->pending != NULL) {
    PQclear(c->pending);
    c->pending = NULL;
  }
  if (c->scratch != NULL) {
    PQfreemem(c->scratch);
    c->scratch = NULL;
  }
  if (c->cinfo != NULL) {
    PQconninfoFree(c->cinfo);
    c->cinfo = NULL;
  }
}

/* libpq messages end with a newline; push without it */
static void pg_push_trimmed(lua_State *L, const char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    n--;
  lua_pushlstring(L, s, n);
}

static const struct {
  int code;
  const char *name;
} pg_diag_fields[] = {
  {PG_DIAG_SEVERITY_NONLOCALIZED, "severity"},
  {PG_DIAG_SQLSTATE, "sqlstate"},
  {PG_DIAG_MESSAGE_DETAIL, "detail"},
  {PG_DIAG_MESSAGE_HINT, "hint"},
  {PG_DIAG_INTERNAL_QUERY, "internal_query"},
  {PG_DIAG_CONTEXT, "context"},
  {PG_DIAG_SCHEMA_NAME, "schema"},
  {PG_DIAG_TABLE_NAME, "table"},
  {PG_DIAG_COLUMN_NAME, "column"},
  {PG_DIAG_DATATYPE_NAME, "datatype"},
  {PG_DIAG_CONSTRAINT_NAME, "constraint"},
  {PG_DIAG_SOURCE_FILE, "source_file"},
  {PG_DIAG_SOURCE_FUNCTION, "source_function"},
  {0, NULL}
};

/* Set the diagnostic fields of `res` into the table on top of the stack. */
static void pg_set_diag(lua_State *L, const PGresult *res) {
  const char *v;
  int i;
  for (i = 0; pg_diag_fields[i].name != NULL; i++) {
    v = PQresultErrorField(res, pg_diag_fields[i].code);
    if (v != NULL) {
      lua_pushstring(L, v);
      lua_setfield(L, -2, pg_diag_fields[i].name);
    }
  }
  v = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
  if (v != NULL) {
    lua_pushinteger(L, strtol(v, NULL, 10));
    lua_setfield(L, -2, "position");
  }
  v = PQresultErrorField(res, PG_DIAG_INTERNAL_POSITION);
  if (v != NULL) {
    lua_pushinteger(L, strtol(v, NULL, 10));
    lua_setfield(L, -2, "internal_position");
  }
  v = PQresultErrorField(res, PG_DIAG_SOURCE_LINE);
  if (v != NULL) {
    lua_pushinteger(L, strtol(v, NULL, 10));
    lua_setfield(L, -2, "source_line");
  }
}

/* Push a structured error for an error result (res may be NULL: connection-level). */
static void pg_push_error(lua_State *L, pg_Conn *c, const PGresult *res) {
  const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (primary != NULL) {
    dbt_push_error(L, DBT_EXIT_GENERIC, primary);
    pg_set_diag(L, res);
  } else {
    const char *m = res != NULL ? PQresultErrorMessage(res) : "";
    if (m == NULL || *m == '\0')
      m = c != NULL && c->conn != NULL ? PQerrorMessage(c->conn) : "connection failed";
    pg_push_trimmed(L, m);
    dbt_push_error(L, DBT_EXIT_GENERIC, lua_tostring(L, -1));
    lua_remove(L, -2);
    if (c == NULL || c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
      lua_pushliteral(L, "08006"); /* connection_failure */
      lua_setfield(L, -2, "sqlstate");
    }
  }
}

/* After a libpq call returned: raise what a notice handler or a signal left pending. */
static void pg_after_call(lua_State *L, pg_Conn *c) {
  pg_active = NULL;
  if (c->notice_error) {
    c->notice_error = 0;
    lua_getiuservalue(L, 1, 2);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 2);
    lua_error(L);
  }
  dbt_check_interrupt(L);
}

static void pg_before_call(pg_Conn *c) {
  pg_release(c);
  pg_active = c->cancel;
}

/* ---------------------------------------------------------------- results */

static void pg_push_value(lua_State *L, const PGresult *res, int row, int col, Oid type,
                          int text) {
  const char *v = PQgetvalue(res, row, col);
  switch (text ? 0 : type) {
    case PG_INT2OID:
    case PG_INT4OID:
    case PG_INT8OID:
    case PG_OIDOID:
      lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10));
      break;
    case PG_FLOAT4OID:
    case PG_FLOAT8OID:
      lua_pushnumber(L, (lua_Number)strtod(v, NULL));
      break;
    case PG_BOOLOID:
      lua_pushboolean(L, v[0] == 't');
      break;
    default:
      lua_pushlstring(L, v, (size_t)PQgetlength(res, row, col));
  }
}

static const char *pg_status_name(ExecStatusType st) {
  const char *s = PQresStatus(st);
  return strncmp(s, "PGRES_", 6) == 0 ? s + 6 : s;
}

/* Convert c->pending into a Lua table; frees it. text: every value as the server's text. */
static void pg_push_result(lua_State *L, pg_Conn *c, int text) {
  PGresult *res = c->pending;
  int nrows = PQntuples(res), ncols = PQnfields(res), r, k;
  ExecStatusType st = PQresultStatus(res);
  const char *tuples;
  lua_createtable(L, nrows, 6);
  lua_pushstring(L, pg_status_name(st));
  lua_setfield(L, -2, "status");
  lua_pushstring(L, PQcmdStatus(res));
  lua_setfield(L, -2, "command");
  tuples = PQcmdTuples(res);
  if (tuples != NULL && *tuples != '\0') {
    lua_pushinteger(L, (lua_Integer)strtoll(tuples, NULL, 10));
    lua_setfield(L, -2, "affected");
  }
  lua_pushinteger(L, nrows);
  lua_setfield(L, -2, "n");
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
    lua_pushboolean(L, PQbinaryTuples(res));
    lua_setfield(L, -2, "binary");
  }
  if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
    pg_push_error(L, c, res);
    lua_setfield(L, -2, "error");
  }
  lua_createtable(L, ncols, 0);
  for (k = 0; k < ncols; k++) {
    lua_pushstring(L, PQfname(res, k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "fields");
  lua_createtable(L, ncols, 0);
  for (k = 0; k < ncols; k++) {
    lua_pushinteger(L, (lua_Integer)PQftype(res, k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "types");
  luaL_checkstack(L, 4, "result conversion");
  for (r = 0; r < nrows; r++) {
    lua_createtable(L, ncols, ncols);
    for (k = 0; k < ncols; k++) {
      if (PQgetisnull(res, r, k))
        continue;
      pg_push_value(L, res, r, k, PQftype(res, k), text);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, k + 1);
      lua_setfield(L, -2, PQfname(res, k));
    }
    lua_rawseti(L, -2, r + 1);
  }
  PQclear(res);
  c->pending = NULL;
}

/* Raise the error of c->pending (after freeing it). */
static int pg_raise_pending(lua_State *L, pg_Conn *c) {
  pg_push_error(L, c, c->pending);
  PQclear(c->pending);
  c->pending = NULL;
  return lua_error(L);
}

/* ---------------------------------------------------------------- notices */

static void pg_notice_receiver(void *arg, const PGresult *res) {
  pg_Conn *c = (pg_Conn *)arg;
  lua_State *L = c->L;
  int top;
  if (L == NULL || c->notice_error)
    return;
  top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return;
  /* the connection userdata is argument 1 of every method that can produce notices */
  if (luaL_testudata(L, 1, PG_CONN_MT) != c)
    return;
  if (lua_getiuservalue(L, 1, 1) != LUA_TFUNCTION) {
    lua_settop(L, top);
    return;
  }
  lua_createtable(L, 0, 8);
  lua_pushstring(L, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL
                        ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                        : PQresultErrorMessage(res));
  lua_setfield(L, -2, "msg");
  pg_set_diag(L, res);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* keep the error; the method re-raises it once libpq has returned */
    lua_setiuservalue(L, 1, 2);
    c->notice_error = 1;
  }
  lua_settop(L, top);
}

/* ---------------------------------------------------------------- connect */

/* Copy the table at idx into a new table of strings (numbers converted), push it, then
 * push the keyword/value arrays (a userdata) built from it. The strings stay anchored by
 * the copy, which the caller keeps on the stack. */
static void pg_params(lua_State *L, int idx, const char ***kw, const char ***val) {
  int n = 0, i = 0, copy;
  const char **arr;
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "connection parameter names must be strings");
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "connection parameter '%s' must be a string or a number", lua_tostring(L, -2));
    lua_pushvalue(L, -2);
    lua_pushstring(L, lua_tostring(L, -2)); /* numbers become strings in the copy */
    lua_rawset(L, copy);
    lua_pop(L, 1);
    n++;
  }
  arr = (const char **)lua_newuserdatauv(L, (size_t)(2 * n + 2) * sizeof(char *), 0);
  lua_pushnil(L);
  while (lua_next(L, copy) != 0) {
    arr[i] = lua_tostring(L, -2);
    arr[n + 1 + i] = lua_tostring(L, -1);
    lua_pop(L, 1);
    i++;
  }
  arr[n] = NULL;
  arr[2 * n + 1] = NULL;
  *kw = arr;
  *val = arr + n + 1;
}

static int pg_connect(lua_State *L) {
  pg_Conn *c;
  const char **kw = NULL, **val = NULL;
  lua_settop(L, 1);
  if (lua_istable(L, 1))
    pg_params(L, 1, &kw, &val); /* 2: copy, 3: arrays */
  else
    luaL_checkstring(L, 1);
  c = (pg_Conn *)lua_newuserdatauv(L, sizeof *c, 2);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, PG_CONN_MT);
  c->conn = kw != NULL ? PQconnectdbParams(kw, val, 0) : PQconnectdb(lua_tostring(L, 1));
  if (c->conn == NULL)
    return luaL_error(L, "not enough memory for a connection");
  if (PQstatus(c->conn) != CONNECTION_OK) {
    pg_push_error(L, c, NULL);
    lua_pushliteral(L, "connection");
    lua_setfield(L, -2, "kind");
    PQfinish(c->conn);
    c->conn = NULL;
    return lua_error(L);
  }
  c->cancel = PQgetCancel(c->conn);
  PQsetNoticeReceiver(c->conn, pg_notice_receiver, c);
  dbt_check_interrupt(L);
  return 1;
}

static int pg_ping(lua_State *L) {
  PGPing r;
  lua_settop(L, 1);
  if (lua_istable(L, 1)) {
    const char **kw, **val;
    pg_params(L, 1, &kw, &val);
    r = PQpingParams(kw, val, 0);
  } else {
    r = PQping(luaL_checkstring(L, 1));
  }
  switch (r) {
    case PQPING_OK: lua_pushliteral(L, "ok"); break;
    case PQPING_REJECT: lua_pushliteral(L, "reject"); break;
    case PQPING_NO_RESPONSE: lua_pushliteral(L, "no_response"); break;
    default: lua_pushliteral(L, "no_attempt"); break;
  }
  return 1;
}

static int pg_parse_conninfo(lua_State *L) {
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(luaL_checkstring(L, 1), &err), *o;
  if (opts == NULL) {
    luaL_pushfail(L);
    if (err != NULL) {
      pg_push_trimmed(L, err);
      PQfreemem(err);
    } else {
      lua_pushliteral(L, "not enough memory");
    }
    return 2;
  }
  lua_newtable(L); /* may raise on OOM: opts would leak; acceptable only at OOM */
  for (o = opts; o->keyword != NULL; o++)
    if (o->val != NULL) {
      lua_pushstring(L, o->val);
      lua_setfield(L, -2, o->keyword);
    }
  PQconninfoFree(opts);
  return 1;
}

static int pg_libversion(lua_State *L) {
  lua_pushinteger(L, PQlibVersion());
  return 1;
}

/* ---------------------------------------------------------------- exec */

static int pg_m_exec(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  int nparams = lua_gettop(L) - 2, i;
  ExecStatusType st;
  if (nparams > 0) {
    const char **values = (const char **)lua_newuserdatauv(L, (size_t)nparams * sizeof(char *), 0);
    for (i = 0; i < nparams; i++) {
      int idx = 3 + i;
      switch (lua_type(L, idx)) {
        case LUA_TNIL:
          values[i] = NULL;
          break;
        case LUA_TBOOLEAN:
          values[i] = lua_toboolean(L, idx) ? "t" : "f";
          break;
        case LUA_TNUMBER:
          if (lua_isinteger(L, idx))
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
          else {
            char buf[64];
            snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, idx));
            lua_pushstring(L, buf);
          }
          lua_replace(L, idx);
          values[i] = lua_tostring(L, idx);
          break;
        case LUA_TSTRING: {
          size_t len;
          values[i] = lua_tolstring(L, idx, &len);
          if (strlen(values[i]) != len)
            return luaL_argerror(L, idx, "string parameters cannot contain NUL bytes");
          break;
        }
        default:
          return luaL_argerror(L, idx, lua_pushfstring(L, "cannot send a %s as a parameter",
                                                       luaL_typename(L, idx)));
      }
    }
    pg_before_call(c);
    c->pending = PQexecParams(c->conn, sql, nparams, NULL, values, NULL, NULL, 0);
  } else {
    pg_before_call(c);
    c->pending = PQexec(c->conn, sql);
  }
  pg_after_call(L, c);
  if (c->pending == NULL) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  st = PQresultStatus(c->pending);
  if (st == PGRES_COPY_IN) {
    PQputCopyEnd(c->conn, "COPY FROM STDIN is not supported by exec(); use send_query()");
  } else if (st == PGRES_COPY_OUT) {
    char *buf;
    while (PQgetCopyData(c->conn, &buf, 0) > 0)
      PQfreemem(buf);
  }
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
    PGresult *r;
    PQclear(c->pending);
    c->pending = NULL;
    while ((r = PQgetResult(c->conn)) != NULL) {
      if (c->pending != NULL)
        PQclear(c->pending);
      c->pending = r;
    }
    if (c->pending == NULL)
      return luaL_error(L, "COPY ended without a result");
    st = PQresultStatus(c->pending);
  }
  if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE)
    return pg_raise_pending(L, c);
  pg_push_result(L, c, 0);
  return 1;
}

/* conn:describe(sql) → {fields =, types =, fmods =}: the columns `sql` would return, found by
 * preparing it as the unnamed statement without running it (psql's \gdesc); raises on error */
static int pg_m_describe(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  int n, k;
  pg_before_call(c);
  c->pending = PQprepare(c->conn, "", sql, 0, NULL);
  pg_after_call(L, c);
  if (c->pending == NULL || PQresultStatus(c->pending) != PGRES_COMMAND_OK) {
    if (c->pending == NULL) {
      pg_push_error(L, c, NULL);
      return lua_error(L);
    }
    return pg_raise_pending(L, c);
  }
  pg_before_call(c);
  c->pending = PQdescribePrepared(c->conn, "");
  pg_after_call(L, c);
  if (c->pending == NULL || PQresultStatus(c->pending) != PGRES_COMMAND_OK) {
    if (c->pending == NULL) {
      pg_push_error(L, c, NULL);
      return lua_error(L);
    }
    return pg_raise_pending(L, c);
  }
  n = PQnfields(c->pending);
  lua_createtable(L, 0, 3);
  lua_createtable(L, n, 0);
  for (k = 0; k < n; k++) {
    lua_pushstring(L, PQfname(c->pending, k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "fields");
  lua_createtable(L, n, 0);
  for (k = 0; k < n; k++) {
    lua_pushinteger(L, (lua_Integer)PQftype(c->pending, k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "types");
  lua_createtable(L, n, 0);
  for (k = 0; k < n; k++) {
    lua_pushinteger(L, (lua_Integer)PQfmod(c->pending, k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "fmods");
  pg_release(c);
  return 1;
}

static int pg_m_send_query(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  pg_release(c);
  if (!PQsendQuery(c->conn, sql)) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int pg_m_get_result(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  pg_before_call(c);
  c->pending = PQgetResult(c->conn);
  pg_after_call(L, c);
  if (c->pending == NULL) {
    lua_pushnil(L);
    return 1;
  }
  pg_push_result(L, c, lua_toboolean(L, 2));
  return 1;
}

/* conn:busy() → true while the result of a query sent with send_query has not arrived yet:
   reads what the server sent so far, never blocks. false when get_result would not wait
   (also when the connection broke: get_result then reports it). */
static int pg_m_busy(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  lua_pushboolean(L, PQconsumeInput(c->conn) != 0 && PQisBusy(c->conn) != 0);
  return 1;
}

static int pg_m_put_copy_data(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int r;
  pg_before_call(c);
  r = PQputCopyData(c->conn, data, (int)len);
  pg_after_call(L, c);
  if (r != 1) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int pg_m_put_copy_end(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  const char *errmsg = luaL_optstring(L, 2, NULL);
  int r;
  pg_before_call(c);
  r = PQputCopyEnd(c->conn, errmsg);
  pg_after_call(L, c);
  if (r != 1) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int pg_m_get_copy_data(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  int n;
  pg_before_call(c);
  n = PQgetCopyData(c->conn, &c->scratch, 0);
  pg_after_call(L, c);
  if (n == -1) {
    lua_pushnil(L);
    return 1;
  }
  if (n < 0) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  lua_pushlstring(L, c->scratch, (size_t)n);
  PQfreemem(c->scratch);
  c->scratch = NULL;
  return 1;
}

/* ---------------------------------------------------------------- escaping */

static int pg_push_escaped(lua_State *L, pg_Conn *c, char *s) {
  if (s == NULL) {
    pg_push_error(L, c, NULL);
    return lua_error(L);
  }
  c->scratch = s;
  lua_pushstring(L, s);
  PQfreemem(s);
  c->scratch = NULL;
  return 1;
}

static int pg_m_escape_literal(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  pg_release(c);
  return pg_push_escaped(L, c, PQescapeLiteral(c->conn, s, len));
}

static int pg_m_escape_identifier(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  pg_release(c);
  return pg_push_escaped(L, c, PQescapeIdentifier(c->conn, s, len));
}

/* ---------------------------------------------------------------- state */

/* conn:on_notice(fn | nil) → the previous handler (or nil) */
static int pg_m_on_notice(lua_State *L) {
  pg_check(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1); /* 3: previous */
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, 1);
  return 1;
}

static int pg_m_transaction_status(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  switch (PQtransactionStatus(c->conn)) {
    case PQTRANS_IDLE: lua_pushliteral(L, "idle"); break;
    case PQTRANS_ACTIVE: lua_pushliteral(L, "active"); break;
    case PQTRANS_INTRANS: lua_pushliteral(L, "intrans"); break;
    case PQTRANS_INERROR: lua_pushliteral(L, "inerror"); break;
    default: lua_pushliteral(L, "unknown"); break;
  }
  return 1;
}

static int pg_m_status(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  lua_pushstring(L, PQstatus(c->conn) == CONNECTION_OK ? "ok" : "bad");
  return 1;
}

static int pg_m_server_version(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  lua_pushinteger(L, PQserverVersion(c->conn));
  return 1;
}

/* conn:parameter_status(name) -> value reported by the server (server_encoding,
 * TimeZone, standard_conforming_strings, ...) or nil when it reported none. */
static int pg_m_parameter_status(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  const char *v = PQparameterStatus(c->conn, luaL_checkstring(L, 2));
  if (v == NULL)
    lua_pushnil(L);
  else
    lua_pushstring(L, v);
  return 1;
}

static int pg_m_backend_pid(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  lua_pushinteger(L, PQbackendPID(c->conn));
  return 1;
}

static void pg_setinfo(lua_State *L, const char *key, const char *value) {
  if (value != NULL) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
  }
}

static int pg_m_info(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  lua_createtable(L, 0, 5);
  pg_setinfo(L, "db", PQdb(c->conn));
  pg_setinfo(L, "user", PQuser(c->conn));
  pg_setinfo(L, "host", PQhost(c->conn));
  pg_setinfo(L, "port", PQport(c->conn));
  pg_setinfo(L, "client_encoding", pg_encoding_to_char(PQclientEncoding(c->conn)));
  return 1;
}

/* conn:conninfo() → {keyword = value}: the options the connection was made with (as
 * PQconninfo: defaults resolved, the password included — for reconnecting, never print) */
static int pg_m_conninfo(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  PQconninfoOption *o;
  pg_release(c);
  c->cinfo = PQconninfo(c->conn);
  if (c->cinfo == NULL)
    return luaL_error(L, "not enough memory");
  lua_newtable(L);
  for (o = c->cinfo; o->keyword != NULL; o++)
    if (o->val != NULL) {
      lua_pushstring(L, o->val);
      lua_setfield(L, -2, o->keyword);
    }
  pg_release(c);
  return 1;
}

static int pg_m_cancel(lua_State *L) {
  pg_Conn *c = pg_check(L, 1);
  char errbuf[256];
  if (c->cancel == NULL || !PQcancel(c->cancel, errbuf, (int)sizeof errbuf)) {
    luaL_pushfail(L);
    lua_pushstring(L, c->cancel == NULL ? "no cancel handle" : errbuf);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int pg_m_close(lua_State *L) {
  pg_Conn *c = (pg_Conn *)luaL_checkudata(L, 1, PG_CONN_MT);
  pg_release(c);
  if (c->cancel != NULL) {
    if (pg_active == c->cancel)
      pg_active = NULL;
    PQfreeCancel(c->cancel);
    c->cancel = NULL;
  }
  if (c->conn != NULL) {
    PQfinish(c->conn);
    c->conn = NULL;
  }
  c->L = NULL;
  return 0;
}

static int pg_m_closed(lua_State *L) {
  pg_Conn *c = (pg_Conn *)luaL_checkudata(L, 1, PG_CONN_MT);
  lua_pushboolean(L, c->conn == NULL);
  return 1;
}

static int pg_m_tostring(lua_State *L) {
  pg_Conn *c = (pg_Conn *)luaL_checkudata(L, 1, PG_CONN_MT);
  if (c->conn == NULL)
    lua_pushliteral(L, "pg connection (closed)");
  else
    lua_pushfstring(L, "pg connection (%s@%s:%s/%s)", PQuser(c->conn), PQhost(c->conn),
                    PQport(c->conn), PQdb(c->conn));
  return 1;
}

static const luaL_Reg pg_methods[] = {
  {"exec", pg_m_exec},
  {"send_query", pg_m_send_query},
  {"describe", pg_m_describe},
  {"get_result", pg_m_get_result},
  {"busy", pg_m_busy},
  {"put_copy_data", pg_m_put_copy_data},
  {"put_copy_end", pg_m_put_copy_end},
  {"get_copy_data", pg_m_get_copy_data},
  {"escape_literal", pg_m_escape_literal},
  {"escape_identifier", pg_m_escape_identifier},
  {"on_notice", pg_m_on_notice},
  {"transaction_status", pg_m_transaction_status},
  {"status", pg_m_status},
  {"server_version", pg_m_server_version},
  {"backend_pid", pg_m_backend_pid},
  {"parameter_status", pg_m_parameter_status},
  {"info", pg_m_info},
  {"conninfo", pg_m_conninfo},
  {"cancel", pg_m_cancel},
  {"close", pg_m_close},
  {"closed", pg_m_closed},
  {NULL, NULL}
};

static const luaL_Reg pg_meta[] = {
  {"__gc", pg_m_close},
  {"__close", pg_m_close},
  {"__tostring", pg_m_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg pg_funcs[] = {
  {"connect", pg_connect},
  {"ping", pg_ping},
  {"parse_conninfo", pg_parse_conninfo},
  {"libversion", pg_libversion},
  {NULL, NULL}
};

int luaopen_dbtool_core_pg(lua_State *L) {
  pg_lib_load(L);
  luaL_newmetatable(L, PG_CONN_MT);
  luaL_setfuncs(L, pg_meta, 0);
  luaL_newlib(L, pg_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  dbt_at_interrupt(pg_on_interrupt);
  luaL_newlib(L, pg_funcs);
  return 1;
}
