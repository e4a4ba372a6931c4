-- Layout `flat` (rickdb): every regular `*.sql` file at the top of the directory is one
-- forward-only migration, named by its file name (suffix included, as rickdb records it).
-- The suffix is case-sensitive (`X.SQL` is ignored) and there is no recursion, as rickdb.
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

--- The migrations in `dir` (regular *.sql files, byte order): {name, path, up, up_multi,
--- rel, key, recent}; key/recent: the stat key for the checksum cache (see layout_dirs).
function M.discover(dir)
  local names = require("dbtool.core.fs").names(dir)
  if not names then return {}, true end
  local sql = {}
  for _, name in ipairs(names) do
    if name:match("%.sql$") then sql[#sql + 1] = name end
  end
  if not require("dbtool.migrate.policy").is_byte_order() then require("dbtool.migrate.policy").sort(sql) end
  local checksum = require "dbtool.migrate.checksum"
  local keys, recent = require("dbtool.core.fs").stat_keys(sql, checksum.wall_time() - checksum.MARGIN, dir)
  if not keys then return {}, true end
  local list = {}
  for i, name in ipairs(sql) do
    if keys[i] then -- a regular file (or a link to one)
      local path = dir .. "/" .. name
      list[#list + 1] = { name = name, path = path, up = path, up_multi = false, rel = name, key = keys[i],
        recent = recent[i] or false }
    end
  end
  return list, false
end

return M
