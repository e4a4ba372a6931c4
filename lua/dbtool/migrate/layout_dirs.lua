-- Layout `dirs` (hectic `migrator`): MIGRATION_DIR/<14 digits>-<description>/ holding
-- up.sql and down.sql, or up/entrypoint.sql and down/entrypoint.sql (multi-file form: the
-- entrypoint pulls in its neighbours with \ir / .read). The single file wins when both
-- exist, as in the original. Only immediate subdirectories count; files, deeper entries and
-- names without the 14-digit prefix are ignored (the 14 digits are not checked as a date,
-- and the description may be empty, as the original and hectic.migration_name allow).
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

-- Records are lazy: `path` and `up` (strings built per migration) and the down script are
-- made on first use, so that `status` of 10,000 migrations builds none of them.
local Lazy = {
  __index = function(m, k)
    if k == "path" then
      local p = m.dir .. "/" .. m.name
      rawset(m, "path", p)
      return p
    elseif k == "up" then
      local rel = rawget(m, "rel")
      if not rel then return nil end
      local u = m.dir .. "/" .. rel
      rawset(m, "up", u)
      return u
    elseif k == "down" or k == "down_multi" then
      local d, multi = quick_script(m.path, "down")
      rawset(m, "down", d or false)
      rawset(m, "down_multi", multi or false)
      return rawget(m, k)
    end
    return nil
  end,
}

--- The migrations in `dir`: array of {name, path, up, up_multi, down, down_multi, rel, key,
--- recent} (path, up and down made on first use; down false when absent), in byte order of
--- the names. `rel`: up.sql relative to `dir`; `key`/`recent`: its stat key and whether it
--- changed within the checksum cache's margin (dbtool.migrate.checksum), taken in one batch
--- that also tells which up.sql exist. A missing directory gives an empty list and
--- missing = true.
function M.discover(dir)
  local all = require("dbtool.core.fs").names(dir)
  if not all then return {}, true end
  local names, ups = {}, {}
  local pattern = M.pattern
  for _, name in ipairs(all) do
    if name:match(pattern) then
      local i = #names + 1
      names[i], ups[i] = name, name .. "/up.sql"
    end
  end
  if not require("dbtool.migrate.policy").is_byte_order() then
    require("dbtool.migrate.policy").sort(names)
    for i, name in ipairs(names) do ups[i] = name .. "/up.sql" end
  end
  local checksum = require "dbtool.migrate.checksum"
  local keys, recent = require("dbtool.core.fs").stat_keys(ups, checksum.wall_time() - checksum.MARGIN, dir)
  if not keys then keys, recent = {}, {} end
  local list = {}
  for i, name in ipairs(names) do
    local key = keys[i]
    if key then
      list[#list + 1] = setmetatable({ name = name, dir = dir, rel = ups[i], up_multi = false, key = key,
        recent = recent[i] or false }, Lazy)
    else
      local path = dir .. "/" .. name
      local up, multi = quick_script(path, "up")
      if up or kind(path) == "dir" then
        list[#list + 1] = setmetatable({ name = name, dir = dir, path = path, up = up,
          up_multi = multi or false }, Lazy)
      end
    end
  end
  return list, false
end

return M
