/*
 * lsqlite.c — module dbtool.core.sqlite: SQLite databases (migrations, rickdb's sqlite engine).
 *
 *   sqlite.open(path [, {readonly=false, create=true, uri=false, busy_timeout_ms=5000}])
 *     → db, or nil, "path: message", code (extended result code) when it cannot be opened
 *       (the file header is read at once, so "not a database" is reported here too)
 *   sqlite.version → "3.40.1";  sqlite.complete(sql) → boolean (sqlite3_complete)
 *   db:exec(script)          every statement of the script, in order (sqlite3_prepare_v2 over
 *                            the tail; rows are discarded). Statements before a failing one
 *                            stay applied: transactions are the caller's business.
 *   db:query(sql, ...)       → rows, columns. One statement; `...` bound to its parameters
 *                            (nil → NULL, integer, float, string → TEXT, boolean → 1/0).
 *                            rows[i][name] and rows[i][position]; NULL columns are absent.
 *                            columns is the array of column names.
 *   db:rows(sql, ...)        iterator for a generic for (statement finalized at the end of
 *                            the loop, on break and on error: it is the loop's closing value)
 *   db:changes(), db:last_insert_rowid(), db:in_transaction(), db:busy_timeout(ms)
 *   db:close()               → true; idempotent; also __gc and __close. Any other method on a
 *                            closed handle raises "attempt to use a closed database".
 *
 * Errors from SQL raise a structured error (dbtool.error):
 *   {exit = 1, msg = sqlite3_errmsg, code = extended result code, code_name =
 *    "SQLITE_CONSTRAINT_UNIQUE", offset = byte offset (0-based) where the failing statement
 *    starts in the script, error_offset = byte offset of the offending token in the script or
 *    nil, line = 1-based line of error_offset (else of offset), column = 1-based byte column,
 *    statement = text of the failing statement}
 *
 * Every sqlite3_stmt is owned by a userdata (metatable dbtool.sqlite.stmt) whose __gc
 * finalizes it, so a Lua error anywhere (bad bind argument, out of memory) leaks nothing.
 * Ctrl-C interrupts a running statement (sqlite3_interrupt) and raises exit 130.
 */
#include <limits.h>
#include <string.h>

#include <sqlite3.h>

#include "dbtool.h"

#define SQ_DB_MT   "dbtool.sqlite.db"
#define SQ_STMT_MT "dbtool.sqlite.stmt"

typedef struct sq_Db {
  sqlite3 *db;          /* NULL once closed */
} sq_Db;

typedef struct sq_Stmt {
  sqlite3_stmt *st;     /* NULL once finalized */
} sq_Stmt;

/* The connection whose statement is stepping right now (for the SIGINT handler). */
static sqlite3 *volatile sq_running = NULL;

static void sq_on_interrupt(void) {
  sqlite3 *db = sq_running;
  if (db != NULL)
    sqlite3_interrupt(db);
}

static int sq_step(sqlite3 *db, sqlite3_stmt *st) {
  int rc;
  sq_running = db;
  rc = sqlite3_step(st);
  sq_running = NULL;
  return rc;
}

/* ---------------------------------------------------------------- result code names */

