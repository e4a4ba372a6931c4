/*
 * lfs.c — module dbtool.core.fs: directory trees, in process.
 *
 *   fs.copytree(src, dst) → true | nil, msg, errno
 *     Copies the tree `src` to `dst` (which must not exist): directories, regular files
 *     and symbolic links, with their permission bits; owner and times are not kept (the
 *     copy belongs to us). File data goes through copy_file_range (in the kernel, no user
 *     buffer; pread/pwrite where the kernel cannot). Sockets and FIFOs are skipped. On
 *     failure `dst` is left partial: the caller removes it.
 *   fs.rmtree(path) → true | nil, msg, errno
 *     Removes a tree without following symbolic links; a missing path is not an error.
 *   fs.names(dir) → names | nil, msg, errno
 *     The names in directory `dir` (without "." and ".."), sorted in byte order (strcmp).
 *   fs.stat_keys(paths, [before], [dir], [suffix]) → keys, recent | nil, msg, errno
 *     stat(2) of every path of the array `paths` (relative to the directory `dir` when
 *     given: shorter lookups, and one directory for the whole batch; each followed by
 *     `suffix` when given, e.g. "/up.sql" after directory names): keys[i] is the string
 *     "dev:ino:size:mtime_s.ns:ctime_s.ns" of a regular file (symbolic links followed),
 *     false for anything else (missing, not a regular file, not reachable). With `before`
 *     (seconds since the epoch), recent[i] is true for each file whose mtime or ctime is
 *     not older than `before`. One call for a list: what changes when a file's content
 *     changes, for 10,000 files without 10,000 Lua tables (the migration checksum cache).
 *
 * Replacing `cp -a` (a process, and per file: xattrs, ACLs, owner, times) matters where a
 * fresh cluster is a copy of a cached initdb output: ~1,300 small files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "dbtool.h"

#define FS_MAX_DEPTH 64

/* Where an operation failed: the path (relative to the tree's root) and errno. */
typedef struct fs_Walk {
  char path[PATH_MAX];
  size_t len;   /* length of path */
  int err;      /* errno of the failure, 0 = none */
  const char *what;
} fs_Walk;

static int fs_fail(fs_Walk *w, const char *what, int err) {
  w->what = what;
  w->err = err != 0 ? err : EIO;
  return -1;
}

/* Append "/name" to w->path; returns the old length, or -1 if too long. */
static long fs_push(fs_Walk *w, const char *name) {
  size_t old = w->len, n = strlen(name);
  if (old + 1 + n >= sizeof w->path)
    return -1;
  w->path[old] = '/';
  memcpy(w->path + old + 1, name, n + 1);
  w->len = old + 1 + n;
  return (long)old;
}

static void fs_pop(fs_Walk *w, long old) {
  w->len = (size_t)old;
  w->path[old] = '\0';
}

/* Copy [off, off + len) of in to out at the same offset. */
static int fs_copy_range(int in, int out, off_t off, off_t len) {
  char buf[65536];
  int fallback = 0;
  while (len > 0) {
    ssize_t n;
    if (!fallback) {
      loff_t ioff = off, ooff = off;
      n = copy_file_range(in, &ioff, out, &ooff, (size_t)len, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        fallback = 1;
        continue;
      }
    } else {
      size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
      n = pread(in, buf, want, off);
      if (n > 0) {
        ssize_t done = 0;
        while (done < n) {
          ssize_t m = pwrite(out, buf + done, (size_t)(n - done), off + done);
          if (m < 0) {
            if (errno == EINTR) continue;
            return -1;
          }
          done += m;
        }
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0)
      break; /* the file shrank under us: keep what we have */
    off += n;
    len -= n;
  }
  return 0;
}

static int fs_copy_file(fs_Walk *w, int sdir, int ddir, const char *name, const struct stat *st) {
  int in, out, rc = 0;
  in = openat(sdir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0)
    return fs_fail(w, "open", errno);
  out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
               st->st_mode & 07777);
  if (out < 0) {
    rc = fs_fail(w, "create", errno);
    close(in);
    return rc;
  }
  if (st->st_size > 0 && fs_copy_range(in, out, 0, st->st_size) != 0)
    rc = fs_fail(w, "copy", errno);
  /* the umask may have narrowed the mode given to openat */
  if (rc == 0 && fchmod(out, st->st_mode & 07777) != 0)
    rc = fs_fail(w, "chmod", errno);
  if (close(out) != 0 && rc == 0)
    rc = fs_fail(w, "close", errno);
  close(in);
  return rc;
}

static int fs_copy_link(fs_Walk *w, int sdir, int ddir, const char *name) {
  char target[PATH_MAX];
  ssize_t n = readlinkat(sdir, name, target, sizeof target - 1);
  if (n < 0)
    return fs_fail(w, "readlink", errno);
  target[n] = '\0';
  if (symlinkat(target, ddir, name) != 0)
    return fs_fail(w, "symlink", errno);
  return 0;
}

typedef int (*fs_Visit)(fs_Walk *w, int dirfd, const char *name, void *ud, int depth);

