-- pull_staging: dump tables of the staging database on the staging host (pg_dump over ssh),
-- stream the output through a row transform into test-data.sql (PATCH_SQL), append
-- per-table sequence resets, and replace the file atomically, only on success.
--
-- Every step is a plain function in `M.steps`; a project replaces some of them (see
-- `pull` and README "Extending"):
--
--   steps.dump_argv(cfg)        → argv of the dump on the staging host
--                                 {"pg_dump", "--dbname=URL", flags..., "--table=T", ...}
--   steps.transport(cfg, argv)  → local argv that runs `argv` there
--                                 {"ssh", "--", HOST, "<argv, each word single-quoted>"}
--   steps.transform(line, st)   → the line to write (a string), false to drop it, nil to
--                                 keep it; st = {table =, schema =, name =, columns =,
--                                 copy = bool, ...}. Default: the project's
--                                 `pull_staging_transform` hook.
--   steps.writer(cfg)           → {write = fn(self, s), commit = fn(self), abort = fn(self)}
--                                 default: a temporary file next to PATCH_SQL, renamed over
--                                 it by commit().
--   steps.header(cfg), steps.footer(cfg, tables) → text before and after the dump
--
-- Why ssh cannot take an argv array: the ssh protocol carries one command *string* that
-- the remote sshd hands to the user's login shell (`$SHELL -c STRING`); whatever argv we
-- give the local ssh is joined with spaces into that string. So the remote command is
-- built here from an argv array by quoting every word for a POSIX shell: each word is
-- wrapped in single quotes, inside which a shell interprets nothing at all ($, `, \, ;,
-- spaces, newlines are literal), and each ' in the word is written as '\'' (close the
-- quote, an escaped quote, reopen). The remote shell therefore rebuilds exactly our argv,
-- whatever the table names, flags or URL contain. This assumes a POSIX-family login shell
-- on the staging host (sh, dash, bash, ksh, zsh). The host itself comes after `--`, so it
-- cannot be taken for an ssh option.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {}

M.ENV = { "STAGING_SSH_HOST", "STAGING_DB_URL", "STAGING_DUMP_TABLES", "STAGING_DUMP_FLAGS" }

-- ---------------------------------------------------------------- configuration

--- Split on whitespace (no shell: quotes and $ are ordinary characters).
function M.words(s)
  local out = {}
  for w in tostring(s or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

--- The four STAGING_* variables (checked in the original's order; unset or empty → exit 3
--- with "<VAR> is not set" and err.variable = VAR). Returns
--- {host =, url =, tables = {...}, flags = {...}, file = PATCH_SQL}.
function M.config()
  local v = {}
  for _, name in ipairs(M.ENV) do
    v[name] = env.get(name)
    if v[name] == nil then
      errors.raise(errors.MISSING, name .. " is not set", { variable = name,
        hint = "pull_staging needs STAGING_SSH_HOST, STAGING_DB_URL, STAGING_DUMP_TABLES and "
          .. "STAGING_DUMP_FLAGS (see database pull_staging --help)" })
    end
  end
  local tables = M.words(v.STAGING_DUMP_TABLES)
  if #tables == 0 then
    errors.raise(errors.MISSING, "STAGING_DUMP_TABLES is not set", { variable = "STAGING_DUMP_TABLES" })
  end
  return {
    host = v.STAGING_SSH_HOST,
    url = v.STAGING_DB_URL,
    tables = tables,
    flags = M.words(v.STAGING_DUMP_FLAGS),
    file = env.patch_sql(),
  }
end

-- ---------------------------------------------------------------- quoting

--- One word quoted for a POSIX shell: 'it'\''s' (see the comment at the top).
function M.shell_quote(s)
  s = tostring(s)
  if s:find("%z") then
    errors.raise(errors.GENERIC, "a remote command argument cannot contain a NUL byte")
  end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- An argv array as one POSIX shell command string, every word quoted.
function M.shell_join(argv)
  local out = {}
  for i, a in ipairs(argv) do out[i] = M.shell_quote(a) end
  return table.concat(out, " ")
end

-- ---------------------------------------------------------------- dump parsing helpers

--- Parse a possibly quoted, possibly schema-qualified name as pg_dump prints it
--- (`public.users`, `"My Schema"."a""b"`). Returns the parts (unquoted) and the rest.
function M.parse_name(s)
  local parts = {}
  local i = 1
  while true do
    local part
    if s:sub(i, i) == '"' then
      local buf = {}
      local j = i + 1
      while true do
        local q = s:find('"', j, true)
        if not q then return nil end
        buf[#buf + 1] = s:sub(j, q - 1)
        if s:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      part = table.concat(buf)
    else
      local a, b = s:find("^[%w_$]+", i)
      if not a then return nil end
      part = s:sub(a, b)
      i = b + 1
    end
    parts[#parts + 1] = part
    if s:sub(i, i) == "." then i = i + 1 else break end
  end
  return parts, s:sub(i)
end

--- Column list of a COPY/INSERT header: `(id, "E-mail", x)` → {"id", "E-mail", "x"}, rest.
function M.parse_columns(s)
  local rest = s:match("^%s*%((.*)$")
  if not rest then return nil, s end
  local cols = {}
  while true do
    rest = rest:gsub("^%s+", "")
    local parts, after = M.parse_name(rest)
    if not parts then return nil, s end
    cols[#cols + 1] = parts[#parts]
    after = after:gsub("^%s+", "")
    local c = after:sub(1, 1)
    rest = after:sub(2)
    if c == ")" then return cols, rest end
    if c ~= "," then return nil, s end
  end
end

--- Recognise the start of a table's data in a dump line: `COPY name (cols) FROM stdin;`
--- or `INSERT INTO name (cols) VALUES ...`. Returns {schema =, name =, table =,
--- qualified =, columns =, copy = bool} or nil.
function M.data_header(line)
  local kind, rest
  if line:sub(1, 5) == "COPY " then
    kind, rest = "copy", line:sub(6)
  elseif line:sub(1, 12) == "INSERT INTO " then
    kind, rest = "insert", line:sub(13)
  else
    return nil
  end
  local parts, after = M.parse_name(rest)
  if not parts or #parts > 2 then return nil end
  local qualified = rest:sub(1, #rest - #after)
  local cols = M.parse_columns(after)
  if kind == "copy" and not after:find("FROM stdin;%s*$") then return nil end
  local schema, name = (#parts == 2 and parts[1] or nil), parts[#parts]
  return { schema = schema, name = name, table = schema and (schema .. "." .. name) or name,
    qualified = qualified, columns = cols, copy = kind == "copy" }
end

local COPY_UNESCAPE = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", v = "\v" }

local function unescape_copy(field)
  if not field:find("\\", 1, true) then return field end
  local out, i = {}, 1
  while true do
    local a = field:find("\\", i, true)
    if not a then break end
    out[#out + 1] = field:sub(i, a - 1)
    local oct = field:match("^[0-7][0-7]?[0-7]?", a + 1)
    local hex = not oct and field:match("^x(%x%x?)", a + 1)
    if oct then
      out[#out + 1] = string.char(tonumber(oct, 8) % 256)
      i = a + 1 + #oct
    elseif hex then
      out[#out + 1] = string.char(tonumber(hex, 16))
      i = a + 2 + #hex
    else
      local c = field:sub(a + 1, a + 1)
      out[#out + 1] = COPY_UNESCAPE[c] or c
      i = a + 2
    end
  end
  out[#out + 1] = field:sub(i)
  return table.concat(out)
end

--- Decode one COPY text-format data line (without its newline) into an array of values
--- (nil for \N) and the number of fields.
function M.decode_copy(line)
  local out, n = {}, 0
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    n = n + 1
    if field ~= "\\N" then out[n] = unescape_copy(field) end
  end
  return out, n
end

--- Encode values (nil → \N) as one COPY text-format line (no newline); n fields.
function M.encode_copy(values, n)
  local out = {}
  for i = 1, n or #values do
    local v = values[i]
    if v == nil then
      out[i] = "\\N"
    else
      out[i] = tostring(v):gsub("[\\\b\f\n\r\t\v]", {
        ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
        ["\t"] = "\\t", ["\v"] = "\\v" })
    end
  end
  return table.concat(out, "\t")
end

-- ---------------------------------------------------------------- default steps

local steps = {}
M.steps = steps

function steps.dump_argv(cfg)
  local argv = { "pg_dump", "--dbname=" .. cfg.url }
  for _, f in ipairs(cfg.flags) do argv[#argv + 1] = f end
  for _, t in ipairs(cfg.tables) do argv[#argv + 1] = "--table=" .. t end
  return argv
end

function steps.transport(cfg, argv)
  return { "ssh", "--", cfg.host, M.shell_join(argv) }
end

function steps.transform(line, st)
  return require("dbtool.project").run_hook(st.project, "pull_staging_transform", line, st)
end

function steps.header(cfg)
  return table.concat({
    "-- Test data for local development",
    "-- Pulled from staging (" .. cfg.host .. ") on " .. os.date("!%Y-%m-%d %H:%M UTC"),
    "-- Auto-generated by: database pull_staging",
    "", "" }, "\n")
end

-- The reset function has a fixed body: table names only ever appear in ordinary string
-- literals, quoted by quote_literal. It finds every column that owns a sequence (serial or
-- identity: pg_get_serial_sequence) and sets the sequence past the imported values.
local RESET_FUNCTION = [[
CREATE OR REPLACE FUNCTION pg_temp.db_tool_reset_sequences(tbl text) RETURNS void
LANGUAGE plpgsql AS $db_tool$
DECLARE
  rel regclass := pg_catalog.to_regclass(tbl);
  col record;
  v bigint;
BEGIN
  IF rel IS NULL THEN
    RAISE WARNING 'db-tool: table % not found; its sequences were not reset', tbl;
    RETURN;
  END IF;
  FOR col IN
    SELECT a.attname, s.seqrelid::regclass AS seq, s.seqincrement, s.seqstart
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_sequence s
      ON s.seqrelid = pg_catalog.to_regclass(pg_catalog.pg_get_serial_sequence(rel::text, a.attname))
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    EXECUTE pg_catalog.format('SELECT pg_catalog.%s(%I)::bigint FROM %s',
      CASE WHEN col.seqincrement > 0 THEN 'max' ELSE 'min' END, col.attname, rel) INTO v;
    PERFORM pg_catalog.setval(col.seq, COALESCE(v, col.seqstart), v IS NOT NULL);
  END LOOP;
END
$db_tool$;
]]

function steps.footer(_cfg, tables)
  local out = { "", "-- Reset sequences to match imported data" }
  if #tables > 0 then
    out[#out + 1] = RESET_FUNCTION
    for _, t in ipairs(tables) do
      out[#out + 1] = "SELECT pg_temp.db_tool_reset_sequences("
        .. require("dbtool.pg").quote_literal(t) .. ");"
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Atomic file writer: a temporary file in the target's directory, renamed over the target
--- on commit (mode of the old file kept, else 0666 & ~umask); removed on abort.
function steps.writer(cfg)
  local stat = require "posix.sys.stat"
  local stdio = require "posix.stdio"
  local unistd = require "posix.unistd"
  local file = cfg.file
  local dir = file:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  require("dbtool.workflow").mkdir_p(dir)
  local fd, tmp = require("posix.stdlib").mkstemp(dir .. "/.test-data.tmp-XXXXXX")
  if not fd then
    errors.raise(errors.GENERIC, "cannot create a temporary file next to " .. file .. ": " .. tostring(tmp))
  end
  local fh = stdio.fdopen(fd, "w")
  local w = { path = tmp, bytes = 0 }
  function w.write(_, s)
    local ok, err = fh:write(s)
    if not ok then errors.raise(errors.GENERIC, "cannot write " .. tmp .. ": " .. tostring(err)) end
    w.bytes = w.bytes + #s
  end
  function w.commit()
    local ok, err = fh:flush()
    if ok then unistd.fsync(fd) end
    if ok then ok, err = fh:close() else fh:close() end
    if not ok then
      os.remove(tmp)
      errors.raise(errors.GENERIC, "cannot write " .. tmp .. ": " .. tostring(err))
    end
    local old = stat.stat(file)
    local mode
    if old then
      mode = old.st_mode & 4095
    else
      local mask = stat.umask(0)
      stat.umask(mask)
      mode = 438 & ~mask -- 0666
    end
    stat.chmod(tmp, mode)
    local rok, rerr = require("posix.stdio").rename(tmp, file)
    if not rok then
      os.remove(tmp)
      errors.raise(errors.GENERIC, "cannot replace " .. file .. ": " .. tostring(rerr))
    end
  end
  function w.abort()
    pcall(fh.close, fh)
    os.remove(tmp)
  end
  return w
end

-- ---------------------------------------------------------------- pull

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function tail(text, n)
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local first = math.max(1, #lines - n + 1)
  return table.concat(lines, "\n", first)
end

--- Pull: run the dump through the transport, transform, write, commit.
--- ctx: {log =, project =}; cfg from config(); overrides: table of steps replacing
--- M.steps entries. Returns {file =, bytes =, tables = {...}, rows =, dropped =}.
function M.pull(ctx, cfg, overrides)
  local log = ctx.log or require("dbtool.log").ns("db pull_staging")
  local ui = require "dbtool.ui"
  local proc = require "dbtool.core.proc"
  local s = setmetatable({}, { __index = function(_, k)
    return (overrides and overrides[k]) or steps[k]
  end })
  local dump = s.dump_argv(cfg)
  local argv = s.transport(cfg, dump)
  log:notice("pulling data from %s", cfg.host)
  log:debug("running: %s", table.concat(argv, " "))

  local writer = s.writer(cfg)
  local errfile = env.tmpfile()
  local p, perr = proc.spawn { argv = argv, env = env.child_env(), stdin = "null", stdout = "pipe",
    stderr = { path = errfile } }
  if not p then
    os.remove(errfile)
    pcall(writer.abort, writer)
    errors.raise(errors.NO_DEPENDENCY, "cannot run " .. argv[1] .. ": " .. tostring(perr),
      { hint = "install it (pull_staging runs `" .. argv[1] .. "` to reach the staging host)" })
  end

  local result = { file = cfg.file, tables = {}, rows = 0, dropped = 0, received = 0 }
  local progress = ui.progress("pull_staging: received", nil)
  local committed = false
  local ok, err = errors.try(function()
    writer:write(s.header(cfg))
    local seen = {}
    local st = { project = ctx.project, host = cfg.host, copy = false }
    local in_copy = false
    local nonblank = false
    local out = p.stdout
    while true do
      local line, rerr = out:read("L")
      if line == nil then
        if rerr then
          require("dbtool.core").check_interrupt()
          errors.raise(errors.GENERIC, "reading the dump failed: " .. tostring(rerr))
        end
        break
      end
      result.received = result.received + #line
      progress:update(ui.bytes(result.received))
      local nl = line:sub(-1) == "\n"
      if nl then line = line:sub(1, -2) end
      if not nonblank and line:find("%S") then nonblank = true end
      local is_data = false
      if in_copy then
        if line == "\\." then
          in_copy = false
          st.copy = false
        else
          is_data = true
        end
      else
        local h = M.data_header(line)
        if h then
          if not seen[h.qualified] then
            seen[h.qualified] = true
            result.tables[#result.tables + 1] = h.qualified
          end
          st.schema, st.name, st.table, st.qualified, st.columns, st.copy =
            h.schema, h.name, h.table, h.qualified, h.columns, h.copy
          if h.copy then
            in_copy = true
          else
            is_data = true
          end
        end
      end
      local res = line
      if is_data then
        local r = s.transform(line, st)
        if r == false then
          res = nil
          result.dropped = result.dropped + 1
        elseif r ~= nil then
          if type(r) ~= "string" then
            errors.raise(errors.GENERIC, "pull_staging transform returned a " .. type(r)
              .. " (expected a string, false to drop the line, or nil to keep it)")
          end
          res = r
        end
        if res then result.rows = result.rows + 1 end
      end
      if res then writer:write(res .. (nl and "\n" or "")) end
    end
    progress:finish()
    local how, code = p:wait()
    if how ~= "exited" or code ~= 0 then
      local msg = read_file(errfile)
      errors.raise(errors.GENERIC, "failed to dump staging database via SSH", {
        detail = (how == "exited" and ("exit status " .. code) or ("killed by signal " .. tostring(code)))
          .. (msg:find("%S") and (":\n" .. tail(msg, 20)) or ""),
        hint = "check STAGING_SSH_HOST (ssh " .. cfg.host .. " works?), STAGING_DB_URL and "
          .. "STAGING_DUMP_FLAGS; " .. cfg.file .. " was left unchanged" })
    end
    if not nonblank then
      errors.raise(errors.GENERIC, "staging dump returned empty output",
        { hint = "check STAGING_DUMP_TABLES (patterns that match no table dump nothing); "
          .. cfg.file .. " was left unchanged" })
    end
    local warn = read_file(errfile)
    for l in warn:gmatch("[^\n]+") do log:warn("%s", l) end
    writer:write("\n")
    writer:write(s.footer(cfg, result.tables))
    writer:commit()
    committed = true
  end)
  progress:finish()
  if not committed then
    pcall(writer.abort, writer)
    if p then
      pcall(p.kill, p, "TERM")
      pcall(p.wait, p, 5)
    end
  end
  os.remove(errfile)
  if not ok then error(err, 0) end
  result.bytes = writer.bytes
  log:notice("written to %s", cfg.file)
  log:notice("tables dumped: %s", table.concat(cfg.tables, " "))
  log:info("%s received, %d data line%s written%s, %d table%s with data", ui.bytes(result.received),
    result.rows, result.rows == 1 and "" or "s",
    result.dropped > 0 and (" (" .. result.dropped .. " dropped by the transform)") or "",
    #result.tables, #result.tables == 1 and "" or "s")
  return result
end

return M