#define SQ_CODE(c) {c, #c}
static const struct { int code; const char *name; } sq_codes[] = {
  SQ_CODE(SQLITE_OK), SQ_CODE(SQLITE_ERROR), SQ_CODE(SQLITE_INTERNAL), SQ_CODE(SQLITE_PERM),
  SQ_CODE(SQLITE_ABORT), SQ_CODE(SQLITE_BUSY), SQ_CODE(SQLITE_LOCKED), SQ_CODE(SQLITE_NOMEM),
  SQ_CODE(SQLITE_READONLY), SQ_CODE(SQLITE_INTERRUPT), SQ_CODE(SQLITE_IOERR),
  SQ_CODE(SQLITE_CORRUPT), SQ_CODE(SQLITE_NOTFOUND), SQ_CODE(SQLITE_FULL),
  SQ_CODE(SQLITE_CANTOPEN), SQ_CODE(SQLITE_PROTOCOL), SQ_CODE(SQLITE_EMPTY),
  SQ_CODE(SQLITE_SCHEMA), SQ_CODE(SQLITE_TOOBIG), SQ_CODE(SQLITE_CONSTRAINT),
  SQ_CODE(SQLITE_MISMATCH), SQ_CODE(SQLITE_MISUSE), SQ_CODE(SQLITE_NOLFS), SQ_CODE(SQLITE_AUTH),
  SQ_CODE(SQLITE_FORMAT), SQ_CODE(SQLITE_RANGE), SQ_CODE(SQLITE_NOTADB), SQ_CODE(SQLITE_NOTICE),
  SQ_CODE(SQLITE_WARNING), SQ_CODE(SQLITE_ROW), SQ_CODE(SQLITE_DONE),
  SQ_CODE(SQLITE_ERROR_MISSING_COLLSEQ), SQ_CODE(SQLITE_ERROR_RETRY),
  SQ_CODE(SQLITE_ERROR_SNAPSHOT), SQ_CODE(SQLITE_IOERR_READ), SQ_CODE(SQLITE_IOERR_SHORT_READ),
  SQ_CODE(SQLITE_IOERR_WRITE), SQ_CODE(SQLITE_IOERR_FSYNC), SQ_CODE(SQLITE_IOERR_DIR_FSYNC),
  SQ_CODE(SQLITE_IOERR_TRUNCATE), SQ_CODE(SQLITE_IOERR_FSTAT), SQ_CODE(SQLITE_IOERR_UNLOCK),
  SQ_CODE(SQLITE_IOERR_RDLOCK), SQ_CODE(SQLITE_IOERR_DELETE), SQ_CODE(SQLITE_IOERR_BLOCKED),
  SQ_CODE(SQLITE_IOERR_NOMEM), SQ_CODE(SQLITE_IOERR_ACCESS),
  SQ_CODE(SQLITE_IOERR_CHECKRESERVEDLOCK), SQ_CODE(SQLITE_IOERR_LOCK),
  SQ_CODE(SQLITE_IOERR_CLOSE), SQ_CODE(SQLITE_IOERR_DIR_CLOSE), SQ_CODE(SQLITE_IOERR_SHMOPEN),
  SQ_CODE(SQLITE_IOERR_SHMSIZE), SQ_CODE(SQLITE_IOERR_SHMLOCK), SQ_CODE(SQLITE_IOERR_SHMMAP),
  SQ_CODE(SQLITE_IOERR_SEEK), SQ_CODE(SQLITE_IOERR_DELETE_NOENT), SQ_CODE(SQLITE_IOERR_MMAP),
  SQ_CODE(SQLITE_IOERR_GETTEMPPATH), SQ_CODE(SQLITE_IOERR_CONVPATH),
  SQ_CODE(SQLITE_IOERR_VNODE), SQ_CODE(SQLITE_IOERR_AUTH), SQ_CODE(SQLITE_IOERR_BEGIN_ATOMIC),
  SQ_CODE(SQLITE_IOERR_COMMIT_ATOMIC), SQ_CODE(SQLITE_IOERR_ROLLBACK_ATOMIC),
  SQ_CODE(SQLITE_IOERR_DATA), SQ_CODE(SQLITE_IOERR_CORRUPTFS),
  SQ_CODE(SQLITE_LOCKED_SHAREDCACHE), SQ_CODE(SQLITE_LOCKED_VTAB),
  SQ_CODE(SQLITE_BUSY_RECOVERY), SQ_CODE(SQLITE_BUSY_SNAPSHOT), SQ_CODE(SQLITE_BUSY_TIMEOUT),
  SQ_CODE(SQLITE_CANTOPEN_NOTEMPDIR), SQ_CODE(SQLITE_CANTOPEN_ISDIR),
  SQ_CODE(SQLITE_CANTOPEN_FULLPATH), SQ_CODE(SQLITE_CANTOPEN_CONVPATH),
  SQ_CODE(SQLITE_CANTOPEN_DIRTYWAL), SQ_CODE(SQLITE_CANTOPEN_SYMLINK),
  SQ_CODE(SQLITE_CORRUPT_VTAB), SQ_CODE(SQLITE_CORRUPT_SEQUENCE), SQ_CODE(SQLITE_CORRUPT_INDEX),
  SQ_CODE(SQLITE_READONLY_RECOVERY), SQ_CODE(SQLITE_READONLY_CANTLOCK),
  SQ_CODE(SQLITE_READONLY_ROLLBACK), SQ_CODE(SQLITE_READONLY_DBMOVED),
  SQ_CODE(SQLITE_READONLY_CANTINIT), SQ_CODE(SQLITE_READONLY_DIRECTORY),
  SQ_CODE(SQLITE_ABORT_ROLLBACK), SQ_CODE(SQLITE_CONSTRAINT_CHECK),
  SQ_CODE(SQLITE_CONSTRAINT_COMMITHOOK), SQ_CODE(SQLITE_CONSTRAINT_FOREIGNKEY),
  SQ_CODE(SQLITE_CONSTRAINT_FUNCTION), SQ_CODE(SQLITE_CONSTRAINT_NOTNULL),
  SQ_CODE(SQLITE_CONSTRAINT_PRIMARYKEY), SQ_CODE(SQLITE_CONSTRAINT_TRIGGER),
  SQ_CODE(SQLITE_CONSTRAINT_UNIQUE), SQ_CODE(SQLITE_CONSTRAINT_VTAB),
  SQ_CODE(SQLITE_CONSTRAINT_ROWID), SQ_CODE(SQLITE_CONSTRAINT_PINNED),
  SQ_CODE(SQLITE_CONSTRAINT_DATATYPE), SQ_CODE(SQLITE_NOTICE_RECOVER_WAL),
  SQ_CODE(SQLITE_NOTICE_RECOVER_ROLLBACK), SQ_CODE(SQLITE_WARNING_AUTOINDEX),
  SQ_CODE(SQLITE_AUTH_USER), SQ_CODE(SQLITE_OK_LOAD_PERMANENTLY), SQ_CODE(SQLITE_OK_SYMLINK),
};

