-- `database diff`: does the schema built by the current sources match the schema that a
-- backup reaches once every migration is applied? Two isolated temporary clusters (from
-- the template cache, in a private directory under $TMPDIR, always stopped and removed):
--
--   backup side  ("-" lines): the backup restored, then all migrations (in-process engine)
--   sources side ("+" lines): a fresh database hydrated from $DATABASE_SOURCE
--
-- compared by `pg_dump --schema-only` (run-specific noise removed), then the rows of every
-- table inheriting hectic.immutable (or of the --tables), in primary-key order. Exit 0 when
-- identical, 1 when anything differs; failures keep their own codes (3 missing backup, 4 a
-- migration failed, 5 a --tables entry exists on neither side, ...).
--
-- Pure policy first (normalisation, the diff itself, the report), unit-tested without a
-- database; the orchestration (`run`) at the end.
--
-- The unified diff is computed here, in Lua (Myers' O(ND) algorithm in linear space, the
-- one GNU diff uses), rather than by running `diff -u`: no extra dependency, the same output
-- everywhere, colour under our control (a TTY only, never with NO_COLOR), and the comparison
-- policy stays testable as plain functions.
local M = {}

M.MARKER = "--- IMMUTABLE TABLE DATA ---"
M.TABLES_MARKER = "--- TABLE DATA ---"
M.CONTEXT = 3
-- A box whose edit distance exceeds this is reported as a whole replacement (GNU diff has a
-- similar "too expensive" cut-off); keeps pathological inputs from taking minutes.
M.MAX_COST = 4000

-- ====================================================================== normalisation

