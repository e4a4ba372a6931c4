-- How dbtool.sqlrun prints query results: psql 15's unaligned and csv formats (plain and
-- expanded), the \pset options that shape them, and \timing's line. Plain functions over
-- a settings table, testable without a database.
--
--   popt = print.defaults()             the settings `database sql -p` starts with: psql's,
--                                       but format unaligned and fieldsep a tab (psql -A -F '\t')
--   ok, err = print.pset(popt, name [, value])   \pset name [value] (toggles without a value)
--   text = print.list(popt)             what a bare \pset prints
--   text = print.format(popt, res)      a result ({fields =, n =, [i] = row of text or nil})
--   line = print.timing(ms)             "Time: 1.234 ms\n" (with mm:ss.sss from one second on)
--
-- Formats psql has and db-tool does not print (aligned, wrapped, html, asciidoc, latex,
-- latex-longtable, troff-ms) are accepted by \pset format (a script may set them) but
-- print.format then fails with a message saying so: see M.PRINTED.
local M = {}

local concat = table.concat

--- Formats print.format can produce.
M.PRINTED = { unaligned = true, csv = true }

local FORMATS = { "aligned", "asciidoc", "csv", "html", "latex", "troff-ms", "unaligned", "wrapped" }

function M.defaults()
  return {
    format = "unaligned", fieldsep = "\t", fieldsep_zero = false, recordsep = "\n",
    recordsep_zero = false, tuples_only = false, footer = true, null = "", csv_fieldsep = ",",
    expanded = 0, title = nil, border = 1, columns = 0, linestyle = "ascii",
    numericlocale = false, pager = 1, pager_min_lines = 0, tableattr = nil,
    unicode_border_linestyle = "single", unicode_column_linestyle = "single",
    unicode_header_linestyle = "single",
  }
end

-- psql's ParseVariableBool (true/false/yes/no and their unique prefixes, on/off, 1/0).
local BOOL = { ["true"] = true, yes = true, on = true, ["1"] = true,
  ["false"] = false, no = false, off = false, ["0"] = false }