static const char *sq_code_name(int code) {
  size_t i;
  for (i = 0; i < sizeof(sq_codes) / sizeof(sq_codes[0]); i++)
    if (sq_codes[i].code == code)
      return sq_codes[i].name;
  return sqlite3_errstr(code);
}

/* ---------------------------------------------------------------- handles */

static sq_Db *sq_todb(lua_State *L, int idx) {
  sq_Db *d = (sq_Db *)luaL_checkudata(L, idx, SQ_DB_MT);
  if (d->db == NULL)
    luaL_error(L, "attempt to use a closed database");
  return d;
}

static int sq_db_close(lua_State *L) {
  sq_Db *d = (sq_Db *)luaL_checkudata(L, 1, SQ_DB_MT);
  if (d->db != NULL) {
    /* v2: a statement still held by a rows() loop keeps the connection as a zombie until
     * its own finalizer runs; nothing is leaked either way. */
    sqlite3_close_v2(d->db);
    d->db = NULL;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int sq_stmt_finalize(lua_State *L) {
  sq_Stmt *s = (sq_Stmt *)luaL_checkudata(L, 1, SQ_STMT_MT);
  if (s->st != NULL) {
    sqlite3_finalize(s->st);
    s->st = NULL;
  }
  return 0;
}

/* Push a new statement owner. User values: 1 = the db userdata, 2 = column names. */
static sq_Stmt *sq_newstmt(lua_State *L, int dbidx) {
  sq_Stmt *s = (sq_Stmt *)lua_newuserdatauv(L, sizeof(sq_Stmt), 2);
  s->st = NULL;
  luaL_setmetatable(L, SQ_STMT_MT);
  lua_pushvalue(L, dbidx);
  lua_setiuservalue(L, -2, 1);
  return s;
}

/* ---------------------------------------------------------------- script scanning */

/* Skip whitespace and comments (SQLite's own definitions); never looks at ';' inside text. */
static const char *sq_skip_space(const char *p, const char *end) {
  while (p < end) {
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r') {
      p++;
    } else if (*p == '-' && p + 1 < end && p[1] == '-') {
      while (p < end && *p != '\n')
        p++;
    } else if (*p == '/' && p + 1 < end && p[1] == '*') {
      p += 2;
      while (p < end && !(*p == '*' && p + 1 < end && p[1] == '/'))
        p++;
      p = p + 2 <= end ? p + 2 : end;
    } else {
      break;
    }
  }
  return p;
}

/* Like sq_skip_space, also skipping empty statements (';'). */
static const char *sq_skip_empty(const char *p, const char *end) {
  for (;;) {
    p = sq_skip_space(p, end);
    if (p < end && *p == ';')
      p++;
    else
      return p;
  }
}

/* End of the statement starting at `start` when the parser could not tell us: the first ';'
 * after which sqlite3_complete() says the text is a complete statement, else the end. */
static const char *sq_statement_end(lua_State *L, const char *start, const char *end) {
  size_t n = (size_t)(end - start), i;
  char *copy = (char *)lua_newuserdatauv(L, n + 1, 0);
  const char *stop = end;
  memcpy(copy, start, n);
  copy[n] = '\0';
  for (i = 0; i < n; i++) {
    if (copy[i] == ';') {
      char saved = copy[i + 1];
      int done;
      copy[i + 1] = '\0';
      done = sqlite3_complete(copy);
      copy[i + 1] = saved;
      if (done) {
        stop = start + i + 1;
        break;
      }
    }
  }
  lua_pop(L, 1);
  return stop;
}

/* ---------------------------------------------------------------- errors */

/* Raise the structured error for the last failure of `db`. `sql` is the whole text handed
 * to exec/query, `start` where the failing statement begins, `stop` where it ends (NULL:
 * unknown). The statement owner `s` is finalized before raising. */
static int sq_raise(lua_State *L, sqlite3 *db, int rc, sq_Stmt *s, const char *sql,
                    size_t len, const char *start, const char *stop) {
  int code = sqlite3_extended_errcode(db);
  int eo = sqlite3_error_offset(db);
  size_t pos, line = 1, col = 1, i;
  const char *errmsg = sqlite3_errmsg(db);
  if ((code & 0xff) != (rc & 0xff))
    code = rc;
  if (rc == SQLITE_INTERRUPT || code == SQLITE_INTERRUPT)
    errmsg = "interrupted";
  dbt_push_error(L, DBT_EXIT_GENERIC, errmsg);
  if (s != NULL && s->st != NULL) {
    sqlite3_finalize(s->st);
    s->st = NULL;
  }
  if (rc == SQLITE_INTERRUPT)
    dbt_check_interrupt(L);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, sq_code_name(code));
  lua_setfield(L, -2, "code_name");
  pos = (size_t)(start - sql);
  lua_pushinteger(L, (lua_Integer)pos);
  lua_setfield(L, -2, "offset");
  if (eo >= 0 && (size_t)eo <= (size_t)(sql + len - start)) {
    pos += (size_t)eo;
    lua_pushinteger(L, (lua_Integer)pos);
    lua_setfield(L, -2, "error_offset");
  }
  for (i = 0; i < pos && i < len; i++) {
    if (sql[i] == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  lua_pushinteger(L, (lua_Integer)line);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)col);
  lua_setfield(L, -2, "column");
  if (stop == NULL || stop <= start)
    stop = sq_statement_end(L, start, sql + len);
  while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\n' ||
                          stop[-1] == '\r' || stop[-1] == '\f'))
    stop--;
  lua_pushlstring(L, start, (size_t)(stop - start));
  lua_setfield(L, -2, "statement");
  return lua_error(L);
}

