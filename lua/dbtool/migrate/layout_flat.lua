-- Layout `flat` (rickdb): every regular `*.sql` file at the top of the directory is one
-- forward-only migration, named by its file name (suffix included, as rickdb records it).
-- The suffix is case-sensitive (`X.SQL` is ignored) and there is no recursion, as rickdb.
local dirent = require "posix.dirent"
local stat = require "posix.sys.stat"

local M = { name = "flat", reversible = false }

function M.valid_name(name)
  return name:match("%.sql$") ~= nil and not name:find("/", 1, true)
end

function M.script(path, direction)
  if direction ~= "up" then return nil end
  local st = stat.stat(path)
  if st and stat.S_ISREG(st.st_mode) ~= 0 then return path, false end
  return nil
end

function M.expected(path, direction)
  return path .. (direction == "up" and "" or " (" .. direction .. ": not supported by this layout)")
end

function M.discover(dir)
  local ok, names = pcall(dirent.dir, dir)
  if not ok or type(names) ~= "table" then return {}, true end
  local list = {}
  for _, name in ipairs(names) do
    if name:match("%.sql$") then
      local path = dir .. "/" .. name
      local st = stat.stat(path)
      if st and stat.S_ISREG(st.st_mode) ~= 0 then
        list[#list + 1] = { name = name, path = path, up = path, up_multi = false }
      end
    end
  end
  return list, false
end

return M
