-- The migration engine shared by `migrator` (hectic) and `rickdb`: layouts (where migrations
-- live on disk), stores (where applied migrations are recorded) and a policy (dbtool.migrate.
-- policy). Planning is pure (M.check_history, M.resolve, M.plan, M.classify: plain values in,
-- plain values out); Engine:migrate / Engine:status do the database work through a store.
--
--   local migrate = require "dbtool.migrate"
--   local store = migrate.open_store("hectic", url, {log = log})       -- or rickdb
--   local eng = migrate.new{store = store, layout = "dirs", dir = "migration",
--                           policy = {...}, vars = {name = value}, log = log}
--   eng:migrate{kind = "up", n = "all"}        -- or {kind="down", n=2}, {kind="to", name=...}
--   eng:status()                               -- rows + counts
--
-- Guarantees: every migration runs with its bookkeeping row in one transaction (unless its
-- first line is the no-transaction marker); the history is read and changed under the
-- store's lock (PostgreSQL advisory lock; SQLite BEGIN IMMEDIATE with a re-check per step);
-- nothing is started before the whole plan has been validated (scripts present, checksums).
local errors = require "dbtool.errors"
local policy_mod = require "dbtool.migrate.policy"

local M = {}

M.VERSION = "0.0.1" -- the hectic migrator version we are compatible with

M.layouts = { dirs = "dbtool.migrate.layout_dirs", flat = "dbtool.migrate.layout_flat" }

local function now()
  return require("dbtool.core").now()
end

-- ---------------------------------------------------------------- URLs

--- Which engine a database URL names. Returns {engine = "postgresql", target = url} or
--- {engine = "sqlite", path = path}, or nil and a message.
---   postgresql://… postgres://…  key=value conninfo          → PostgreSQL
---   sqlite://PATH (sqlite:///abs, sqlite://rel), *.db *.sqlite *.sqlite3 → SQLite
function M.detect(url)
  if type(url) ~= "string" or url == "" then return nil, "no database URL" end
  if url:match("^postgresql://") or url:match("^postgres://") then
    return { engine = "postgresql", target = url }
  end
  if url:match("^sqlite://") then
    local path = url:sub(10)
    if path == "" then return nil, "sqlite:// URL without a path" end
    return { engine = "sqlite", path = path }
  end
  if url:match("^sqlite:") then
    local path = url:sub(8)
    if path == "" then return nil, "sqlite: URL without a path" end
    return { engine = "sqlite", path = path }
  end
  if url:match("%.db$") or url:match("%.sqlite$") or url:match("%.sqlite3$") then
    return { engine = "sqlite", path = url }
  end
  -- key=value conninfo: at least one keyword=value pair, starting with a keyword
  if url:match("^%s*[%a_][%w_]*%s*=") then
    return { engine = "postgresql", target = url }
  end
  return nil, "unsupported database URL format: " .. url
end

--- Open the store `kind` ("hectic" or "rickdb") for `url` (or a detect() result).
--- opts: log, create (SQLite: create the file, default true), lock_wait.
function M.open_store(kind, url, opts)
  opts = opts or {}
  local d = url
  if type(url) == "string" then
    local msg
    d, msg = M.detect(url)
    if not d then
      errors.raise(errors.MISSING, msg,
        { hint = "supported formats: postgresql://... or sqlite://... or *.db" })
    end
  end
  if kind == "hectic" then
    if d.engine == "postgresql" then return require("dbtool.migrate.store_pg").connect(d.target, opts) end
    return require("dbtool.migrate.store_sqlite").open(d.path, opts)
  elseif kind == "rickdb" then
    return require("dbtool.migrate.store_rickdb").open(d, opts)
  end
  error("unknown store kind " .. tostring(kind))
end

-- ---------------------------------------------------------------- pure planning

--- Names of an array of records (or names).
local function names_of(list)
  local out = {}
  for i, m in ipairs(list) do out[i] = type(m) == "table" and m.name or m end
  return out
end

--- The original's tree check: the applied names (byte order) must be the first K names on
--- disk (byte order). Returns nil when they are, else {position, db, fs, fs_list, db_list}.
function M.check_history(fs, applied)
  for i, a in ipairs(applied) do
    local name, f = type(a) == "table" and a.name or a, fs[i]
    if f ~= nil and type(f) == "table" then f = f.name end
    if f ~= name then
      local fsn, dbn = names_of(fs), names_of(applied)
      return { position = i, db = name, fs = fsn[i], fs_list = fsn, db_list = dbn }
    end
  end
  return nil
end