/* A usage error about the SQL text (not from SQLite): structured, with the statement. */
static int sq_usage_error(lua_State *L, sq_Stmt *s, const char *msg, const char *sql,
                          const char *start, const char *stop) {
  dbt_push_error(L, DBT_EXIT_GENERIC, msg);
  if (s->st != NULL) {
    sqlite3_finalize(s->st);
    s->st = NULL;
  }
  lua_pushinteger(L, (lua_Integer)(start - sql));
  lua_setfield(L, -2, "offset");
  lua_pushlstring(L, start, (size_t)(stop - start));
  lua_setfield(L, -2, "statement");
  return lua_error(L);
}

/* ---------------------------------------------------------------- open */

static int sq_optbool(lua_State *L, int idx, const char *key, int dflt) {
  int v = dflt;
  int t = lua_getfield(L, idx, key);
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_error(L, "sqlite.open: option '%s' must be a boolean", key);
  lua_pop(L, 1);
  return v;
}

static int sq_open(lua_State *L) {
  size_t plen;
  const char *path = luaL_checklstring(L, 1, &plen);
  int readonly = 0, create = 1, uri = 0, flags, rc;
  lua_Integer timeout = 5000;
  sq_Db *d;
  luaL_argcheck(L, strlen(path) == plen, 1, "path contains a NUL byte");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "readonly") != 0 && strcmp(k, "create") != 0 && strcmp(k, "uri") != 0 &&
          strcmp(k, "busy_timeout_ms") != 0)
        return luaL_error(L, "sqlite.open: unknown option '%s'", k);
      lua_pop(L, 1);
    }
    readonly = sq_optbool(L, 2, "readonly", 0);
    create = sq_optbool(L, 2, "create", 1);
    uri = sq_optbool(L, 2, "uri", 0);
    if (lua_getfield(L, 2, "busy_timeout_ms") != LUA_TNIL) {
      int ok;
      timeout = lua_tointegerx(L, -1, &ok);
      if (!ok || timeout < 0 || timeout > INT_MAX)
        return luaL_error(L, "sqlite.open: busy_timeout_ms must be a non-negative integer");
    }
    lua_pop(L, 1);
  }
  flags = readonly ? SQLITE_OPEN_READONLY
                   : (SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0));
  if (uri)
    flags |= SQLITE_OPEN_URI;
  flags |= SQLITE_OPEN_EXRESCODE;

  d = (sq_Db *)lua_newuserdatauv(L, sizeof(sq_Db), 0);   /* closed before acquiring */
  d->db = NULL;
  luaL_setmetatable(L, SQ_DB_MT);

  rc = sqlite3_open_v2(path, &d->db, flags, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, (int)timeout);
    /* read the header now: "file is not a database" belongs to open */
    rc = sqlite3_exec(d->db, "PRAGMA schema_version", NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) {
    int code = d->db != NULL ? sqlite3_extended_errcode(d->db) : rc;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, d->db != NULL ? sqlite3_errmsg(d->db)
                                                       : sqlite3_errstr(rc));
    lua_pushinteger(L, code);
    sqlite3_close_v2(d->db);
    d->db = NULL;
    return 3;
  }
  return 1;
}

