/*
 * Declarations shared by the C runtime: the host (main.c) and the C modules that it
 * registers in package.preload. Only src/ touches lua_State.
 */
#ifndef DBTOOL_H
#define DBTOOL_H

#include <signal.h>
#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"

#include "embedded.h"

#define DBT_VERSION "0.1.0"

/* Metatable of structured error values: tables {exit=, msg=, hint=, sqlstate=, ...}. */
#define DBT_ERROR_MT "dbtool.error"

/* Exit codes of the seed (see lua/dbtool/errors.lua for the Lua side). */
#define DBT_EXIT_GENERIC     1
#define DBT_EXIT_AMBIGUOUS   2
#define DBT_EXIT_MISSING     3
#define DBT_EXIT_BUG        13
#define DBT_EXIT_INTERRUPTED 130

/* main.c */
const dbt_embedded *dbt_embedded_find(const char *path);
/* Push a new structured error table {exit=code, msg=msg} (with DBT_ERROR_MT); returns its index. */
int dbt_push_error(lua_State *L, int code, const char *msg);
/* Raise a structured error. Never returns. */
int dbt_error(lua_State *L, int code, const char *fmt, ...);
/* Number of SIGINTs received so far; the first one also arranges an "interrupted" error. */
int dbt_interrupts(void);
/* If an interrupt is pending and not yet delivered, raise it now (exit 130). */
void dbt_check_interrupt(lua_State *L);

/* Register a signal-safe function run on the first SIGINT/SIGTERM/SIGHUP (e.g. PQcancel). */
void dbt_at_interrupt(void (*fn)(void));

/* Modules registered in package.preload. */
int luaopen_dbtool_core(lua_State *L);
int luaopen_dbtool_core_proc(lua_State *L);
int luaopen_dbtool_core_pg(lua_State *L);
int luaopen_dbtool_core_sqlite(lua_State *L);
int luaopen_dbtool_core_sodium(lua_State *L);
int luaopen_dbtool_core_sqlscan(lua_State *L);
int luaopen_dbtool_core_fs(lua_State *L);

#endif
