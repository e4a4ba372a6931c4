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