--- Split text into lines (no line terminators; a final newline does not make an empty line).
function M.lines(text)
  local out = {}
  if text == nil or text == "" then return out end
  for line in (text:sub(-1) == "\n" and text or (text .. "\n")):gmatch("([^\n]*)\n") do
    out[#out + 1] = line
  end
  return out
end

--- Is `line` run-specific noise of a pg_dump? `\restrict KEY` / `\unrestrict KEY` (pg_dump
--- 17.6, 16.10, 15.14 and later print a random key per run).
function M.is_noise(line)
  return line:match("^\\restrict%f[%s%z]") ~= nil or line:match("^\\unrestrict%f[%s%z]") ~= nil
end

--- Is `line` about pg_cron (dropped with --no-cron): anything naming the cron schema, and the
--- extension's own statements.
function M.is_cron(line)
  return line:find("cron.", 1, true) ~= nil or line:match("EXTENSION[%w%s]*%f[%w]pg_cron%f[%W]") ~= nil
end

--- A schema dump as the lines that are compared: noise removed, --no-cron applied, runs of
--- blank lines left by removals collapsed, trailing blank lines dropped.
function M.normalize_schema(text, opts)
  opts = opts or {}
  local out = {}
  local blank = false
  for _, line in ipairs(M.lines(text)) do
    if not M.is_noise(line) and not (opts.no_cron and M.is_cron(line)) then
      local is_blank = line == ""
      if not (is_blank and blank) then out[#out + 1] = line end
      blank = is_blank
    end
  end
  while #out > 0 and out[#out] == "" do out[#out] = nil end
  return out
end

--- "a, b ,,c" → {"a", "b", "c"}; nil for nil.
function M.parse_tables(s)
  if s == nil then return nil end
  local out = {}
  for item in s:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

-- ====================================================================== the diff

-- Lines → integer ids (equal lines, equal ids), so that the inner loops compare integers.
local function intern(a, b)
  local ids, n = {}, 0
  local function map(list)
    local out = {}
    for i, line in ipairs(list) do
      local id = ids[line]
      if not id then
        n = n + 1
        id = n
        ids[line] = id
      end
      out[i] = id
    end
    return out
  end
  return map(a), map(b)
end

-- Myers' middle snake of the box [left, right) × [top, bottom) (0-based positions; element at
-- position x is A[x + 1]). Returns sx, sy, fx, fy (a snake from (sx, sy) to (fx, fy) that lies
-- on an optimal path), or nil when the cost exceeds max_cost.
local function midpair(A, B, left, top, right, bottom, max_cost)
  local w, h = right - left, bottom - top
  local size, delta = w + h, w - h
  local odd = delta % 2 ~= 0
  local maxd = (size + 1) // 2
  local vf, vb = { [1] = left }, { [1] = bottom }
  for d = 0, maxd do
    if d > max_cost then return nil end
    -- forward
    for k = d, -d, -2 do
      local c = k - delta
      local x, px
      if k == -d or (k ~= d and vf[k - 1] < vf[k + 1]) then
        x = vf[k + 1]
        px = x
      else
        px = vf[k - 1]
        x = px + 1
      end
      local y = top + (x - left) - k
      local py = (d == 0 or x ~= px) and y or (y - 1)
      while x < right and y < bottom and A[x + 1] == B[y + 1] do
        x = x + 1
        y = y + 1
      end
      vf[k] = x
      if odd and c >= -(d - 1) and c <= d - 1 and y >= vb[c] then
        return px, py, x, y
      end
    end
    -- backward
    for c = d, -d, -2 do
      local k = c + delta
      local y, py
      if c == -d or (c ~= d and vb[c - 1] > vb[c + 1]) then
        y = vb[c + 1]
        py = y
      else
        py = vb[c - 1]
        y = py - 1
      end
      local x = left + (y - top) + k
      local px = (d == 0 or y ~= py) and x or (x + 1)
      while x > left and y > top and A[x] == B[y] do
        x = x - 1
        y = y - 1
      end
      vb[c] = y
      if not odd and k >= -d and k <= d and x <= vf[k] then
        return x, y, px, py
      end
    end
  end
  return nil
end

--- The edit between two arrays of lines, as flags: del[i] (a[i] removed), ins[j] (b[j]
--- added). Minimal (a shortest edit script) unless a region costs more than
--- opts.max_cost (default M.MAX_COST), which is then reported as replaced.
function M.compare(a, b, opts)
  local max_cost = opts and opts.max_cost or M.MAX_COST
  local A, B = intern(a, b)
  local del, ins = {}, {}
  local function mark(x0, x1, y0, y1)
    for x = x0 + 1, x1 do del[x] = true end
    for y = y0 + 1, y1 do ins[y] = true end
  end
  local function walk(x, y, fx, fy)
    -- the middle part of a snake: diagonals and at most one step
    while x < fx and y < fy and A[x + 1] == B[y + 1] do x, y = x + 1, y + 1 end
    if fx - x > fy - y then
      del[x + 1] = true
      x = x + 1
    elseif fy - y > fx - x then
      ins[y + 1] = true
      y = y + 1
    end
    while x < fx and y < fy and A[x + 1] == B[y + 1] do x, y = x + 1, y + 1 end
    if x < fx or y < fy then mark(x, fx, y, fy) end
  end
  local function rec(left, top, right, bottom)
    while left < right and top < bottom and A[left + 1] == B[top + 1] do
      left, top = left + 1, top + 1
    end
    while right > left and bottom > top and A[right] == B[bottom] do
      right, bottom = right - 1, bottom - 1
    end
    if left == right or top == bottom then
      mark(left, right, top, bottom)
      return
    end
    local sx, sy, fx, fy = midpair(A, B, left, top, right, bottom, max_cost)
    if not sx then
      mark(left, right, top, bottom)
      return
    end
    rec(left, top, sx, sy)
    walk(sx, sy, fx, fy)
    rec(fx, fy, right, bottom)
  end
  rec(0, 0, #A, #B)
  return del, ins
end

--- The edit as a list of operations {op, line, ai, bi}: op " " (both), "-" (a only), "+"
--- (b only); ai/bi are 1-based line numbers (the number of the next line for the side a
--- line is not in). Deletions come before insertions within a change.
function M.ops(a, b, opts)
  local del, ins = M.compare(a, b, opts)
  local out = {}
  local i, j = 1, 1
  while i <= #a or j <= #b do
    if i <= #a and del[i] then
      out[#out + 1] = { "-", a[i], i, j }
      i = i + 1
    elseif j <= #b and ins[j] then
      out[#out + 1] = { "+", b[j], i, j }
      j = j + 1
    else
      out[#out + 1] = { " ", a[i], i, j }
      i, j = i + 1, j + 1
    end
  end
  return out
end

local function range(start, len)
  if len == 1 then return tostring(start) end
  if len == 0 then return (start - 1) .. ",0" end
  return start .. "," .. len
end

--- Unified diff of two arrays of lines (GNU `diff -u` format). Returns the text ("" when
--- equal) and whether they differ. opts: context (3), label_a, label_b, color (bool),
--- max_cost.
function M.unified(a, b, opts)
  opts = opts or {}
  local ctx = opts.context or M.CONTEXT
  local ops = M.ops(a, b, opts)
  local changes = {}
  for k, o in ipairs(ops) do if o[1] ~= " " then changes[#changes + 1] = k end end
  if #changes == 0 then return "", false end
  local paint = opts.color and require("dbtool.ui").codes or nil
  local function style(code, s)
    if not paint then return s end
    return "\27[" .. code .. "m" .. s .. "\27[0m"
  end
  local out = {}
  out[#out + 1] = style("1", "--- " .. (opts.label_a or "a"))
  out[#out + 1] = style("1", "+++ " .. (opts.label_b or "b"))
  local h = 1
  while h <= #changes do
    local first, last = changes[h], changes[h]
    while h < #changes and changes[h + 1] - last <= 2 * ctx + 1 do
      h = h + 1
      last = changes[h]
    end
    h = h + 1
    local s, e = math.max(1, first - ctx), math.min(#ops, last + ctx)
    local na, nb = 0, 0
    for k = s, e do
      local op = ops[k][1]
      if op ~= "+" then na = na + 1 end
      if op ~= "-" then nb = nb + 1 end
    end
    local sa, sb = ops[s][3], ops[s][4]
    out[#out + 1] = style("36", "@@ -" .. range(sa, na) .. " +" .. range(sb, nb) .. " @@")
    for k = s, e do
      local o = ops[k]
      if o[1] == "-" then
        out[#out + 1] = style("31", "-" .. o[2])
      elseif o[1] == "+" then
        out[#out + 1] = style("32", "+" .. o[2])
      else
        out[#out + 1] = " " .. o[2]
      end
    end
  end
  return table.concat(out, "\n") .. "\n", true
end

-- ====================================================================== the report

--- Compose the report. schema = {a = lines, b = lines}; data = nil or {marker =, tables =
--- {{name =, a = lines | nil, b = lines | nil}, ...}} (nil side: the table does not exist
--- there). opts: label_a, label_b, color. Returns text, differs (bool), summary
--- {schema = bool, tables = {names that differ}}.
function M.report(schema, data, opts)
  opts = opts or {}
  local parts = {}
  local summary = { schema = false, tables = {} }
  local text, differs = M.unified(schema.a, schema.b, opts)
  if differs then
    summary.schema = true
    parts[#parts + 1] = text
  end
  if data and #data.tables > 0 then
    local section = { "", data.marker or M.MARKER }
    local any = false
    for _, t in ipairs(data.tables) do
      section[#section + 1] = ""
      section[#section + 1] = "=== " .. t.name .. " ==="
      local note
      if t.a == nil and t.b == nil then
        note = "(missing on both sides)"
      elseif t.a == nil then
        note = "(only in " .. (opts.label_b or "b") .. ")"
      elseif t.b == nil then
        note = "(only in " .. (opts.label_a or "a") .. ")"
      end
      local d, dd = M.unified(t.a or {}, t.b or {}, { label_a = (opts.label_a or "a") .. ": " .. t.name,
        label_b = (opts.label_b or "b") .. ": " .. t.name, color = opts.color, context = opts.context })
      if note then section[#section + 1] = note end
      if dd then
        any = true
        summary.tables[#summary.tables + 1] = t.name
        section[#section + 1] = (d:gsub("\n$", ""))
      elseif not note then
        section[#section + 1] = "(no differences)"
      end
    end
    if any or summary.schema then
      parts[#parts + 1] = table.concat(section, "\n") .. "\n"
    end
  end
  local all = summary.schema or #summary.tables > 0
  if not all then return "", false, summary end
  if not summary.schema then
    table.insert(parts, 1, "(no schema differences)\n")
  end
  return table.concat(parts), true, summary
end

-- ====================================================================== row queries

--- Tables inheriting hectic.immutable (directly or not), as {oid =, name =} sorted by name.
M.IMMUTABLE_SQL = [[
WITH RECURSIVE t(oid) AS (
  SELECT i.inhrelid FROM pg_catalog.pg_inherits i
   WHERE i.inhparent = pg_catalog.to_regclass('hectic.immutable')
  UNION
  SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.oid
)
SELECT c.oid::int8 AS oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name,
       n.nspname, c.relname
  FROM t JOIN pg_catalog.pg_class c ON c.oid = t.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
 ORDER BY pg_catalog.format('%I.%I', n.nspname, c.relname) COLLATE "C"]]

--- A table named by the user (--tables), resolved like a regclass ("Foo" is foo, quote for
--- case): {oid =, name =} or no row.
M.RESOLVE_SQL = [[
SELECT c.oid::int8 AS oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name,
       n.nspname, c.relname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')]]

--- Parents whose columns are left out of the row comparison: they record when a row was
--- written or changed, which differs between the two sides by construction.
M.IGNORED_PARENTS = { "hectic.created_at", "hectic.updated_at" }

--- Columns of a table ($1 oid, $2 the ignored parents as a text array): dropped and
--- generated columns left out (as pg_dump's data does), and the ones inherited from an
--- ignored parent. qname is the identifier quoted only when needed (format %I).
M.COLUMNS_SQL = [[
SELECT pg_catalog.quote_ident(a.attname) AS qname, t.typcategory
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
   AND NOT (a.attinhcount > 0 AND EXISTS (
         SELECT 1 FROM pg_catalog.pg_inherits i
           JOIN pg_catalog.pg_attribute p ON p.attrelid = i.inhparent AND p.attname = a.attname
          WHERE i.inhrelid = a.attrelid
            AND i.inhparent IN (SELECT pg_catalog.to_regclass(x) FROM pg_catalog.unnest($2::text[]) AS x)))
 ORDER BY a.attnum]]

--- Primary-key columns, in key order.
M.PKEY_SQL = [[
SELECT pg_catalog.quote_ident(a.attname) AS qname
  FROM pg_catalog.pg_index i
  CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::int8::oid AND i.indisprimary
 ORDER BY k.ord]]

--- The query that renders every row of a table as one `INSERT INTO t (cols) VALUES (...);`
--- line (pg_dump --column-inserts style; numbers and booleans bare, everything else a
--- quoted literal, NULL as NULL), in primary-key order — or, without a primary key, in
--- the byte order of the lines. name: the table, quoted; cols: {{quoted name,
--- typcategory}}; pkey: {quoted name}.
function M.rows_sql(name, cols, pkey)
  if #cols == 0 then
    return "SELECT 'INSERT INTO " .. name:gsub("'", "''") .. " DEFAULT VALUES;' AS line FROM ONLY "
      .. name
  end
  local names, values = {}, {}
  for i, c in ipairs(cols) do
    local id = c[1]
    names[i] = id
    if c[2] == "N" or c[2] == "B" then
      values[i] = "COALESCE(" .. id .. "::text, 'NULL')"
    else
      values[i] = "pg_catalog.quote_nullable(" .. id .. ")"
    end
  end
  local head = "INSERT INTO " .. name .. " (" .. table.concat(names, ", ") .. ") VALUES ("
  local sql = "SELECT " .. "'" .. head:gsub("'", "''") .. "' || " .. table.concat(values, " || ', ' || ")
    .. " || ');' AS line FROM ONLY " .. name
  if #pkey > 0 then return sql .. " ORDER BY " .. table.concat(pkey, ", ") end
  return "SELECT line FROM (" .. sql .. ") AS r ORDER BY line COLLATE \"C\""
end

-- ====================================================================== orchestration

local env = require "dbtool.env"
local errors = require "dbtool.errors"

local function exists(path)
  return require("posix.sys.stat").lstat(path) ~= nil
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then errors.raise(errors.GENERIC, "cannot write " .. path .. ": " .. tostring(err)) end
  f:write(text)
  f:close()
end

--- Where the last run's logs are kept: $LOCAL_DIR/focus/database-diff.
function M.log_dir()
  return env.focus_dir() .. "/database-diff"
end

-- Rows of the table `oid` on `conn`, rendered by rows_sql.
local function table_rows(conn, oid, name)
  local cols = {}
  local parents = "{" .. table.concat(M.IGNORED_PARENTS, ",") .. "}"
  local r = conn:exec(M.COLUMNS_SQL, oid, parents)
  for i = 1, r.n do cols[i] = { r[i].qname, r[i].typcategory } end
  local pkey = {}
  r = conn:exec(M.PKEY_SQL, oid)
  for i = 1, r.n do pkey[i] = r[i].qname end
  r = conn:exec(M.rows_sql(name, cols, pkey))
  local out = {}
  for i = 1, r.n do out[i] = r[i].line end
  return out
end

--- A name as a pg_dump --table pattern that matches exactly that table (every part
--- double-quoted: no case folding, no wildcards).
function M.exact_pattern(nspname, relname)
  return '"' .. nspname:gsub('"', '""') .. '"."' .. relname:gsub('"', '""') .. '"'
end

--- One side's part of the data section. names: nil (every table inheriting
--- hectic.immutable) or the user's --tables (each resolved like a regclass: "Foo" is foo;
--- quote for case). Returns {tables = {name → {oid =, pattern =}}, found = {user name →
--- resolved name}, rows = {name → lines}}.
function M.side_data(conn, names)
  local side = { tables = {}, found = {}, rows = {} }
  local function add(row)
    side.tables[row.name] = { oid = row.oid, pattern = M.exact_pattern(row.nspname, row.relname) }
  end
  if names then
    for _, n in ipairs(names) do
      local r = conn:exec(M.RESOLVE_SQL, n)
      if r.n > 0 then
        add(r[1])
        side.found[n] = r[1].name
      end
    end
  else
    local r = conn:exec(M.IMMUTABLE_SQL)
    for i = 1, r.n do add(r[i]) end
  end
  for name, t in pairs(side.tables) do side.rows[name] = table_rows(conn, t.oid, name) end
  return side
end

--- The data section from both sides' parts: {{name =, a = lines | nil, b = lines | nil}}
--- sorted by name (in the order given with --tables). Exit 5 when a --tables entry exists on
--- neither side.
function M.merge_data(a, b, names)
  local order, seen = {}, {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      order[#order + 1] = name
    end
  end
  if names then
    local missing = {}
    for _, n in ipairs(names) do
      if not (a.found[n] or b.found[n]) then missing[#missing + 1] = n end
    end
    if #missing > 0 then
      errors.raise(errors.NO_TABLE, "table does not exist on either side: " .. table.concat(missing, ", "),
        { hint = "--tables takes table names (schema-qualified if needed), separated by commas" })
    end
    -- in the user's order (a name may resolve to different tables on the two sides)
    for _, n in ipairs(names) do
      if a.found[n] then add(a.found[n]) end
      if b.found[n] then add(b.found[n]) end
    end
  else
    for name in pairs(a.tables) do add(name) end
    for name in pairs(b.tables) do add(name) end
    table.sort(order)
  end
  local out = {}
  for i, name in ipairs(order) do out[i] = { name = name, a = a.rows[name], b = b.rows[name] } end
  return out
end

--- pg_dump --table patterns for the data tables of the given sides (union, sorted).
function M.patterns(...)
  local set, list = {}, {}
  for _, side in ipairs { ... } do
    for _, t in pairs(side.tables) do
      if not set[t.pattern] then
        set[t.pattern] = true
        list[#list + 1] = t.pattern
      end
    end
  end
  table.sort(list)
  return list
end

--- Run the diff. opts: backup (path), tables (string "a,b"), ignore_migration_fail, mock,
--- no_cron, output (file), log. Returns 0 (identical) or 1 (differences).
function M.run(ctx, opts)
  local core = require "dbtool.core"
  local cluster = require "dbtool.cluster"
  local backup = require "dbtool.backup"
  local log = require "dbtool.log"
  local ui = require "dbtool.ui"
  local l = ctx.log or log.ns("db diff")
  local t0 = core.now()
  local timings = {}
  local function mark(name, since)
    timings[#timings + 1] = string.format("%s %s", name, ui.duration(core.now() - since))
  end

  local path = backup.absolute(opts.backup or env.default_backup_path())
  backup.check_backup(path, "diff")
  local tables = M.parse_tables(opts.tables)
  if tables and #tables == 0 then
    errors.raise(errors.MISSING, "diff: --tables needs at least one table name",
      { hint = "e.g. --tables public.users,public.orders" })
  end
  local dbname = backup.database_name(path) or env.pg_database()
  local port = env.pg_port()
  local preload = cluster.preload_from_env()
  local migration_dir = env.migration_dir()
  -- throw-away clusters: no durability needed (fsync off also skips the data-directory sync
  -- a restored backup's recovery would do); never listening on TCP
  local settings = { listen_addresses = "", fsync = "off", synchronous_commit = "off",
    full_page_writes = "off" }

  -- the last run's logs (`database diff log`)
  local logdir = M.log_dir()
  cluster.rm_rf(logdir)
  cluster.mkdir_p(logdir, 448)
  local summary = { "database diff of " .. path .. " (database " .. dbname .. ") against "
    .. env.database_source(), "started " .. os.date("%Y-%m-%d %H:%M:%S") }
  local function note(fmt, ...)
    summary[#summary + 1] = string.format(fmt, ...)
  end

  local stdlib = require "posix.stdlib"
  local base = env.get("TMPDIR", "/tmp")
  local T, terr = stdlib.mkdtemp(base .. "/db-tool-diff-XXXXXX")
  if not T then
    errors.raise(errors.GENERIC, "cannot create a temporary directory in " .. base .. ": " .. tostring(terr),
      { hint = "check TMPDIR" })
  end
  l:info("isolated clusters in %s", T)
  local dirs = { a = T .. "/backup", b = T .. "/source" }
  local jobs = {}
  local conns = {}
  local saved_hydrate_log = env.raw("HYDRATE_LOG")

  local function cleanup()
    for _, j in pairs(jobs) do j:abort() end
    for _, c in pairs(conns) do pcall(c.close, c) end
    env.set("HYDRATE_LOG", saved_hydrate_log)
    -- both servers are told to stop first, so that they shut down at the same time
    for _, d in pairs(dirs) do
      local st = select(2, pcall(cluster.status, d))
      if type(st) == "table" and st.pid then pcall(require("posix.signal").kill, st.pid, 2) end
    end
    for _, d in pairs(dirs) do
      local ok, err = pcall(cluster.stop, d, { lock = false })
      if not ok then l:warn("stopping the cluster in %s: %s", d, errors.wrap(err).msg) end
    end
    cluster.rm_rf(T)
    if exists(T) then l:warn("could not remove %s", T) end
    note("finished in %s", ui.duration(core.now() - t0))
    pcall(write_file, logdir .. "/summary.log", table.concat(summary, "\n") .. "\n")
  end

  local report, differs
  errors.finally(cleanup, function()
    local pg = require "dbtool.pg"
    local pg_dump = cluster.bindir() .. "/pg_dump"
    local schema_text = {}
    -- pg_dump --schema-only of one side, in the background; with --tables only the tables
    -- the names resolve to on that side (none: nothing to dump)
    local function dump(side, h, data)
      local argv = { pg_dump, "--schema-only", "--no-owner", "--no-privileges" }
      if tables then
        local patterns = M.patterns(data)
        if #patterns == 0 then
          schema_text[side] = ""
          return nil
        end
        for _, p in ipairs(patterns) do argv[#argv + 1] = "--table=" .. p end
      end
      -- a conninfo string: a database name with '=' in it stays a name
      argv[#argv + 1] = "--dbname=" .. backup.conninfo { host = h.host, port = tostring(h.port),
        user = h.user, dbname = h.database }
      return backup.spawn(argv, "pg_dump of the " .. (side == "a" and "backup" or "sources") .. " side",
        { stdout = { path = T .. "/" .. side .. ".sql" },
          env = { PGOPTIONS = false, PGSERVICE = false, PGSERVICEFILE = false } })
    end

    -- 1. the backup side: extract in the background while the sources side is built
    local t_extract = core.now()
    jobs.extract = backup.extract_start(path, dirs.a .. "/data")

    -- 2. the sources side: a fresh cluster, hydrate, `migrator init`
    local t_src = core.now()
    l:info("sources: starting a fresh cluster and hydrating %s", env.database_source())
    local hb = cluster.start { dir = dirs.b, port = port, database = dbname, preload = preload,
      logging = true, log_dir = logdir .. "/source-server", settings = settings,
      spare = false, log = l }
    env.set("HYDRATE_LOG", logdir .. "/source-hydrate.log")
    local sub = setmetatable({ url = hb.url, log = log.ns("db diff hydrate") }, { __index = ctx })
    local okh, herr = errors.try(require("dbtool.workflow").hydrate, sub, { mock = opts.mock })
    if not okh then
      herr.hint = herr.hint or "the output of hydrate is in " .. logdir .. "/source-hydrate.log"
      note("hydrate failed: %s", herr.msg)
      error(herr, 0)
    end
    do
      -- as `migrator init` after hydrate: hectic.migration with the migrator's columns (the
      -- bundle itself was just applied by hydrate: only checked here, not applied again)
      local migrate = require "dbtool.migrate"
      local store <close> = migrate.open_store("hectic", hb.url, { log = l })
      store:ensure()
    end
    -- its rows and schema dump now, while the backup side is still being prepared
    conns.b = pg.connect(hb.url, { log = l, quiet = true })
    local side_b = M.side_data(conns.b, tables)
    jobs.dump_b = dump("b", hb, side_b)
    mark("sources", t_src)

    -- 3. the backup side: restored cluster + every migration
    local t_bk = core.now()
    jobs.extract:wait()
    mark("extract", t_extract)
    backup.prepare_data(dirs.a .. "/data", { trust = true })
    l:info("backup: starting %s (database %s)", path, dbname)
    local okstart, ha = errors.try(cluster.start, { dir = dirs.a, port = port, database = dbname,
      preload = preload, logging = true, log_dir = logdir .. "/backup-server",
      settings = settings, reuse = true, reinit = false, spare = false, log = l })
    if not okstart then
      if ha.interrupted then error(ha, 0) end
      if ha.msg:find("role", 1, true) and ha.msg:find("does not exist", 1, true) then
        ha.hint = "the backup has no role " .. env.user() .. ": normalize it first (`database "
          .. "normalize-backup -o DIR " .. path .. "`) and diff DIR"
      else
        ha.hint = (ha.hint and (ha.hint .. "\n") or "") .. "the server log is in " .. logdir
          .. "/backup-server (`database diff log`)"
      end
      error(ha, 0)
    end
    if ha.created then
      l:warn("database %s is not in the backup: compared as an empty database plus migrations", dbname)
      note("database %s was not in the backup (created empty)", dbname)
    end
    local okm, merr = errors.try(backup.migrate, ha.url, migration_dir, { log = l,
      out_file = logdir .. "/backup-migrations.log" })
    if okm then
      note("migrations: %s", merr)
    else
      if merr.interrupted then error(merr, 0) end
      note("migrations failed: %s", merr.msg)
      if not opts.ignore_migration_fail then
        errors.raise(errors.MIGRATION_FAILED, "migrations failed", {
          detail = merr.cause and errors.wrap(merr.cause).msg or merr.msg,
          hint = "fix the migration, or compare anyway with --ignore-migration-fail; "
            .. "logs: `database diff log`" })
      end
      l:warn("migrations failed; continuing because --ignore-migration-fail is set")
    end
    mark("backup", t_bk)

    -- 4. the backup side's rows and schema dump; the comparison
    local t_dump = core.now()
    conns.a = pg.connect(ha.url, { log = l, quiet = true })
    local side_a = M.side_data(conns.a, tables)
    jobs.dump_a = dump("a", ha, side_a)
    local data = { marker = tables and M.TABLES_MARKER or M.MARKER,
      tables = M.merge_data(side_a, side_b, tables) }
    for _, side in ipairs { "a", "b" } do
      local job = jobs["dump_" .. side]
      if job then
        job:wait()
        schema_text[side] = read_file(T .. "/" .. side .. ".sql")
      end
    end
    local schema = {
      a = M.normalize_schema(schema_text.a, { no_cron = opts.no_cron }),
      b = M.normalize_schema(schema_text.b, { no_cron = opts.no_cron }),
    }
    mark("compare", t_dump)

    local labels = { label_a = "backup+migrations", label_b = "sources" }
    local plain, d, s = M.report(schema, data, labels)
    report, differs = plain, d
    write_file(logdir .. "/diff.txt", plain)
    if differs and not opts.output and ui.color(1) then
      labels.color = true
      report = M.report(schema, data, labels)
    end
    if s.schema then l:notice("schema differences found") else l:notice("no schema differences found") end
    if #data.tables > 0 then
      if #s.tables > 0 then
        l:notice("data differences in %d of %d table%s: %s", #s.tables, #data.tables,
          #data.tables == 1 and "" or "s", table.concat(s.tables, ", "))
      else
        l:notice("no data differences in %d table%s", #data.tables, #data.tables == 1 and "" or "s")
      end
    end
    note("result: %s", differs and "differences found" or "no differences")
    note("timings: %s", table.concat(timings, ", "))
  end)

  l:info("diff done in %s (%s)", ui.duration(core.now() - t0), table.concat(timings, ", "))
  if opts.output then
    write_file(opts.output, report)
    l:notice("%s written to %s", differs and "differences" or "empty diff", opts.output)
  elseif differs then
    ui.page(report)
  end
  if not differs then l:notice("no differences found") end
  return differs and 1 or 0
end

--- `diff log`: the last run's logs (summary, hydrate output, migrations, both servers' logs,
--- the report), each under a header; paged on a terminal.
function M.show_log(_ctx)
  local logdir = M.log_dir()
  local stat = require "posix.sys.stat"
  local st = stat.stat(logdir)
  if not st then
    errors.raise(errors.GENERIC, "no diff logs yet: " .. logdir .. " does not exist",
      { hint = "run `database diff` first; its logs are kept until the next run" })
  end
  local files = {}
  local function add(rel)
    local p = logdir .. "/" .. rel
    local s = stat.stat(p)
    if not s then return end
    if stat.S_ISDIR(s.st_mode) ~= 0 then
      local names = require("posix.dirent").dir(p) or {}
      table.sort(names)
      for _, n in ipairs(names) do
        if n ~= "." and n ~= ".." then add(rel .. "/" .. n) end
      end
    else
      files[#files + 1] = rel
    end
  end
  for _, rel in ipairs { "summary.log", "source-hydrate.log", "backup-migrations.log", "backup-server",
    "source-server", "diff.txt" } do
    add(rel)
  end
  local out = {}
  for _, rel in ipairs(files) do
    out[#out + 1] = "==> " .. logdir .. "/" .. rel .. " <=="
    local text = read_file(logdir .. "/" .. rel) or ""
    out[#out + 1] = text:find("%S") and text:gsub("\n$", "") or "(empty)"
    out[#out + 1] = ""
  end
  require("dbtool.ui").page(table.concat(out, "\n"))
  return 0
end

return M
