/*
 * lproc.c — module dbtool.core.proc: processes from argv arrays, never shell strings.
 *
 *   p = proc.spawn{argv = {...}, env = {K = "v"} | nil, cwd = "dir",
 *                  stdin = "inherit"|"null"|"pipe"|file|{path=, mode="r"},
 *                  stdout = "inherit"|"null"|"pipe"|file|{path=, mode="w"|"a"},
 *                  stderr = ... | "stdout", detach = bool}
 *     → process, or nil, msg, errno (127-style "not found" is errno ENOENT)
 *   p.pid, p.stdin, p.stdout, p.stderr (Lua file handles for "pipe")
 *   p:wait([timeout]) → "exited", code | "signaled", signo | nil, "timeout"
 *   p:kill([sig]), p:close()
 *   proc.exec(argv [, env]) → replaces the process; returns nil, msg, errno on failure
 *   proc.which(name [, path]) → absolute path or nil
 *
 * In the child every descriptor above 2 is closed (a daemon must not keep our pipes open),
 * signal dispositions and the mask are reset, and `detach` starts a new session.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lualib.h"

#include "dbtool.h"

#define PROC_MT "dbtool.process"

extern char **environ;

typedef struct proc_Process {
  pid_t pid;
  int done;       /* reaped */
  int status;     /* raw wait status once done */
  long maxrss;    /* peak resident set size in KiB (rusage of wait4) once done, else -1 */
  int fds[3];     /* parent ends of pipes not yet wrapped in a file handle, or -1 */
} proc_Process;

/* One redirect, resolved in the parent before fork. */
typedef struct proc_Redir {
  int fd;         /* descriptor to dup2 onto 0/1/2 in the child; -1 = inherit */
  int close_fd;   /* descriptor the parent must close after fork, or -1 */
  int pipe_parent;/* parent end of a pipe, or -1 */
  int to_stdout;  /* stderr = "stdout" */
} proc_Redir;

static proc_Process *proc_check(lua_State *L) {
  return (proc_Process *)luaL_checkudata(L, 1, PROC_MT);
}

static int proc_fail(lua_State *L, const char *what, int err) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

/* ---------------------------------------------------------------- PATH search */

static int proc_executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Push the absolute path of `name` found in `path` (a PATH value) or fail. */
static int proc_push_which(lua_State *L, const char *name, const char *path) {
  luaL_Buffer b;
  const char *p, *end;
  if (strchr(name, '/') != NULL) {
    if (!proc_executable(name))
      return 0;
    lua_pushstring(L, name);
    return 1;
  }
  if (path == NULL)
    path = "/usr/local/bin:/usr/bin:/bin";
  for (p = path;; p = end + 1) {
    end = strchr(p, ':');
    if (end == NULL)
      end = p + strlen(p);
    luaL_buffinit(L, &b);
    if (end == p)
      luaL_addchar(&b, '.');
    else
      luaL_addlstring(&b, p, (size_t)(end - p));
    luaL_addchar(&b, '/');
    luaL_addstring(&b, name);
    luaL_pushresult(&b);
    if (proc_executable(lua_tostring(L, -1)))
      return 1;
    lua_pop(L, 1);
    if (*end == '\0')
      return 0;
  }
}

static int proc_which(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *path = luaL_optstring(L, 2, getenv("PATH"));
  if (!proc_push_which(L, name, path))
    luaL_pushfail(L);
  return 1;
}

/* ---------------------------------------------------------------- argv / env arrays */

/* Build a NULL-terminated char* array owned by a new userdata (on the stack). The strings
 * stay referenced from the table at `idx`, which the caller keeps on the stack. */
static char **proc_argv(lua_State *L, int idx) {
  lua_Integer i, n;
  char **argv;
  luaL_checktype(L, idx, LUA_TTABLE);
  n = luaL_len(L, idx);
  if (n < 1)
    luaL_error(L, "argv must hold at least the program name");
  argv = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "argv[%d] is a %s, not a string", (int)i, luaL_typename(L, -1));
    argv[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  argv[n] = NULL;
  return argv;
}

