/*
 * lsodium.c — module dbtool.core.sodium: hashing, random bytes, sealed boxes, secretbox.
 *
 *   na.sha256(data) → lowercase hex
 *   h = na.sha256_init(); h:update(s) → h; h:final(["hex"|"raw"]) → hex (or 32 raw bytes);
 *     update/final after final raise
 *   na.sha256_file(path) → hex, or nil, "path: strerror", errno (reads 64 KiB at a time)
 *   na.random(n) → n random bytes
 *   na.to_hex(s), na.from_hex(s) → bytes or nil, msg
 *   na.to_base64(s), na.from_base64(s) → bytes or nil, msg (original alphabet, padded)
 *   na.compare(a, b) → boolean, constant time; different lengths → false
 *
 * Keys: secret key material lives only in userdata (metatable dbtool.sodium.key) holding
 * memory from sodium_malloc (guard pages, mlock'd where allowed); __gc, __close and
 * key:close() are the same idempotent wipe (sodium_free zeroes it). Kinds: "box" (X25519
 * secret key for sealed boxes) and "secretbox" (XSalsa20-Poly1305 key); both 32 bytes.
 *   na.key(bytes, kind) → key, or nil, msg when bytes has the wrong length
 *   key:kind(), key:export() → the raw bytes as a Lua string: the one way out, meant for
 *     writing a key file. Lua strings cannot be wiped: keep them short-lived.
 *   pk, sk = na.box_keypair()   (pk: 32-byte string, sk: "box" key)
 *   na.box_public_key(sk) → pk
 *   na.seal(msg, pk) → ciphertext (crypto_box_seal: anonymous sender, 48 bytes overhead)
 *   na.seal_open(ct, pk, sk) → plaintext, or nil, "decryption failed"
 *   k = na.secretbox_keygen()
 *   na.secretbox(msg, k) → nonce .. ciphertext (24 + 16 bytes overhead, random nonce)
 *   na.secretbox_open(ct, k) → plaintext, or nil, "decryption failed"
 * Decrypted plaintext is returned as an ordinary Lua string (Lua cannot zero those); the C
 * buffer it was decrypted into is zeroed before it is released, on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "dbtool.h"

#define NA_KEY_MT     "dbtool.sodium.key"
#define NA_SHA256_MT  "dbtool.sodium.sha256"
#define NA_SCRATCH_MT "dbtool.sodium.scratch"
#define NA_CHUNK      (64 * 1024)

enum { NA_KIND_BOX, NA_KIND_SECRETBOX };
static const char *const na_kinds[] = {"box", "secretbox", NULL};

typedef struct na_Key {
  unsigned char *bytes;   /* sodium_malloc'd; NULL once wiped */
  size_t len;
  int kind;
} na_Key;

typedef struct na_Sha256 {
  crypto_hash_sha256_state st;
  int done;
} na_Sha256;

/* ---------------------------------------------------------------- scratch buffers */

/* A buffer for plaintext owned by a userdata whose __gc zeroes it: whatever unwinds, the
 * plaintext does not outlive the collection of the buffer. */
static int na_scratch_gc(lua_State *L) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL)
    sodium_memzero(p, lua_rawlen(L, 1));
  return 0;
}

static unsigned char *na_scratch(lua_State *L, size_t len) {
  unsigned char *p = (unsigned char *)lua_newuserdatauv(L, len > 0 ? len : 1, 0);
  luaL_setmetatable(L, NA_SCRATCH_MT);
  return p;
}

/* ---------------------------------------------------------------- hex */

static void na_push_hex(lua_State *L, const unsigned char *bin, size_t len) {
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len * 2 + 1);
  sodium_bin2hex(out, len * 2 + 1, bin, len);
  luaL_pushresultsize(&b, len * 2);
}

static int na_to_hex(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  na_push_hex(L, (const unsigned char *)s, len);
  return 1;
}

static int na_fail(lua_State *L, const char *msg) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  return 2;
}

static int na_from_hex(lua_State *L) {
  size_t len, out_len = 0;
  const char *s = luaL_checklstring(L, 1, &len), *stop = NULL;
  luaL_Buffer b;
  unsigned char *out;
  if (len % 2 != 0)
    return na_fail(L, "invalid hex string: odd length");
  out = (unsigned char *)luaL_buffinitsize(L, &b, len / 2 + 1);
  if (sodium_hex2bin(out, len / 2 + 1, s, len, NULL, &out_len, &stop) != 0 ||
      stop != s + len) {
    return na_fail(L, "invalid hex string: only 0-9, a-f and A-F are allowed");
  }
  luaL_pushresultsize(&b, out_len);
  return 1;
}

