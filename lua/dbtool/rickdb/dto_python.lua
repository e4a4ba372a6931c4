-- The default `rickdb dto` template: rick_db's @fieldmapper record class, as rick_db writes
-- it (line for line when no column needs fixing):
--
--   from rick_db import fieldmapper
--
--
--   @fieldmapper(tablename='page', schema='test', pk='id_page')
--   class PageRecord:
--       id = 'id_page'
--       url = 'url'
--
-- schema= only when the command line named one; pk= for a single-column primary key. Renamed
-- attributes and a composite key are explained in comments above the decorator.
--
-- Override it with ${DATABASE_DIR}/lua/dbtool/rickdb/dto_python.lua (which can wrap this one
-- through require "dbtool.builtin.rickdb.dto_python"), or choose another template with
-- `dto_template` in [rickdb] or --template. See dbtool.rickdb.dto for the object passed in.
local M = { extension = "py" }

function M.render(obj, dto)
  local r = dto.py_repr
  local args = { "tablename=" .. r(obj.object) }
  if obj.schema then args[#args + 1] = "schema=" .. r(obj.schema) end
  if obj.pk_column then args[#args + 1] = "pk=" .. r(obj.pk_column) end
  local out = { "from rick_db import fieldmapper", "", "" }
  for _, note in ipairs(obj.notes) do out[#out + 1] = "# " .. note:gsub("[\r\n]", " ") end
  out[#out + 1] = "@fieldmapper(" .. table.concat(args, ", ") .. ")"
  out[#out + 1] = "class " .. obj.class .. ":"
  for _, c in ipairs(obj.columns) do
    out[#out + 1] = "    " .. c.attr .. " = " .. r(c.name)
  end
  if #obj.columns == 0 then out[#out + 1] = "    pass" end
  return table.concat(out, "\n") .. "\n"
end

return M