--- The original's mismatch report, as lines (the messages scripts grep for are verbatim).
function M.mismatch_lines(m)
  local out = {
    "Migration history mismatch detected!",
    "Position: Migration #" .. m.position,
    "Database has: " .. m.db,
    "Filesystem has: " .. (m.fs or "(nothing)"),
    "",
    "Full filesystem migrations (in order):",
  }
  for i, n in ipairs(m.fs_list) do out[#out + 1] = string.format("  %d. %s", i, n) end
  if #m.fs_list == 0 then out[#out + 1] = "  (none)" end
  out[#out + 1] = ""
  out[#out + 1] = "Full database migrations (in order):"
  for i, n in ipairs(m.db_list) do out[#out + 1] = string.format("  %d. %s", i, n) end
  out[#out + 1] = ""
  out[#out + 1] = "This usually means:"
  out[#out + 1] = "  - migration files were removed or renamed after they were applied"
  out[#out + 1] = "  - migrations were applied out of order (e.g. a branch merged with an older timestamp)"
  out[#out + 1] = "  - the database was migrated from a different version of the migrations"
  out[#out + 1] = ""
  out[#out + 1] = "To proceed anyway, use: --force!"
  out[#out + 1] = "Warning: This may cause data inconsistencies!"
  return out
end

--- Index of `name` in the names of `list`, or nil.
local function index_of(list, name)
  for i, m in ipairs(list) do
    if (type(m) == "table" and m.name or m) == name then return i end
  end
  return nil
end
M.index_of = index_of

local ALIASES = { latest = true, head = true, last = true }

--- Candidates for an unknown `to` argument: the names sharing the longest prefix with it
--- (all of them when there are few).
local function candidates(fsn, arg, max)
  max = max or 12
  if #fsn <= max then return fsn end
  local best, out = 0, {}
  for _, n in ipairs(fsn) do
    local k = 0
    while k < #n and k < #arg and n:byte(k + 1) == arg:byte(k + 1) do k = k + 1 end
    if k > best then best, out = k, { n } elseif k == best and k > 0 then out[#out + 1] = n end
  end
  if best == 0 then
    out = {}
    for i = #fsn - max + 1, #fsn do out[#out + 1] = fsn[i] end
  end
  while #out > max do table.remove(out) end
  return out
end

--- Resolve the argument of `migrate to`: a full name, latest/head/last (the last migration on
--- disk; 0 = clean state when there is none), a unique prefix (e.g. the timestamp), or a
--- unique description (the part after "<timestamp>-"). Returns the index (0 = clean), or
--- raises: unknown (exit 1, candidates listed) or ambiguous (exit 2, matches listed).
function M.resolve(fs, arg)
  local fsn = names_of(fs)
  if ALIASES[arg] then return #fsn end
  local i = index_of(fsn, arg)
  if i then return i end
  local matches = {}
  for k, n in ipairs(fsn) do
    if n:sub(1, #arg) == arg then matches[#matches + 1] = k end
  end
  if #matches == 0 then
    for k, n in ipairs(fsn) do
      local desc = n:match("^%d+%-(.*)$")
      if desc == arg then matches[#matches + 1] = k end
    end
  end
  if #matches == 1 then return matches[1] end
  if #matches > 1 then
    local list = {}
    for _, k in ipairs(matches) do list[#list + 1] = "  " .. fsn[k] end
    errors.raise(errors.AMBIGUOUS, "ambiguous migration '" .. arg .. "': it matches " .. #matches
      .. " migrations:\n" .. table.concat(list, "\n"), { hint = "give more of the name" })
  end
  local cand = candidates(fsn, arg)
  local msg = "unknown migration: " .. arg
  if #fsn == 0 then
    msg = msg .. " (no migrations found)"
  else
    local lines = {}
    for _, n in ipairs(cand) do lines[#lines + 1] = "  " .. n end
    msg = msg .. "\ncandidates" .. (#cand < #fsn and (" (" .. #cand .. " of " .. #fsn .. ")") or "")
      .. ":\n" .. table.concat(lines, "\n")
  end
  errors.raise(errors.GENERIC, msg,
    { hint = "use a full name, a unique prefix (e.g. the timestamp), latest, or see `migrator list`" })
end

local function fail(msg, hint)
  errors.raise(errors.GENERIC, msg, hint and { hint = hint } or nil)
end

--- The steps to reach `target` from the applied state.
---   fs: migrations on disk (records with .name, byte order); applied: records with .name
---   (byte order); target: {kind = "up", n = integer | "all"} | {kind = "down", n = integer}
---   | {kind = "to", index = i (0 = clean)} (see M.resolve) | {kind = "to", name = ...}.
--- Works on sets, so it also plans sensibly when the history is not a prefix (--force,
--- history = "set"): up applies pending migrations in disk order; down reverts the last
--- applied ones (byte order); to = exactly the disk migrations up to the target applied.
--- Returns {steps = {{direction = "up"|"down", m = fs record}}, from = name | nil,
--- to = name | nil, noop = bool, from_index, to_index}. Errors: the original's messages,
--- exit 1.
function M.plan(fs, applied, target)
  local is_applied = {}
  for _, a in ipairs(applied) do is_applied[a.name or a] = true end
  local fs_by_name = {}
  for _, m in ipairs(fs) do fs_by_name[m.name] = m end
  local last = applied[#applied]
  local plan = { steps = {}, from = last and (last.name or last) or nil, from_index = #applied }
  local pending = {}
  for _, m in ipairs(fs) do
    if not is_applied[m.name] then pending[#pending + 1] = m end
  end

  if target.kind == "up" then
    local n = target.n
    if n == "all" then
      if #fs == 0 then fail("no migrations found") end
      n = #pending
    elseif n > #pending then
      fail(string.format("cannot migrate up %d step(s): not enough migrations", n))
    end
    for i = 1, n do plan.steps[i] = { direction = "up", m = pending[i] } end
  elseif target.kind == "down" then
    local n = target.n
    if #applied == 0 then fail("cannot migrate down: no migrations applied") end
    if n > #applied then
      fail(string.format("cannot migrate down %d step(s): would go before first migration", n))
    end
    for i = 1, n do
      local a = applied[#applied - i + 1]
      local name = a.name or a
      local m = fs_by_name[name]
      if not m then
        fail("cannot revert " .. name .. ": it is applied but its files are missing",
          "restore the migration directory, or migrate down fewer steps")
      end
      plan.steps[i] = { direction = "down", m = m }
    end
  elseif target.kind == "to" then
    local t = target.index
    if t == nil then t = M.resolve(fs, target.name) end
    plan.to_index = t
    for i = 1, t do
      if not is_applied[fs[i].name] then plan.steps[#plan.steps + 1] = { direction = "up", m = fs[i] } end
    end
    local idx = {}
    for i, m in ipairs(fs) do idx[m.name] = i end
    for k = #applied, 1, -1 do
      local name = applied[k].name or applied[k]
      local i = idx[name]
      if i and i > t then plan.steps[#plan.steps + 1] = { direction = "down", m = fs[i] } end
    end
    -- reverts first (newest first), then applies (oldest first)
    local downs, ups = {}, {}
    for _, s in ipairs(plan.steps) do
      if s.direction == "down" then downs[#downs + 1] = s else ups[#ups + 1] = s end
    end
    plan.steps = downs
    for _, s in ipairs(ups) do plan.steps[#plan.steps + 1] = s end
    plan.to = t > 0 and fs[t].name or nil
  else
    error("unknown target kind " .. tostring(target.kind))
  end

  -- the state after the plan
  local after = {}
  for k in pairs(is_applied) do after[k] = true end
  for _, s in ipairs(plan.steps) do after[s.m.name] = (s.direction == "up") or nil end
  if target.kind ~= "to" then
    local names = {}
    for k in pairs(after) do names[#names + 1] = k end
    policy_mod.sort(names)
    plan.to = names[#names]
  end
  local count = 0
  for _ in pairs(after) do count = count + 1 end
  plan.to_index = count
  plan.noop = #plan.steps == 0
  local ups = 0
  for _, s in ipairs(plan.steps) do if s.direction == "up" then ups = ups + 1 end end
  plan.direction = (#plan.steps == 0 and "none") or (ups == #plan.steps and "up")
    or (ups == 0 and "down") or "mixed"
  return plan
end

--- Status of every migration: applied (files unchanged), modified (applied, files changed),
--- pending (on disk, not applied; out_of_order when older than the newest applied one),
--- missing (applied, no files). fs records carry .hash/.tree_hash (current) when computed;
--- applied records carry .hash/.tree_hash (stored), .applied_at.
--- Returns rows (disk order, then missing ones in byte order) and counts.
function M.classify(fs, applied)
  local rows, counts = {}, { applied = 0, pending = 0, modified = 0, missing = 0, total = 0 }
  local by_name = {}
  for _, a in ipairs(applied) do by_name[a.name] = a end
  local newest = applied[#applied] and applied[#applied].name
  local less = policy_mod.comparator()
  local on_disk = {}
  local changed_fn = M.changed
  for i, m in ipairs(fs) do
    local name = m.name
    on_disk[name] = true
    local a = by_name[name]
    local row
    if a then
      local changed = changed_fn(m, a)
      local state = changed and "modified" or "applied"
      -- one constructor with every field: no rehash while filling 10,000 rows
      row = { name = name, file_hash = m.hash, file_tree_hash = m.tree_hash, applied_at = a.applied_at,
        hash = a.hash, tree_hash = a.tree_hash, id = a.id,
        duration_ms = a.duration_ms, state = state, changed = changed }
      counts[state] = counts[state] + 1
    else
      row = { name = name, file_hash = m.hash, file_tree_hash = m.tree_hash, state = "pending",
        out_of_order = (newest and less(name, newest)) or nil }
      counts.pending = counts.pending + 1
    end
    rows[i] = row
  end
  for _, a in ipairs(applied) do
    if not on_disk[a.name] then
      rows[#rows + 1] = { name = a.name, state = "missing", applied_at = a.applied_at, hash = a.hash,
        tree_hash = a.tree_hash, id = a.id, duration_ms = a.duration_ms }
      counts.missing = counts.missing + 1
    end
  end
  counts.total = #rows
  return rows, counts
end

--- Did the files of applied migration `a` change? fs record m has the current hashes (nil
--- when not computed: then nothing can be said). Returns nil, or what changed:
--- "script" (the hashed script) or "files" (an included file of a multi-file migration).
function M.changed(m, a)
  if not m.hash or not a.hash then return nil end
  if m.hash ~= a.hash then return "script" end
  if a.tree_hash and m.tree_hash and m.tree_hash ~= a.tree_hash then return "files" end
  return nil
end

-- ---------------------------------------------------------------- JSON (status --json)

--- The JSON null (a sentinel: nil cannot be stored in a table).
M.null = setmetatable({}, { __tostring = function() return "null" end })

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end
M.json_string = json_string

--- Encode plain values as JSON: tables with only 1..n keys are arrays (an empty table is
--- an object unless it is M.array()), keys of objects are sorted.
function M.json(v, indent, level)
  level = level or 0
  local t = type(v)
  if v == M.null or v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return string.format("%.17g", v)
  end
  if t == "string" then return json_string(v) end
  if t ~= "table" then error("cannot encode " .. t .. " as JSON") end
  local n = #v
  local is_array = n > 0 or getmetatable(v) == M.array_mt
  if is_array then
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > n then is_array = false break end
    end
  end
  local parts = {}
  if is_array then
    for i = 1, n do parts[i] = M.json(v[i], indent, level + 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[i] = json_string(k) .. ":" .. M.json(val, indent, level + 1)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

M.array_mt = {}
function M.array(t) return setmetatable(t or {}, M.array_mt) end

-- ---------------------------------------------------------------- the engine

local Engine = {}
Engine.__index = Engine

--- opts: store (from open_store), layout ("dirs" | "flat" | module), dir, policy (table merged
--- over the defaults), vars ({name = value}, psql variables), log (dbtool.log logger),
--- force (skip the history check), allow_modified, dry_run, sql (with dry_run: print the
--- statements, PostgreSQL), out (function(line) for plan
--- and report output; default stdout), report_errors (false: do not log a failing script's
--- error; it is still the `cause` of the raised "migration failed" error, exit 4),
--- progress (false: no progress line on a TTY; for front ends printing their own lines),
--- on_step (function(info): after each migration, with the after_each hook's info).
--- Hooks (policy.hooks) receive: before_migrate/after_migrate {plan, dir, done};
--- before_each/after_each {name, direction, script, index, total; after_each adds
--- duration (s), outcome = "applied" | "reverted" | "empty" | "skipped"}.
function M.new(opts)
  local layout = opts.layout or "dirs"
  if type(layout) == "string" then
    layout = require(assert(M.layouts[layout], "unknown layout " .. layout))
  end
  local pol, msg = policy_mod.merge(policy_mod.defaults(), opts.policy)
  if not pol then errors.raise(errors.GENERIC, msg) end
  local e = setmetatable({
    store = opts.store, layout = layout, dir = opts.dir or "migration", policy = pol,
    vars = opts.vars or {}, log = opts.log or require("dbtool.log").ns("migrate"),
    force = opts.force, allow_modified = opts.allow_modified, dry_run = opts.dry_run, sql = opts.sql,
    out = opts.out or function(line) io.stdout:write(line, "\n") end,
    report_errors = opts.report_errors, progress = opts.progress, on_step = opts.on_step,
  }, Engine)
  return e
end

--- Migrations on disk, byte order. Also sets self.dir_missing.
function Engine:discover()
  local list, missing = self.layout.discover(self.dir)
  self.dir_missing = missing
  return policy_mod.sort(list)
end

--- Compute current hashes (.hash of the up script, .tree_hash of the up/ directory of a
--- multi-file migration) for the records of `list` that have an up script. Records with a
--- stat key from discover (single-file migrations) go through the checksum cache of the
--- migration directory (dbtool.migrate.checksum): a file whose key is unchanged is not read.
--- The cache holds what it was last given: pass the whole discovered list (status, verify),
--- or no_cache for a part of it (what is about to be applied).
function Engine:hash(list, no_cache)
  local checksum = require "dbtool.migrate.checksum"
  local rel, keys, recent, recs, others, trees = {}, {}, {}, {}, {}, {}
  for _, m in ipairs(list) do
    if not m.hash then
      local key = m.key
      if key and not no_cache then
        local i = #rel + 1
        recs[i], rel[i], keys[i], recent[i] = m, m.rel, key, m.recent
      elseif m.up then
        others[#others + 1] = m
        if m.up_multi then trees[#trees + 1] = m.up:match("^(.*)/[^/]*$") end
      end
    end
  end
  if #rel > 0 then
    local hashes = checksum.files_cached(self.dir, rel, { keys = keys, recent = recent })
    for i, m in ipairs(recs) do m.hash = hashes[i] end
  end
  if #others > 0 then
    local paths = {}
    for i, m in ipairs(others) do paths[i] = m.up end
    local fh = checksum.files(paths)
    local th = #trees > 0 and checksum.trees(trees) or {}
    for _, m in ipairs(others) do
      m.hash = fh[m.up]
      if m.up_multi then m.tree_hash = th[m.up:match("^(.*)/[^/]*$")] end
    end
  end
end

-- ---------------------------------------------------------------- repeatable migrations
--
-- MIGRATION_DIR/repeatable/*.sql (the `dirs` layout ignores that directory: its name has no
-- 14-digit prefix): views, functions, grants — SQL that is re-applied whenever its content
-- changes, in byte order of the file names, after the versioned migrations, when a run leaves
-- every versioned migration applied (`migrate up all`, `to latest`, or nothing to do). Each
-- runs in its own transaction with its record (name, sha256) in hectic.migration_repeatable
-- (SQLite: hectic_migration_repeatable); the no-transaction marker works as for versioned
-- ones. A file that is gone has its record removed, and nothing run.
M.REPEATABLE_DIR = "repeatable"

--- The repeatable migrations on disk, byte order ({name, up, rel, key, …}).
function Engine:discover_repeatable()
  local list = require("dbtool.migrate.layout_flat").discover(self.dir .. "/" .. M.REPEATABLE_DIR)
  for _, m in ipairs(list) do m.rel = M.REPEATABLE_DIR .. "/" .. m.name end
  return list
end

--- Hash the versioned and repeatable migrations in one call (one checksum cache for the
--- directory holds both).
function Engine:hash_all(fs, reps)
  if #reps == 0 then return self:hash(fs) end
  local all = {}
  for i, m in ipairs(fs) do all[i] = m end
  for _, m in ipairs(reps) do all[#all + 1] = m end
  self:hash(all)
end

--- States of repeatable migrations: reps (hashed) against recorded {name = {hash, applied_at}}.
--- Rows (byte order; recorded ones without a file last): {name, state = "applied" (unchanged) |
--- "changed" | "pending" (never applied) | "missing" (recorded, file gone), hash (recorded),
--- file_hash, applied_at}; counts {applied, changed, pending, missing, total}.
function M.classify_repeatable(reps, recorded)
  local rows, counts = {}, { applied = 0, changed = 0, pending = 0, missing = 0, total = 0 }
  local seen = {}
  for _, m in ipairs(reps) do
    seen[m.name] = true
    local r = recorded[m.name]
    local state = (not r and "pending") or (r.hash ~= m.hash and "changed") or "applied"
    rows[#rows + 1] = { name = m.name, state = state, hash = r and r.hash, file_hash = m.hash,
      applied_at = r and r.applied_at, m = m }
    counts[state] = counts[state] + 1
  end
  local gone = {}
  for name in pairs(recorded) do if not seen[name] then gone[#gone + 1] = name end end
  policy_mod.sort(gone)
  for _, name in ipairs(gone) do
    rows[#rows + 1] = { name = name, state = "missing", hash = recorded[name].hash,
      applied_at = recorded[name].applied_at }
    counts.missing = counts.missing + 1
  end
  counts.total = #rows
  return rows, counts
end

--- The text status of the common case, without a Lua record per migration: every
--- migration on disk is a single up.sql, unchanged since the checksum cache saw it, and
--- recorded as applied, and nothing else is recorded (no repeatable migrations either). The
--- server formats the lines (store:status_text_async) while the directory is read; the names,
--- the order and the hashes are compared as whole strings. Returns {text =, counts =} (the
--- lines of `migrator status`, without the counts line), or nil when any of that does not
--- hold (then Engine:status tells it all). opts.styled: the state column ("applied" padded).
function Engine:status_fast(opts)
  local store = self.store
  if not store.status_text_async or self.policy.checksum == "off" then return nil end
  if not store:installed() then return nil end
  local collect = store:status_text_async(opts.styled, 10)
  local ok, res = pcall(function()
    local fs = require "dbtool.core.fs"
    local checksum = require "dbtool.migrate.checksum"
    local all = fs.names(self.dir)
    if not all then return nil end
    local rep = fs.names(self.dir .. "/" .. M.REPEATABLE_DIR)
    if rep and #rep > 0 then return nil end
    local names, pattern = {}, self.layout.pattern
    if not pattern or not policy_mod.is_byte_order() then return nil end
    for _, name in ipairs(all) do
      if name:match(pattern) then names[#names + 1] = name end
    end
    if #names == 0 then return nil end
    local keys, recent = fs.stat_keys(names, checksum.wall_time() - checksum.MARGIN, self.dir, "/up.sql")
    if not keys or next(recent) ~= nil then return nil end
    for i = 1, #names do if not keys[i] then return nil end end
    -- trusted without its checksum: whatever a damaged cache says can only fail to match
    -- (then Engine:status reads it checked); it cannot make a changed file look unchanged
    local cache = checksum.load_cache(self.dir, { unchecked = true })
    if not cache or cache.n ~= #names or cache.keys ~= table.concat(keys, "\n")
      or cache.paths ~= table.concat(names, "/up.sql\n") .. "/up.sql" then
      return nil
    end
    return { names = table.concat(names, "\n"), hashes = cache.hashes, n = #names }
  end)
  local row = collect()
  if not ok then error(res, 0) end
  if not res or not row or row.n ~= res.n or row.trees then return nil end
  if res.n == 0 or row.names ~= res.names or row.hashes ~= res.hashes then return nil end
  if row.names:find("[\128-\255]") then return nil end -- padding by bytes = by characters
  return { text = row.lines, counts = { applied = res.n, modified = 0, pending = 0, missing = 0,
    total = res.n }, repeatable_counts = { applied = 0, changed = 0, pending = 0, missing = 0, total = 0 } }
end

--- Status: fs, applied, rows, counts, history (mismatch or nil), initialized.
function Engine:status()
  local initialized = self.store:installed()
  local collect = initialized and self.store.applied_async and self.store:applied_async()
  local fs = self:discover()
  local reps = self:discover_repeatable()
  local applied = initialized and (collect and collect() or self.store:applied()) or {}
  if self.policy.checksum ~= "off" or #reps > 0 then
    self:hash_all(fs, reps) -- all of them: the cache then covers the directory
  end
  local rows, counts = M.classify(fs, applied)
  local rrows, rcounts = M.classify_repeatable(reps,
    (initialized and self.store.repeatable_applied) and self.store:repeatable_applied() or {})
  local mismatch = self.policy.history == "prefix" and M.check_history(fs, applied) or nil
  return { fs = fs, applied = applied, rows = rows, counts = counts, mismatch = mismatch, repeatable = rrows,
    repeatable_counts = rcounts,
    initialized = initialized, dir_missing = self.dir_missing,
    current = applied[#applied] and applied[#applied].name or nil }
end

--- Raise the history mismatch (exit 2), or warn when forced.
function Engine:check_history(fs, applied)
  if self.policy.history ~= "prefix" then return end
  local m = M.check_history(fs, applied)
  if not m then
    self.log:debug("Migration history validation: OK (%d migrations match)", #applied)
    return
  end
  if self.force then
    self.log:warn("--force: ignoring the migration history mismatch at #%d (database has %s, "
      .. "filesystem has %s); this may cause data inconsistencies", m.position, m.db, m.fs or "nothing")
    return
  end
  errors.raise(errors.AMBIGUOUS, table.concat(M.mismatch_lines(m), "\n"), { mismatch = m })
end

--- Verify checksums of the applied migrations present on disk; raise exit 2 (or warn).
--- Migrations the plan reverts are only warned about (down then up is how one redoes an
--- edited migration during development).
function Engine:verify(fs, applied, plan)
  if self.policy.checksum == "off" then return {} end
  local by = {}
  for _, a in ipairs(applied) do by[a.name] = a end
  local reverted = {}
  for _, s in ipairs(plan and plan.steps or {}) do
    if s.direction == "down" then reverted[s.m.name] = true end
  end
  local list = {}
  for _, m in ipairs(fs) do if by[m.name] then list[#list + 1] = m end end
  self:hash_all(fs, self.reps or {}) -- the whole directory, through the checksum cache (Engine:hash)
  local modified = {}
  for _, m in ipairs(list) do
    local what = M.changed(m, by[m.name])
    if what and reverted[m.name] then
      self.log:warn("reverting %s, whose up script changed since it was applied", m.name)
    elseif what then
      modified[#modified + 1] = { m = m, a = by[m.name], what = what }
    end
  end
  if #modified == 0 then return modified end
  local lines = {}
  for _, x in ipairs(modified) do
    if x.what == "script" then
      lines[#lines + 1] = string.format("  %s: %s has sha256 %s, applied as %s", x.m.name, x.m.up,
        x.m.hash, x.a.hash)
    else
      lines[#lines + 1] = string.format("  %s: a file under %s changed since it was applied", x.m.name,
        x.m.up:match("^(.*)/[^/]*$"))
    end
  end
  local msg = (#modified == 1 and "an applied migration was modified" or
    (#modified .. " applied migrations were modified")) .. " since it was applied:\n"
    .. table.concat(lines, "\n")
  if #modified > 1 then msg = msg:gsub("since it was applied", "since they were applied", 1) end
  if self.allow_modified or self.policy.checksum == "warn" then
    self.log:warn("%s", msg .. (self.allow_modified and "\n(--allow-modified: going on)" or ""))
    return modified
  end
  errors.raise(errors.AMBIGUOUS, msg, {
    hint = "restore the files as they were applied (a change belongs in a new migration), "
      .. "or pass --allow-modified to go on anyway" })
end

--- Check that every step can run: scripts present, markers read, single-transaction
--- compatible. Sets step.script, step.no_tx, step.empty.
function Engine:prepare(plan)
  for _, s in ipairs(plan.steps) do
    local m = s.m
    if not utf8.len(m.name) then -- checked before anything runs: no half-applied run
      errors.raise(errors.MISSING, "migration name " .. errors.printable(m.name)
        .. " is not valid UTF-8 (the bookkeeping table stores names as text)",
        { where = errors.printable(m.path),
          hint = "rename the migration's directory or file; nothing was applied" })
    end
    local script
    if s.direction == "up" then script = m.up else script = m.down end
    if not script then
      if not self.layout.reversible and s.direction == "down" then
        fail("migration " .. m.name .. " cannot be reverted: the " .. self.layout.name
          .. " layout is forward-only")
      end
      local a, b = self.layout.expected(m.path, s.direction)
      fail("migration " .. s.direction .. " not found for " .. m.name,
        "expected either " .. a .. (b and (" or " .. b) or ""))
    end
    s.script = script
    -- a FIFO would block the open, a device (a link to /dev/zero) never end the read
    local stat = require "posix.sys.stat"
    local st = stat.stat(script)
    if st and stat.S_ISREG(st.st_mode) == 0 then
      errors.raise(errors.MISSING, "the " .. s.direction .. " script of " .. errors.printable(m.name)
        .. " is not a regular file", { where = errors.printable(script),
          hint = "a migration script must be a file (or a link to one); nothing was applied" })
    end
    local f = io.open(script, "rb")
    if not f then fail("cannot read " .. script) end
    local first = f:read("l")
    local rest = first and f:read(4096) or nil
    f:close()
    s.no_tx = self.policy.transaction == "none" or policy_mod.is_no_transaction(self.policy, first)
    s.empty = (first == nil or (first:match("^%s*$") and (rest == nil or rest:match("^%s*$")))) and true
      or false
    if s.no_tx and self.policy.transaction == "single" then
      fail("--single-transaction cannot include " .. m.name .. ": its " .. s.direction
        .. " script is marked no-transaction", "run it separately, without --single-transaction")
    end
  end
end

--- Human description of a plan (dry-run).
function Engine:plan_lines(plan, applied_count, initialized)
  local out = {}
  if not initialized then
    out[#out + 1] = "(the bookkeeping is not installed yet: it would be initialized first)"
  end
  if plan.noop then
    out[#out + 1] = "nothing to do: database already at " .. (plan.from or "clean state (no migrations)")
    return out
  end
  local ups, downs = 0, 0
  for _, s in ipairs(plan.steps) do if s.direction == "up" then ups = ups + 1 else downs = downs + 1 end end
  out[#out + 1] = string.format("plan: from %s (%d applied) to %s: %d to apply, %d to revert%s",
    plan.from or "clean state", applied_count, plan.to or "clean state", ups, downs,
    self.policy.transaction == "single" and " (one transaction)" or "")
  for _, s in ipairs(plan.steps) do
    out[#out + 1] = string.format("  %-4s %s  %s%s", s.direction, s.m.name, s.script,
      s.no_tx and "  [no transaction]" or "")
  end
  return out
end

local function hook(self, name, info)
  local f = self.policy.hooks[name]
  if f then f(info) end
end

--- Report an error raised by a script (where, excerpt, detail, hint) on the log.
local function report_script_error(self, err)
  local cli = require "dbtool.cli"
  cli.report(err, self.log.name)
end

--- Run the steps of a prepared plan. Returns the number of steps done.
function Engine:run_steps(plan)
  local store, pol, log = self.store, self.policy, self.log
  local ui = require "dbtool.ui"
  local tty = ui.isatty(2)
  local progress = self.progress ~= false and tty and #plan.steps > 1
    and ui.progress("migrating", #plan.steps) or nil
  local single = pol.transaction == "single"
  local txopts = { lock_timeout = pol.lock_timeout, statement_timeout = pol.statement_timeout,
    migration_mode = pol.migration_mode }
  local done = 0
  local t_all = now()

  local function failed(s, err, note)
    if progress then progress:finish() end
    -- earlier commits of this run may have been asynchronous (fast_commit): flush them
    if done > 0 and not single and store.flush then pcall(store.flush, store) end
    if errors.is(err) and err.interrupted then error(err, 0) end
    if self.report_errors ~= false then report_script_error(self, err) end
    local what = s.direction == "up" and "migration failed: " or "migration rollback failed: "
    errors.raise(errors.MIGRATION_FAILED, what .. s.m.name, { note = note, cause = errors.wrap(err),
      migration = s.m.name, direction = s.direction,
      hint = note or (single and "nothing was applied (--single-transaction)"
        or (done > 0 and (done .. " earlier migration(s) of this run stay applied") or nil)) })
  end

  if single then
    store:begin(txopts)
  end
  for i, s in ipairs(plan.steps) do
    local m = s.m
    local t0 = now()
    if progress then
      progress.last = 0 -- draw now: the line was cleared for the previous migration's log line
      progress:update(i - 1, m.name)
    end
    local verb = s.direction == "up" and "applying migration %s (up)" or "reverting migration %s (down)"
    if tty then log:debug(verb, m.name) else log:info(verb, m.name) end
    hook(self, "before_each", { name = m.name, direction = s.direction, script = s.script, index = i,
      total = #plan.steps })
    local skip = false
    local outcome = s.direction == "up" and "applied" or "reverted"
    local own_tx = not single and not s.no_tx
    if own_tx then
      txopts.sync = (i == #plan.steps) or not pol.fast_commit
      store:begin(txopts)
    end
    if store.recheck and (own_tx or single) then
      -- SQLite: history read again under the write lock; another run may have done it
      local state = store:is_applied(m.name)
      if (s.direction == "up") == state then
        if own_tx then store:rollback() end
        log:info("%s was already %s by another run; skipping", m.name,
          s.direction == "up" and "applied" or "reverted")
        skip = true
        outcome = "skipped"
      end
    end
    if not skip then
      if s.empty and pol.skip_empty then
        log:info("%s: empty migration, skipped (not recorded)", m.name)
        outcome = "empty"
        if not single and not s.no_tx then store:rollback() end
      else
        if s.no_tx and not single and store.heartbeat then store:heartbeat() end -- (table lock)
        local ok, err = errors.try(store.run, store, s.script, self.vars, { no_tx = s.no_tx })
        if not ok then
          if single or not s.no_tx then store:rollback() end
          failed(s, err, s.no_tx and ("it ran without a transaction: statements before the error "
            .. "stay applied; fix the database by hand or make the script idempotent") or nil)
        end
        local duration = now() - t0
        if not single and not s.no_tx and not store:in_transaction() then
          -- the script ended our transaction itself (COMMIT/ROLLBACK in the file): its work is
          -- committed, so record it now rather than leave it applied but unrecorded
          log:warn("%s ended the migration transaction itself (COMMIT or ROLLBACK in the script); "
            .. "it was not atomic. Remove transaction control from migrations, or mark them '-- %s'",
            m.name, pol.no_transaction_marker)
          s.no_tx = true
        end
        local ok2, err2 = errors.try(function()
          if s.no_tx and not single then store:begin({ sync = true }) end
          if s.direction == "up" then
            store:record(m, math.floor(duration * 1000 + 0.5))
          else
            store:unrecord(m.name)
          end
          if not single then store:commit() end
        end)
        if not ok2 then
          if store:in_transaction() then store:rollback() end
          failed(s, err2, s.no_tx and "the script ran (without a transaction) but could not be recorded"
            or nil)
        end
      end
      done = done + 1
    end
    local dt = now() - t0
    if tty then
      if progress then progress:finish() end
      log:info("%s %s (%s) in %s", s.direction == "up" and "applied" or "reverted", m.name, s.direction,
        ui.duration(dt))
    else
      log:debug("%s: %s", m.name, ui.duration(dt))
    end
    local info = { name = m.name, direction = s.direction, script = s.script, index = i,
      total = #plan.steps, duration = dt, skipped = skip, outcome = outcome }
    hook(self, "after_each", info)
    if self.on_step then self.on_step(info) end
  end
  if single then
    local ok, err = errors.try(store.commit, store)
    if not ok then
      if store:in_transaction() then store:rollback() end
      failed(plan.steps[#plan.steps], err)
    end
  end
  if progress then progress:finish() end
  if tty and #plan.steps > 1 then
    log:info("%d migration(s) in %s", done, ui.duration(now() - t_all))
  end
  return done
end

--- The transaction options of the policy (store:begin).
function Engine:txopts(sync)
  local pol = self.policy
  return { lock_timeout = pol.lock_timeout, statement_timeout = pol.statement_timeout,
    migration_mode = pol.migration_mode, sync = sync }
end

--- `--dry-run --sql`: the statements the plan (and the repeatable migrations to run) would
--- send, each migration's script run through dbtool.migrate.printer (PostgreSQL stores).
function Engine:print_sql(plan, reps_to_run)
  local store = self.store
  if not store.begin_sql then
    fail("--sql is supported on PostgreSQL only", "use --dry-run without --sql to see the plan")
  end
  local printer = require("dbtool.migrate.printer").new(store.conn, function(s)
    self.out((s:gsub("\n$", "")))
  end)
  local sqlrun = require "dbtool.sqlrun"
  local single = self.policy.transaction == "single"
  local function script(path)
    sqlrun.file(printer, path, { vars = self.vars, log = self.log, single_transaction = false })
  end
  if single then self.out(table.concat(store:begin_sql(self:txopts()), ";\n") .. ";") end
  local steps = {}
  for _, s in ipairs(plan and plan.steps or {}) do steps[#steps + 1] = s end
  for _, m in ipairs(reps_to_run or {}) do
    steps[#steps + 1] = { direction = "up", m = m, script = m.up, repeatable = true, no_tx = m.no_tx }
  end
  for _, s in ipairs(steps) do
    local m = s.m
    self.out(string.format("-- %s%s (%s): %s%s", s.repeatable and "repeatable " or "", m.name, s.direction,
      s.script, s.no_tx and " [no transaction]" or ""))
    local own = not single and not s.no_tx
    if own then self.out(table.concat(store:begin_sql(self:txopts()), ";\n") .. ";") end
    script(s.script)
    local rec
    if s.repeatable then
      local saved = store.pending
      store.pending = nil
      store:record_repeatable(m, nil)
      rec = store.pending
      store.pending = saved
    elseif s.direction == "up" then
      rec = store:record_sql(m, nil)
    else
      local saved = store.pending
      store.pending = nil
      store:unrecord(m.name)
      rec = store.pending
      store.pending = saved
    end
    if rec then self.out(rec .. ";") end
    if own then self.out("COMMIT;") end
  end
  if single then self.out("COMMIT;") end
end

--- Which repeatable migrations a run that leaves every versioned migration applied would
--- apply (new or changed, byte order) and forget (recorded, file gone).
function Engine:repeatable_plan(reps)
  local recorded = self.store.repeatable_applied and self.store:repeatable_applied() or {}
  local rows = M.classify_repeatable(reps, recorded)
  local run, forget = {}, {}
  for _, r in ipairs(rows) do
    if r.state == "pending" or r.state == "changed" then
      run[#run + 1] = r.m
    elseif r.state == "missing" then
      forget[#forget + 1] = r.name
    end
  end
  for _, m in ipairs(run) do
    local f = io.open(m.up, "rb")
    local first = f and f:read("l")
    if f then f:close() end
    m.no_tx = self.policy.transaction == "none" or policy_mod.is_no_transaction(self.policy, first)
  end
  return run, forget
end

--- Apply repeatable migrations `run` and forget `forget` (under the lock). Returns how many ran.
function Engine:run_repeatables(run, forget)
  local store, log = self.store, self.log
  if (#run > 0 or #forget > 0) and store.ensure_repeatable then store:ensure_repeatable() end
  for _, name in ipairs(forget) do
    store:forget_repeatable(name)
    log:notice("repeatable migration %s: its file is gone, its record removed (nothing was run)", name)
  end
  local ui = require "dbtool.ui"
  for i, m in ipairs(run) do
    local t0 = now()
    hook(self, "before_each", { name = m.name, direction = "up", script = m.up, index = i, total = #run,
      repeatable = true })
    if m.no_tx then
      if store.heartbeat then store:heartbeat() end
    else
      store:begin(self:txopts(true))
    end
    local ok, err = errors.try(store.run, store, m.up, self.vars, { no_tx = m.no_tx })
    if ok then
      ok, err = errors.try(function()
        if m.no_tx then store:begin({ sync = true }) end
        store:record_repeatable(m, math.floor((now() - t0) * 1000 + 0.5))
        store:commit()
      end)
    end
    if not ok then
      if store:in_transaction() then store:rollback() end
      if errors.is(err) and err.interrupted then error(err, 0) end
      if self.report_errors ~= false then report_script_error(self, err) end
      errors.raise(errors.MIGRATION_FAILED, "repeatable migration failed: " .. m.name,
        { cause = errors.wrap(err), migration = m.name, direction = "up",
          hint = m.no_tx and "it ran without a transaction: statements before the error stay applied"
            or "it was rolled back; the versioned migrations stay applied" })
    end
    log:info("applied repeatable migration %s in %s", m.name, ui.duration(now() - t0))
    local info = { name = m.name, direction = "up", script = m.up, index = i, total = #run,
      duration = now() - t0, outcome = "applied", repeatable = true }
    hook(self, "after_each", info)
    if self.on_step then self.on_step(info) end
  end
  return #run
end

--- Migrate to `target` (see M.plan). Returns {plan = plan, done = n, repeatable = n}.
--- With dry_run: the plan is printed (self.sql: the statements, see print_sql).
function Engine:migrate(target)
  local store, log = self.store, self.log
  local reps = self:discover_repeatable()
  self.reps = reps
  if self.dry_run then
    local fs = self:discover()
    local initialized = store:installed()
    local applied = initialized and store:applied() or {}
    self:check_history(fs, applied)
    local plan = M.plan(fs, applied, target)
    self:verify(fs, applied, plan)
    self:prepare(plan)
    local run, forget = {}, {}
    if plan.to_index == #fs and plan.direction ~= "down" and initialized then
      run, forget = self:repeatable_plan(reps)
    elseif plan.to_index == #fs and plan.direction ~= "down" then
      run = reps
      for _, m in ipairs(run) do m.no_tx = false end
    end
    local ups = {}
    for _, s in ipairs(plan.steps) do if s.direction == "up" then ups[#ups + 1] = s.m end end
    self:hash(ups, true)
    if self.sql then
      if not initialized then
        self.out("-- the bookkeeping is not installed yet: it would be first (`migrator init --dry-run` "
          .. "prints its SQL)")
      end
      self:print_sql(plan, run)
    else
      local lines = self:plan_lines(plan, #applied, initialized)
      if plan.noop and (#run > 0 or #forget > 0) then table.remove(lines) end
      for _, line in ipairs(lines) do self.out(line) end
      for _, m in ipairs(run) do
        self.out(string.format("  %-4s %s  %s  [repeatable]", "up", m.name, m.up))
      end
      for _, name in ipairs(forget) do self.out("  forget repeatable " .. name .. " (its file is gone)") end
    end
    return { plan = plan, done = 0, repeatable = 0 }
  end

  store:lock(self.policy.lock_wait, log, { mode = self.policy.lock, expiry = self.policy.lock_expiry })
  return errors.finally(function() store:unlock() end, function()
    store:ensure()
    local fs = self:discover()
    local applied = store:applied()
    log:debug("Filesystem migrations found: %d", #fs)
    log:debug("Database migrations applied: %d", #applied)
    if #applied == 0 then log:debug("starting from clean migration state") end
    self:check_history(fs, applied)
    local plan = M.plan(fs, applied, target)
    self:verify(fs, applied, plan)
    local at_end = plan.to_index == #fs and plan.direction ~= "down"
    local run, forget = {}, {}
    if at_end then run, forget = self:repeatable_plan(reps) end
    if plan.noop then
      if #run == 0 and #forget == 0 then
        log:notice("database already at %s", plan.from or "clean state (no migrations)")
        return { plan = plan, done = 0, repeatable = 0 }
      end
      hook(self, "before_migrate", { plan = plan, dir = self.dir })
      local nrep = self:run_repeatables(run, forget)
      log:notice("database at %s; %d repeatable migration(s) applied", plan.from or "clean state", nrep)
      hook(self, "after_migrate", { plan = plan, dir = self.dir, done = 0 })
      return { plan = plan, done = 0, repeatable = nrep }
    end
    self:prepare(plan)
    -- hashes of what is about to be applied
    local ups = {}
    for _, s in ipairs(plan.steps) do if s.direction == "up" then ups[#ups + 1] = s.m end end
    self:hash(ups, true)
    if plan.direction == "down" then
      log:info("migrating down from index %d to %d", plan.from_index, plan.to_index)
    else
      log:info("migrating %s from index %d to %d", plan.direction, plan.from_index, plan.to_index)
    end
    hook(self, "before_migrate", { plan = plan, dir = self.dir })
    local done = self:run_steps(plan)
    local nrep = at_end and self:run_repeatables(run, forget) or 0
    if plan.direction == "down" and not plan.to then
      log:notice("successfully migrated down to clean state")
    elseif plan.direction == "down" then
      log:notice("successfully migrated down to %s", plan.to)
    else
      log:notice("successfully migrated to %s%s", plan.to or "clean state",
        nrep > 0 and string.format(" (and %d repeatable migration(s))", nrep) or "")
    end
    hook(self, "after_migrate", { plan = plan, dir = self.dir, done = done })
    return { plan = plan, done = done, repeatable = nrep }
  end)
end

--- `baseline NAME`: record the migrations on disk up to NAME (a name, unique prefix or
--- latest: M.resolve) as applied without running them — a database that already has their
--- schema adopts the migrations. Refuses (exit 2) when anything is already recorded. With
--- dry_run: prints what it would record. Returns the recorded records.
function Engine:baseline(name)
  local store, log = self.store, self.log
  local function plan_of(fs, applied)
    if #applied > 0 then
      errors.raise(errors.AMBIGUOUS, string.format("cannot baseline: %d migration(s) are already recorded "
        .. "(the last: %s)", #applied, applied[#applied].name),
        { hint = "baseline is for a database with no migration recorded yet; see `migrator status`" })
    end
    local idx = M.resolve(fs, name)
    if idx == 0 then fail("cannot baseline: no migrations found") end
    local list = {}
    for i = 1, idx do list[i] = fs[i] end
    for _, m in ipairs(list) do
      if not m.up then fail("cannot baseline " .. m.name .. ": its up script is missing") end
    end
    self:hash_all(fs, {})
    return list
  end
  if self.dry_run then
    local fs = self:discover()
    local applied = store:installed() and store:applied() or {}
    local list = plan_of(fs, applied)
    self.out(string.format("baseline: would record %d migration(s) as applied, up to %s (nothing is run)",
      #list, list[#list].name))
    for _, m in ipairs(list) do self.out("  " .. m.name) end
    return list
  end
  store:lock(self.policy.lock_wait, log, { mode = self.policy.lock, expiry = self.policy.lock_expiry })
  return errors.finally(function() store:unlock() end, function()
    store:ensure()
    local fs = self:discover()
    local list = plan_of(fs, store:applied())
    store:begin(self:txopts(true))
    local ok, err = errors.try(function()
      for _, m in ipairs(list) do store:record(m, nil) end
      store:commit()
    end)
    if not ok then
      if store:in_transaction() then store:rollback() end
      error(err, 0)
    end
    log:notice("baseline: %d migration(s) recorded as applied, up to %s (none was run)", #list,
      list[#list].name)
    return list
  end)
end

return M
