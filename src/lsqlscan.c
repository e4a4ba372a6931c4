/*
 * lsqlscan.c — module dbtool.core.sqlscan: an incremental lexer for psql scripts.
 *
 * It finds what psql's own lexer (psqlscan.l) finds, without building tokens: where a
 * statement ends, where a backslash (meta) command starts, where a psql variable is
 * referenced, and where `\;` / `\:` force a literal character. Everything else (quotes,
 * dollar quotes, comments, parentheses, BEGIN ATOMIC bodies) only changes the state.
 *
 *   sc = sqlscan.new([{std_strings = true}])
 *   kind, p, q, start [, name, vkind] = sc:scan(buf [, pos [, eof]])
 *     kind  "semi"  ';' ending a statement at p (q = p)
 *           "meta"  backslash starting a meta-command at p (the caller parses the line and
 *                   resumes where the command ends)
 *           "var"   variable reference buf[p..q]: vkind "plain" (:name), "literal" (:'name'),
 *                   "ident" (:"name"), "test" (:{?name}); name without decoration
 *           "esc"   `\;` or `\:` at p: the character buf[p+1] belongs to the statement
 *                   verbatim (no statement end, no variable); resume at p + 2
 *           "blank" the '\n' at p ends an empty line inside a begun statement, outside
 *                   quotes and comments: psql skips such lines, so the caller leaves this
 *                   newline out of the statement text; resume at p + 1
 *           "more"  the token at p may continue past the end of buf: everything before p
 *                   is consumed; call again with buf[p..] followed by more input
 *           "eof"   the whole buffer is consumed (p = #buf + 1)
 *     start the position (in this buf) where the current statement began if it began during
 *           this call; true if it began in an earlier call; false if nothing but
 *           whitespace and `--` comments has been seen since the last statement ended.
 *     eof   true when no more input follows buf: lookahead at its end never asks for more,
 *           and a `--` comment ends there (a variable's value is scanned this way too).
 *   sc:reset()                         forget everything (new script)
 *   sc:set_std_strings(bool)           standard_conforming_strings as reported by the server
 *   sc:set_paren(n)                    set the parenthesis depth (after a skipped \if branch)
 *   sc:newline()                       as if a newline had just been read outside quotes (the
 *                                      caller joined lines around COPY data it took out)
 *   sc:state() → {state =, paren =, begin =, comment =, started =, tag =}
 *   sqlscan.newlines(s [, i [, j]]) → count of '\n' in s[i..j], position of the last one or nil
 *   sqlscan.copy_scan(s [, i [, eof]]) → found, data_end, resume
 *     inline COPY data from s[i] (at a line start): found is true when a line `\.` ends it;
 *     the data is s[i..data_end], scanning goes on at resume. When not found, data_end is the
 *     end of the last complete line (at eof: the end of s) and resume = data_end + 1.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dbtool.h"

#define SS_MT "dbtool.sqlscan"

enum {
  ST_SQL,     /* outside quotes and comments */
  ST_XQ,      /* '...' without backslash escapes (standard strings, B'', X'', U&'') */
  ST_XE,      /* E'...' (and '...' when standard_conforming_strings is off) */
  ST_XD,      /* "..." */
  ST_XDOLQ,   /* $tag$...$tag$ */
  ST_XC,      /* slash-star comment, nested */
  ST_XLINE    /* -- comment */
};

static const char *const ss_state_names[] = {
  "sql", "quote", "equote", "dquote", "dollar", "comment", "linecomment"
};

typedef struct ss_Scanner {
  int state;
  int std_strings;
  int paren;        /* parenthesis depth */
  int begin;        /* BEGIN ... END depth inside CREATE FUNCTION/PROCEDURE */
  int xcdepth;      /* comment nesting */
  int started;      /* the current statement has begun */
  int nl;           /* the last character consumed outside quotes was a newline */
  int idcount;      /* identifiers seen in the current statement */
  char ids[4];      /* first letters of the leading CREATE/OR/REPLACE/FUNCTION/PROCEDURE */
  char *tag;        /* dollar-quote tag (without the dollars) */
  size_t taglen, tagcap;
} ss_Scanner;

