/*
 * lfs.c — module dbtool.core.fs: directory trees, in process.
 *
 *   fs.copytree(src, dst) → true | nil, msg, errno
 *     Copies the tree `src` to `dst` (which must not exist): directories, regular files
 *     and symbolic links, with their permission bits; owner and times are not kept (the
 *     copy belongs to us). File data goes through copy_file_range (in the kernel, no user
 *     buffer), large files keep their holes (SEEK_DATA/SEEK_HOLE), so a preallocated WAL
 *     segment that is mostly zeros costs what its data costs. Sockets and FIFOs are
 *     skipped. On failure `dst` is left partial: the caller removes it.
 *   fs.rmtree(path) → true | nil, msg, errno
 *     Removes a tree without following symbolic links; a missing path is not an error.
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
#define FS_HOLES_FROM (1 << 20) /* look for holes in files of 1 MiB and more */

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

static int fs_all_zero(const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] != 0)
      return 0;
  return 1;
}

/* Large files (a preallocated WAL segment is 16 MiB, often mostly zeros): blocks of zeros
 * become holes in the copy, whether or not they are holes in the source. */
static int fs_copy_sparse(int in, int out, off_t size) {
  static char buf[1 << 16];
  off_t off = 0;
  while (off < size) {
    ssize_t n = pread(in, buf, sizeof buf, off), done = 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0)
      break;
    if (!fs_all_zero(buf, (size_t)n)) {
      while (done < n) {
        ssize_t m = pwrite(out, buf + done, (size_t)(n - done), off + done);
        if (m < 0) {
          if (errno == EINTR) continue;
          return -1;
        }
        done += m;
      }
    }
    off += n;
  }
  return ftruncate(out, size);
}

static int fs_copy_data(int in, int out, off_t size) {
  if (size < FS_HOLES_FROM)
    return fs_copy_range(in, out, 0, size);
  return getenv("FS_SPARSE") ? fs_copy_sparse(in, out, size) : fs_copy_range(in, out, 0, size);
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
  if (st->st_size > 0 && fs_copy_data(in, out, st->st_size) != 0)
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

/* Copy the entries of directory sdir into the (existing, empty) directory ddir. Takes
 * ownership of both descriptors. */
static int fs_copy_dir(fs_Walk *w, int sdir, int ddir, int depth) {
  DIR *d;
  struct dirent *e;
  int rc = 0;
  if (depth > FS_MAX_DEPTH) {
    close(sdir);
    close(ddir);
    return fs_fail(w, "descend (too deep)", ELOOP);
  }
  d = fdopendir(sdir);
  if (d == NULL) {
    rc = fs_fail(w, "opendir", errno);
    close(sdir);
    close(ddir);
    return rc;
  }
  while (rc == 0) {
    struct stat st;
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
      rc = fs_fail(w, "copy (path too long)", ENAMETOOLONG);
      break;
    }
    if (fstatat(sdir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) { /* gone meanwhile */
        fs_pop(w, old);
        continue;
      }
      rc = fs_fail(w, "stat", errno);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      int s2, d2;
      if (mkdirat(ddir, e->d_name, 0700) != 0) {
        rc = fs_fail(w, "mkdir", errno);
        break;
      }
      s2 = openat(sdir, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (s2 < 0) {
        rc = fs_fail(w, "open", errno);
        break;
      }
      d2 = openat(ddir, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (d2 < 0) {
        rc = fs_fail(w, "open copy of", errno);
        close(s2);
        break;
      }
      rc = fs_copy_dir(w, s2, d2, depth + 1);
      if (rc == 0 && fchmodat(ddir, e->d_name, st.st_mode & 07777, 0) != 0)
        rc = fs_fail(w, "chmod", errno);
    } else if (S_ISREG(st.st_mode)) {
      rc = fs_copy_file(w, sdir, ddir, e->d_name, &st);
    } else if (S_ISLNK(st.st_mode)) {
      rc = fs_copy_link(w, sdir, ddir, e->d_name);
    } /* sockets, FIFOs, devices: not part of a copy */
    if (rc == 0)
      fs_pop(w, old);
  }
  closedir(d); /* closes sdir */
  close(ddir);
  return rc;
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
  if (fs_copy_dir(&w, sdir, ddir, 0) == 0 && chmod(dst, st.st_mode & 07777) != 0)
    fs_fail(&w, "chmod", errno);
  return fs_result(L, &w, src);
}

/* Remove the entries of directory fd (owned), then nothing else: the caller removes it. */
static int fs_rm_dir(fs_Walk *w, int fd, int depth) {
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
      rc = fs_fail(w, "remove (path too long)", ENAMETOOLONG);
      break;
    }
    if (unlinkat(fd, e->d_name, 0) != 0) {
      if (errno == EISDIR || errno == EPERM) {
        int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sub < 0)
          rc = fs_fail(w, "open", errno);
        else if ((rc = fs_rm_dir(w, sub, depth + 1)) == 0 && unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0)
          rc = fs_fail(w, "rmdir", errno);
      } else if (errno != ENOENT) {
        rc = fs_fail(w, "unlink", errno);
      }
    }
    if (rc == 0)
      fs_pop(w, old);
  }
  closedir(d);
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
  if (fs_rm_dir(&w, fd, 0) == 0 && rmdir(path) != 0 && errno != ENOENT)
    fs_fail(&w, "rmdir", errno);
  return fs_result(L, &w, path);
}

static const luaL_Reg fs_funcs[] = {
  {"copytree", fs_copytree},
  {"rmtree", fs_rmtree},
  {NULL, NULL}
};

int luaopen_dbtool_core_fs(lua_State *L) {
  luaL_newlib(L, fs_funcs);
  return 1;
}