/* ---------------------------------------------------------------- exec */

static int sq_db_exec(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  size_t len;
  const char *script = luaL_checklstring(L, 2, &len);
  const char *end = script + len, *p = script;
  sq_Stmt *s;
  if (len >= INT_MAX)
    return luaL_error(L, "db:exec: script too large");
  lua_settop(L, 2);
  s = sq_newstmt(L, 1);                                      /* 3 */
  for (;;) {
    const char *start = sq_skip_space(p, end), *tail = NULL;
    int rc;
    if (start >= end)
      break;
    rc = sqlite3_prepare_v2(d->db, start, (int)(end - start), &s->st, &tail);
    if (rc != SQLITE_OK)
      return sq_raise(L, d->db, rc, s, script, len, start, NULL);
    if (tail == NULL || tail <= start)
      tail = end;                                           /* cannot happen; never loop */
    if (s->st != NULL) {
      while ((rc = sq_step(d->db, s->st)) == SQLITE_ROW)
        ;
      if (rc != SQLITE_DONE)
        return sq_raise(L, d->db, rc, s, script, len, start, tail);
      sqlite3_finalize(s->st);
      s->st = NULL;
    }
    p = tail;
  }
  return 0;
}

/* ---------------------------------------------------------------- query / rows */

static void sq_bind(lua_State *L, sq_Db *d, sq_Stmt *s, int first, int nargs,
                    const char *sql, size_t len, const char *start, const char *stop) {
  int n = sqlite3_bind_parameter_count(s->st), i, rc = SQLITE_OK;
  if (n != nargs) {
    lua_pushfstring(L, "statement has %d parameter%s, %d value%s given", n, n == 1 ? "" : "s",
                    nargs, nargs == 1 ? "" : "s");
    sq_usage_error(L, s, lua_tostring(L, -1), sql, start, stop);
  }
  for (i = 1; i <= n; i++) {
    int idx = first + i - 1;
    switch (lua_type(L, idx)) {
      case LUA_TNIL:
        rc = sqlite3_bind_null(s->st, i);
        break;
      case LUA_TBOOLEAN:
        rc = sqlite3_bind_int(s->st, i, lua_toboolean(L, idx));
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
          rc = sqlite3_bind_int64(s->st, i, (sqlite3_int64)lua_tointeger(L, idx));
        else
          rc = sqlite3_bind_double(s->st, i, (double)lua_tonumber(L, idx));
        break;
      case LUA_TSTRING: {
        size_t sl;
        const char *str = lua_tolstring(L, idx, &sl);
        rc = sqlite3_bind_text64(s->st, i, str, (sqlite3_uint64)sl, SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
        break;
      }
      default:
        sqlite3_finalize(s->st);
        s->st = NULL;
        luaL_argerror(L, idx, lua_pushfstring(L, "cannot bind a %s value as parameter %d",
                                              luaL_typename(L, idx), i));
    }
    if (rc != SQLITE_OK)
      sq_raise(L, d->db, rc, s, sql, len, start, stop);
  }
}

/* Prepare the single statement of `sql` into the owner at the top of the stack and bind
 * arguments [first, top-1]. Leaves the owner on the top with its column names (uservalue 2). */
static sq_Stmt *sq_prepare_one(lua_State *L, sq_Db *d, int first, const char **psql,
                               size_t *plen) {
  size_t len;
  const char *sql = luaL_checklstring(L, first - 1, &len);
  const char *end = sql + len, *start = sq_skip_space(sql, end), *tail = NULL, *rest;
  int nargs = lua_gettop(L) - first + 1, rc, ncol, i;
  sq_Stmt *s;
  if (len >= INT_MAX)
    luaL_error(L, "db:query: statement too large");
  s = sq_newstmt(L, 1);
  rc = sqlite3_prepare_v2(d->db, start, (int)(end - start), &s->st, &tail);
  if (rc != SQLITE_OK)
    sq_raise(L, d->db, rc, s, sql, len, start, NULL);
  if (s->st == NULL)
    sq_usage_error(L, s, "no SQL statement to run", sql, start, end);
  rest = sq_skip_empty(tail, end);
  if (rest < end)
    sq_usage_error(L, s, "only one statement allowed here (use db:exec for scripts)", sql,
                   start, end);
  sq_bind(L, d, s, first, nargs, sql, len, start, tail);
  ncol = sqlite3_column_count(s->st);
  lua_createtable(L, ncol, 0);
  for (i = 0; i < ncol; i++) {
    const char *name = sqlite3_column_name(s->st, i);
    if (name == NULL)
      luaL_error(L, "out of memory");
    lua_pushstring(L, name);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, -2, 2);
  *psql = sql;
  *plen = len;
  return s;
}

/* Push the current row of `st`; column names are the table at `names`. */
static void sq_push_row(lua_State *L, sqlite3_stmt *st, int names) {
  int ncol = sqlite3_column_count(st), i;
  lua_createtable(L, ncol, ncol);
  for (i = 0; i < ncol; i++) {
    switch (sqlite3_column_type(st, i)) {
      case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i));
        break;
      case SQLITE_FLOAT:
        lua_pushnumber(L, (lua_Number)sqlite3_column_double(st, i));
        break;
      case SQLITE_TEXT: {
        const unsigned char *t = sqlite3_column_text(st, i);
        int n = sqlite3_column_bytes(st, i);
        if (t == NULL)
          luaL_error(L, "out of memory");
        lua_pushlstring(L, (const char *)t, (size_t)n);
        break;
      }
      case SQLITE_BLOB: {
        const void *b = sqlite3_column_blob(st, i);
        int n = sqlite3_column_bytes(st, i);
        lua_pushlstring(L, b != NULL ? (const char *)b : "", b != NULL ? (size_t)n : 0);
        break;
      }
      default:
        continue;                                  /* NULL: absent */
    }
    lua_rawgeti(L, names, i + 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);                             /* row[name] = v */
    lua_rawseti(L, -2, i + 1);                     /* row[i] = v */
  }
}