/* Call visit(w, fd, name, ud, depth) for each entry of directory fd (owned: closed here),
 * with the entry's path in w->path; stops at the first failure. */
static int fs_each(fs_Walk *w, int fd, int depth, fs_Visit visit, void *ud) {
  DIR *d;
  struct dirent *e;
  int rc = 0;
  if (depth > FS_MAX_DEPTH) {
    close(fd);
    return fs_fail(w, "descend (too deep)", ELOOP);
  }
  d = fdopendir(fd);
  if (d == NULL) {
    rc = fs_fail(w, "opendir", errno);
    close(fd);
    return rc;
  }
  while (rc == 0) {
    long old;
    errno = 0;
    e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        rc = fs_fail(w, "readdir", errno);
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    old = fs_push(w, e->d_name);
    if (old < 0) {
      rc = fs_fail(w, "walk (path too long)", ENAMETOOLONG);
      break;
    }
    rc = visit(w, fd, e->d_name, ud, depth);
    if (rc == 0)
      fs_pop(w, old);
  }
  closedir(d); /* closes fd */
  return rc;
}

/* Copy entry `name` of directory sdir into directory *(int *)ud. */
static int fs_copy_entry(fs_Walk *w, int sdir, const char *name, void *ud, int depth) {
  int ddir = *(int *)ud, rc;
  struct stat st;
  if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? 0 : fs_fail(w, "stat", errno); /* gone meanwhile: fine */
  if (S_ISREG(st.st_mode))
    return fs_copy_file(w, sdir, ddir, name, &st);
  if (S_ISLNK(st.st_mode))
    return fs_copy_link(w, sdir, ddir, name);
  if (S_ISDIR(st.st_mode)) {
    int s2, d2;
    if (mkdirat(ddir, name, 0700) != 0)
      return fs_fail(w, "mkdir", errno);
    s2 = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (s2 < 0)
      return fs_fail(w, "open", errno);
    d2 = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (d2 < 0) {
      rc = fs_fail(w, "open copy of", errno);
      close(s2);
      return rc;
    }
    rc = fs_each(w, s2, depth + 1, fs_copy_entry, &d2);
    close(d2);
    if (rc == 0 && fchmodat(ddir, name, st.st_mode & 07777, 0) != 0)
      rc = fs_fail(w, "chmod", errno);
    return rc;
  }
  return 0; /* sockets, FIFOs, devices: not part of a copy */
}

static int fs_result(lua_State *L, fs_Walk *w, const char *root) {
  if (w->err == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_pushfail(L);
  lua_pushfstring(L, "%s %s%s: %s", w->what, root, w->path, strerror(w->err));
  lua_pushinteger(L, w->err);
  return 3;
}

static int fs_copytree(lua_State *L) {
  const char *src = luaL_checkstring(L, 1);
  const char *dst = luaL_checkstring(L, 2);
  fs_Walk w;
  struct stat st;
  int sdir, ddir;
  w.path[0] = '\0';
  w.len = 0;
  w.err = 0;
  w.what = "";
  sdir = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sdir < 0 || fstat(sdir, &st) != 0) {
    fs_fail(&w, "open", errno);
    if (sdir >= 0)
      close(sdir);
    return fs_result(L, &w, src);
  }
  if (mkdir(dst, 0700) != 0) {
    fs_fail(&w, "mkdir", errno);
    close(sdir);
    return fs_result(L, &w, dst);
  }
  ddir = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ddir < 0) {
    fs_fail(&w, "open", errno);
    close(sdir);
    return fs_result(L, &w, dst);
  }
  if (fs_each(&w, sdir, 0, fs_copy_entry, &ddir) == 0 && chmod(dst, st.st_mode & 07777) != 0)
    fs_fail(&w, "chmod", errno);
  close(ddir);
  return fs_result(L, &w, src);
}

