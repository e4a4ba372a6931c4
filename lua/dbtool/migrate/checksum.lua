-- Checksums of migration scripts. `hash` is what the original migrator stored: the lowercase
-- hex SHA-256 of the script that runs (up.sql or up/entrypoint.sql), so databases it migrated
-- verify unchanged. A multi-file migration also gets a tree hash over every file of its
-- up/ directory, so an edited included file is noticed too:
--   sha256 of the concatenation, in byte order of the relative path, of
--   "<relative path>\0<sha256 hex of the file>\n"
local dirent = require "posix.dirent"
local stat = require "posix.sys.stat"
local errors = require "dbtool.errors"
local policy = require "dbtool.migrate.policy"

local M = {}

local na = require "dbtool.core.sodium"

--- SHA-256 (lowercase hex) of a string.
function M.string(s)
  return na.sha256(s)
end

--- SHA-256 of each file of `paths`: {[path] = hex}; raises (exit 1) naming an unreadable file.
function M.files(paths)
  local out = {}
  for _, p in ipairs(paths) do
    local h, msg = na.sha256_file(p)
    if not h then errors.raise(errors.GENERIC, "cannot read " .. tostring(msg)) end
    out[p] = h
  end
  return out
end

function M.file(path)
  return M.files({ path })[path]
end

-- ---------------------------------------------------------------- the cache of unchanged files
--
-- `status`, `check` and `migrate` verify the checksum of every applied migration. Reading
-- 10,000 files to prove that they did not change costs more than everything else together,
-- so the hashes are kept in a cache file per migration directory, and a file is read again
-- only when its stat key changed: device, inode, size, mtime and ctime with nanoseconds
-- (fs.stat_keys). mtime can be set back by anyone (touch -d, tar, git checkout); ctime
-- cannot: the kernel sets it to the current time on every change of content or metadata.
-- So a key equal to the cached one means the same file, unchanged — provided the cached key
-- was taken when the file was already older than the stat by more than the timestamp
-- granularity: a file changed within the same clock tick as it was hashed could otherwise
-- keep its key with another content ("racy git"). Such recent files are hashed every time
-- and not cached (MARGIN).
--
-- The cache is ${XDG_CACHE_HOME:-~/.cache}/db-tool/checksums/<sha256(realpath of the
-- directory)>, mode 0600 in a 0700 directory, replaced atomically. It is ignored, and
-- rebuilt, when anything about it is unsure: another format version, another owner or a
-- group/world-writable file, another user id or directory (path, device, inode) in its
-- header, a count or length that does not add up, or a trailer that is not the SHA-256 of
-- the content (corruption). Files outside the directory, or named with a tab or newline,
-- are not cached. A cache that cannot be written is left alone (the command goes on).
--
-- Format (text, read without scanning it line by line): the lines "db-tool checksum cache
-- v1", "uid N", "dir PATH", "dirkey DEV:INO", "count N PBYTES KBYTES"; then the N relative
-- paths joined by newlines (PBYTES), a newline, the N stat keys joined by newlines (KBYTES),
-- a newline, N × 64 hex digits; then "\nsha256 HEX\n", HEX the SHA-256 of all before it.

M.MARGIN = 2 -- seconds: a file whose mtime or ctime is newer than (stat time − MARGIN) is not cached
M.CACHE_VERSION = "db-tool checksum cache v1"

local function cache_file(root)
  local stdlib = require "posix.stdlib"
  local real = stdlib.realpath(root)
  if not real then return nil end
  local st = stat.stat(real)
  if not st then return nil end
  local ok, dir = pcall(require("dbtool.env").cache_dir)
  if not ok then return nil end
  return dir .. "/checksums/" .. M.string(real):sub(1, 32), real,
    string.format("%x:%x", st.st_dev, st.st_ino), dir
end

local function header(real, dirkey, n, plen, klen)
  return table.concat({ M.CACHE_VERSION, "uid " .. require("posix.unistd").geteuid(), "dir " .. real,
    "dirkey " .. dirkey, string.format("count %d %d %d", n, plen, klen) }, "\n") .. "\n"
end