/* env table {K = "v"} → "K=v" strings kept alive in a new table, plus the array userdata.
 * Pushes two values: the strings table and the array. */
static char **proc_envp(lua_State *L, int idx) {
  lua_Integer n = 0, i = 0;
  char **envp;
  int strings;
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  strings = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "env keys must be strings");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      lua_rawseti(L, strings, ++n);
    } else if (lua_type(L, -1) != LUA_TBOOLEAN) { /* false = unset */
      luaL_error(L, "env value of '%s' must be a string", lua_tostring(L, -2));
    }
    lua_pop(L, 1);
  }
  envp = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, strings, i);
    envp[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  envp[n] = NULL;
  return envp;
}

static const char *proc_env_path(char **envp) {
  char **e;
  if (envp == NULL)
    return getenv("PATH");
  for (e = envp; *e != NULL; e++)
    if (strncmp(*e, "PATH=", 5) == 0)
      return *e + 5;
  return NULL;
}

/* ---------------------------------------------------------------- redirects */

static void proc_redir_close(proc_Redir *r) {
  if (r->close_fd >= 0)
    close(r->close_fd);
  if (r->pipe_parent >= 0)
    close(r->pipe_parent);
  r->close_fd = r->pipe_parent = -1;
}

/* Raise for a malformed redirect option before anything is opened (nothing can leak). */
static void proc_redir_check(lua_State *L, const char *name, int target) {
  int t = lua_getfield(L, 1, name);
  if (t == LUA_TSTRING) {
    const char *v = lua_tostring(L, -1);
    if (strcmp(v, "inherit") != 0 && strcmp(v, "null") != 0 && strcmp(v, "pipe") != 0 &&
        !(target == 2 && strcmp(v, "stdout") == 0))
      luaL_error(L, "%s: unknown redirect '%s'", name, v);
  } else if (t == LUA_TTABLE) {
    if (lua_getfield(L, -1, "path") != LUA_TSTRING)
      luaL_error(L, "%s: a file redirect needs a path", name);
    lua_pop(L, 1);
  } else if (t != LUA_TNIL) {
    luaL_Stream *s = (luaL_Stream *)luaL_testudata(L, -1, LUA_FILEHANDLE);
    if (s == NULL)
      luaL_error(L, "%s: expected 'inherit', 'null', 'pipe', a file or {path=}", name);
    if (s->closef == NULL)
      luaL_error(L, "%s: attempt to use a closed file", name);
  }
  lua_pop(L, 1);
}

/* Resolve the redirect option `name` of the table at index 1 (already checked). Returns 0
 * or an errno, with a description pushed when it fails. */
static int proc_redir(lua_State *L, const char *name, int target, proc_Redir *r) {
  int t = lua_getfield(L, 1, name);
  r->fd = r->close_fd = r->pipe_parent = -1;
  r->to_stdout = 0;
  if (t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inherit") == 0)) {
    /* keep */
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "null") == 0) {
    r->fd = r->close_fd = open("/dev/null", (target == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    if (r->fd < 0) {
      lua_pushfstring(L, "/dev/null: %s", strerror(errno));
      return errno;
    }
  } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pipe") == 0) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      lua_pushfstring(L, "pipe: %s", strerror(errno));
      return errno;
    }
    if (target == 0) {
      r->fd = r->close_fd = p[0];
      r->pipe_parent = p[1];
    } else {
      r->fd = r->close_fd = p[1];
      r->pipe_parent = p[0];
    }
  } else if (t == LUA_TSTRING && target == 2 && strcmp(lua_tostring(L, -1), "stdout") == 0) {
    r->to_stdout = 1;
  } else if (t == LUA_TTABLE) {
    const char *path, *mode;
    int flags;
    lua_getfield(L, -1, "path");
    path = lua_tostring(L, -1);
    lua_getfield(L, -2, "mode");
    mode = lua_tostring(L, -1);
    if (mode == NULL)
      mode = target == 0 ? "r" : "w";
    flags = mode[0] == 'r' ? O_RDONLY : mode[0] == 'a' ? O_WRONLY | O_CREAT | O_APPEND
                                                       : O_WRONLY | O_CREAT | O_TRUNC;
    r->fd = r->close_fd = open(path, flags | O_CLOEXEC, 0666);
    if (r->fd < 0) {
      int err = errno;
      lua_pushfstring(L, "%s: %s", path, strerror(err));
      return err;
    }
    lua_pop(L, 2);
  } else {
    luaL_Stream *s = (luaL_Stream *)lua_touserdata(L, -1);
    fflush(s->f);
    r->fd = fileno(s->f);
  }
  lua_pop(L, 1);
  return 0;
}

