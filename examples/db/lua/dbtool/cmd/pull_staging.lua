-- The example project's `database pull_staging`: the built-in command (ssh, pg_dump,
-- sequence resets, the atomic replace of test-data.sql), with every e-mail address
-- anonymised on its way from staging into the file, through the staging module's
-- transform step. Because this file is ${DATABASE_DIR}/lua/dbtool/cmd/pull_staging.lua,
-- it replaces the built-in; `require "dbtool.builtin.cmd.pull_staging"` still gives the
-- original, which it wraps.
local cmd = require "dbtool.builtin.cmd.pull_staging"
local staging = require "dbtool.staging"
local sodium = require "dbtool.core.sodium"

local M = {}

--- A stable stand-in for an address: the same input always gives the same output (so
--- UNIQUE constraints and joins on e-mails still hold), and nothing of the original is
--- recoverable from it without the address itself.
function M.anonymise(email)
  return "user-" .. sodium.sha256(email:lower()):sub(1, 12) .. "@example.invalid"
end

local function email_columns(columns)
  local idx = {}
  for i, c in ipairs(columns or {}) do
    if c:lower():find("e%-?_?mail") then idx[#idx + 1] = i end
  end
  return idx
end

--- The transform step: project hooks first (pull_staging_transform in db-tool.lua), then
--- the anonymisation. COPY rows: the columns whose name contains "email"; INSERT rows
--- (STAGING_DUMP_FLAGS=--column-inserts): every quoted literal that looks like an address.
function M.transform(line, st)
  local r = staging.steps.transform(line, st)
  if r == false then return false end
  line = r or line
  if st.copy then
    local cols = email_columns(st.columns)
    if #cols == 0 then return r end
    local values, n = staging.decode_copy(line)
    for _, i in ipairs(cols) do
      if values[i] then values[i] = M.anonymise(values[i]) end
    end
    return staging.encode_copy(values, n)
  end
  local out, changed = line:gsub("'([^'%s]+@[^'%s]+%.[^'%s]+)'", function(addr)
    return "'" .. M.anonymise(addr) .. "'"
  end)
  if changed > 0 then return out end
  return r
end

cmd.steps.transform = M.transform
cmd.summary = cmd.summary .. "; e-mails anonymised"
cmd.anonymise = M.anonymise
return cmd
