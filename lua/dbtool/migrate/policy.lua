-- Migration policy: the knobs of the engine, as plain values a project can override from
-- ${DATABASE_DIR}/db-tool.lua (`migrate = { ... }` or `settings = { migrate = { ... } }`)
-- and the CLI can override per run. Everything here is data or pure functions, unit-tested
-- without a database (spec/unit/migrate_spec.lua).
local M = {}

--- The defaults (a fresh copy each call).
function M.defaults()
  return {
    -- Order of migrations, and of the names read back from the database: byte order on
    -- both sides (Lua compares strings with strcoll, and db-tool never calls setlocale, so
    -- `<` is byte order; the stores read with ORDER BY name COLLATE "C").
    ordering = "bytes",
    -- "prefix": the applied names must be the first K names on disk (the original's tree
    -- check, exit 2 with its report); "set": out-of-order migrations are applied
    -- (rickdb's model, or branch merges).
    history = "prefix",
    -- "verify": an applied migration whose files changed stops `migrate` (exit 2) unless
    -- --allow-modified; "warn": log and go on; "off": do not hash at all.
    checksum = "verify",
    -- "migration": one transaction per migration with its bookkeeping row (default);
    -- "single": the whole run in one transaction (--single-transaction);
    -- "none": every script outside a transaction, as if marked no-transaction (rickdb's
    -- `autocommit = true`), its row recorded afterwards.
    transaction = "migration",
    -- First line of a script that must run outside a transaction (CREATE INDEX
    -- CONCURRENTLY, VACUUM, ALTER TYPE ... ADD VALUE on old servers).
    no_transaction_marker = "db-tool: no-transaction",
    -- Seconds to wait for the migration lock (PostgreSQL advisory lock, polled; SQLite
    -- busy timeout) before giving up.
    lock_wait = 60,
    -- The PostgreSQL migration lock (dbtool.migrate.store_pg): "auto" = a row in a lock
    -- table when a connection pooler (PgBouncer) is detected, else a session advisory lock;
    -- "session" or "table" to choose.
    lock = "auto",
    -- Table lock: seconds after which the lock of a run that died is free again. Every
    -- migration extends it; it must exceed the longest migration without a transaction.
    lock_expiry = 300,
    -- SET LOCAL lock_timeout for every migration transaction on PostgreSQL (DDL fails fast
    -- instead of queueing behind a long transaction and blocking every later query).
    -- false or "0" leaves the server's setting.
    lock_timeout = "10s",
    -- SET LOCAL statement_timeout for migrations (false: the server's setting).
    statement_timeout = false,
    -- SET LOCAL hectic.migration_mode = 'on' inside migration transactions (hectic stores),
    -- so migrations may change rows of tables inheriting hectic.immutable.
    migration_mode = true,
    -- Commit every migration but the last of a run with synchronous_commit = off: each
    -- commit is still atomic (migration and row together), and the last, synchronous
    -- commit flushes the WAL of all earlier ones before `migrate` returns.
    fast_commit = true,
    -- Empty (whitespace-only) scripts: false = apply and record them like any other;
    -- true = skip without recording (rickdb's behaviour).
    skip_empty = false,
    -- Hooks: functions called with (info) — see dbtool.migrate for the fields.
    hooks = {},
  }
end

local ENUMS = {
  ordering = { bytes = true },
  history = { prefix = true, set = true },
  checksum = { verify = true, warn = true, off = true },
  transaction = { migration = true, single = true, none = true },
  lock = { auto = true, session = true, table = true },
}

local HOOKS = { before_migrate = true, after_migrate = true, before_each = true, after_each = true }

--- Merge `over` (a table from db-tool.lua or the CLI) into `base`; validates names and
--- values. Returns the merged policy, or nil and a message naming the bad key.
function M.merge(base, over)
  local p = {}
  for k, v in pairs(base) do p[k] = v end
  p.hooks = {}
  for k, v in pairs(base.hooks or {}) do p.hooks[k] = v end
  if over == nil then return p end
  if type(over) ~= "table" then return nil, "migration policy must be a table" end
  for k, v in pairs(over) do
    if k == "hooks" then
      if type(v) ~= "table" then return nil, "migration policy: hooks must be a table" end
      for hk, hv in pairs(v) do
        if not HOOKS[hk] then
          return nil, "migration policy: unknown hook '" .. tostring(hk) .. "'"
        end
        if type(hv) ~= "function" then
          return nil, "migration policy: hook " .. hk .. " must be a function"
        end
        p.hooks[hk] = hv
      end
    elseif base[k] == nil and k ~= "statement_timeout" then
      return nil, "migration policy: unknown setting '" .. tostring(k) .. "'"
    elseif ENUMS[k] and not ENUMS[k][v] then
      local allowed = {}
      for a in pairs(ENUMS[k]) do allowed[#allowed + 1] = a end
      table.sort(allowed)
      return nil, string.format("migration policy: %s must be one of %s, not '%s'", k,
        table.concat(allowed, ", "), tostring(v))
    elseif k == "lock_wait" and (type(v) ~= "number" or v < 0) then
      return nil, "migration policy: lock_wait must be a number of seconds >= 0"
    elseif k == "lock_expiry" and (type(v) ~= "number" or v <= 0) then
      return nil, "migration policy: lock_expiry must be a number of seconds > 0"
    elseif (k == "lock_timeout" or k == "statement_timeout") and v ~= false
      and not M.valid_duration(v) then
      return nil, "migration policy: " .. k .. " must be a duration such as '10s', '500ms' or false"
    else
      p[k] = v
    end
  end
  return p
end

--- A PostgreSQL duration we accept for lock_timeout/statement_timeout: 500, "500ms", "10s",
--- "1min", "0".
function M.valid_duration(v)
  if math.type(v) == "integer" then return v >= 0 end
  if type(v) ~= "string" then return false end
  local n, unit = v:match("^%s*(%d+)%s*(%a*)%s*$")
  if not n then return false end
  unit = unit:lower()
  return unit == "" or unit == "ms" or unit == "s" or unit == "min" or unit == "h"
end

--- The first-line marker test: is `first_line` the no-transaction marker (`-- <marker>`)?
function M.is_no_transaction(policy, first_line)
  if not first_line then return false end
  local body = first_line:match("^%s*%-%-%s*(.-)%s*$")
  if not body then return false end
  return body:lower() == policy.no_transaction_marker:lower()
end

--- Byte-order comparison of strings. Lua's `<` uses strcoll, which is byte order in the
--- "C" locale db-tool runs in; if something switched LC_COLLATE, compare bytes by hand.
local function bytewise(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

function M.comparator()
  local coll = os.setlocale(nil, "collate")
  if coll == "C" or coll == "POSIX" then
    return function(a, b) return a < b end
  end
  return bytewise
end

M.bytewise = bytewise

--- Does `<` compare strings in byte order here (the "C" collation)? (fs.names sorts with
--- strcmp: byte order.)
function M.is_byte_order()
  return M.comparator() ~= bytewise
end

--- Sort an array of names (or of records by .name) in byte order, in place.
function M.sort(list)
  local less = M.comparator()
  local fast = less ~= bytewise -- C collation: table.sort's own `<`, no Lua call per comparison
  if type(list[1]) == "table" then
    local sorted = true
    for i = 2, #list do
      if not less(list[i - 1].name, list[i].name) then sorted = false break end
    end
    if sorted then return list end
    if fast then
      local names, by = {}, {}
      for i, m in ipairs(list) do names[i] = m.name; by[m.name] = m end
      if #names == #list then
        table.sort(names)
        local seen = {}
        for _, n in ipairs(names) do
          if seen[n] then fast = false break end
          seen[n] = true
        end
        if fast then
          for i, n in ipairs(names) do list[i] = by[n] end
          return list
        end
      end
    end
    table.sort(list, function(a, b) return less(a.name, b.name) end)
  elseif fast then
    table.sort(list)
  else
    table.sort(list, less)
  end
  return list
end

return M