/* Remove entry `name` of directory dir (a directory: its entries first). */
static int fs_rm_entry(fs_Walk *w, int dir, const char *name, void *ud, int depth) {
  int sub, rc;
  if (unlinkat(dir, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return fs_fail(w, "unlink", errno);
  sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (sub < 0)
    return fs_fail(w, "open", errno);
  rc = fs_each(w, sub, depth + 1, fs_rm_entry, ud);
  if (rc == 0 && unlinkat(dir, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    rc = fs_fail(w, "rmdir", errno);
  return rc;
}

static int fs_rmtree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  fs_Walk w;
  int fd;
  w.path[0] = '\0';
  w.len = 0;
  w.err = 0;
  w.what = "";
  if (unlink(path) == 0 || errno == ENOENT) {
    lua_pushboolean(L, 1);
    return 1;
  }
  fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    fs_fail(&w, "open", errno);
    return fs_result(L, &w, path);
  }
  if (fs_each(&w, fd, 0, fs_rm_entry, NULL) == 0 && rmdir(path) != 0 && errno != ENOENT)
    fs_fail(&w, "rmdir", errno);
  return fs_result(L, &w, path);
}

static int fs_strcmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names are collected in a userdata-owned buffer (freed by __gc if a Lua error unwinds). */
typedef struct fs_Names {
  char **v;
  size_t n, cap;
} fs_Names;

static int fs_names_gc(lua_State *L) {
  fs_Names *b = (fs_Names *)luaL_checkudata(L, 1, "dbtool.fs.names");
  size_t i;
  for (i = 0; i < b->n; i++)
    free(b->v[i]);
  free(b->v);
  b->v = NULL;
  b->n = b->cap = 0;
  return 0;
}

static int fs_names(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  fs_Names *b = (fs_Names *)lua_newuserdatauv(L, sizeof(fs_Names), 0);
  DIR *d;
  struct dirent *e;
  size_t i;
  b->v = NULL;
  b->n = b->cap = 0;
  luaL_setmetatable(L, "dbtool.fs.names");
  d = opendir(path);
  if (d == NULL) {
    int err = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    lua_pushinteger(L, err);
    return 3;
  }
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
      continue;
    if (b->n == b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 256;
      char **v = (char **)realloc(b->v, cap * sizeof *v);
      if (v == NULL) {
        closedir(d);
        return luaL_error(L, "fs.names: out of memory");
      }
      b->v = v;
      b->cap = cap;
    }
    b->v[b->n] = strdup(e->d_name);
    if (b->v[b->n] == NULL) {
      closedir(d);
      return luaL_error(L, "fs.names: out of memory");
    }
    b->n++;
  }
  closedir(d);
  qsort(b->v, b->n, sizeof *b->v, fs_strcmp);
  lua_createtable(L, b->n > INT_MAX ? INT_MAX : (int)b->n, 0);
  for (i = 0; i < b->n; i++) {
    lua_pushstring(L, b->v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int fs_stat_keys(lua_State *L) {
  lua_Integer i, n;
  int with_before = !lua_isnoneornil(L, 2);
  lua_Number before = with_before ? luaL_checknumber(L, 2) : 0;
  const char *dir = luaL_optstring(L, 3, NULL);
  const char *suffix = luaL_optstring(L, 4, NULL);
  char full[PATH_MAX];
  int dfd = AT_FDCWD;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_len(L, 1);
  lua_settop(L, 4); /* the suffix stays on the stack while it is used */
  if (dir != NULL) {
    int *ud = (int *)lua_newuserdatauv(L, sizeof(int), 0); /* 5: the fd, closed by __gc */
    *ud = -1;
    luaL_setmetatable(L, "dbtool.fs.dirfd");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      int e = errno;
      luaL_pushfail(L);
      lua_pushfstring(L, "%s: %s", dir, strerror(e));
      lua_pushinteger(L, e);
      return 3;
    }
    *ud = dfd;
  } else {
    lua_pushnil(L); /* 5 */
  }
  lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0); /* 6: keys */
  lua_newtable(L);                                       /* 7: recent */
  for (i = 1; i <= n; i++) {
    struct stat st;
    const char *path;
    lua_rawgeti(L, 1, i);
    path = lua_tostring(L, -1);
    if (path == NULL)
      return luaL_error(L, "stat_keys: paths[%d] is not a string", (int)i);
    if (suffix != NULL) {
      if (snprintf(full, sizeof full, "%s%s", path, suffix) >= (int)sizeof full) {
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        lua_rawseti(L, 6, i);
        continue;
      }
      path = full;
    }
    if (fstatat(dfd, path, &st, 0) != 0 || !S_ISREG(st.st_mode)) {
      lua_pop(L, 1);
      lua_pushboolean(L, 0);
    } else {
      char key[160];
      lua_pop(L, 1);
      snprintf(key, sizeof key, "%llx:%llx:%lld:%lld.%09ld:%lld.%09ld",
               (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
               (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec,
               (long long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec);
      lua_pushstring(L, key);
      if (with_before) {
        lua_Number m = (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9;
        lua_Number c = (lua_Number)st.st_ctim.tv_sec + (lua_Number)st.st_ctim.tv_nsec / 1e9;
        if (m >= before || c >= before) {
          lua_pushboolean(L, 1);
          lua_rawseti(L, 7, i);
        }
      }
    }
    lua_rawseti(L, 6, i);
  }
  if (dfd != AT_FDCWD) {
    close(dfd);
    *(int *)lua_touserdata(L, 5) = -1;
  }
  return 2;
}

static int fs_dirfd_gc(lua_State *L) {
  int *ud = (int *)luaL_checkudata(L, 1, "dbtool.fs.dirfd");
  if (*ud >= 0) {
    close(*ud);
    *ud = -1;
  }
  return 0;
}

static const luaL_Reg fs_funcs[] = {
  {"copytree", fs_copytree},
  {"rmtree", fs_rmtree},
  {"stat_keys", fs_stat_keys},
  {"names", fs_names},
  {NULL, NULL}
};

int luaopen_dbtool_core_fs(lua_State *L) {
  luaL_newmetatable(L, "dbtool.fs.names");
  lua_pushcfunction(L, fs_names_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, "dbtool.fs.dirfd");
  lua_pushcfunction(L, fs_dirfd_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, fs_funcs);
  return 1;
}
