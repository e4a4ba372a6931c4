-- `rickdb dto`: describe a table or view (PostgreSQL or SQLite) and render it through a
-- template. The default template (dbtool.rickdb.dto_python) writes rick_db's
-- `@fieldmapper` Python class; a project can replace it (${DATABASE_DIR}/lua/dbtool/rickdb/
-- dto_python.lua, or `dto_template` in [rickdb], or --template) to emit any language.
--
-- A template is a module (or a .lua file returning a table) with
--   render(obj, dto) → text          obj: see M.describe; dto: this module (helpers)
--   extension = "py"                 optional, informative
--
-- The naming rules of rick_db (reference/rickdb-upstream.md §4.2) are plain functions here:
-- class_name (str.title(), drop '_' and non-alphanumerics, 'T' prefix, 'Record' suffix),
-- py_repr (Python's repr of a str), and the attribute rule (a single-column primary key is
-- `id` unless a column is named id). Its defects are fixed (§4.3): Python keywords get a
-- trailing '_', names starting with '_' (which fieldmapper ignores) lose it and get a
-- trailing '_', names of Record methods (pk, fields, values, ...) get a trailing '_', names
-- that are not identifiers are made into identifiers, duplicates are made unique, and a
-- composite primary key sets no single pk (with a comment saying so). Every rename is noted
-- in obj.notes, and the Python template writes the notes as comments.
local M = {}

M.PY_KEYWORDS = {}
for w in ([[False None True and as assert async await break class continue def del elif else except
  finally for from global if import in is lambda nonlocal not or pass raise return try while with
  yield]]):gmatch("%S+") do M.PY_KEYWORDS[w] = true end

-- methods fieldmapper patches into every record class (rick_db/mapper.py BaseRecord)
M.RECORD_METHODS = {}
for w in ("add asdict asrecord dbfields fieldmap fields fromrecord has_pk items load pk values")
  :gmatch("%S+") do
  M.RECORD_METHODS[w] = true
end

-- ---------------------------------------------------------------- naming

--- Python's str.title() for ASCII text; bytes >= 0x80 count as letters (they continue a word),
--- as Python's title() treats accented letters.
function M.title(s)
  local out = {}
  local prev_cased = false
  for i = 1, #s do
    local c = s:sub(i, i)
    local b = c:byte()
    local letter = c:match("%a") ~= nil or b >= 0x80
    if c:match("%a") then
      out[i] = prev_cased and c:lower() or c:upper()
    else
      out[i] = c
    end
    prev_cased = letter
  end
  return table.concat(out)
end

--- rick_db's class name: title(), '_' and anything outside [A-Za-z0-9] dropped, 'T' prefix
--- when empty or not starting with a letter, then 'Record'.
function M.class_name(tablename)
  local s = M.title(tablename):gsub("_", ""):gsub("[^A-Za-z0-9]", "")
  if s == "" or not s:sub(1, 1):match("%a") then s = "T" .. s end
  return s .. "Record"
end

--- Python repr() of a str: single quotes unless the text has ' and no ", escapes for
--- backslash, the quote, \n \r \t and other control characters.
function M.py_repr(s)
  local quote = "'"
  if s:find("'", 1, true) and not s:find('"', 1, true) then quote = '"' end
  local body = s:gsub("[%c\\'\"]", function(c)
    if c == "\\" then return "\\\\" end
    if c == quote then return "\\" .. c end
    if c == "'" or c == '"' then return c end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return string.format("\\x%02x", c:byte())
  end)
  return quote .. body .. quote
end

-- Letters Python accepts in identifiers, beyond ASCII: Latin-1 and Latin Extended letters,
-- Greek, Cyrillic (a conservative subset of Unicode XID_Continue).
local function identifier_cp(cp)
  return (cp >= 0xC0 and cp <= 0x24F and cp ~= 0xD7 and cp ~= 0xF7) or (cp >= 0x370 and cp <= 0x3FF)
    or (cp >= 0x400 and cp <= 0x4FF)
end

--- Is `s` a Python identifier (ASCII rules plus the letters above)?
function M.is_identifier(s)
  if s == "" or s:sub(1, 1):match("%d") then return false end
  if not utf8.len(s) then return false end
  for _, cp in utf8.codes(s) do
    if not (cp < 128 and string.char(cp):match("[%w_]")) and not identifier_cp(cp) then return false end
  end
  return true