static ss_Scanner *ss_check(lua_State *L) {
  return (ss_Scanner *)luaL_checkudata(L, 1, SS_MT);
}

static void ss_newstmt(ss_Scanner *s) {
  s->paren = 0;
  s->begin = 0;
  s->started = 0;
  s->idcount = 0;
}

static void ss_resetall(ss_Scanner *s) {
  s->state = ST_SQL;
  s->nl = 0;
  s->xcdepth = 0;
  s->taglen = 0;
  ss_newstmt(s);
}

/* Character classes of psqlscan.l (bytes >= 0x80 are letters, as there). */
static int ss_identstart(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static int ss_digit(int c) { return c >= '0' && c <= '9'; }
static int ss_identcont(int c) { return ss_identstart(c) || ss_digit(c) || c == '$'; }
static int ss_varchar(int c) { return ss_identstart(c) || ss_digit(c); }

static int ss_word(const unsigned char *w, size_t n, const char *kw) {
  size_t k;
  for (k = 0; k < n; k++) {
    int c = w[k];
    if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    if (kw[k] == '\0' || c != kw[k]) return 0;
  }
  return kw[n] == '\0';
}

/*
 * psql's heuristic for SQL-standard function bodies: in CREATE [OR REPLACE]
 * FUNCTION|PROCEDURE, semicolons between BEGIN and its END do not end the statement.
 */
static void ss_ident(ss_Scanner *s, const unsigned char *w, size_t n) {
  if (s->idcount == 0) memset(s->ids, 0, sizeof s->ids);
  if (ss_word(w, n, "create") || ss_word(w, n, "function") || ss_word(w, n, "procedure") ||
      ss_word(w, n, "or") || ss_word(w, n, "replace")) {
    if (s->idcount < (int)sizeof s->ids) {
      int c = w[0];
      if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
      s->ids[s->idcount] = (char)c;
    }
  }
  if (s->idcount < INT_MAX) s->idcount++;
  if (s->ids[0] == 'c' &&
      (s->ids[1] == 'f' || s->ids[1] == 'p' ||
       (s->ids[1] == 'o' && s->ids[2] == 'r' && (s->ids[3] == 'f' || s->ids[3] == 'p'))) &&
      s->paren == 0) {
    if (ss_word(w, n, "begin")) {
      if (s->begin < INT_MAX) s->begin++;
    } else if (ss_word(w, n, "case")) {
      if (s->begin >= 1 && s->begin < INT_MAX) s->begin++;
    } else if (ss_word(w, n, "end")) {
      if (s->begin > 0) s->begin--;
    }
  }
}

/*
 * End of the number starting at digit b[i], as psql 15 lexes it (flex: the longest of
 * integer, decimal, real, realfail and their "trailing junk" forms). 1..2 is 1 then "..";
 * 1e- and 1e+ take the sign even without digits (realfail); letters right after a number
 * run on as an identifier, `$` included (1F$t$ and 1e5$t$ are one token, 1$t$ is 1 then a
 * dollar quote). Returns n when the token may go on past the buffer.
 */
static size_t ss_identrun(const unsigned char *b, size_t k, size_t n) {
  if (k < n && ss_identstart(b[k]))
    while (k < n && ss_identcont(b[k])) k++;
  return k;
}

static size_t ss_number(const unsigned char *b, size_t i, size_t n) {
  size_t k = i, best, e;
  while (k < n && ss_digit(b[k])) k++;
  if (k < n && b[k] == '.') {
    if (k + 1 >= n) return n;
    if (b[k + 1] == '.') return k;
    k++;
    while (k < n && ss_digit(b[k])) k++;
  }
  if (k >= n) return n;
  best = ss_identrun(b, k, n);                 /* integer/decimal + junk */
  if (b[k] == 'e' || b[k] == 'E') {
    e = k + 1;
    if (e < n && (b[e] == '+' || b[e] == '-')) e++;
    if (e >= n) return n;
    if (ss_digit(b[e])) {                       /* real (+ junk) */
      while (e < n && ss_digit(b[e])) e++;
      e = ss_identrun(b, e, n);
      if (e > best) best = e;
    } else if (e > k + 1 && e > best) {         /* realfail */
      best = e;
    }
  }
  return best;
}

static void ss_settag(lua_State *L, ss_Scanner *s, const unsigned char *t, size_t n) {
  if (n > s->tagcap) {
    size_t cap = n < 32 ? 32 : n;
    char *p = (char *)realloc(s->tag, cap);
    if (p == NULL) luaL_error(L, "sqlscan: out of memory");
    s->tag = p;
    s->tagcap = cap;
  }
  if (n > 0) memcpy(s->tag, t, n);
  s->taglen = n;
}

/*
 * After the closing quote of an E'' string at b[i-1]: does a continuation follow
 * (whitespace with a newline, `--` comments allowed, then a quote)? Returns the index of
 * the continuing quote, 0 if none, -1 if the buffer ends before we can tell.
 */
static long ss_econt(const unsigned char *b, size_t i, size_t n, int eof) {
  size_t k = i;
  int nl = 0;
  while (k < n) {
    int c = b[k];
    if (c == ' ' || c == '\t' || c == '\f' || (nl && c == '\v')) {
      k++;
    } else if (c == '\n' || c == '\r') {
      nl = 1;
      k++;
    } else if (c == '-') {
      if (k + 1 >= n) return eof ? 0 : -1;
      if (b[k + 1] != '-') return 0;
      k += 2;
      while (k < n && b[k] != '\n' && b[k] != '\r') k++;
      if (k >= n) return eof ? 0 : -1;
    } else if (c == '\'') {
      return nl ? (long)k : 0;
    } else {
      return 0;
    }
  }
  return eof ? 0 : -1;
}

static int ss_ret(lua_State *L, ss_Scanner *s, const char *kind, size_t p, size_t q, long start) {
  lua_pushstring(L, kind);
  lua_pushinteger(L, (lua_Integer)p + 1);
  lua_pushinteger(L, (lua_Integer)q + 1);
  if (start >= 0) lua_pushinteger(L, (lua_Integer)start + 1);
  else lua_pushboolean(L, s->started);
  return 4;
}

static int ss_retvar(lua_State *L, ss_Scanner *s, const unsigned char *b, size_t p, size_t q,
                     size_t name, size_t namelen, const char *vkind, long start) {
  ss_ret(L, s, "var", p, q, start);
  lua_pushlstring(L, (const char *)b + name, namelen);
  lua_pushstring(L, vkind);
  return 6;
}

#define MORE(at) do { if (!eof) return ss_ret(L, s, "more", (at), (at), start); } while (0)
#define START(at) do { if (!s->started) { s->started = 1; start = (long)(at); } } while (0)

static int ss_scan(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  size_t n;
  const unsigned char *b = (const unsigned char *)luaL_checklstring(L, 2, &n);
  lua_Integer ipos = luaL_optinteger(L, 3, 1);
  int eof = lua_toboolean(L, 4);
  size_t i;
  long start = -1;
  if (ipos < 1 || (lua_Unsigned)ipos > (lua_Unsigned)n + 1)
    return luaL_argerror(L, 3, "position out of range");
  i = (size_t)ipos - 1;

  while (i < n) {
    switch (s->state) {
    case ST_SQL: {
      int c = b[i];
      if (c == '\n') {
        /* an empty line (psql reads line by line and skips those outside quotes) */
        if (s->nl && s->started) return ss_ret(L, s, "blank", i, i, start);
        s->nl = 1;
        i++;
        break;
      }
      s->nl = 0;
      switch (c) {
      case ' ': case '\t': case '\r': case '\f': case '\v':
        i++;
        break;
      case '-':
        if (i + 1 >= n) MORE(i);
        if (i + 1 < n && b[i + 1] == '-') {
          s->state = ST_XLINE;
          i += 2;
        } else {
          START(i);
          i++;
        }
        break;
      case '/':
        if (i + 1 >= n) MORE(i);
        START(i);
        if (i + 1 < n && b[i + 1] == '*') {
          s->state = ST_XC;
          s->xcdepth = 1;
          i += 2;
        } else {
          i++;
        }
        break;
      case '\'':
        START(i);
        s->state = s->std_strings ? ST_XQ : ST_XE;
        i++;
        break;
      case '"':
        START(i);
        s->state = ST_XD;
        i++;
        break;
      case '(':
        START(i);
        if (s->paren < INT_MAX) s->paren++;
        i++;
        break;
      case ')':
        START(i);
        if (s->paren > 0) s->paren--;
        i++;
        break;
      case ';':
        START(i);
        if (s->paren == 0 && s->begin == 0) {
          int r = ss_ret(L, s, "semi", i, i, start);
          ss_newstmt(s);
          return r;
        }
        i++;
        break;
      case '$': {
        size_t j = i + 1, k;
        if (j >= n) {
          MORE(i);
          START(i);
          i++;
          break;
        }
        if (ss_digit(b[j])) {               /* $1: a parameter */
          k = j;
          while (k < n && ss_digit(b[k])) k++;
          k = ss_identrun(b, k, n);         /* $1E'x' is junk then a '' string (psql) */
          if (k >= n) MORE(i);
          START(i);
          i = k;
        } else if (b[j] == '$') {           /* $$ */
          START(i);
          s->taglen = 0;
          s->state = ST_XDOLQ;
          i = j + 1;
        } else if (ss_identstart(b[j])) {   /* $tag$, or $tag without the closing $ */
          k = j;
          while (k < n && ss_varchar(b[k])) k++;
          if (k >= n) MORE(i);
          START(i);
          if (k < n && b[k] == '$') {
            ss_settag(L, s, b + j, k - j);
            s->state = ST_XDOLQ;
            i = k + 1;
          } else {
            i = j;      /* only the '$': what follows is lexed again (an identifier, e'') */
          }
        } else {
          START(i);
          i++;
        }
        break;
      }
      case ':': {
        size_t j = i + 1, k;
        int c2;
        if (j >= n) {
          MORE(i);
          START(i);
          i++;
          break;
        }
        c2 = b[j];
        if (c2 == ':' || c2 == '=') {       /* :: cast, := assignment */
          START(i);
          i += 2;
        } else if (ss_varchar(c2)) {        /* :name */
          k = j;
          while (k < n && ss_varchar(b[k])) k++;
          if (k >= n) MORE(i);
          START(i);
          return ss_retvar(L, s, b, i, k - 1, j, k - j, "plain", start);
        } else if (c2 == '\'' || c2 == '"') {  /* :'name' :"name" */
          k = j + 1;
          while (k < n && ss_varchar(b[k])) k++;
          if (k >= n) MORE(i);
          START(i);
          if (k < n && k > j + 1 && b[k] == c2)
            return ss_retvar(L, s, b, i, k, j + 1, k - j - 1,
                             c2 == '\'' ? "literal" : "ident", start);
          i++;                              /* only the colon; the quote starts a string */
        } else if (c2 == '{') {             /* :{?name} */
          if (j + 1 >= n) MORE(i);
          if (j + 1 < n && b[j + 1] == '?') {
            k = j + 2;
            while (k < n && ss_varchar(b[k])) k++;
            if (k >= n) MORE(i);
            START(i);
            if (k < n && k > j + 2 && b[k] == '}')
              return ss_retvar(L, s, b, i, k, j + 2, k - j - 2, "test", start);
          }
          START(i);
          i++;
        } else {
          START(i);
          i++;
        }
        break;
      }
      case '\\':
        if (i + 1 >= n) MORE(i);
        if (i + 1 < n && (b[i + 1] == ';' || b[i + 1] == ':')) {
          START(i);
          if (b[i + 1] == ';') s->idcount = 0;   /* \; starts a statement in the query */
          return ss_ret(L, s, "esc", i, i + 1, start);
        }
        /* a meta-command does not end the statement: CREATE FUNCTION ... \if ... BEGIN
         * ATOMIC keeps its BEGIN tracking (psql resets only at ';' and '\;') */
        return ss_ret(L, s, "meta", i, i, start);
      default:
        if (ss_identstart(c)) {
          size_t k;
          int lc = c | 0x20;
          if (lc == 'e' || lc == 'b' || lc == 'x' || lc == 'n' || lc == 'u') {
            if (i + 1 >= n) MORE(i);
            if (i + 1 < n && b[i + 1] == '\'' && lc != 'u') {
              START(i);
              if (lc == 'e' || (lc == 'n' && !s->std_strings)) s->state = ST_XE;
              else s->state = ST_XQ;
              i += 2;
              break;
            }
            if (lc == 'u' && i + 1 < n && b[i + 1] == '&') {
              if (i + 2 >= n) MORE(i);
              if (i + 2 < n && (b[i + 2] == '\'' || b[i + 2] == '"')) {
                START(i);
                s->state = b[i + 2] == '\'' ? ST_XQ : ST_XD;
                i += 3;
                break;
              }
            }
          }
          k = i + 1;
          while (k < n && ss_identcont(b[k])) k++;
          if (k >= n) MORE(i);
          START(i);
          ss_ident(s, b + i, k - i);
          i = k;
        } else if (ss_digit(c)) {
          size_t k = ss_number(b, i, n);
          if (k >= n) MORE(i);
          START(i);
          i = k;
        } else {
          START(i);
          i++;
        }
        break;
      }
      break;
    }

    case ST_XQ: {
      const unsigned char *q = (const unsigned char *)memchr(b + i, '\'', n - i);
      size_t k;
      if (q == NULL) { i = n; break; }
      k = (size_t)(q - b);
      if (k + 1 >= n) MORE(k);
      if (k + 1 < n && b[k + 1] == '\'') {
        i = k + 2;
      } else {
        s->state = ST_SQL;
        i = k + 1;
      }
      break;
    }

    case ST_XE: {
      size_t k = i;
      while (k < n && b[k] != '\'' && b[k] != '\\') k++;
      if (k >= n) { i = n; break; }
      if (k + 1 >= n) MORE(k);
      if (b[k] == '\\') {
        i = k + 2 <= n ? k + 2 : n;
      } else if (k + 1 < n && b[k + 1] == '\'') {
        i = k + 2;
      } else {
        long r = ss_econt(b, k + 1, n, eof);
        if (r < 0) MORE(k);
        if (r > 0) {
          i = (size_t)r + 1;
        } else {
          s->state = ST_SQL;
          i = k + 1;
        }
      }
      break;
    }

    case ST_XD: {
      const unsigned char *q = (const unsigned char *)memchr(b + i, '"', n - i);
      size_t k;
      if (q == NULL) { i = n; break; }
      k = (size_t)(q - b);
      if (k + 1 >= n) MORE(k);
      if (k + 1 < n && b[k + 1] == '"') {
        i = k + 2;
      } else {
        s->state = ST_SQL;
        i = k + 1;
      }
      break;
    }

    case ST_XDOLQ: {
      const unsigned char *q = (const unsigned char *)memchr(b + i, '$', n - i);
      size_t k, avail, need;
      if (q == NULL) { i = n; break; }
      k = (size_t)(q - b);
      need = s->taglen + 2;                 /* $tag$ */
      avail = n - k;
      if (avail < need) {
        /* the delimiter might continue in the next buffer */
        if (avail <= 1 || memcmp(b + k + 1, s->tag, avail - 1) == 0) MORE(k);
        i = k + 1;
      } else if ((s->taglen == 0 || memcmp(b + k + 1, s->tag, s->taglen) == 0) &&
                 b[k + 1 + s->taglen] == '$') {
        s->state = ST_SQL;
        i = k + need;
      } else {
        i = k + 1;
      }
      break;
    }

    case ST_XC: {
      size_t k = i;
      while (k < n && b[k] != '*' && b[k] != '/') k++;
      if (k >= n) { i = n; break; }
      if (k + 1 >= n) {
        MORE(k);
        i = n;
        break;
      }
      if (b[k] == '/' && b[k + 1] == '*') {
        if (s->xcdepth < INT_MAX) s->xcdepth++;
        i = k + 2;
      } else if (b[k] == '*' && b[k + 1] == '/') {
        i = k + 2;
        if (--s->xcdepth == 0) s->state = ST_SQL;
      } else {
        i = k + 1;
      }
      break;
    }

    case ST_XLINE: {
      size_t k = i;
      while (k < n && b[k] != '\n' && b[k] != '\r') k++;
      if (k < n) s->state = ST_SQL;
      i = k;
      break;
    }
    }
  }
  if (eof && s->state == ST_XLINE) s->state = ST_SQL;
  return ss_ret(L, s, "eof", n, n, start);
}

static int ss_new(lua_State *L) {
  ss_Scanner *s = (ss_Scanner *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->tag = NULL;
  s->std_strings = 1;
  ss_resetall(s);
  luaL_setmetatable(L, SS_MT);
  if (lua_type(L, 1) == LUA_TTABLE) {
    if (lua_getfield(L, 1, "std_strings") != LUA_TNIL) s->std_strings = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return 1;
}

static int ss_gc(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  free(s->tag);
  s->tag = NULL;
  s->tagcap = s->taglen = 0;
  return 0;
}

static int ss_reset(lua_State *L) {
  ss_resetall(ss_check(L));
  return 0;
}

static int ss_set_std_strings(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  s->std_strings = lua_toboolean(L, 2);
  return 0;
}

/* sc:set_paren(n): the parenthesis depth (psql restores it after a skipped \if branch) */
static int ss_set_paren(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  lua_Integer d = luaL_checkinteger(L, 2);
  luaL_argcheck(L, d >= 0 && d <= INT_MAX, 2, "depth out of range");
  s->paren = (int)d;
  return 0;
}

static int ss_newline(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  if (s->state == ST_SQL) s->nl = 1;
  return 0;
}

static int ss_state(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, ss_state_names[s->state]);
  lua_setfield(L, -2, "state");
  lua_pushinteger(L, s->paren);
  lua_setfield(L, -2, "paren");
  lua_pushinteger(L, s->begin);
  lua_setfield(L, -2, "begin");
  lua_pushinteger(L, s->state == ST_XC ? s->xcdepth : 0);
  lua_setfield(L, -2, "comment");
  lua_pushboolean(L, s->started);
  lua_setfield(L, -2, "started");
  lua_pushboolean(L, s->std_strings);
  lua_setfield(L, -2, "std_strings");
  if (s->state == ST_XDOLQ) {
    lua_pushlstring(L, s->taglen ? s->tag : "", s->taglen);
    lua_setfield(L, -2, "tag");
  }
  return 1;
}

static int ss_tostring(lua_State *L) {
  ss_Scanner *s = ss_check(L);
  lua_pushfstring(L, "sqlscan (%s)", ss_state_names[s->state]);
  return 1;
}

/* Resolve optional i, j (1-based, inclusive) against a string of length n. */
static void ss_range(lua_State *L, int ai, size_t n, size_t *from, size_t *to) {
  lua_Integer i = luaL_optinteger(L, ai, 1);
  lua_Integer j = luaL_optinteger(L, ai + 1, (lua_Integer)n);
  if (i < 1) i = 1;
  if (j > (lua_Integer)n) j = (lua_Integer)n;
  if (i > j) { *from = *to = 0; return; }
  *from = (size_t)i - 1;
  *to = (size_t)j;          /* exclusive */
}

static int ss_newlines(lua_State *L) {
  size_t n, from, to;
  const char *b = luaL_checklstring(L, 1, &n);
  lua_Integer count = 0;
  const char *last = NULL, *p;
  ss_range(L, 2, n, &from, &to);
  p = b + from;
  while (p < b + to) {
    const char *q = (const char *)memchr(p, '\n', (size_t)(b + to - p));
    if (q == NULL) break;
    count++;
    last = q;
    p = q + 1;
  }
  lua_pushinteger(L, count);
  if (last) lua_pushinteger(L, (lua_Integer)(last - b) + 1);
  else lua_pushnil(L);
  return 2;
}

/* Is b[k..] (k at a line start) the end-of-data line `\.` + (\n | \r\n | end at eof)? */
static int ss_copy_end_at(const char *b, size_t n, size_t k, int eof, size_t *next) {
  if (k + 2 > n || b[k] != '\\' || b[k + 1] != '.') return 0;
  if (k + 2 == n) { if (!eof) return -1; *next = n; return 1; }
  if (b[k + 2] == '\n') { *next = k + 3; return 1; }
  if (b[k + 2] == '\r') {
    if (k + 3 == n) return eof ? 0 : -1;
    if (b[k + 3] == '\n') { *next = k + 4; return 1; }
  }
  return 0;
}

static int ss_copy_scan(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  lua_Integer ipos = luaL_optinteger(L, 2, 1);
  int eof = lua_toboolean(L, 3);
  size_t k, next = 0, safe;
  const char *last;
  int r;
  if (ipos < 1 || (lua_Unsigned)ipos > (lua_Unsigned)n + 1)
    return luaL_argerror(L, 2, "position out of range");
  k = (size_t)ipos - 1;
  /* candidates: the start, then every "\n\\." (one memmem pass, no per-line work) */
  r = ss_copy_end_at(b, n, k, eof, &next);
  while (r == 0) {
    const char *m = (const char *)memmem(b + k, n - k, "\n\\.", 3);
    if (m == NULL) break;
    k = (size_t)(m - b) + 1;
    r = ss_copy_end_at(b, n, k, eof, &next);
  }
  if (r == 1) {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, (lua_Integer)k);             /* data ends before the marker */
    lua_pushinteger(L, (lua_Integer)next + 1);
    return 3;
  }
  if (r == -1) {
    safe = k;                                       /* a marker may be completing */
  } else if (eof) {
    safe = n;
  } else {
    k = (size_t)ipos - 1;
    last = k < n ? (const char *)memrchr(b + k, '\n', n - k) : NULL;
    safe = last ? (size_t)(last - b) + 1 : k;       /* after the last complete line */
  }
  lua_pushboolean(L, 0);
  lua_pushinteger(L, (lua_Integer)safe);
  lua_pushinteger(L, (lua_Integer)safe + 1);
  return 3;
}

static const luaL_Reg ss_methods[] = {
  {"scan", ss_scan},
  {"reset", ss_reset},
  {"set_std_strings", ss_set_std_strings},
  {"set_paren", ss_set_paren},
  {"newline", ss_newline},
  {"state", ss_state},
  {NULL, NULL}
};

static const luaL_Reg ss_meta[] = {
  {"__gc", ss_gc},
  {"__close", ss_gc},
  {"__tostring", ss_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg ss_funcs[] = {
  {"new", ss_new},
  {"newlines", ss_newlines},
  {"copy_scan", ss_copy_scan},
  {NULL, NULL}
};

int luaopen_dbtool_core_sqlscan(lua_State *L) {
  luaL_newmetatable(L, SS_MT);
  luaL_setfuncs(L, ss_meta, 0);
  luaL_newlib(L, ss_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, ss_funcs);
  return 1;
}