/* ---------------------------------------------------------------- base64 */

#define NA_B64 sodium_base64_VARIANT_ORIGINAL

static int na_to_base64(lua_State *L) {
  size_t len, n;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out;
  n = sodium_base64_ENCODED_LEN(len, NA_B64);
  out = luaL_buffinitsize(L, &b, n);
  sodium_bin2base64(out, n, (const unsigned char *)s, len, NA_B64);
  luaL_pushresultsize(&b, n - 1);
  return 1;
}

static int na_from_base64(lua_State *L) {
  size_t len, out_len = 0, cap;
  const char *s = luaL_checklstring(L, 1, &len), *stop = NULL;
  luaL_Buffer b;
  unsigned char *out;
  cap = len / 4 * 3 + 3;
  out = (unsigned char *)luaL_buffinitsize(L, &b, cap);
  if (sodium_base642bin(out, cap, s, len, NULL, &out_len, &stop, NA_B64) != 0 ||
      stop != s + len)
    return na_fail(L, "invalid base64 string (standard alphabet with '=' padding expected)");
  luaL_pushresultsize(&b, out_len);
  return 1;
}

/* ---------------------------------------------------------------- random, compare */

static int na_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_Buffer b;
  char *out;
  luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 1, "byte count out of range");
  out = luaL_buffinitsize(L, &b, (size_t)n);
  randombytes_buf(out, (size_t)n);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static int na_compare(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && sodium_memcmp(a, b, la) == 0);
  return 1;
}

/* ---------------------------------------------------------------- SHA-256 */

static int na_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)s, len);
  na_push_hex(L, h, sizeof h);
  return 1;
}

static int na_sha256_init(lua_State *L) {
  na_Sha256 *h = (na_Sha256 *)lua_newuserdatauv(L, sizeof(na_Sha256), 0);
  crypto_hash_sha256_init(&h->st);
  h->done = 0;
  luaL_setmetatable(L, NA_SHA256_MT);
  return 1;
}

static na_Sha256 *na_check_sha256(lua_State *L) {
  na_Sha256 *h = (na_Sha256 *)luaL_checkudata(L, 1, NA_SHA256_MT);
  if (h->done)
    luaL_error(L, "sha256: hash already finalized");
  return h;
}

static int na_sha256_update(lua_State *L) {
  na_Sha256 *h = na_check_sha256(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  crypto_hash_sha256_update(&h->st, (const unsigned char *)s, len);
  lua_settop(L, 1);
  return 1;
}

static int na_sha256_final(lua_State *L) {
  static const char *const formats[] = {"hex", "raw", NULL};
  na_Sha256 *h = na_check_sha256(L);
  int raw = luaL_checkoption(L, 2, "hex", formats);
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&h->st, out);
  h->done = 1;
  if (raw)
    lua_pushlstring(L, (const char *)out, sizeof out);
  else
    na_push_hex(L, out, sizeof out);
  return 1;
}

static int na_sha256_file(lua_State *L) {
  size_t plen;
  const char *path = luaL_checklstring(L, 1, &plen);
  unsigned char *buf, out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_state st;
  int fd, err = 0;
  luaL_argcheck(L, strlen(path) == plen, 1, "path contains a NUL byte");
  buf = (unsigned char *)lua_newuserdatauv(L, NA_CHUNK, 0);   /* GC-owned: no leak */
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR && dbt_interrupts() == 0);
  if (fd < 0) {
    err = errno;
    dbt_check_interrupt(L);
    goto fail;
  }
  crypto_hash_sha256_init(&st);
  for (;;) {
    ssize_t n = read(fd, buf, NA_CHUNK);
    if (n > 0) {
      crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
    } else if (n == 0) {
      break;
    } else if (errno == EINTR) {
      if (dbt_interrupts() > 0) {
        close(fd);
        dbt_check_interrupt(L);
        err = EINTR;
        goto fail;
      }
    } else {
      err = errno;
      close(fd);
      goto fail;
    }
  }
  close(fd);
  crypto_hash_sha256_final(&st, out);
  na_push_hex(L, out, sizeof out);
  return 1;
fail:
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", path, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

/* ---------------------------------------------------------------- keys */

/* Push a new key userdata of `kind` holding `len` bytes of fresh sodium_malloc memory. */
static na_Key *na_newkey(lua_State *L, int kind, size_t len) {
  na_Key *k = (na_Key *)lua_newuserdatauv(L, sizeof(na_Key), 0);
  k->bytes = NULL;                                  /* closed before acquiring */
  k->len = 0;
  k->kind = kind;
  luaL_setmetatable(L, NA_KEY_MT);
  k->bytes = (unsigned char *)sodium_malloc(len);
  if (k->bytes == NULL)
    luaL_error(L, "sodium: cannot allocate secure memory for a key");
  k->len = len;
  return k;
}