end

--- Make `s` an identifier: other characters become '_', a leading digit gets 'f_'.
function M.to_identifier(s)
  local out = {}
  if utf8.len(s) then
    for _, cp in utf8.codes(s) do
      if (cp < 128 and string.char(cp):match("[%w_]")) or identifier_cp(cp) then
        out[#out + 1] = utf8.char(cp)
      else
        out[#out + 1] = "_"
      end
    end
  else
    out[1] = s:gsub("[^%w_]", "_")
  end
  local r = table.concat(out)
  if r == "" then r = "field" end
  if r:sub(1, 1):match("%d") then r = "f_" .. r end
  return r
end

--- Attribute names for `columns` ({name, primary}) and the single pk column (or nil):
--- rick_db's rule with its defects fixed. Returns attrs (array), notes (array of text).
function M.attributes(columns, single_pk)
  local has_id = false
  for _, c in ipairs(columns) do if c.name == "id" then has_id = true end end
  local attrs, notes, used = {}, {}, {}
  for i, c in ipairs(columns) do
    local a = c.name
    if single_pk and c.name == single_pk and not has_id then a = "id" end
    local why
    if not M.is_identifier(a) then
      a = M.to_identifier(a)
      why = "is not a Python identifier"
    end
    if a:sub(1, 1) == "_" then
      local stripped = a:gsub("^_+", "")
      if stripped == "" then stripped = "field" end
      a = stripped .. "_"
      why = why or "starts with '_' (fieldmapper ignores such attributes)"
    end
    if M.PY_KEYWORDS[a] then
      a = a .. "_"
      why = why or "is a Python keyword"
    elseif M.RECORD_METHODS[a] then
      a = a .. "_"
      why = why or "is the name of a record method"
    end
    while used[a] do
      a = a .. "_"
      why = why or "would repeat another attribute"
    end
    used[a] = true
    attrs[i] = a
    if why then
      notes[#notes + 1] = string.format("column %s is attribute %s: %s", M.py_repr(c.name), a, why)
    end
  end
  return attrs, notes
end

-- ---------------------------------------------------------------- introspection

--- Split "[schema.]object" on the first '.'.
function M.split(arg)
  local schema, name = arg:match("^([^.]*)%.(.*)$")
  if schema then return schema, name end
  return nil, arg
end

--- PostgreSQL: {kind, columns = {{name, type, nullable, position}}, pk = {names in key order},
--- schema (the real one)} or nil when there is no such table or view.
function M.introspect_pg(conn, schema, name)
  local r = conn:exec([[
    SELECT c.oid::int8 AS oid, c.relkind::text AS relkind, n.nspname AS schema
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'f', 'v', 'm')]],
    schema or "public", name)
  if r.n == 0 then return nil end
  local rel = r[1]
  local cols = conn:exec([[
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
           NOT a.attnotnull AS nullable, a.attnum::int AS position
      FROM pg_attribute a
     WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum]], rel.oid)
  local pk = conn:exec([[
    SELECT a.attname AS name
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = $1::int8::oid AND i.indisprimary
     ORDER BY k.ord]], rel.oid)
  local out = { kind = (rel.relkind == "v" or rel.relkind == "m") and "view" or "table", columns = {},
    pk = {}, schema = rel.schema }
  for i = 1, cols.n do
    out.columns[i] = { name = cols[i].name, type = cols[i].type, nullable = cols[i].nullable,
      position = cols[i].position }
  end
  for i = 1, pk.n do out.pk[i] = pk[i].name end
  return out
end

local function sq_ident(s)
  return '"' .. s:gsub('"', '""') .. '"'
end

--- SQLite: the same shape (schema: main, temp or an attached database).
function M.introspect_sqlite(db, schema, name)
  local ok, rows = pcall(db.query, db, "SELECT type FROM " .. sq_ident(schema or "main")
    .. ".sqlite_master WHERE name = ? AND type IN ('table', 'view')", name)
  if not ok or #rows == 0 then return nil end
  local kind = tostring(rows[1].type)
  local cols = db:query([[SELECT name, type, "notnull" AS nn, pk, cid FROM pragma_table_info(?, ?)
    ORDER BY cid]], name, schema or "main")
  local out = { kind = kind, columns = {}, pk = {}, schema = schema or "main" }
  local keyed = {}
  for i, c in ipairs(cols) do
    out.columns[i] = { name = tostring(c.name), type = tostring(c.type or ""), nullable = tonumber(c.nn) == 0,
      position = i }
    local k = tonumber(c.pk) or 0
    if kind == "table" and k > 0 then keyed[#keyed + 1] = { k, tostring(c.name) } end
  end
  table.sort(keyed, function(a, b) return a[1] < b[1] end)
  for i, k in ipairs(keyed) do out.pk[i] = k[2] end
  return out
end

--- Describe `arg` ("[schema.]object") on a store (PostgreSQL .conn or SQLite .db) as the
--- object templates receive, or nil when it is neither a table nor a view:
---   {arg, object, schema (as given, or nil), db_schema (the real one), kind = "table"|"view",
---    engine, class, columns = {{name, attr, type, nullable, primary, key_position}},
---    pk = {column names in key order}, pk_column (the single pk, or nil), composite (bool),
---    notes = {text}}
function M.describe(store, arg)
  local schema, name = M.split(arg)
  local raw
  if store.engine == "postgresql" then
    raw = M.introspect_pg(store.conn, schema, name)
  elseif store.db then
    raw = M.introspect_sqlite(store.db, schema, name)
  end
  if not raw then return nil end
  return M.model(arg, schema, name, raw, store.engine)
end

--- Build the template object from introspection results (pure).
function M.model(arg, schema, name, raw, engine)
  local keypos = {}
  for i, n in ipairs(raw.pk) do keypos[n] = i end
  local single = #raw.pk == 1 and raw.pk[1] or nil
  local obj = { arg = arg, object = name, schema = schema, db_schema = raw.schema, kind = raw.kind,
    engine = engine, class = M.class_name(name), columns = {}, pk = raw.pk, pk_column = single,
    composite = #raw.pk > 1, notes = {} }
  for i, c in ipairs(raw.columns) do
    obj.columns[i] = { name = c.name, type = c.type, nullable = c.nullable, primary = keypos[c.name] ~= nil,
      key_position = keypos[c.name] }
  end
  local attrs, notes = M.attributes(obj.columns, single)
  for i, a in ipairs(attrs) do obj.columns[i].attr = a end
  if obj.composite then
    local q = {}
    for i, n in ipairs(raw.pk) do q[i] = M.py_repr(n) end
    table.insert(notes, 1, "composite primary key (" .. table.concat(q, ", ")
      .. "): fieldmapper takes a single pk, so none is set")
  end
  obj.notes = notes
  return obj
end

-- ---------------------------------------------------------------- templates

M.DEFAULT_TEMPLATE = "dbtool.rickdb.dto_python"

--- Load a template: a module name, or a path to a .lua file (relative to `base`).
function M.load_template(spec, base)
  local errors = require "dbtool.errors"
  spec = spec or M.DEFAULT_TEMPLATE
  local tpl
  if spec:match("%.lua$") or spec:find("/", 1, true) then
    local path = spec
    if path:sub(1, 1) ~= "/" and base and base ~= "." then path = base .. "/" .. path end
    local chunk, err = loadfile(path, "t")
    if not chunk then errors.raise(errors.GENERIC, "cannot load DTO template: " .. tostring(err)) end
    local ok, res = errors.try(chunk)
    if not ok then errors.raise(errors.GENERIC, "DTO template " .. path .. " failed: " .. res.msg) end
    tpl = res
  else
    local ok, res = errors.try(require, spec)
    if not ok then errors.raise(errors.GENERIC, "cannot load DTO template '" .. spec .. "': " .. res.msg) end
    tpl = res
  end
  if type(tpl) ~= "table" or type(tpl.render) ~= "function" then
    errors.raise(errors.GENERIC, "DTO template " .. spec .. " must return a table with render(obj, dto)")
  end
  return tpl
end

--- Render `obj` with template `tpl`; the text always ends with one newline.
function M.render(obj, tpl)
  local errors = require "dbtool.errors"
  local ok, text = errors.try(tpl.render, obj, M)
  if not ok then errors.raise(errors.GENERIC, "DTO template failed: " .. text.msg) end
  if type(text) ~= "string" then errors.raise(errors.GENERIC, "DTO template must return a string") end
  return (text:gsub("\n*$", "")) .. "\n"
end

return M
