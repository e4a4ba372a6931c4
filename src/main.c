/*
 * main.c — the host: one lua_State, everything after luaL_newstate inside one protected
 * call (as lua.c's pmain), a message handler that keeps structured errors intact and adds a
 * traceback to anything else, and SIGINT/SIGTERM/SIGHUP turned into a Lua error at the next
 * safe point (plus a cancel of the running query).
 *
 * Policy lives in Lua: the embedded lua/dbtool/main.lua receives argv and returns the exit
 * code. This file only maps what escapes it: a structured error {exit=N} → N, anything
 * else → 13 (a program bug).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lualib.h"

#include "dbtool.h"

#define HOST_MAX_INTERRUPT_FNS 8

static lua_State *host_L = NULL;
static volatile sig_atomic_t host_signals = 0;      /* signals received */
static volatile sig_atomic_t host_signo = 0;        /* the first one */
static volatile sig_atomic_t host_delivered = 0;    /* interrupt error raised already */
static volatile sig_atomic_t host_deferred = 0;     /* inside core.uninterruptible */
static void (*host_interrupt_fns[HOST_MAX_INTERRUPT_FNS])(void);
static int host_ninterrupt_fns = 0;

/* ---------------------------------------------------------------- allocator

   lua_Alloc with a byte count and an optional limit (core.memory_limit): an allocation that
   would grow the heap past the limit fails, and Lua raises its "not enough memory" error
   (after an emergency collection). Shrinking never fails, as Lua requires. */

static size_t host_mem_used = 0;
static size_t host_mem_limit = 0;                   /* 0: none */

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  size_t old = ptr != NULL ? osize : 0;             /* osize is a type tag when ptr is NULL */
  void *p;
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    host_mem_used -= old;
    return NULL;
  }
  if (host_mem_limit != 0 && nsize > old && host_mem_used - old + nsize > host_mem_limit)
    return NULL;
  p = realloc(ptr, nsize);
  if (p == NULL)
    return NULL;
  host_mem_used = host_mem_used - old + nsize;
  return p;
}

/* ---------------------------------------------------------------- warnings

   Lua reports an error raised in a __gc metamethod as a warning ("error in __gc ...") and
   goes on. They are kept here (count + the first message) for core.gc_errors(), so that the
   program can report them and not exit 0; those raised by lua_close, after the Lua side is
   gone, are printed by main(). Other warnings (warn() from Lua code) are shown as lua.c does,
   after warn("@on") (`db-tool -W`). */

#define HOST_WARN_MAX 4096
static char host_warn_buf[HOST_WARN_MAX];
static size_t host_warn_len = 0;
static int host_warn_on = 0;
static int host_warn_cont = 0;
static int host_gc_errors = 0;                      /* not yet taken by core.gc_errors */
static char host_gc_first[HOST_WARN_MAX];

static void host_warnf(void *ud, const char *msg, int tocont) {
  size_t n = strlen(msg), room = HOST_WARN_MAX - 1 - host_warn_len;
  (void)ud;
  if (!host_warn_cont && !tocont && msg[0] == '@') { /* control message */
    if (strcmp(msg, "@on") == 0)
      host_warn_on = 1;
    else if (strcmp(msg, "@off") == 0)
      host_warn_on = 0;
    return;
  }
  memcpy(host_warn_buf + host_warn_len, msg, n < room ? n : room);
  host_warn_len += n < room ? n : room;
  host_warn_buf[host_warn_len] = '\0';
  host_warn_cont = tocont;
  if (tocont)
    return;
  if (strncmp(host_warn_buf, "error in __gc", 13) == 0) {
    if (host_gc_errors++ == 0)
      memcpy(host_gc_first, host_warn_buf, host_warn_len + 1);
  } else if (host_warn_on) {
    fprintf(stderr, "Lua warning: %s\n", host_warn_buf);
    fflush(stderr);
  }
  host_warn_len = 0;
}

/* ---------------------------------------------------------------- embedded files */

static int host_embedded_cmp(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const dbt_embedded *)elem)->path);
}

const dbt_embedded *dbt_embedded_find(const char *path) {
  return bsearch(path, dbt_embedded_files, dbt_embedded_count, sizeof(dbt_embedded),
                 host_embedded_cmp);
}

/* ---------------------------------------------------------------- structured errors */

int dbt_push_error(lua_State *L, int code, const char *msg) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "exit");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "msg");
  luaL_setmetatable(L, DBT_ERROR_MT);
  return lua_gettop(L);
}

int dbt_error(lua_State *L, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  dbt_push_error(L, code, lua_tostring(L, -1));
  lua_remove(L, -2);
  return lua_error(L);
}

static int host_error_tostring(lua_State *L) {
  const char *msg;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "msg");
  msg = lua_tostring(L, -1);
  lua_pushstring(L, msg != NULL ? msg : "error");
  return 1;
}

/* ---------------------------------------------------------------- interrupts */

