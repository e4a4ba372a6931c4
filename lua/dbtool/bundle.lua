-- The hectic SQL bundle (sql/hectic/, embedded in the binary): the `hectic` schema with
-- hectic.version, secrets, hectic.migration and the inheritance event triggers.
--
--   bundle.version()                    → "0.1.0" (sql/hectic/VERSION)
--   bundle.files()                      → { {name =, path =, sql =}, ... } in apply order
--   bundle.sql([opts])                  → the whole bundle as one psql-runnable script
--   bundle.apply(conn [, opts])         → what happened (see below); one transaction
--   bundle.check_version(conn)          → cheap state check for `migrate`
--   bundle.load_secrets(conn, secrets)  → number loaded, via hectic.load_secrets(jsonb)
--
-- Unlike the original (one psql process per file, no transaction), the four files run over
-- one connection in one transaction: a failure leaves nothing behind. Errors are structured
-- with exit 13, like the original `init failed: hectic bundle apply`.
local core = require "dbtool.core"
local errors = require "dbtool.errors"
local log = require "dbtool.log"

local M = {}

M.FILES = { "version", "secret", "migration", "inheritance" }
M.PLACEHOLDER = "@HECTIC_VERSION@"

--- Key of the transaction-level advisory lock that serialises concurrent applies
--  ("hectic" in ASCII, then 0x0001). Other lock users must pick another key.
M.LOCK_KEY = 0x6865637469630001

local EVENT_TRIGGERS = { "hectic_on_create_table" }
M.EVENT_TRIGGERS = EVENT_TRIGGERS

--- The original bundle's event triggers, replaced by hectic_on_create_table (same rules, one
--  catalog pass instead of three, migration tools' tables exempt). A database that has them
--  instead of ours works as before; apply() replaces them.
local LEGACY_EVENT_TRIGGERS = {
  "hectic_enforce_created_at_inheritance",
  "hectic_attach_updated_at_trigger",
  "hectic_attach_immutable_triggers",
}
M.LEGACY_EVENT_TRIGGERS = LEGACY_EVENT_TRIGGERS

local function embedded(path)
  local s = core.embedded(path)
  if not s then
    errors.raise(errors.BUG, "the embedded file " .. path .. " is missing (broken build)")
  end
  return s
end

--- The bundle version from sql/hectic/VERSION.
function M.version()
  local v = embedded("sql/hectic/VERSION"):match("^%s*(.-)%s*$")
  if not v:match("^%d+%.%d+%.%d+[%w.+-]*$") then
    errors.raise(errors.BUG, "sql/hectic/VERSION holds an invalid version '" .. v .. "'")
  end
  return v
end

--- The files in apply order, with the version placeholder substituted.
function M.files()
  local version = M.version()
  local list = {}
  for i, name in ipairs(M.FILES) do
    local path = "sql/hectic/" .. name .. ".sql"
    local sql = embedded(path):gsub(M.PLACEHOLDER, function() return version end)
    list[i] = { name = name, path = path, sql = sql }
  end
  return list
end

local PROLOGUE = "SELECT pg_catalog.pg_advisory_xact_lock(" .. M.LOCK_KEY .. ");\n"
  .. "SET LOCAL search_path TO pg_catalog;\n"