--- The cache of directory `root` as {paths = blob, keys = blob, hashes = blob, n = count},
--- or nil and why it is not used. opts.unchecked: skip the checksum of the content (for a
--- caller that only compares it with what it computed itself, so that a damage can only
--- make it not match).
function M.load_cache(root, opts)
  local path, real, dirkey = cache_file(root)
  if not path then return nil, "no cache location" end
  local fcntl, unistd = require "posix.fcntl", require "posix.unistd"
  local fd = fcntl.open(path, fcntl.O_RDONLY | (fcntl.O_NOFOLLOW or 0))
  if not fd then return nil, "no cache" end
  local st = stat.fstat(fd)
  if not st or st.st_uid ~= unistd.geteuid() or (st.st_mode & 18) ~= 0 or stat.S_ISREG(st.st_mode) == 0 then
    unistd.close(fd)
    return nil, "cache file not owned by this user, or writable by others"
  end
  local text = unistd.read(fd, st.st_size + 1) or ""
  unistd.close(fd)
  -- the trailer: "sha256 <64 hex>\n" of everything before it
  local tpos = #text - 72
  if tpos < 1 or text:sub(tpos, tpos + 7) ~= "\nsha256 " or text:sub(-1) ~= "\n" then
    return nil, "corrupt cache (no trailer)"
  end
  local body = text:sub(1, tpos - 1)
  if not (opts and opts.unchecked) and na.sha256(body) ~= text:sub(tpos + 8, tpos + 71) then
    return nil, "corrupt cache (checksum)"
  end
  local hend = 1
  for _ = 1, 5 do
    hend = body:find("\n", hend, true)
    if not hend then return nil, "unknown cache format" end
    hend = hend + 1
  end
  local n, plen, klen = body:sub(1, hend - 1):match("\ncount (%d+) (%d+) (%d+)\n$")
  n, plen, klen = tonumber(n), tonumber(plen), tonumber(klen)
  if not n then return nil, "unknown cache format" end
  if body:sub(1, hend - 1) ~= header(real, dirkey, n, plen, klen) then
    return nil, "cache of another version, user or directory"
  end
  if hend + plen + klen + 1 + 64 * n ~= #body then return nil, "corrupt cache (lengths)" end
  local paths = body:sub(hend, hend + plen - 1)
  local keys = body:sub(hend + plen + 1, hend + plen + klen)
  local hashes = body:sub(hend + plen + klen + 2, hend + plen + klen + 1 + 64 * n)
  return { paths = paths, keys = keys, hashes = hashes, n = n }
end