function M.parse_bool(s)
  if type(s) ~= "string" or s == "" then return nil end
  local v = s:lower()
  if BOOL[v] ~= nil then return BOOL[v] end
  for _, w in ipairs { "true", "false", "yes", "no" } do
    if w:sub(1, #v) == v then return BOOL[w] end
  end
  if #v >= 2 and ("off"):sub(1, #v) == v then return false end
  return nil
end

local function bool_opt(popt, key, name, value)
  if value == nil then
    popt[key] = not popt[key]
    return true
  end
  local b = M.parse_bool(value)
  if b == nil then
    return nil, string.format('unrecognized value "%s" for "%s": Boolean expected', value, name)
  end
  popt[key] = b
  return true
end

local function prefix_of(list, value, what)
  local v = value:lower()
  for _, w in ipairs(list) do
    if w:sub(1, #v) == v then return w end
  end
  return nil, what
end

--- \pset NAME [VALUE]: change popt as psql's do_pset does; false, message on a bad value.
function M.pset(popt, name, value)
  if name == "format" then
    if value == nil then return true end
    local match
    for _, f in ipairs(FORMATS) do
      if f:sub(1, #value):lower() == value:lower() and #value > 0 then
        if match then
          return nil, string.format('\\pset: ambiguous abbreviation "%s" matches both "%s" and "%s"',
            value, match, f)
        end
        match = f
      end
    end
    if not match and #value > 0 and ("latex-longtable"):sub(1, #value) == value:lower() then
      match = "latex-longtable"
    end
    if not match then
      return nil, "\\pset: allowed formats are aligned, asciidoc, csv, html, latex, latex-longtable, " ..
        "troff-ms, unaligned, wrapped"
    end
    popt.format = match
  elseif name == "border" then
    if value then popt.border = tonumber(value:match("^%s*([+-]?%d+)")) or 0 end
  elseif name == "expanded" or name == "x" or name == "vertical" then
    if value and value:lower() == "auto" then
      popt.expanded = 2
    elseif value then
      local b = M.parse_bool(value)
      if b == nil then
        return nil, string.format('unrecognized value "%s" for "%s"\nAvailable values are: on, off, auto.',
          value, name)
      end
      popt.expanded = b and 1 or 0
    else
      popt.expanded = popt.expanded == 0 and 1 or 0
    end
  elseif name == "csv_fieldsep" then
    if value then
      if #value ~= 1 then return nil, "\\pset: csv_fieldsep must be a single one-byte character" end
      if value == '"' or value == "\n" or value == "\r" then
        return nil, "\\pset: csv_fieldsep cannot be a double quote, a newline, or a carriage return"
      end
      popt.csv_fieldsep = value
    end
  elseif name == "numericlocale" then
    return bool_opt(popt, "numericlocale", name, value)
  elseif name == "null" then
    if value then popt.null = value end
  elseif name == "fieldsep" then
    if value then popt.fieldsep, popt.fieldsep_zero = value, false end
  elseif name == "fieldsep_zero" then
    popt.fieldsep, popt.fieldsep_zero = nil, true
  elseif name == "recordsep" then
    if value then popt.recordsep, popt.recordsep_zero = value, false end
  elseif name == "recordsep_zero" then
    popt.recordsep, popt.recordsep_zero = nil, true
  elseif name == "tuples_only" or name == "t" then
    return bool_opt(popt, "tuples_only", name, value)
  elseif name == "title" or name == "C" then
    popt.title = value
  elseif name == "tableattr" or name == "T" then
    popt.tableattr = value
  elseif name == "pager" then
    if value and value:lower() == "always" then
      popt.pager = 2
    elseif value then
      local b = M.parse_bool(value)
      if b == nil then
        return nil, string.format('unrecognized value "%s" for "%s"\nAvailable values are: on, off, always.',
          value, name)
      end
      popt.pager = b and 1 or 0
    else
      popt.pager = popt.pager == 1 and 0 or 1
    end
  elseif name == "pager_min_lines" then
    if value then popt.pager_min_lines = tonumber(value:match("^%s*([+-]?%d+)")) or 0 end
  elseif name == "footer" then
    return bool_opt(popt, "footer", name, value)
  elseif name == "columns" then
    if value then popt.columns = tonumber(value:match("^%s*([+-]?%d+)")) or 0 end
  elseif name == "linestyle" then
    if value then
      local w = prefix_of({ "ascii", "old-ascii", "unicode" }, value)
      if not w or value == "" then
        return nil, "\\pset: allowed line styles are ascii, old-ascii, unicode"
      end
      popt.linestyle = w
    end
  elseif name == "unicode_border_linestyle" or name == "unicode_column_linestyle" or
      name == "unicode_header_linestyle" then
    if value then
      local w = prefix_of({ "single", "double" }, value)
      if not w or value == "" then
        return nil, "\\pset: allowed Unicode " .. name:match("^unicode_(%a+)_") ..
          " line styles are single, double"
      end
      popt[name] = w
    end
  else
    return nil, "\\pset: unknown option: " .. name
  end
  return true
end

local LIST = { "border", "columns", "csv_fieldsep", "expanded", "fieldsep", "fieldsep_zero", "footer",
  "format", "linestyle", "null", "numericlocale", "pager", "pager_min_lines", "recordsep",
  "recordsep_zero", "tableattr", "title", "tuples_only", "unicode_border_linestyle",
  "unicode_column_linestyle", "unicode_header_linestyle" }

-- psql's pset_quoted_string: in quotes, ' and newline escaped.
local function quoted(s)
  return "'" .. s:gsub("[\n']", { ["\n"] = "\\n", ["'"] = "\\'" }) .. "'"
end

local function onoff(b) return b and "on" or "off" end

local function value_string(popt, name)
  if name == "border" or name == "columns" or name == "pager_min_lines" then
    return tostring(popt[name])
  elseif name == "csv_fieldsep" or name == "null" then
    return quoted(popt[name])
  elseif name == "expanded" then
    return popt.expanded == 2 and "auto" or onoff(popt.expanded == 1)
  elseif name == "fieldsep" or name == "recordsep" then
    return popt[name] and quoted(popt[name]) or ""
  elseif name == "fieldsep_zero" or name == "recordsep_zero" or name == "footer" or
      name == "numericlocale" or name == "tuples_only" then
    return onoff(popt[name])
  elseif name == "pager" then
    return tostring(popt.pager)
  elseif name == "tableattr" or name == "title" then
    return popt[name] and quoted(popt[name]) or ""
  end
  return tostring(popt[name])
end

--- What a bare \pset prints: every option and its value.
function M.list(popt)
  local out = {}
  for _, name in ipairs(LIST) do
    out[#out + 1] = string.format("%-24s %s\n", name, value_string(popt, name))
  end
  return concat(out)
end

local function sep(zero, s)
  if zero then return "\0" end
  return s or ""
end

-- psql's csv_print_field: quoted when it holds the separator, CR, LF, a double quote, is
-- exactly \. or the separator is \ or . (so that no line reads as COPY's end marker).
local function csv_field(s, fsep)
  if s:find(fsep, 1, true) or s:find('[\r\n"]') or s == "\\." or fsep == "\\" or fsep == "." then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

local function cell(popt, row, k)
  local v = row and row[k]
  if v == nil then return popt.null end
  return tostring(v)
end

local function footer_text(n)
  return string.format("(%d row%s)", n, n == 1 and "" or "s")
end

--- Text of result `res` in popt's format, or nil, message for a format not printed here.
function M.format(popt, res)
  local fields = res.fields or {}
  local ncol = #fields
  local n = res.n or #res
  local out = {}
  local fmt = popt.format
  if not M.PRINTED[fmt] then
    return nil, string.format("\\pset format %s: db-tool prints results only as unaligned or csv " ..
      "(\\pset format unaligned|csv)", fmt)
  end
  local expanded = popt.expanded == 1
  if ncol == 0 then n = 0 end      -- (rows of no columns print as nothing; the footer counts them)
  local rows = res.n or #res
  if fmt == "csv" then
    local fsep = popt.csv_fieldsep
    if expanded then
      for i = 1, n do
        for k = 1, ncol do
          out[#out + 1] = csv_field(fields[k], fsep) .. fsep .. csv_field(cell(popt, res[i], k), fsep) .. "\n"
        end
      end
    else
      if not popt.tuples_only then
        local h = {}
        for k = 1, ncol do h[k] = csv_field(fields[k], fsep) end
        out[#out + 1] = concat(h, fsep) .. "\n"
      end
      for i = 1, n do
        local c = {}
        for k = 1, ncol do c[k] = csv_field(cell(popt, res[i], k), fsep) end
        out[#out + 1] = concat(c, fsep) .. "\n"
      end
    end
    return concat(out)
  end
  -- unaligned
  local fsep = sep(popt.fieldsep_zero, popt.fieldsep)
  local rsep = sep(popt.recordsep_zero, popt.recordsep)
  local need = false
  if expanded then
    if n == 0 then return "" end      -- (psql 15 prints nothing, not even a footer)
    if not popt.tuples_only and popt.title then
      out[#out + 1] = popt.title
      need = true
    end
    for i = 1, n do
      for k = 1, ncol do
        if need then
          out[#out + 1] = rsep .. rsep
          need = false
        end
        out[#out + 1] = fields[k] .. fsep .. cell(popt, res[i], k)
        if k < ncol then out[#out + 1] = rsep else need = true end
      end
    end
    -- (no default footer in expanded mode)
  else
    if not popt.tuples_only then
      if popt.title then out[#out + 1] = popt.title .. rsep end
      out[#out + 1] = concat(fields, fsep)
      need = true
    end
    for i = 1, n do
      local c = {}
      for k = 1, ncol do c[k] = cell(popt, res[i], k) end
      if need then out[#out + 1] = rsep end
      out[#out + 1] = concat(c, fsep)
      need = true
    end
    if not popt.tuples_only and popt.footer then
      if need then out[#out + 1] = rsep end
      out[#out + 1] = footer_text(rows)
      need = true
    end
  end
  if need then out[#out + 1] = popt.recordsep_zero and "\0" or "\n" end
  return concat(out)
end

-- psql's dequote_downcase_identifier: "quoted" parts as written ("" is "), the rest lowercased.
local function dequote_downcase(s)
  local out, i, inq = {}, 1, false
  while i <= #s do
    local c = s:sub(i, i)
    if c == '"' then
      if inq and s:sub(i + 1, i + 1) == '"' then
        out[#out + 1] = '"'
        i = i + 1
      else
        inq = not inq
      end
    elseif inq then
      out[#out + 1] = c
    else
      out[#out + 1] = c:lower()
    end
    i = i + 1
  end
  return concat(out)
end

M.MAX_CROSSTAB_COLUMNS = 1600

--- psql's \crosstabview: result `res` pivoted around its columns args[1] (vertical header,
--- default the first), args[2] (horizontal header, default the second), args[3] (data:
--- needed with more than three columns), args[4] (sorts the horizontal header by its integer
--- value), each a column number or name. Returns a result to print, or nil, psql's message.
function M.crosstab(popt, res, args)
  local fields = res.fields or {}
  local ncol, n = #fields, res.n or #res
  if ncol < 3 then return nil, "\\crosstabview: query must return at least three columns" end
  local function index(arg)
    if arg:match("^%d+$") then
      local k = tonumber(arg)
      if k < 1 or k > ncol then
        error(string.format("\\crosstabview: column number %d is out of range 1..%d", k, ncol), 0)
      end
      return k
    end
    local name, found = dequote_downcase(arg), nil
    for k, f in ipairs(fields) do
      if f == name then
        if found then error(string.format('\\crosstabview: ambiguous column name: "%s"', name), 0) end
        found = k
      end
    end
    if not found then error(string.format('\\crosstabview: column name not found: "%s"', name), 0) end
    return found
  end
  local ok, out = pcall(function()
    local colV = args[1] and index(args[1]) or 1
    local colH = args[2] and index(args[2]) or 2
    if colV == colH then
      error("\\crosstabview: vertical and horizontal headers must be different columns", 0)
    end
    local colD
    if args[3] then
      colD = index(args[3])
    else
      if ncol ~= 3 then
        error("\\crosstabview: data column must be specified when query returns more than three columns", 0)
      end
      for k = 1, 3 do if k ~= colV and k ~= colH then colD = k break end end
    end
    local colS = args[4] and index(args[4])
    local NULL = {}
    local rows, rindex, cols, cindex = {}, {}, {}, {}
    local cells = {}
    for i = 1, n do
      local row = res[i]
      local v, h = row[colV], row[colH]
      local vk, hk = v == nil and NULL or v, h == nil and NULL or h
      if not rindex[vk] then
        rows[#rows + 1] = v or NULL
        rindex[vk] = #rows
      end
      if not cindex[hk] then
        local sort = colS and (tonumber((row[colS] or ""):match("^%s*([+-]?%d+)")) or 0)
        cols[#cols + 1] = { name = h, sort = sort, pos = #cols + 1 }
        cindex[hk] = #cols
        if #cols > M.MAX_CROSSTAB_COLUMNS then
          error(string.format("\\crosstabview: maximum number of columns (%d) exceeded",
            M.MAX_CROSSTAB_COLUMNS), 0)
        end
      end
      local key = rindex[vk] .. ":" .. cindex[hk]
      if cells[key] ~= nil then
        local shown = function(x) return x == nil and (popt.null ~= "" and popt.null or "(null)") or x end
        error(string.format('\\crosstabview: query result contains multiple data values for row "%s", ' ..
          'column "%s"', shown(v), shown(h)), 0)
      end
      cells[key] = row[colD] == nil and NULL or row[colD]
    end
    if colS then
      table.sort(cols, function(a, b)
        if a.sort ~= b.sort then return a.sort < b.sort end
        return a.pos < b.pos
      end)
    end
    local r = { fields = { fields[colV] }, n = #rows }
    for j, c in ipairs(cols) do r.fields[j + 1] = c.name or popt.null end
    for i, v in ipairs(rows) do
      local line = { v ~= NULL and v or nil }
      for j, c in ipairs(cols) do
        local value = cells[i .. ":" .. cindex[c.name == nil and NULL or c.name]]
        if value == NULL then line[j + 1] = nil
        else line[j + 1] = value or "" end
      end
      r[i] = line
    end
    return r
  end)
  if not ok then return nil, out end
  return out
end

--- \timing's line for `ms` milliseconds, as psql's PrintTiming.
function M.timing(ms)
  if ms < 1000 then return string.format("Time: %.3f ms\n", ms) end
  local seconds = ms / 1000
  local minutes = math.floor(seconds / 60)
  seconds = seconds - 60 * minutes
  if minutes < 60 then
    return string.format("Time: %.3f ms (%02d:%06.3f)\n", ms, minutes, seconds)
  end
  local hours = math.floor(minutes / 60)
  minutes = minutes - 60 * hours
  if hours < 24 then
    return string.format("Time: %.3f ms (%02d:%02d:%06.3f)\n", ms, hours, minutes, seconds)
  end
  local days = math.floor(hours / 24)
  hours = hours - 24 * days
  return string.format("Time: %.3f ms (%.0f d %02d:%02d:%06.3f)\n", ms, days, hours, minutes, seconds)
end

return M