static int sq_db_query(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  const char *sql;
  size_t len;
  int top = lua_gettop(L), names, rc;
  lua_Integer n = 0;
  sq_Stmt *s;
  luaL_checkstring(L, 2);
  s = sq_prepare_one(L, d, 3, &sql, &len);           /* top + 1 */
  lua_getiuservalue(L, top + 1, 2);                  /* top + 2: names */
  names = top + 2;
  lua_newtable(L);                                   /* top + 3: rows */
  while ((rc = sq_step(d->db, s->st)) == SQLITE_ROW) {
    sq_push_row(L, s->st, names);
    lua_rawseti(L, top + 3, ++n);
  }
  if (rc != SQLITE_DONE) {
    const char *start = sq_skip_space(sql, sql + len);
    return sq_raise(L, d->db, rc, s, sql, len, start, NULL);
  }
  sqlite3_finalize(s->st);
  s->st = NULL;
  lua_pushvalue(L, names);
  return 2;
}

static int sq_rows_iter(lua_State *L) {
  sq_Stmt *s = (sq_Stmt *)luaL_checkudata(L, 1, SQ_STMT_MT);
  sq_Db *d;
  int rc;
  if (s->st == NULL)
    return 0;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);                        /* 2: db */
  d = (sq_Db *)luaL_checkudata(L, 2, SQ_DB_MT);
  if (d->db == NULL) {
    sqlite3_finalize(s->st);
    s->st = NULL;
    return luaL_error(L, "attempt to use a closed database");
  }
  lua_getiuservalue(L, 1, 2);                        /* 3: names */
  rc = sq_step(d->db, s->st);
  if (rc == SQLITE_ROW) {
    sq_push_row(L, s->st, 3);
    return 1;
  }
  if (rc != SQLITE_DONE) {
    const char *sql = sqlite3_sql(s->st);
    size_t len = strlen(sql);
    lua_pushlstring(L, sql, len);                    /* 4: keep the text past finalize */
    sql = lua_tostring(L, 4);
    return sq_raise(L, d->db, rc, s, sql, len, sq_skip_space(sql, sql + len), sql + len);
  }
  sqlite3_finalize(s->st);
  s->st = NULL;
  return 0;
}