/* ---------------------------------------------------------------- file handles */

static int proc_fclose(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  int res = fclose(p->f);
  return luaL_fileresult(L, (res == 0), NULL);
}

/* Wrap the parent end `*fdp` in a Lua file handle stored as field `name` of the process
 * at `pidx`. The descriptor is owned by the process userdata until fdopen succeeds. */
static void proc_wrap(lua_State *L, int pidx, int *fdp, const char *mode, const char *name) {
  luaL_Stream *s = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  s->closef = NULL; /* closed state until the FILE exists */
  luaL_setmetatable(L, LUA_FILEHANDLE);
  s->f = fdopen(*fdp, mode);
  if (s->f == NULL)
    luaL_error(L, "fdopen: %s", strerror(errno));
  *fdp = -1;
  s->closef = proc_fclose;
  lua_getiuservalue(L, pidx, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------- spawn */

static void proc_child_closefds(int keep) {
  /* every descriptor above 2 is closed, except the exec-error pipe (close-on-exec) */
  if (keep > 3)
    close_range(3, (unsigned)keep - 1, 0);
  if (close_range((unsigned)keep + 1, ~0U, 0) != 0) {
    int fd;
    for (fd = 3; fd < 65536; fd++)
      if (fd != keep)
        close(fd);
  }
}

static void proc_child_dup(int fd, int target) {
  if (fd < 0)
    return;
  if (fd == target)
    fcntl(fd, F_SETFD, 0); /* keep it across exec */
  else
    dup2(fd, target);
}

/* In the child after fork: only async-signal-safe calls from here on. */
static void proc_child(const char *file, char **argv, char **envp, const char *cwd,
                       int detach, proc_Redir *r, int errfd) {
  int err, fd0 = r[0].fd, fd1 = r[1].fd, fd2 = r[2].fd;
  sigset_t none;
  int s;
  for (s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      signal(s, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (detach)
    setsid();
  /* move sources out of 0..2 first so that dup2 order cannot clobber them */
  if (fd0 >= 0 && fd0 <= 2 && fd0 != 0) fd0 = fcntl(fd0, F_DUPFD_CLOEXEC, 3);
  if (fd1 >= 0 && fd1 <= 2 && fd1 != 1) fd1 = fcntl(fd1, F_DUPFD_CLOEXEC, 3);
  if (fd2 >= 0 && fd2 <= 2 && fd2 != 2) fd2 = fcntl(fd2, F_DUPFD_CLOEXEC, 3);
  proc_child_dup(fd0, 0);
  proc_child_dup(fd1, 1);
  if (r[2].to_stdout)
    dup2(1, 2);
  else
    proc_child_dup(fd2, 2);
  proc_child_closefds(errfd);
  if (cwd != NULL && chdir(cwd) != 0)
    goto fail;
  execve(file, argv, envp != NULL ? envp : environ);
fail:
  err = errno;
  if (write(errfd, &err, sizeof err) < 0) { /* nothing more we can do */ }
  _exit(127);
}

static int proc_spawn(lua_State *L) {
  char **argv, **envp = NULL;
  const char *file, *cwd;
  proc_Process *p;
  proc_Redir r[3];
  int detach, errpipe[2], pidx, i, err, n;
  pid_t pid;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "argv");                    /* 2 */
  argv = proc_argv(L, 2);                        /* 3 */
  if (lua_getfield(L, 1, "env") != LUA_TNIL)     /* 4 */
    envp = proc_envp(L, 4);                      /* 5, 6 */
  lua_getfield(L, 1, "cwd");
  cwd = lua_tostring(L, -1);
  lua_getfield(L, 1, "detach");
  detach = lua_toboolean(L, -1);
  if (!proc_push_which(L, argv[0], proc_env_path(envp))) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: command not found", argv[0]);
    lua_pushinteger(L, ENOENT);
    return 3;
  }
  file = lua_tostring(L, -1);
  /* the process object owns pipe ends from here on */
  p = (proc_Process *)lua_newuserdatauv(L, sizeof *p, 1);
  p->pid = -1;
  p->done = 0;
  p->status = 0;
  p->maxrss = -1;
  p->fds[0] = p->fds[1] = p->fds[2] = -1;
  luaL_setmetatable(L, PROC_MT);
  pidx = lua_gettop(L);
  lua_newtable(L);
  lua_setiuservalue(L, pidx, 1);
  proc_redir_check(L, "stdin", 0);
  proc_redir_check(L, "stdout", 1);
  proc_redir_check(L, "stderr", 2);
  for (i = 0; i < 3; i++) {
    static const char *const names[3] = {"stdin", "stdout", "stderr"};
    err = proc_redir(L, names[i], i, &r[i]);
    if (err != 0) {
      while (i-- > 0)
        proc_redir_close(&r[i]);
      luaL_pushfail(L);
      lua_insert(L, -2);
      lua_pushinteger(L, err);
      return 3;
    }
    p->fds[i] = r[i].pipe_parent;
  }
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    err = errno;
    for (i = 0; i < 3; i++) {
      if (r[i].close_fd >= 0)
        close(r[i].close_fd);
    }
    return proc_fail(L, "pipe", err);
  }
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(errpipe[0]);
    proc_child(file, argv, envp, cwd, detach, r, errpipe[1]);
  }
  err = errno;
  close(errpipe[1]);
  for (i = 0; i < 3; i++)
    if (r[i].close_fd >= 0)
      close(r[i].close_fd);
  if (pid < 0) {
    close(errpipe[0]);
    return proc_fail(L, "fork", err);
  }
  p->pid = pid;
  /* exec error? the pipe closes on a successful exec */
  do
    n = (int)read(errpipe[0], &err, sizeof err);
  while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == (int)sizeof err) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    p->done = 1;
    p->status = st;
    for (i = 0; i < 3; i++)
      if (p->fds[i] >= 0) {
        close(p->fds[i]);
        p->fds[i] = -1;
      }
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", argv[0], strerror(err));
    lua_pushinteger(L, err);
    return 3;
  }
  lua_pushvalue(L, pidx);
  if (p->fds[0] >= 0) proc_wrap(L, pidx, &p->fds[0], "w", "stdin");
  if (p->fds[1] >= 0) proc_wrap(L, pidx, &p->fds[1], "r", "stdout");
  if (p->fds[2] >= 0) proc_wrap(L, pidx, &p->fds[2], "r", "stderr");
  return 1;
}

