-- Layout `dirs` (hectic `migrator`): MIGRATION_DIR/<14 digits>-<description>/ holding
-- up.sql and down.sql, or up/entrypoint.sql and down/entrypoint.sql (multi-file form: the
-- entrypoint pulls in its neighbours with \ir / .read). The single file wins when both
-- exist, as in the original. Only immediate subdirectories count; files, deeper entries and
-- names without the 14-digit prefix are ignored (the 14 digits are not checked as a date,
-- and the description may be empty, as the original and hectic.migration_name allow).
local dirent = require "posix.dirent"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local M = { name = "dirs", reversible = true }

M.pattern = "^" .. string.rep("%d", 14) .. "%-"

local function kind(path)
  local st = stat.stat(path)
  if not st then return nil end
  if stat.S_ISDIR(st.st_mode) ~= 0 then return "dir" end
  if stat.S_ISREG(st.st_mode) ~= 0 then return "file" end
  return "other"
end
M.kind = kind

--- Is `name` a migration name of this layout?
function M.valid_name(name)
  return name:match(M.pattern) ~= nil and not name:find("/", 1, true)
end

--- Script of one direction ("up"/"down") of the migration in directory `path`:
--- returns file, multi (true for the entrypoint form), or nil.
function M.script(path, direction)
  local single = path .. "/" .. direction .. ".sql"
  if kind(single) == "file" then return single, false end
  local entry = path .. "/" .. direction .. "/entrypoint.sql"
  if kind(entry) == "file" then return entry, true end
  return nil
end

--- Where a missing script was expected (for the error message).
function M.expected(path, direction)
  return path .. "/" .. direction .. ".sql", path .. "/" .. direction .. "/entrypoint.sql"
end

-- Fast path for discovery (10,000 migrations in well under a second): access(2) instead of
-- a full stat, and the down script looked up only when asked for.
local function quick_script(path, direction)
  local single = path .. "/" .. direction .. ".sql"
  if unistd.access(single) then return single, false end
  local entry = path .. "/" .. direction .. "/entrypoint.sql"
  if unistd.access(entry) then return entry, true end
  return nil
end

local Lazy = {
  __index = function(m, k)
    if k == "down" or k == "down_multi" then
      local d, multi = quick_script(m.path, "down")
      rawset(m, "down", d or false)
      rawset(m, "down_multi", multi or false)
      return rawget(m, k)
    end
    return nil
  end,
}

--- The migrations in `dir`: array of {name, path, up, up_multi, down, down_multi} (down
--- looked up on first use; false when absent), in no particular order (the engine sorts).
--- A missing directory gives an empty list and missing = true.
function M.discover(dir)
  local ok, names = pcall(dirent.dir, dir)
  if not ok or type(names) ~= "table" then return {}, true end
  local list = {}
  for _, name in ipairs(names) do
    if name:match(M.pattern) then
      local path = dir .. "/" .. name
      local up, multi = quick_script(path, "up")
      if up or kind(path) == "dir" then
        list[#list + 1] = setmetatable({ name = name, path = path, up = up, up_multi = multi or false }, Lazy)
      end
    end
  end
  return list, false
end

return M