static int na_key_close(lua_State *L) {
  na_Key *k = (na_Key *)luaL_checkudata(L, 1, NA_KEY_MT);
  if (k->bytes != NULL) {
    sodium_memzero(k->bytes, k->len);
    sodium_free(k->bytes);                          /* zeroes again, unmaps guard pages */
    k->bytes = NULL;
    k->len = 0;
  }
  return 0;
}

static na_Key *na_checkkey(lua_State *L, int idx, int kind) {
  na_Key *k = (na_Key *)luaL_checkudata(L, idx, NA_KEY_MT);
  if (k->bytes == NULL)
    luaL_error(L, "attempt to use a wiped key");
  if (kind >= 0 && k->kind != kind)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s key expected, got a %s key", na_kinds[kind],
                                          na_kinds[k->kind]));
  return k;
}

static int na_key_kind(lua_State *L) {
  na_Key *k = na_checkkey(L, 1, -1);
  lua_pushstring(L, na_kinds[k->kind]);
  return 1;
}

static int na_key_export(lua_State *L) {
  na_Key *k = na_checkkey(L, 1, -1);
  lua_pushlstring(L, (const char *)k->bytes, k->len);
  return 1;
}

static int na_key_tostring(lua_State *L) {
  na_Key *k = (na_Key *)luaL_checkudata(L, 1, NA_KEY_MT);
  lua_pushfstring(L, "sodium %s key%s", na_kinds[k->kind], k->bytes == NULL ? " (wiped)" : "");
  return 1;
}

static size_t na_kind_len(int kind) {
  return kind == NA_KIND_BOX ? crypto_box_SECRETKEYBYTES : crypto_secretbox_KEYBYTES;
}

static int na_key_import(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int kind = luaL_checkoption(L, 2, NULL, na_kinds);
  na_Key *k;
  if (len != na_kind_len(kind)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "invalid %s key: expected %d bytes, got %d", na_kinds[kind],
                    (int)na_kind_len(kind), (int)len);
    return 2;
  }
  k = na_newkey(L, kind, len);
  memcpy(k->bytes, s, len);
  return 1;
}

/* ---------------------------------------------------------------- sealed boxes */

static const unsigned char *na_checkpk(lua_State *L, int idx) {
  size_t len;
  const char *pk = luaL_checklstring(L, idx, &len);
  if (len != crypto_box_PUBLICKEYBYTES)
    luaL_argerror(L, idx, lua_pushfstring(L, "public key must be %d bytes, got %d",
                                          (int)crypto_box_PUBLICKEYBYTES, (int)len));
  return (const unsigned char *)pk;
}

static int na_box_keypair(lua_State *L) {
  unsigned char pk[crypto_box_PUBLICKEYBYTES];
  na_Key *sk = na_newkey(L, NA_KIND_BOX, crypto_box_SECRETKEYBYTES);   /* 1 */
  crypto_box_keypair(pk, sk->bytes);
  lua_pushlstring(L, (const char *)pk, sizeof pk);
  lua_insert(L, -2);
  return 2;
}

static int na_box_public_key(lua_State *L) {
  na_Key *sk = na_checkkey(L, 1, NA_KIND_BOX);
  unsigned char pk[crypto_box_PUBLICKEYBYTES];
  if (crypto_scalarmult_base(pk, sk->bytes) != 0)
    return luaL_error(L, "sodium: cannot derive the public key");
  lua_pushlstring(L, (const char *)pk, sizeof pk);
  return 1;
}

static int na_seal(lua_State *L) {
  size_t len;
  const char *m = luaL_checklstring(L, 1, &len);
  const unsigned char *pk = na_checkpk(L, 2);
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, len + crypto_box_SEALBYTES);
  if (crypto_box_seal(out, (const unsigned char *)m, len, pk) != 0)
    return luaL_error(L, "sodium: sealing failed (invalid public key?)");
  luaL_pushresultsize(&b, len + crypto_box_SEALBYTES);
  return 1;
}

static int na_seal_open(lua_State *L) {
  size_t len;
  const char *c = luaL_checklstring(L, 1, &len);
  const unsigned char *pk = na_checkpk(L, 2);
  na_Key *sk = na_checkkey(L, 3, NA_KIND_BOX);
  unsigned char *m;
  size_t mlen;
  if (len < crypto_box_SEALBYTES)
    return na_fail(L, "decryption failed");
  mlen = len - crypto_box_SEALBYTES;
  m = na_scratch(L, mlen);
  if (crypto_box_seal_open(m, (const unsigned char *)c, len, pk, sk->bytes) != 0) {
    sodium_memzero(m, mlen);
    return na_fail(L, "decryption failed");
  }
  lua_pushlstring(L, (const char *)m, mlen);
  sodium_memzero(m, mlen);
  return 1;
}