/* ---------------------------------------------------------------- methods */

static int proc_push_status(lua_State *L, int st) {
  if (WIFEXITED(st)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    lua_pushliteral(L, "signaled");
    lua_pushinteger(L, WTERMSIG(st));
  } else {
    lua_pushliteral(L, "unknown");
    lua_pushinteger(L, st);
  }
  return 2;
}

static void proc_sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static double proc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int proc_m_wait(lua_State *L) {
  proc_Process *p = proc_check(L);
  int timed = !lua_isnoneornil(L, 2);
  double timeout = timed ? luaL_checknumber(L, 2) : 0.0;
  double deadline = proc_now() + timeout;
  long nap = 1;
  if (p->pid < 0)
    return luaL_error(L, "process was never started");
  while (!p->done) {
    int st;
    struct rusage ru;
    pid_t r = wait4(p->pid, &st, timed ? WNOHANG : 0, &ru);
    if (r == p->pid) {
      p->done = 1;
      p->status = st;
      p->maxrss = ru.ru_maxrss;
      break;
    }
    if (r < 0 && errno != EINTR)
      return proc_fail(L, "waitpid", errno);
    dbt_check_interrupt(L);
    if (timed) {
      if (proc_now() >= deadline) {
        luaL_pushfail(L);
        lua_pushliteral(L, "timeout");
        return 2;
      }
      proc_sleep_ms(nap);
      if (nap < 20)
        nap *= 2;
    }
  }
  return proc_push_status(L, p->status);
}

