-- Secrets: dotenv files kept encrypted on disk with libsodium sealed boxes, and loading them
-- into hectic.secret (hydrate, `database secrets load`).
--
-- Keys
--   * one X25519 key pair per project. The public key is committed with the project:
--     $DATABASE_DIR/secrets.pub. Anyone with it can encrypt; only the private key decrypts.
--   * the private key is never in the repository. It comes from, first match wins:
--       1. DB_TOOL_SECRET_KEY        the key itself (the content of a key file, or just its
--                                    base64 line) — for CI;
--       2. DB_TOOL_SECRET_KEY_FILE   a key file;
--       3. ${XDG_CONFIG_HOME:-~/.config}/db-tool/keys/<key id>.key  (written by keygen).
--     A key file must be a regular file owned by the user with mode 0600 (or stricter):
--     anything looser is refused, with the chmod to run.
--   * key id: the first 16 hex digits of SHA-256(public key). Encrypted files name the key
--     id they were made for, so several projects can keep their keys side by side and a
--     wrong key is reported as such, before anything is decrypted.
--   Key files (public and private) are text: `#` comment lines, then one base64 line of the
--   32 key bytes.
--
-- Encrypted dotenv files (`.env.<environment>.enc`, format 1):
--     db-tool secrets v1 sealedbox <key id>
--     <base64 of crypto_box_seal(dotenv text, public key)>, in lines of 64 characters
--   The first line identifies the format; a file that starts with `db-tool secrets v` is
--   decrypted wherever a dotenv file is read (HECTIC_DOTENV_FILE, --dotenv-file,
--   HECTIC_DOTENV_CONTENT, $LOCAL_DIR/.env.$ENVIRONMENT[.enc]). Sealed boxes are authenticated:
--   a changed byte fails decryption as a whole.
--
-- Secret material we hold in C (the private key) lives in sodium userdata that is wiped when
-- closed (we close it as soon as the file is decrypted); decrypted text is a Lua string,
-- which cannot be wiped, so it is kept short-lived; every value read is registered with the
-- logger's redaction (log.add_secret); temporary plaintext files (`secrets edit`) are
-- private (0700 directory, 0600 file, on tmpfs when available) and overwritten with zeros
-- before they are removed.
local env = require "dbtool.env"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

M.HEADER_PREFIX = "db-tool secrets v"
M.FORMAT = 1
M.ALGORITHM = "sealedbox"
M.SUFFIX = ".enc"
M.KEY_ENV = "DB_TOOL_SECRET_KEY"
M.KEY_FILE_ENV = "DB_TOOL_SECRET_KEY_FILE"
M.PUBLIC_KEY_NAME = "secrets.pub"
local WRAP = 64

local function na() return require "dbtool.core.sodium" end
local function stat() return require "posix.sys.stat" end

local function octal(mode)
  return string.format("%04o", mode & 4095)
end

-- ---------------------------------------------------------------- small file helpers

local function is_regular(path)
  local st = stat().stat(path)
  return st ~= nil and stat().S_ISREG(st.st_mode) ~= 0, st
end

local function exists(path)
  return stat().lstat(path) ~= nil
end

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function basename(path)
  return path:match("([^/]*)$")
end

local function mkdir_p(dir, mode)
  local path = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    path = path .. "/" .. part
    if not stat().stat(path) then
      local ok, err = stat().mkdir(path, mode or tonumber("755", 8))
      if not ok and not stat().stat(path) then
        errors.raise(errors.GENERIC, "cannot create directory " .. path .. ": " .. tostring(err))
      end
    end
  end
end

local function current_umask()
  local old = stat().umask(tonumber("022", 8))
  stat().umask(old)
  return old
end