--- Write the cache of `root`: arrays paths, keys, hashes (keys[i] false: not cached).
function M.save_cache(root, paths, keys, hashes)
  local path, real, dirkey, dir = cache_file(root)
  if not path then return nil, "no cache location" end
  local P, K, H = {}, {}, {}
  for i, p in ipairs(paths) do
    if keys[i] and hashes[i] and not p:find("[\t\n]") then
      P[#P + 1], K[#K + 1], H[#H + 1] = p, keys[i], hashes[i]
    end
  end
  local pblob, kblob = table.concat(P, "\n"), table.concat(K, "\n")
  local body = header(real, dirkey, #P, #pblob, #kblob) .. pblob .. "\n" .. kblob .. "\n" .. table.concat(H)
  local stdlib, unistd = require "posix.stdlib", require "posix.unistd"
  local acc = ""
  for part in (dir .. "/checksums"):gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not stat.stat(acc) then stat.mkdir(acc, 448) end
  end
  local fd, tmp
  require("dbtool.core").uninterruptible(function() fd, tmp = stdlib.mkstemp(path .. ".tmp-XXXXXX") end)
  if not fd then return nil, tmp end
  local data = body .. "\nsha256 " .. na.sha256(body) .. "\n"
  local ok, err = true, nil
  local off = 1
  while off <= #data do
    local w, werr = unistd.write(fd, data:sub(off, off + (1 << 20) - 1))
    if not w then ok, err = false, werr break end
    off = off + w
  end
  unistd.close(fd)
  if ok then ok, err = require("posix.stdio").rename(tmp, path) end
  if not ok then os.remove(tmp) end
  return ok, err
end

--- Seconds since the epoch (file timestamps are wall-clock times).
function M.wall_time()
  local tv = require("posix.sys.time").gettimeofday()
  return tv.tv_sec + tv.tv_usec / 1e6
end

--- SHA-256 of the files `rel` (paths relative to the directory `root`; "\t" + a path for a
--- file elsewhere: read, never cached), reading only those whose stat key is not the cached
--- one. opts.keys / opts.recent: fs.stat_keys taken already (with before = the wall time
--- before the stat − MARGIN); else taken here. opts.no_cache: read everything. Returns the
--- hashes (an array aligned with rel; raises exit 1 naming an unreadable file) and how many
--- files were read.
function M.files_cached(root, rel, opts)
  opts = opts or {}
  local keys, recent = opts.keys, opts.recent
  local n = #rel
  local function path(i)
    local r = rel[i]
    if r:byte(1) == 9 then return r:sub(2) end
    return root .. "/" .. r
  end
  if not keys then
    local paths = {}
    for i = 1, n do paths[i] = path(i) end
    keys, recent = require("dbtool.core.fs").stat_keys(paths, M.wall_time() - M.MARGIN)
  end
  local cache = (not opts.no_cache) and M.load_cache(root) or nil
  local hashes, read = {}, 0
  if cache and cache.n > 0 then
    if cache.n == n and cache.keys == table.concat(keys, "\n") and cache.paths == table.concat(rel, "\n") then
      -- the usual case: the same files, all unchanged
      local hs, sub = cache.hashes, string.sub
      for i = 1, n do hashes[i] = sub(hs, 64 * i - 63, 64 * i) end
      return hashes, 0
    end
    local k, ckeys, cached = 0, {}, {}
    for key in cache.keys:gmatch("[^\n]+") do k = k + 1; ckeys[k] = key end
    k = 0
    for p in cache.paths:gmatch("[^\n]+") do
      k = k + 1
      cached[p] = k
    end
    for i = 1, n do
      local j = cached[rel[i]]
      if j and keys[i] and ckeys[j] == keys[i] then hashes[i] = cache.hashes:sub(64 * j - 63, 64 * j) end
    end
  end
  local store_keys = {}
  for i = 1, n do
    if not hashes[i] then
      local h, msg = na.sha256_file(path(i))
      if not h then errors.raise(errors.GENERIC, "cannot read " .. tostring(msg)) end
      hashes[i] = h
      read = read + 1
    end
    store_keys[i] = keys[i] and not recent[i] and keys[i] or false
  end
  if not opts.no_cache and (read > 0 or not cache or cache.n ~= n) then
    local ok, err = pcall(M.save_cache, root, rel, store_keys, hashes)
    if not ok or not err then
      require("dbtool.log").ns("migrate"):debug("checksum cache not written: %s", tostring(err))
    end
  end
  return hashes, read
end

--- Every regular file under `dir`, as relative paths in byte order.
function M.tree_files(dir)
  local rel = {}
  local function walk(d, prefix, depth)
    if depth > 32 then return end
    local ok, names = pcall(dirent.dir, d)
    if not ok or type(names) ~= "table" then return end
    for _, n in ipairs(names) do
      if n ~= "." and n ~= ".." then
        local p = d .. "/" .. n
        local st = stat.stat(p)
        if st and stat.S_ISDIR(st.st_mode) ~= 0 then
          walk(p, prefix .. n .. "/", depth + 1)
        elseif st and stat.S_ISREG(st.st_mode) ~= 0 then
          rel[#rel + 1] = prefix .. n
        end
      end
    end
  end
  walk(dir, "", 0)
  return policy.sort(rel)
end

--- Tree hashes of several directories at once: {[dir] = hex}.
function M.trees(dirs)
  local all, per = {}, {}
  for _, d in ipairs(dirs) do
    per[d] = M.tree_files(d)
    for _, r in ipairs(per[d]) do all[#all + 1] = d .. "/" .. r end
  end
  local hashes = M.files(all)
  local out = {}
  for _, d in ipairs(dirs) do
    local parts = {}
    for _, r in ipairs(per[d]) do parts[#parts + 1] = r .. "\0" .. hashes[d .. "/" .. r] .. "\n" end
    out[d] = M.string(table.concat(parts))
  end
  return out
end

function M.tree(dir)
  return M.trees({ dir })[dir]
end

return M