static const struct {
  const char *name;
  int signo;
} proc_signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
  {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
  {"CONT", SIGCONT}, {NULL, 0}
};

static int proc_checksignal(lua_State *L, int idx) {
  int i;
  const char *name;
  if (lua_isnoneornil(L, idx))
    return SIGTERM;
  if (lua_type(L, idx) == LUA_TNUMBER)
    return (int)luaL_checkinteger(L, idx);
  name = luaL_checkstring(L, idx);
  if (strncmp(name, "SIG", 3) == 0)
    name += 3;
  for (i = 0; proc_signals[i].name != NULL; i++)
    if (strcmp(proc_signals[i].name, name) == 0)
      return proc_signals[i].signo;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", name));
}

static int proc_m_kill(lua_State *L) {
  proc_Process *p = proc_check(L);
  int sig = proc_checksignal(L, 2);
  if (p->pid < 0 || p->done)
    return proc_fail(L, "kill", ESRCH);
  if (kill(p->pid, sig) != 0)
    return proc_fail(L, "kill", errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_m_index(lua_State *L) {
  proc_Process *p = proc_check(L);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "pid") == 0) {
    lua_pushinteger(L, p->pid);
    return 1;
  }
  if (strcmp(key, "done") == 0) {
    lua_pushboolean(L, p->done);
    return 1;
  }
  if (strcmp(key, "maxrss") == 0) { /* KiB; nil until reaped by wait */
    if (p->maxrss < 0)
      lua_pushnil(L);
    else
      lua_pushinteger(L, p->maxrss);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  if (lua_getfield(L, -1, key) != LUA_TNIL)
    return 1;
  luaL_getmetatable(L, PROC_MT);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, key);
  return 1;
}

/* Close our ends of the pipes (the process keeps running). Idempotent. */
static int proc_m_close(lua_State *L) {
  proc_Process *p = proc_check(L);
  int i;
  for (i = 0; i < 3; i++)
    if (p->fds[i] >= 0) {
      close(p->fds[i]);
      p->fds[i] = -1;
    }
  return 0;
}

static int proc_m_tostring(lua_State *L) {
  proc_Process *p = proc_check(L);
  lua_pushfstring(L, "process (pid %d%s)", (int)p->pid, p->done ? ", done" : "");
  return 1;
}

/* ---------------------------------------------------------------- exec in place */

static int proc_exec(lua_State *L) {
  char **argv, **envp = NULL;
  const char *file;
  lua_settop(L, 2);
  argv = proc_argv(L, 1);                         /* 3 */
  if (!lua_isnil(L, 2))
    envp = proc_envp(L, 2);                       /* 4, 5 */
  if (!proc_push_which(L, argv[0], proc_env_path(envp))) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: command not found", argv[0]);
    lua_pushinteger(L, ENOENT);
    return 3;
  }
  file = lua_tostring(L, -1);
  fflush(NULL);
  signal(SIGPIPE, SIG_DFL);
  execve(file, argv, envp != NULL ? envp : environ);
  signal(SIGPIPE, SIG_IGN);
  return proc_fail(L, argv[0], errno);
}

static const luaL_Reg proc_methods[] = {
  {"wait", proc_m_wait},
  {"kill", proc_m_kill},
  {"close", proc_m_close},
  {NULL, NULL}
};

static const luaL_Reg proc_meta[] = {
  {"__index", proc_m_index},
  {"__gc", proc_m_close},
  {"__close", proc_m_close},
  {"__tostring", proc_m_tostring},
  {NULL, NULL}
};

static const luaL_Reg proc_funcs[] = {
  {"spawn", proc_spawn},
  {"exec", proc_exec},
  {"which", proc_which},
  {NULL, NULL}
};

int luaopen_dbtool_core_proc(lua_State *L) {
  luaL_newmetatable(L, PROC_MT);
  luaL_setfuncs(L, proc_meta, 0);
  luaL_newlib(L, proc_methods);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
  luaL_newlib(L, proc_funcs);
  return 1;
}