--- Write `content` to `path` atomically (temporary file in the same directory, fsync,
--- rename). mode: the file mode (default: the mode of the file it replaces, else 0666 minus
--- the umask).
function M.write_atomic(path, content, mode)
  local stdlib, unistd = require "posix.stdlib", require "posix.unistd"
  local dir = dirname(path)
  if mode == nil then
    local st = stat().stat(path)
    mode = st and (st.st_mode & 4095) or (tonumber("666", 8) & ~current_umask())
  end
  local fd, tmp = stdlib.mkstemp(dir .. "/." .. basename(path) .. ".tmp-XXXXXX")
  if not fd then
    errors.raise(errors.GENERIC, "cannot write " .. path .. ": " .. tostring(tmp))
  end
  local ok, err = pcall(function()
    local off = 1
    while off <= #content do
      local n, werr = unistd.write(fd, content:sub(off, off + 65535))
      if not n then error(werr, 0) end
      off = off + n
    end
    local okc, cerr = stat().chmod(tmp, mode)
    if not okc then error(cerr, 0) end
    unistd.fsync(fd)
  end)
  unistd.close(fd)
  if ok then
    local okr, rerr = os.rename(tmp, path)
    if not okr then ok, err = false, rerr end
  end
  if not ok then
    os.remove(tmp)
    errors.raise(errors.GENERIC, "cannot write " .. path .. ": " .. tostring(err))
  end
end

--- Create a new file with `content` and mode 0600; refuses to replace an existing file
--- unless `replace` (the mode is then forced to 0600 too).
function M.write_private(path, content, replace)
  local fcntl, unistd = require "posix.fcntl", require "posix.unistd"
  if replace and exists(path) then
    M.write_atomic(path, content, tonumber("600", 8))
    return
  end
  local fd, err = fcntl.open(path, fcntl.O_WRONLY | fcntl.O_CREAT | fcntl.O_EXCL | fcntl.O_CLOEXEC,
    tonumber("600", 8))
  if not fd then
    if exists(path) then
      errors.raise(errors.GENERIC, path .. " already exists", { hint = "remove it, or choose another path" })
    end
    errors.raise(errors.GENERIC, "cannot create " .. path .. ": " .. tostring(err))
  end
  local off = 1
  while off <= #content do
    local n, werr = unistd.write(fd, content:sub(off, off + 65535))
    if not n then
      unistd.close(fd)
      os.remove(path)
      errors.raise(errors.GENERIC, "cannot write " .. path .. ": " .. tostring(werr))
    end
    off = off + n
  end
  unistd.fsync(fd)
  unistd.close(fd)
end