--- The whole bundle as one script (what `migrator init --dry-run` prints). It is exactly
--  what apply() runs: BEGIN, the advisory lock, search_path, the four files, COMMIT.
--  opts.transaction = false leaves out BEGIN/lock/search_path/COMMIT.
function M.sql(opts)
  local wrap = not (opts and opts.transaction == false)
  local out = {}
  out[#out + 1] = "-- hectic bundle " .. M.version() .. " (db-tool)\n"
  if wrap then out[#out + 1] = "BEGIN;\n" .. PROLOGUE end
  for _, f in ipairs(M.files()) do
    out[#out + 1] = "\n-- " .. f.path .. "\n"
    out[#out + 1] = f.sql
    if not f.sql:match("\n$") then out[#out + 1] = "\n" end
  end
  if wrap then out[#out + 1] = "\nCOMMIT;\n" end
  return table.concat(out)
end

-- ---------------------------------------------------------------- state

-- Everything migrate relies on, one query. `missing` lists what is absent or outdated.
local STATE_SQL = [[
SELECT pg_catalog.to_regclass('hectic.version') IS NOT NULL AS has_version_table,
       pg_catalog.array_to_string(pg_catalog.array_remove(ARRAY[
         CASE WHEN pg_catalog.to_regclass('hectic.version') IS NULL THEN 'table hectic.version' END,
         CASE WHEN pg_catalog.to_regclass('hectic.secret') IS NULL THEN 'table hectic.secret' END,
         CASE WHEN pg_catalog.to_regclass('hectic.migration') IS NULL THEN 'table hectic.migration' END,
         CASE WHEN pg_catalog.to_regclass('hectic.created_at') IS NULL THEN 'table hectic.created_at' END,
         CASE WHEN pg_catalog.to_regclass('hectic.updated_at') IS NULL THEN 'table hectic.updated_at' END,
         CASE WHEN pg_catalog.to_regclass('hectic.immutable') IS NULL THEN 'table hectic.immutable' END,
         CASE WHEN pg_catalog.to_regprocedure('hectic.load_secrets(jsonb)') IS NULL
              THEN 'function hectic.load_secrets(jsonb)' END,
         CASE WHEN EXISTS (
                SELECT 1 FROM pg_catalog.pg_constraint AS c
                  JOIN pg_catalog.pg_attribute AS a
                    ON a.attrelid = c.conrelid AND a.attname = 'hash' AND NOT a.attisdropped
                 WHERE c.conrelid = pg_catalog.to_regclass('hectic.migration') AND c.contype = 'u'
                   AND c.conkey = ARRAY[a.attnum]::int2[])
              THEN 'the old UNIQUE constraint on hectic.migration(hash) is still there' END
       ] || ARRAY(
         SELECT 'event trigger ' || t.name
           FROM pg_catalog.unnest($1::text[]) AS t(name)
          WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e
                             WHERE e.evtname = t.name AND e.evtenabled <> 'D')
            -- the original's three triggers enforce the same rules: outdated, not missing
            AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_event_trigger AS e
                  WHERE e.evtname = ANY ($2::text[]) AND e.evtenabled <> 'D')
                < pg_catalog.cardinality($2::text[])), NULL), E'\n')
         AS missing,
       (SELECT pg_catalog.string_agg('event trigger ' || e.evtname || ' of the original bundle', E'\n'
                                     ORDER BY e.evtname)
          FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = ANY ($2::text[])) AS stale
]]

local VERSION_SQL = "SELECT v.version FROM hectic.version AS v WHERE v.name = 'hectic'"

local function pg_array(list)
  local quoted = {}
  for i, s in ipairs(list) do quoted[i] = '"' .. s .. '"' end
  return "{" .. table.concat(quoted, ",") .. "}"
end

local function split_lines(s)
  local list = {}
  for line in (s or ""):gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

-- {has_version_table =, version = db version or nil, missing = {...}, stale = {...}}
local function inspect(conn)
  local r = conn:exec(STATE_SQL, pg_array(EVENT_TRIGGERS), pg_array(LEGACY_EVENT_TRIGGERS))[1]
  local state = { has_version_table = r.has_version_table, missing = split_lines(r.missing),
    stale = split_lines(r.stale) }
  if r.has_version_table then
    local v = conn:exec(VERSION_SQL)[1]
    state.version = v and v.version or nil
  end
  return state
end

local function mismatch_error(have, want, extra)
  local fields = {
    hint = "this database was set up by another version of the hectic bundle; there is no "
      .. "automatic upgrade: migrate the hectic schema by hand, or use the db-tool release "
      .. "that matches the database",
    installed = have, expected = want,
  }
  for k, v in pairs(extra or {}) do fields[k] = v end
  return errors.new(errors.BUG, string.format(
    "hectic schema version mismatch: database has %s, code expects %s", have, want), fields)
end

local PRIVILEGE_HINT = "the hectic bundle creates a schema and event triggers and needs a "
  .. "superuser: connect as one (for example the cluster owner) to run `migrator init`"

-- A database error met while reading the bundle state → exit 13 with context.
local function state_error(e, what)
  if not errors.is(e) or not e.sqlstate then error(e, 0) end
  local fields = { sqlstate = e.sqlstate, detail = e.detail, hint = e.hint, cause = e }
  if e.sqlstate == "42501" then
    fields.hint = "the connecting role may not read the hectic schema; " .. PRIVILEGE_HINT
  end
  return errors.new(errors.BUG, what .. ": " .. e.msg, fields)
end

--- Cheap check of the bundle in the database, for `migrate` (two small queries).
--  Returns {status =, installed =, expected =, missing = {...}, stale = {...}} where status is
--    "ok"         the bundle of this version is installed and complete (`stale` may still
--                 list outdated parts that work, such as the original's event triggers:
--                 apply() replaces them);
--    "missing"    no hectic.version table (nothing installed, or only part of the bundle by hand);
--    "incomplete" the right version, but something is absent or outdated (listed in missing:
--                 apply() repairs it).
--  Raises exit 13 on a version mismatch ("hectic schema version mismatch: database has X,
--  code expects Y") and when the state cannot be read (e.g. permission denied).
function M.check_version(conn)
  local expected = M.version()
  local ok, state = pcall(inspect, conn)
  if not ok then error(state_error(state, "cannot check the hectic bundle"), 0) end
  local res = { installed = state.version, expected = expected, missing = state.missing,
    stale = state.stale }
  if not state.has_version_table then
    res.status = "missing"
  elseif state.version == nil then
    res.status = "incomplete"
    table.insert(res.missing, 1, "row 'hectic' of hectic.version")
  elseif state.version ~= expected then
    error(mismatch_error(state.version, expected), 0)
  elseif #state.missing > 0 then
    res.status = "incomplete"
  else
    res.status = "ok"
  end
  return res
end

-- ---------------------------------------------------------------- apply

-- Byte offset → line, column of `text` (position is PostgreSQL's 1-based character index).
local function line_col(text, position)
  local byte = utf8.offset(text, position) or position
  local line, col = 1, byte
  local i = 1
  while true do
    local nl = text:find("\n", i, true)
    if not nl or nl >= byte then break end
    line = line + 1
    col = byte - nl
    i = nl + 1
  end
  return line, col
end
M._line_col = line_col

local function apply_error(e, file)
  if not errors.is(e) or not e.sqlstate then error(e, 0) end
  local fields = {
    sqlstate = e.sqlstate, detail = e.detail, hint = e.hint, context = e.context,
    file = file.path, cause = e,
  }
  if e.position then
    local line, col = line_col(file.sql, e.position)
    fields.line, fields.col = line, col
    fields.where = string.format("%s:%d:%d", file.path, line, col)
  else
    fields.where = file.path
  end
  if e.sqlstate == "42501" then fields.hint = PRIVILEGE_HINT end
  local msg = e.msg
  local have, want = msg:match("^hectic schema version mismatch: database has (.-), code expects (.+)$")
  if have then
    fields.where = nil
    return mismatch_error(have, want, { sqlstate = e.sqlstate, file = file.path, cause = e })
  end
  return errors.new(errors.BUG, "hectic bundle apply failed: " .. msg, fields)
end


--- Apply the bundle over `conn` in one transaction: version → secret → migration →
--  inheritance. If `conn` is idle: BEGIN … COMMIT. If the caller has a transaction open: a
--  savepoint inside it (released on success, rolled back on failure, the caller's
--  transaction stays usable). Concurrent applies are serialised by an advisory lock.
--  NOTICEs are logged at debug level (opts.log, default namespace "hectic bundle").
--  Returns {
--    version   = "0.1.0",               the version now installed
--    previous  = "0.1.0" | nil,         the version found before (nil: fresh install)
--    installed = true | false,          there was no version row before
--    repaired  = {...},                 what check_version() reported missing before
--    updated   = {...},                 what it reported stale (e.g. the original's triggers)
--    changes   = {...},                 "hectic: ..." notices (constraint dropped, triggers made)
--    notices   = { {severity =, msg =}, ... },   every notice
--    seconds   = elapsed wall time,
--  }
--  Raises exit 13 (errors.BUG) on failure: the version mismatch keeps the original message;
--  anything else is "hectic bundle apply failed: <server message>" with where = file:line:col.
function M.apply(conn, opts)
  opts = opts or {}
  local l = opts.log or log.ns("hectic bundle")
  local files = M.files()
  local version = M.version()
  local status = conn:transaction_status()
  local savepoint
  if status == "intrans" then
    savepoint = true
  elseif status ~= "idle" then
    errors.raise(errors.BUG, "cannot apply the hectic bundle: the connection is " .. status
      .. (status == "inerror" and " (its transaction failed; roll it back first)" or ""))
  end

  local started = core.now and core.now() or os.time()
  local notices, changes = {}, {}
  -- on_notice returns the handler in place, put back when apply() ends
  local previous_handler = conn:on_notice(function(n)
    notices[#notices + 1] = { severity = n.severity, msg = n.msg }
    local msg = n.msg or ""
    if msg:match("^hectic: ") then changes[#changes + 1] = msg:sub(9) end
    l:debug("%s: %s", n.severity or "NOTICE", msg)
  end)

  local saved_path
  local function begin()
    if savepoint then
      saved_path = conn:exec("SELECT pg_catalog.current_setting('search_path') AS p")[1].p
      conn:exec("SAVEPOINT hectic_bundle;\n" .. PROLOGUE)
    else
      conn:exec("BEGIN;\n" .. PROLOGUE)
    end
  end
  local function finish()
    if savepoint then
      conn:exec("SELECT pg_catalog.set_config('search_path', $1, true)", saved_path)
      conn:exec("RELEASE SAVEPOINT hectic_bundle")
    else
      conn:exec("COMMIT")
    end
  end
  local function abort()
    if conn:closed() then return end
    local st = conn:transaction_status()
    if savepoint then
      if st == "intrans" or st == "inerror" then
        pcall(conn.exec, conn, "ROLLBACK TO SAVEPOINT hectic_bundle; RELEASE SAVEPOINT hectic_bundle")
      end
    elseif st ~= "idle" then
      pcall(conn.exec, conn, "ROLLBACK")
    end
  end

  local result
  local ok, err = xpcall(function()
    begin()
    local before = inspect(conn)
    for _, f in ipairs(files) do
      l:debug("applying %s", f.path)
      local fok, e = pcall(conn.exec, conn, f.sql)
      if not fok then error(apply_error(e, f), 0) end
    end
    local after = inspect(conn)
    if after.version ~= version or #after.missing > 0 or #after.stale > 0 then
      errors.raise(errors.BUG, "hectic bundle apply left the schema incomplete: "
        .. table.concat(after.missing, ", ") .. table.concat(after.stale, ", "))
    end
    finish()
    result = {
      version = version, previous = before.version, installed = before.version == nil,
      repaired = before.missing, updated = before.stale, changes = changes, notices = notices,
    }
  end, errors.handler)
  conn:on_notice(previous_handler)
  if not ok then
    abort()
    if errors.is(err) and err.sqlstate and not err.cause then
      err = state_error(err, "hectic bundle apply failed")
    end
    error(err, 0)
  end
  result.seconds = (core.now and core.now() or os.time()) - started
  if result.installed then
    l:info("installed the hectic bundle %s", version)
  elseif #result.changes > 0 then
    l:info("hectic bundle %s: %s", version, table.concat(result.changes, "; "))
  else
    l:debug("hectic bundle %s already installed, nothing to change", version)
  end
  return result
end

-- ---------------------------------------------------------------- secrets

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

--- Longest secret key hectic.secret takes, in bytes: its UNIQUE index holds keys up to about
--  2,700 bytes (a third of a page); longer ones fail in the database ("index row requires
--  … bytes"). Checked before anything is sent.
M.MAX_SECRET_KEY = 1024

-- A key for a message: at most 60 bytes of it.
local function show_key(k)
  if #k <= 60 then return k end
  return k:sub(1, 60) .. "…"
end
M.show_key = show_key

--- Encode {KEY = "value"} as a JSON object with sorted keys (validated: non-empty string
--  keys of at most MAX_SECRET_KEY bytes, string values, valid UTF-8 without NUL bytes).
--  Raises exit 1 naming the key (never the value).
function M.secrets_json(secrets)
  if type(secrets) ~= "table" then
    errors.raise(errors.GENERIC, "secrets must be a table {KEY = \"value\"}, got " .. type(secrets))
  end
  local keys = {}
  for k, v in pairs(secrets) do
    if type(k) ~= "string" or k == "" then
      errors.raise(errors.GENERIC, "secret keys must be non-empty strings, got " .. (
        type(k) == "string" and "an empty string" or type(k) .. " " .. tostring(k)))
    end
    if #k > M.MAX_SECRET_KEY then
      errors.raise(errors.GENERIC, string.format("secret %s: the key is %d bytes long; hectic.secret "
        .. "takes keys of at most %d bytes", show_key(k), #k, M.MAX_SECRET_KEY))
    end
    if type(v) ~= "string" then
      errors.raise(errors.GENERIC, string.format("secret %s: the value must be a string, got %s", k, type(v)))
    end
    for what, s in pairs { key = k, value = v } do
      if not utf8.len(s) then
        errors.raise(errors.GENERIC, string.format("secret %s: the %s is not valid UTF-8", k, what))
      end
      if s:find("\0", 1, true) then
        errors.raise(errors.GENERIC, string.format("secret %s: the %s contains a NUL byte", k, what))
      end
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. json_string(secrets[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Replace every secret of hectic.secret with `secrets` ({KEY = "value"}) in one statement
--  (hectic.load_secrets(jsonb): TRUNCATE + INSERT, atomic; an empty table empties it).
--  Values are registered with the logger's redaction. Returns the number loaded.
function M.load_secrets(conn, secrets)
  local json = M.secrets_json(secrets)
  for _, v in pairs(secrets) do log.add_secret(v) end
  local ok, r = pcall(conn.exec, conn, "SELECT hectic.load_secrets($1::jsonb) AS n", json)
  if not ok then
    local e = r
    if not errors.is(e) or not e.sqlstate then error(e, 0) end
    if e.sqlstate == "42883" or e.sqlstate == "3F000" then
      errors.raise(errors.BUG, "cannot load secrets: hectic.load_secrets(jsonb) does not exist in "
        .. "this database", { hint = "apply the hectic bundle first (`migrator init` or "
        .. "`database hydrate`)", sqlstate = e.sqlstate })
    end
    errors.raise(errors.BUG, "cannot load secrets: " .. e.msg,
      { sqlstate = e.sqlstate, hint = e.hint, cause = e })
  end
  return r[1].n
end

return M