void dbt_at_interrupt(void (*fn)(void)) {
  int i;
  for (i = 0; i < host_ninterrupt_fns; i++)
    if (host_interrupt_fns[i] == fn)
      return;
  if (host_ninterrupt_fns < HOST_MAX_INTERRUPT_FNS)
    host_interrupt_fns[host_ninterrupt_fns++] = fn;
}

int dbt_interrupts(void) {
  return (int)host_signals;
}

static void host_raise_interrupt(lua_State *L) {
  int signo = host_signo ? (int)host_signo : SIGINT;
  host_delivered = 1;
  lua_sethook(L, NULL, 0, 0);
  dbt_push_error(L, 128 + signo, signo == SIGINT ? "interrupted" : "terminated by a signal");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "interrupted");
  lua_pushinteger(L, signo);
  lua_setfield(L, -2, "signal");
  lua_error(L);
}

void dbt_check_interrupt(lua_State *L) {
  if (host_signals > 0 && !host_delivered && !host_deferred)
    host_raise_interrupt(L);
}

static void host_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  host_raise_interrupt(L);
}

static void host_on_signal(int signo) {
  int i;
  host_signals++;
  if (host_signals == 1) {
    host_signo = signo;
    /* as lua.c's laction: the error is raised by the hook at the next safe point (or
       when core.uninterruptible returns) */
    if (host_L != NULL && !host_deferred)
      lua_sethook(host_L, host_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    for (i = 0; i < host_ninterrupt_fns; i++)
      host_interrupt_fns[i]();
  } else if (host_signals >= 3) {
    /* a third signal while cleaning up: give up and die the default way */
    signal(signo, SIG_DFL);
    raise(signo);
  }
}

static void host_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = host_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: blocking waits return EINTR and check the flag */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------- module dbtool.core */

static int core_embedded(lua_State *L) {
  const dbt_embedded *e = dbt_embedded_find(luaL_checkstring(L, 1));
  if (e == NULL)
    luaL_pushfail(L);
  else
    lua_pushlstring(L, e->data, e->size);
  return 1;
}

static int core_load_embedded(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *chunkname = luaL_optstring(L, 2, path);
  const dbt_embedded *e = dbt_embedded_find(path);
  if (e == NULL) {
    luaL_pushfail(L);
    lua_pushfstring(L, "no embedded file '%s'", path);
    return 2;
  }
  if (luaL_loadbufferx(L, e->data, e->size, chunkname, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

static int core_embedded_list(lua_State *L) {
  size_t plen, i;
  const char *prefix = luaL_optlstring(L, 1, "", &plen);
  lua_Integer n = 0;
  lua_newtable(L);
  for (i = 0; i < dbt_embedded_count; i++)
    if (strncmp(dbt_embedded_files[i].path, prefix, plen) == 0) {
      lua_pushstring(L, dbt_embedded_files[i].path);
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

static int core_interrupts(lua_State *L) {
  lua_pushinteger(L, host_signals);
  lua_pushboolean(L, host_delivered);
  return 2;
}

static int core_check_interrupt(lua_State *L) {
  dbt_check_interrupt(L);
  return 0;
}

/* core.uninterruptible(fn, ...): call fn(...) with interrupts held back; one that arrives
   meanwhile is raised as soon as fn is done (by the hook, at the return of this function).
   For short steps whose result must not be lost, e.g. a resource made and recorded in an
   upvalue for a cleanup: `core.uninterruptible(function() dir = mkdtemp(t) end)`. Blocking
   waits inside fn do not end on Ctrl-C. Errors of fn propagate. Returns fn's results. */
static int core_uninterruptible(lua_State *L) {
  lua_State *H = host_L != NULL ? host_L : L;      /* the thread the signal handler hooks */
  int status;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  host_deferred++;
  /* a signal that came just before (its hook not yet run) waits for the end of fn too */
  if (lua_gethook(H) == host_hook)
    lua_sethook(H, NULL, 0, 0);
  status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  host_deferred--;
  if (host_deferred == 0 && host_signals > 0 && !host_delivered)
    lua_sethook(H, host_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (status != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

static int core_exe(lua_State *L) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* Monotonic clock in seconds (for timings and timeouts). */
static int core_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* Sleep `s` seconds (fractions allowed); an interrupt ends it with the interrupt error. */
static int core_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts, rem;
  if (s <= 0)
    return 0;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &rem) != 0 && errno == EINTR) {
    dbt_check_interrupt(L);
    ts = rem;
  }
  return 0;
}

/* getcwd and isatty: needed at every start, where loading luaposix would cost a dlopen. */
static int core_getcwd(lua_State *L) {
  char buf[4096];
  if (getcwd(buf, sizeof buf) == NULL) {
    luaL_pushfail(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushstring(L, buf);
  return 1;
}

static int core_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.memory_limit(bytes): limit the Lua heap to `bytes` (nil, false or 0: no limit) from
   now on; returns the previous limit (nil: none). The heap in use is collectgarbage("count"). */
static int core_memory_limit(lua_State *L) {
  size_t prev = host_mem_limit;
  lua_Integer n = lua_toboolean(L, 1) ? luaL_checkinteger(L, 1) : 0;
  luaL_argcheck(L, n >= 0, 1, "negative limit");
  host_mem_limit = (size_t)n;
  if (prev == 0)
    luaL_pushfail(L);
  else
    lua_pushinteger(L, (lua_Integer)prev);
  return 1;
}

/* core.gc_errors(): the number of errors raised in __gc metamethods since the last call and
   the first one's message ("error in __gc (file:line: msg)"); 0 when there were none. */
static int core_gc_errors(lua_State *L) {
  int n = host_gc_errors;
  host_gc_errors = 0;
  lua_pushinteger(L, n);
  if (n == 0)
    return 1;
  lua_pushstring(L, host_gc_first);
  return 2;
}

static const luaL_Reg core_funcs[] = {
  {"memory_limit", core_memory_limit},
  {"gc_errors", core_gc_errors},
  {"getcwd", core_getcwd},
  {"isatty", core_isatty},
  {"now", core_now},
  {"sleep", core_sleep},
  {"embedded", core_embedded},
  {"load_embedded", core_load_embedded},
  {"embedded_list", core_embedded_list},
  {"interrupts", core_interrupts},
  {"check_interrupt", core_check_interrupt},
  {"uninterruptible", core_uninterruptible},
  {"exe", core_exe},
  {NULL, NULL}
};

int luaopen_dbtool_core(lua_State *L) {
  luaL_newlib(L, core_funcs);
  lua_pushliteral(L, DBT_VERSION);
  lua_setfield(L, -2, "version");
  luaL_getmetatable(L, DBT_ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  return 1;
}

/* ---------------------------------------------------------------- host */

static const luaL_Reg host_preload[] = {
  {"dbtool.core", luaopen_dbtool_core},
  {"dbtool.core.proc", luaopen_dbtool_core_proc},
  {"dbtool.core.pg", luaopen_dbtool_core_pg},
  {"dbtool.core.sqlite", luaopen_dbtool_core_sqlite},
  {"dbtool.core.sodium", luaopen_dbtool_core_sodium},
  {"dbtool.core.sqlscan", luaopen_dbtool_core_sqlscan},
  {"dbtool.core.fs", luaopen_dbtool_core_fs},
  {NULL, NULL}
};

static void host_register_preload(lua_State *L) {
  const luaL_Reg *r;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (r = host_preload; r->name != NULL; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pop(L, 1);
}

/* Message handler: structured errors pass through untouched; others get a traceback. */
static int host_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (lua_type(L, 1) == LUA_TTABLE && lua_getfield(L, 1, "exit") != LUA_TNIL) {
      lua_settop(L, 1);
      return 1;
    }
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int host_pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  const dbt_embedded *m;
  int i;
  luaL_checkversion(L);
  luaL_openlibs(L);
  if (luaL_newmetatable(L, DBT_ERROR_MT)) {
    lua_pushcfunction(L, host_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "dbtool.error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  host_register_preload(L);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  m = dbt_embedded_find("lua/dbtool/main.lua");
  if (m == NULL)
    return luaL_error(L, "the embedded lua/dbtool/main.lua is missing (broken build)");
  if (luaL_loadbufferx(L, m->data, m->size, "@builtin/dbtool/main.lua", "t") != LUA_OK)
    return lua_error(L);
  lua_createtable(L, argc, 0);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_call(L, 1, 1);
  return 1;
}

static int host_report(lua_State *L) {
  int code = DBT_EXIT_BUG;
  const char *msg;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "exit");
    if (lua_isinteger(L, -1))
      code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "msg");
  }
  msg = lua_tostring(L, -1);
  fprintf(stderr, "db-tool: %s\n", msg != NULL ? msg : "(error object is not a string)");
  fflush(stderr);
  return code;
}

static int host_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "db-tool: unprotected error in the Lua state: %s\n",
          msg != NULL ? msg : "(error object is not a string)");
  fflush(stderr);
  return 0; /* then abort(), as luaL_newstate's panic function */
}

int main(int argc, char **argv) {
  int status, code;
  lua_State *L = lua_newstate(host_alloc, NULL);
  if (L == NULL) {
    fprintf(stderr, "db-tool: cannot create the Lua state: not enough memory\n");
    return DBT_EXIT_BUG;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_atpanic(L, host_panic);
  lua_setwarnf(L, host_warnf, NULL);
  host_L = L;
  host_signals_install();
  lua_pushcfunction(L, host_msghandler);
  lua_pushcfunction(L, host_pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 1);
  if (status != LUA_OK)
    code = host_report(L);
  else if (lua_isinteger(L, -1))
    code = (int)lua_tointeger(L, -1);
  else
    code = lua_toboolean(L, -1) || lua_isnil(L, -1) ? 0 : DBT_EXIT_GENERIC;
  fflush(stdout);
  host_L = NULL;
  host_mem_limit = 0;
  host_gc_errors = 0;
  lua_close(L);
  if (host_gc_errors > 0) {
    /* finalizers run by lua_close: nothing of the Lua side is left to report them */
    fprintf(stderr, "db-tool: %s\n", host_gc_first);
    if (code == 0)
      code = DBT_EXIT_GENERIC;
  }
  return code;
}