--- Overwrite a file with zeros, then remove it (best effort: the caller's data is what
--- matters; a copy-on-write file system may keep old blocks).
function M.wipe_file(path)
  local ok, st = is_regular(path)
  if ok then
    local f = io.open(path, "r+b")
    if f then
      local zeros = string.rep("\0", 65536)
      local left = st.st_size
      while left > 0 do
        local n = math.min(left, #zeros)
        f:write(zeros:sub(1, n))
        left = left - n
      end
      f:flush()
      pcall(require("posix.unistd").fsync, require("posix.stdio").fileno(f))
      f:close()
    end
  end
  os.remove(path)
end

-- ---------------------------------------------------------------- keys

--- Key id of a 32-byte public key: 16 lowercase hex digits.
function M.key_id(pk)
  return na().sha256(pk):sub(1, 16)
end

function M.public_key_path()
  return env.database_dir() .. "/" .. M.PUBLIC_KEY_NAME
end

--- ${XDG_CONFIG_HOME:-$HOME/.config}/db-tool/keys
function M.key_dir()
  local base = env.get("XDG_CONFIG_HOME")
  if not base then
    local home = env.get("HOME")
    if not home then
      errors.raise(errors.MISSING, "HOME is not set: cannot find the private key directory",
        { hint = "set HOME or XDG_CONFIG_HOME, or give the key with " .. M.KEY_ENV .. " / "
          .. M.KEY_FILE_ENV, variable = "HOME" })
    end
    base = home .. "/.config"
  end
  return base .. "/db-tool/keys"
end

function M.default_key_file(id)
  return M.key_dir() .. "/" .. id .. ".key"
end

-- The base64 line of a key text (comments and blank lines skipped). nil, why on failure.
local function key_line(text)
  local found
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line ~= "" and line:sub(1, 1) ~= "#" then
      if found then return nil, "more than one key line" end
      found = line
    end
  end
  if not found then return nil, "no key line" end
  return found
end

local function key_text(kind, id, b64)
  if kind == "public" then
    return "# db-tool public key for encrypted dotenv files: commit this file\n"
      .. "# key id " .. id .. "\n" .. b64 .. "\n"
  end
  return "# db-tool private key for encrypted dotenv files, key id " .. id .. "\n"
    .. "# keep it secret: mode 0600, never in a repository\n" .. b64 .. "\n"
end

--- Read the project's public key. Returns pk (32 bytes), id, path.
--  Missing file → exit 3; malformed → exit 1 at path.
function M.read_public_key(path)
  path = path or M.public_key_path()
  local text = is_regular(path) and read_all(path)
  if not text then
    errors.raise(errors.MISSING, "no public key: " .. path .. " does not exist",
      { hint = "run `database secrets keygen` once for the project (it writes " .. M.PUBLIC_KEY_NAME
        .. ", to commit), or get " .. M.PUBLIC_KEY_NAME .. " from the repository", file = path })
  end
  local line, why = key_line(text)
  local pk = line and na().from_base64(line)
  if not pk or #pk ~= na().BOX_PUBLICKEYBYTES then
    errors.raise(errors.GENERIC, "invalid public key file: " .. (why or "expected the base64 of 32 bytes"),
      { where = path, hint = "restore it from the repository, or run `database secrets keygen --force`" })
  end
  return pk, M.key_id(pk), path
end

--- Refuse a key file others may read or that belongs to someone else.
function M.check_key_file(path)
  local unistd = require "posix.unistd"
  local st = stat().stat(path)
  if not st then
    errors.raise(errors.MISSING, "private key file not found: " .. path, { file = path })
  end
  if stat().S_ISREG(st.st_mode) == 0 then
    errors.raise(errors.GENERIC, "private key file " .. path .. " is not a regular file")
  end
  if st.st_uid ~= unistd.geteuid() then
    errors.raise(errors.GENERIC, "private key file " .. path .. " belongs to uid " .. st.st_uid
      .. ", not to you", { hint = "use your own copy of the key (mode 0600)" })
  end
  if st.st_mode & tonumber("077", 8) ~= 0 then
    errors.raise(errors.GENERIC, string.format("private key file %s has mode %s: it must be "
      .. "readable by you only", path, octal(st.st_mode)), { hint = "run: chmod 600 " .. path })
  end
end

-- Parse key text into a box key; registers the base64 with the redaction.
local function key_from_text(text, source)
  local line, why = key_line(text)
  if line then log.add_secret(line) end
  local raw = line and na().from_base64(line)
  local key = raw and na().key(raw, "box")
  raw = nil -- luacheck: ignore 311 (drop the reference early)
  if not key then
    errors.raise(errors.GENERIC, "invalid private key in " .. source .. ": "
      .. (why or "expected the base64 of 32 bytes"),
      { hint = "use the key written by `database secrets keygen` (the whole file, or its last line)" })
  end
  return key
end

--- Where the private key for key id `id` comes from: {kind = "env"|"file", path =, label =}.
function M.key_source(id)
  if env.get(M.KEY_ENV) then return { kind = "env", label = M.KEY_ENV } end
  local file = env.get(M.KEY_FILE_ENV)
  if file then return { kind = "file", path = file, label = file .. " (" .. M.KEY_FILE_ENV .. ")" } end
  local path = M.default_key_file(id)
  return { kind = "file", path = path, label = path, default = true }
end

--- The private key for key id `id` (a sodium box key: close it after use).
--  No key → exit 3 saying where it was looked for; a key for another id → exit 1;
--  a key file with a loose mode → exit 1.
function M.secret_key(id, what)
  local src = M.key_source(id)
  local key
  if src.kind == "env" then
    key = key_from_text(env.get(M.KEY_ENV), M.KEY_ENV)
  else
    if src.default and not exists(src.path) then
      errors.raise(errors.MISSING, "no private key for key id " .. id .. (what and (" (to decrypt "
        .. what .. ")") or ""), {
        hint = "put the project's private key at " .. src.path .. " (mode 0600), or set "
          .. M.KEY_ENV .. " (the key) or " .. M.KEY_FILE_ENV .. " (a key file)",
        variable = M.KEY_ENV })
    end
    M.check_key_file(src.path)
    local text = read_all(src.path)
    if not text then
      errors.raise(errors.GENERIC, "cannot read the private key file " .. src.path)
    end
    key = key_from_text(text, src.path)
  end
  local have = M.key_id(na().box_public_key(key))
  if have ~= id then
    key:close()
    errors.raise(errors.GENERIC, string.format("wrong private key: %s is encrypted for key id %s, "
      .. "but %s holds key id %s", what or "the file", id, src.label, have), {
      hint = "use the private key that belongs to the project's " .. M.PUBLIC_KEY_NAME
        .. " (key id " .. id .. ")" })
  end
  return key, src
end

--- Generate a key pair: the private key to opts.key_file (default: the key directory, by
--  key id), then the public key to opts.public (default $DATABASE_DIR/secrets.pub).
--  An existing public key is kept unless opts.force. The private key file never goes inside
--  the project directory. Returns {id =, public =, private =, replaced = old id or nil}.
function M.keygen(opts)
  opts = opts or {}
  local pub_path = opts.public or M.public_key_path()
  local old_id
  if exists(pub_path) then
    local ok, _, id = pcall(M.read_public_key, pub_path)
    old_id = ok and id or "unreadable"
    if not opts.force then
      errors.raise(errors.GENERIC, pub_path .. " already exists (key id " .. old_id .. ")", {
        hint = "the project has a key already: get its private key from a colleague; "
          .. "`database secrets keygen --force` makes a new one (files encrypted for the old key "
          .. "then need `database secrets edit` or `set` to be re-encrypted)" })
    end
  end
  local pk, sk = na().box_keypair()
  local id = M.key_id(pk)
  local key_path = opts.key_file or M.default_key_file(id)
  -- never inside the project: a private key must not end up in a commit
  local stdlib = require "posix.stdlib"
  local key_dir = dirname(key_path)
  -- the real path of key_dir, also when (part of) it does not exist yet
  local real_key_dir, rest = key_dir, ""
  while not stdlib.realpath(real_key_dir) and real_key_dir:find("/") do
    rest = "/" .. basename(real_key_dir) .. rest
    real_key_dir = dirname(real_key_dir)
  end
  real_key_dir = (stdlib.realpath(real_key_dir) or real_key_dir) .. rest
  for _, d in ipairs { env.get("LOCAL_DIR") or false, env.database_dir() } do
    local real = d and stdlib.realpath(d)
    if real and (real_key_dir == real or real_key_dir:sub(1, #real + 1) == real .. "/") then
      sk:close()
      errors.raise(errors.GENERIC, "refusing to write the private key inside the project ("
        .. key_path .. ")", { hint = "keep it outside the repository: leave out --key-file "
          .. "(default " .. M.key_dir() .. ") or choose a path outside " .. d })
    end
  end
  mkdir_p(key_dir, tonumber("700", 8))
  local b64 = na().to_base64(sk:export())
  sk:close()
  log.add_secret(b64)
  M.write_private(key_path, key_text("private", id, b64), false)
  b64 = nil -- luacheck: ignore 311
  mkdir_p(dirname(pub_path))
  M.write_atomic(pub_path, key_text("public", id, na().to_base64(pk)))
  return { id = id, public = pub_path, private = key_path, replaced = old_id }
end

-- ---------------------------------------------------------------- encrypted files

--- Is `text` an encrypted dotenv file (by its first line)?
function M.is_encrypted(text)
  return type(text) == "string" and text:sub(1, #M.HEADER_PREFIX) == M.HEADER_PREFIX
end

--- Encrypt dotenv text for public key pk: the file content (header + base64 body).
function M.encrypt(plaintext, pk)
  local body = na().to_base64(na().seal(plaintext, pk))
  local out = { M.HEADER_PREFIX .. M.FORMAT .. " " .. M.ALGORITHM .. " " .. M.key_id(pk) }
  for i = 1, #body, WRAP do out[#out + 1] = body:sub(i, i + WRAP - 1) end
  return table.concat(out, "\n") .. "\n"
end

--- Header of an encrypted file: {version =, algorithm =, id =, body = ciphertext}.
--  Raises exit 1 at source:line for anything malformed.
function M.parse_encrypted(text, source)
  source = source or "encrypted dotenv"
  local s = text:gsub("\r\n", "\n")
  local header = s:match("^[^\n]*")
  local version = header:match("^db%-tool secrets v(%d+)")
  if not version then
    errors.raise(errors.GENERIC, "not an encrypted dotenv file (no '" .. M.HEADER_PREFIX .. "' header)",
      { where = source .. ":1" })
  end
  if tonumber(version) ~= M.FORMAT then
    errors.raise(errors.GENERIC, "unsupported encrypted dotenv format v" .. version
      .. " (this db-tool reads v" .. M.FORMAT .. ")", { where = source .. ":1",
        hint = "upgrade db-tool" })
  end
  local alg, id = header:match("^db%-tool secrets v%d+ (%S+) (%x+)%s*$")
  if alg ~= M.ALGORITHM or not id or #id ~= 16 then
    errors.raise(errors.GENERIC, "damaged header: expected '" .. M.HEADER_PREFIX .. M.FORMAT .. " "
      .. M.ALGORITHM .. " <16 hex digits key id>'", { where = source .. ":1" })
  end
  local lines, n = {}, 1
  for line in s:sub(#header + 2):gmatch("([^\n]*)\n?") do
    n = n + 1
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" then
      if line:find("[^%w+/=]") then
        errors.raise(errors.GENERIC, "damaged file: line " .. n .. " is not base64",
          { where = source .. ":" .. n })
      end
      lines[#lines + 1] = line
    end
  end
  local body = na().from_base64(table.concat(lines))
  if not body or #body < na().SEALBYTES then
    errors.raise(errors.GENERIC, "damaged file: the encrypted body is truncated or not base64",
      { where = source })
  end
  return { version = tonumber(version), algorithm = alg, id = id:lower(), body = body }
end

--- Decrypt the content of an encrypted file. opts.key: a box key to use (else secret_key()).
--  Returns the dotenv text and the key id. Exit 3: no key; exit 1: wrong key, damaged file.
function M.decrypt(text, source, opts)
  opts = opts or {}
  local h = M.parse_encrypted(text, source)
  local key = opts.key
  local own = false
  if not key then
    key = M.secret_key(h.id, source)
    own = true
  end
  local pk = na().box_public_key(key)
  local plain = na().seal_open(h.body, pk, key)
  if own then key:close() end
  if not plain then
    errors.raise(errors.GENERIC, "cannot decrypt " .. (source or "the file")
      .. ": it is damaged or was changed after encryption (authentication failed)", {
      hint = "restore it from version control; nothing was loaded" })
  end
  return plain, h.id
end

--- Plaintext of dotenv content that may be encrypted.
function M.plaintext(text, source)
  if M.is_encrypted(text) then return (M.decrypt(text, source)) end
  return text
end

-- ---------------------------------------------------------------- finding dotenv files

--- `path` or `path.enc`: the file to read for a dotenv path, and whether it is encrypted.
--  Both existing → exit 2 (which one is meant is unclear); neither → nil.
function M.resolve(path)
  local plain, enc = path, path .. M.SUFFIX
  if path:sub(-#M.SUFFIX) == M.SUFFIX then return is_regular(path) and path or nil end
  local has_plain, has_enc = is_regular(plain), is_regular(enc)
  if has_plain and has_enc then
    errors.raise(errors.AMBIGUOUS, "both " .. plain .. " and " .. enc .. " exist", {
      hint = "keep one: `database secrets encrypt " .. plain .. "` replaces " .. enc
        .. " with it, or delete " .. plain .. " to use the encrypted file" })
  end
  if has_enc then return enc end
  if has_plain then return plain end
  return nil
end

--- Read a dotenv file, decrypting it when it is encrypted. Returns text, the path read.
--  Not a readable regular file → exit 3 `dotenv file is not readable: <path>`.
function M.read(path)
  local real = M.resolve(path) or path
  local regular, st = is_regular(real)
  -- the plaintext limit is checked when it is parsed; an encrypted file is base64 (4/3)
  local limit = 2 * require("dbtool.dotenv").MAX_BYTES
  if regular and st.st_size > limit then
    errors.raise(errors.MISSING, string.format("dotenv file %s is %d bytes; at most %d", path, st.st_size,
      limit), { file = path, where = path, hint = "a dotenv file holds settings and secrets, not data" })
  end
  local text = regular and read_all(real)
  if not text then
    errors.raise(errors.MISSING, "dotenv file is not readable: " .. path,
      { hint = "check the path and its permissions", file = path })
  end
  return M.plaintext(text, real), real
end

--- For hydrate (compatibility with dbtool.workflow): the dotenv text of `path` or `path.enc`,
--  decrypted; nil when neither exists.
function M.read_env_file(path)
  local real = M.resolve(path)
  if not real then return nil end
  return M.read(real)
end

--- Where secrets come from, first match wins (the original's order):
--    1. HECTIC_DOTENV_CONTENT (may itself be an encrypted file's content);
--    2. opts.file (--dotenv-file), else HECTIC_DOTENV_FILE: must be readable (exit 3), and
--       FILE.enc is used when FILE does not exist;
--    3. $LOCAL_DIR/.env.$ENVIRONMENT or .env.$ENVIRONMENT.enc (both: exit 2);
--  Returns text (plaintext), source label; or nil when there is nothing (opts.required:
--  exit 3 with the original `db-ops secrets load` message instead). LOCAL_DIR defaults to
--  the current directory unless opts.required.
function M.find(opts)
  opts = opts or {}
  local content = env.get("HECTIC_DOTENV_CONTENT")
  if content then return M.plaintext(content, "HECTIC_DOTENV_CONTENT"), "HECTIC_DOTENV_CONTENT" end
  local file = opts.file or env.get("HECTIC_DOTENV_FILE")
  if file then
    local real = M.resolve(file)
    if not real then
      errors.raise(errors.MISSING, "dotenv file is not readable: " .. file, {
        hint = opts.file and "check the --dotenv-file path"
          or "fix HECTIC_DOTENV_FILE, or unset it", variable = not opts.file and "HECTIC_DOTENV_FILE" or nil,
        file = file })
    end
    return M.read(real)
  end
  local environment = env.get("ENVIRONMENT")
  local local_dir = opts.required and env.get("LOCAL_DIR") or env.local_dir(true)
  if environment and local_dir then
    local real = M.resolve(local_dir .. "/.env." .. environment)
    if real then return M.read(real) end
  end
  if opts.required then
    errors.raise(errors.MISSING, "dotenv source is required (HECTIC_DOTENV_CONTENT, readable "
      .. "dotenv file, or $LOCAL_DIR/.env.$ENVIRONMENT)", {
      hint = "pass -f FILE, or set HECTIC_DOTENV_FILE, or LOCAL_DIR and ENVIRONMENT" })
  end
  return nil
end

-- ---------------------------------------------------------------- loading

--- Parse dotenv text for loading: values registered with the redaction, warnings logged.
--  Returns the dotenv result. Invalid → exit 3 at source:line.
function M.parse(text, source, l)
  local dotenv = require "dbtool.dotenv"
  local res = dotenv.parse(text, source, { env = env.get })
  for _, v in pairs(res.map) do log.add_secret(v) end
  -- what hectic.secret cannot store is refused here, at its line, before anything is sent
  local bundle = require "dbtool.bundle"
  for _, e in ipairs(res.entries) do
    if #e.key > bundle.MAX_SECRET_KEY then
      errors.raise(errors.MISSING, string.format("the key %s is %d bytes long; hectic.secret takes keys "
        .. "of at most %d bytes", bundle.show_key(e.key), #e.key, bundle.MAX_SECRET_KEY),
        { where = string.format("%s:%d", source, e.line), file = source, line = e.line,
          hint = "use a shorter key" })
    end
  end
  if l then
    for _, w in ipairs(res.warnings) do l:warn("%s", w) end
  end
  return res
end

--- What hydrate loads, worked out before it connects (a bad file or key changes nothing):
--  nil (no source, or empty content: secrets untouched), or {map =, source =, count =}.
function M.prepare(l, opts)
  local text, source = M.find(opts)
  if not text then
    if l then l:debug("no dotenv source: secrets left as they are") end
    return nil
  end
  if not text:match("%S") then
    if l then l:info("%s is empty: secrets left as they are", source) end
    return nil
  end
  local res = M.parse(text, source, l)
  return { map = res.map, source = source, count = #res.keys }
end

--- Replace hectic.secret with a prepared set (see prepare) over conn.
function M.load(conn, prepared, l)
  require("dbtool.bundle").load_secrets(conn, prepared.map)
  if l then
    l:info("loaded %d secret%s from %s", prepared.count, prepared.count == 1 and "" or "s",
      prepared.source)
  end
  return prepared.count
end

-- ---------------------------------------------------------------- editing files

--- The dotenv file a command works on: FILE as given (FILE.enc when only that exists), or
--  $LOCAL_DIR/.env.$ENVIRONMENT[.enc]. Returns {path =, encrypted = bool, exists = bool}.
--  A file that does not exist yet is encrypted (FILE.enc) unless it exists in plain text.
function M.target(file)
  if not file then
    local environment = env.get("ENVIRONMENT")
    if not environment then
      errors.raise(errors.MISSING, "no file given and ENVIRONMENT is not set", {
        hint = "pass the file (e.g. .env.development.enc), or set ENVIRONMENT (and LOCAL_DIR)",
        variable = "ENVIRONMENT" })
    end
    file = env.local_dir() .. "/.env." .. environment
  end
  local real = M.resolve(file)
  if real then
    local text = read_all(real)
    if not text then errors.raise(errors.GENERIC, "cannot read " .. real) end
    return { path = real, encrypted = M.is_encrypted(text), exists = true, text = text }
  end
  if exists(file) then
    errors.raise(errors.GENERIC, file .. " is not a regular file")
  end
  if file:sub(-#M.SUFFIX) ~= M.SUFFIX then file = file .. M.SUFFIX end
  return { path = file, encrypted = true, exists = false }
end

--- Read a target: its plaintext ("" for a new file) and the key id it was encrypted for.
function M.open_target(t)
  if not t.exists then return "", nil end
  if not t.encrypted then return t.text, nil end
  local plain, id = M.decrypt(t.text, t.path)
  return plain, id
end

--- Write plaintext back to a target (encrypting for the project's public key when the
--  target is encrypted). Returns the key id used (nil for a plain file).
function M.save_target(t, plaintext, l)
  if not t.encrypted then
    M.write_atomic(t.path, plaintext)
    return nil
  end
  local pk, id = M.read_public_key()
  M.write_atomic(t.path, M.encrypt(plaintext, pk))
  if l and t.key_id and t.key_id ~= id then
    l:notice("%s re-encrypted for the project's current key (key id %s, was %s)", t.path, id, t.key_id)
  end
  return id
end

--- Set KEY = value in a dotenv file (encrypted or not); creates the file when missing.
--  Returns the target and whether the key was new.
function M.set(file, key, value, l)
  local dotenv = require "dbtool.dotenv"
  if not dotenv.valid_key(key) then
    errors.raise(errors.GENERIC, "invalid key '" .. key .. "': keys are letters, digits, _ . - and "
      .. "do not start with a digit", { hint = "for example DATABASE_PASSWORD" })
  end
  log.add_secret(value)
  local t = M.target(file)
  if t.encrypted then M.read_public_key() end               -- fail before decrypting
  local plain, id = M.open_target(t)
  t.key_id = id
  local res = M.parse(plain, t.path)
  local is_new = res.map[key] == nil
  local text = dotenv.set(plain, key, value, { source = t.path, env = env.get })
  M.parse(text, t.path)                                     -- still valid (expansion)
  M.save_target(t, text, l)
  return t, is_new
end

--- Remove KEY from a dotenv file. Returns the target and the number of entries removed.
function M.unset(file, key, l)
  local dotenv = require "dbtool.dotenv"
  local t = M.target(file)
  if not t.exists then
    errors.raise(errors.MISSING, "dotenv file is not readable: " .. t.path, { file = t.path })
  end
  if t.encrypted then M.read_public_key() end
  local plain, id = M.open_target(t)
  t.key_id = id
  local text, n = dotenv.unset(plain, key, { source = t.path, env = env.get })
  if n > 0 then
    M.parse(text, t.path)
    M.save_target(t, text, l)
  end
  return t, n
end

-- A private directory for plaintext: tmpfs when we can.
local function private_dir()
  local stdlib = require "posix.stdlib"
  local unistd = require "posix.unistd"
  local candidates = { env.get("XDG_RUNTIME_DIR") or false, "/dev/shm", env.get("TMPDIR") or false, "/tmp" }
  for _, base in ipairs(candidates) do
    local st = base and stat().stat(base)
    if st and stat().S_ISDIR(st.st_mode) ~= 0 and unistd.access(base, "w") then
      local dir = stdlib.mkdtemp(base .. "/db-tool-secrets-XXXXXX")
      if dir then
        stat().chmod(dir, tonumber("700", 8))
        return dir
      end
    end
  end
  errors.raise(errors.GENERIC, "cannot create a private temporary directory",
    { hint = "set TMPDIR to a writable directory" })
end

--- Wipe every file in a private directory (editor backups too), then remove it.
function M.wipe_dir(dir)
  local ok, files = pcall(require("posix.dirent").dir, dir)
  if ok and files then
    for _, f in ipairs(files) do
      if f ~= "." and f ~= ".." then
        local p = dir .. "/" .. f
        local st = stat().lstat(p)
        if st and stat().S_ISDIR(st.st_mode) ~= 0 then M.wipe_dir(p) else M.wipe_file(p) end
      end
    end
  end
  require("posix.unistd").rmdir(dir)
end

--- The editor command as an argv array: $EDITOR (words split on blanks), default vi.
function M.editor_argv()
  local editor = env.get("EDITOR", "vi")
  local argv = {}
  for w in editor:gmatch("%S+") do argv[#argv + 1] = w end
  return argv, editor
end

--- `secrets edit`: decrypt into a private temporary file, run the editor, check the result
--  parses, re-encrypt, wipe the temporary file. opts.retry(err) → true to reopen the editor
--  on an invalid result (interactive use); otherwise an invalid result is exit 3 and the
--  file is left as it was. Returns "unchanged" | "saved", the target.
function M.edit(file, l, opts)
  opts = opts or {}
  local proc = require "dbtool.core.proc"
  local t = M.target(file)
  if t.encrypted then M.read_public_key() end               -- fail before decrypting
  local plain, id = M.open_target(t)
  t.key_id = id
  local dir = private_dir()
  return errors.finally(function() M.wipe_dir(dir) end, function()
    local name = basename(t.path)
    if t.encrypted and name:sub(-#M.SUFFIX) == M.SUFFIX then name = name:sub(1, -#M.SUFFIX - 1) end
    if name == "" then name = "dotenv" end
    local tmp = dir .. "/" .. name
    M.write_private(tmp, plain, false)
    local argv, editor = M.editor_argv()
    while true do
      local run = {}
      for i, a in ipairs(argv) do run[i] = a end
      run[#run + 1] = tmp
      if l then l:info("editing %s in %s", t.path, editor) end
      local p, err = proc.spawn { argv = run, env = env.child_env() }
      if not p then
        errors.raise(errors.NO_DEPENDENCY, "cannot run the editor '" .. editor .. "': " .. tostring(err),
          { hint = "set EDITOR to an installed editor; " .. t.path .. " was not changed" })
      end
      local how, code = p:wait()
      if how ~= "exited" or code ~= 0 then
        errors.raise(errors.GENERIC, string.format("the editor %s; %s was not changed",
          how == "exited" and ("exited with status " .. tostring(code))
            or ("was killed by signal " .. tostring(code)), t.path))
      end
      local edited = read_all(tmp)
      if not edited then
        errors.raise(errors.GENERIC, "the edited file is gone (" .. editor .. " removed it?); "
          .. t.path .. " was not changed")
      end
      if edited == plain then return "unchanged", t end
      local ok, perr = pcall(M.parse, edited, t.path .. " (edited)", l)
      if ok then
        M.save_target(t, edited, l)
        return "saved", t
      end
      if not (errors.is(perr) and opts.retry and opts.retry(perr)) then
        if errors.is(perr) then perr.hint = t.path .. " was not changed; " .. (perr.hint or "") end
        error(perr, 0)
      end
    end
  end)
end

return M