static int sq_db_rows(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  const char *sql;
  size_t len;
  luaL_checkstring(L, 2);
  sq_prepare_one(L, d, 3, &sql, &len);
  lua_pushcfunction(L, sq_rows_iter);
  lua_pushvalue(L, -2);                              /* state */
  lua_pushnil(L);                                    /* control */
  lua_pushvalue(L, -2);                              /* closing value */
  return 4;
}

/* ---------------------------------------------------------------- small methods */

static int sq_db_changes(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  lua_pushinteger(L, (lua_Integer)sqlite3_changes64(d->db));
  return 1;
}

static int sq_db_last_insert_rowid(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(d->db));
  return 1;
}

static int sq_db_in_transaction(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  lua_pushboolean(L, !sqlite3_get_autocommit(d->db));
  return 1;
}

static int sq_db_busy_timeout(lua_State *L) {
  sq_Db *d = sq_todb(L, 1);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0 && ms <= INT_MAX, 2, "must be a non-negative number of ms");
  sqlite3_busy_timeout(d->db, (int)ms);
  return 0;
}

static int sq_db_tostring(lua_State *L) {
  sq_Db *d = (sq_Db *)luaL_checkudata(L, 1, SQ_DB_MT);
  if (d->db == NULL) {
    lua_pushliteral(L, "sqlite database (closed)");
  } else {
    const char *f = sqlite3_db_filename(d->db, "main");
    lua_pushfstring(L, "sqlite database (%s)", f != NULL && *f ? f : ":memory:");
  }
  return 1;
}

static int sq_complete(lua_State *L) {
  lua_pushboolean(L, sqlite3_complete(luaL_checkstring(L, 1)));
  return 1;
}

static const luaL_Reg sq_db_methods[] = {
  {"exec", sq_db_exec},
  {"query", sq_db_query},
  {"rows", sq_db_rows},
  {"changes", sq_db_changes},
  {"last_insert_rowid", sq_db_last_insert_rowid},
  {"in_transaction", sq_db_in_transaction},
  {"busy_timeout", sq_db_busy_timeout},
  {"close", sq_db_close},
  {NULL, NULL}
};

static const luaL_Reg sq_db_meta[] = {
  {"__gc", sq_db_close},
  {"__close", sq_db_close},
  {"__tostring", sq_db_tostring},
  {NULL, NULL}
};

static const luaL_Reg sq_stmt_meta[] = {
  {"__gc", sq_stmt_finalize},
  {"__close", sq_stmt_finalize},
  {NULL, NULL}
};

static const luaL_Reg sq_funcs[] = {
  {"open", sq_open},
  {"complete", sq_complete},
  {NULL, NULL}
};

int luaopen_dbtool_core_sqlite(lua_State *L) {
  luaL_newmetatable(L, SQ_DB_MT);
  luaL_setfuncs(L, sq_db_meta, 0);
  luaL_newlib(L, sq_db_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, SQ_STMT_MT);
  luaL_setfuncs(L, sq_stmt_meta, 0);
  lua_pop(L, 1);
  dbt_at_interrupt(sq_on_interrupt);
  luaL_newlib(L, sq_funcs);
  lua_pushstring(L, sqlite3_libversion());
  lua_setfield(L, -2, "version");
  return 1;
}