/* ---------------------------------------------------------------- secretbox */

static int na_secretbox_keygen(lua_State *L) {
  na_Key *k = na_newkey(L, NA_KIND_SECRETBOX, crypto_secretbox_KEYBYTES);
  crypto_secretbox_keygen(k->bytes);
  return 1;
}

static int na_secretbox(lua_State *L) {
  size_t len, total;
  const char *m = luaL_checklstring(L, 1, &len);
  na_Key *k = na_checkkey(L, 2, NA_KIND_SECRETBOX);
  luaL_Buffer b;
  unsigned char *out;
  total = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
  out = (unsigned char *)luaL_buffinitsize(L, &b, total);
  randombytes_buf(out, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, (const unsigned char *)m, len, out,
                        k->bytes);
  luaL_pushresultsize(&b, total);
  return 1;
}

static int na_secretbox_open(lua_State *L) {
  size_t len, mlen;
  const unsigned char *c = (const unsigned char *)luaL_checklstring(L, 1, &len);
  na_Key *k = na_checkkey(L, 2, NA_KIND_SECRETBOX);
  unsigned char *m;
  if (len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return na_fail(L, "decryption failed");
  mlen = len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  m = na_scratch(L, mlen);
  if (crypto_secretbox_open_easy(m, c + crypto_secretbox_NONCEBYTES,
                                 len - crypto_secretbox_NONCEBYTES, c, k->bytes) != 0) {
    sodium_memzero(m, mlen);
    return na_fail(L, "decryption failed");
  }
  lua_pushlstring(L, (const char *)m, mlen);
  sodium_memzero(m, mlen);
  return 1;
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg na_key_methods[] = {
  {"kind", na_key_kind},
  {"export", na_key_export},
  {"close", na_key_close},
  {NULL, NULL}
};

static const luaL_Reg na_key_meta[] = {
  {"__gc", na_key_close},
  {"__close", na_key_close},
  {"__tostring", na_key_tostring},
  {NULL, NULL}
};

static const luaL_Reg na_sha256_methods[] = {
  {"update", na_sha256_update},
  {"final", na_sha256_final},
  {NULL, NULL}
};

static const luaL_Reg na_funcs[] = {
  {"sha256", na_sha256},
  {"sha256_init", na_sha256_init},
  {"sha256_file", na_sha256_file},
  {"random", na_random},
  {"to_hex", na_to_hex},
  {"from_hex", na_from_hex},
  {"to_base64", na_to_base64},
  {"from_base64", na_from_base64},
  {"compare", na_compare},
  {"key", na_key_import},
  {"box_keypair", na_box_keypair},
  {"box_public_key", na_box_public_key},
  {"seal", na_seal},
  {"seal_open", na_seal_open},
  {"secretbox_keygen", na_secretbox_keygen},
  {"secretbox", na_secretbox},
  {"secretbox_open", na_secretbox_open},
  {NULL, NULL}
};

static void na_setint(lua_State *L, const char *name, size_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

int luaopen_dbtool_core_sodium(lua_State *L) {
  if (sodium_init() < 0)
    return luaL_error(L, "libsodium: sodium_init() failed (no usable entropy source?)");
  luaL_newmetatable(L, NA_KEY_MT);
  luaL_setfuncs(L, na_key_meta, 0);
  lua_pushliteral(L, "protected");
  lua_setfield(L, -2, "__metatable");
  luaL_newlib(L, na_key_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, NA_SHA256_MT);
  luaL_newlib(L, na_sha256_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, NA_SCRATCH_MT);
  lua_pushcfunction(L, na_scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, na_funcs);
  lua_pushstring(L, sodium_version_string());
  lua_setfield(L, -2, "version");
  na_setint(L, "BOX_PUBLICKEYBYTES", crypto_box_PUBLICKEYBYTES);
  na_setint(L, "BOX_SECRETKEYBYTES", crypto_box_SECRETKEYBYTES);
  na_setint(L, "SEALBYTES", crypto_box_SEALBYTES);
  na_setint(L, "SECRETBOX_KEYBYTES", crypto_secretbox_KEYBYTES);
  na_setint(L, "SECRETBOX_NONCEBYTES", crypto_secretbox_NONCEBYTES);
  na_setint(L, "SECRETBOX_MACBYTES", crypto_secretbox_MACBYTES);
  return 1;
}
