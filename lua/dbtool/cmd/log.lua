-- database log: the local cluster's server logs.
local env = require "dbtool.env"
local errors = require "dbtool.errors"

local M = {
  name = "log",
  summary = "show the server logs of the local cluster (list, index or name)",
  usage = "database log [list | N | NAME]",
  positionals = { { "which", optional = true } },
  messages = { unknown = "%s argument %s does not exist", unexpected = "%s: unexpected argument %s" },
  help = [[
  list       number the log files
  N          show the N-th file of the list
  NAME       show the file with that name, or the one file whose name contains NAME
  (nothing)  show all files, oldest first

The files are those of PG_LOG_PATH when set, else $PG_WORKING_DIR/data/log (the logging
collector's postgresql-<date>.log files and postmaster.log, the server's start-up output).
On a terminal the output goes through the pager (DB_TOOL_PAGER, PAGER, default less -FRX;
--no-pager: none); piped, it is printed.
Exit status: 1 when no file matches, 2 when NAME matches several files.]],
}

--- Directory of the server logs of the cluster in PG_WORKING_DIR.
function M.dir()
  return require("dbtool.cluster").log_dir(env.pg_working_dir())
end

--- Regular files of `dir`, sorted by name (the collector names them by time).
function M.files(dir)
  local dirent = require "posix.dirent"
  local stat = require "posix.sys.stat"
  local ok, names = pcall(dirent.dir, dir)
  if not ok or not names then return nil end
  local files = {}
  for _, n in ipairs(names) do
    local st = stat.stat(dir .. "/" .. n)
    if n ~= "." and n ~= ".." and st and stat.S_ISREG(st.st_mode) ~= 0 then files[#files + 1] = n end
  end
  table.sort(files)
  return files
end

--- Resolve `which` against the file list: exact name, then index, then unique substring.
--- Returns the name, or nil, a reason and its kind ("missing" or "ambiguous").
function M.pick(files, which)
  for _, f in ipairs(files) do
    if f == which then return f end
  end
  local n = which:match("^%d+$") and tonumber(which)
  if n then
    if files[n] then return files[n] end
    return nil, string.format("index %d is out of range (1-%d)", n, #files), "missing"
  end
  local found = {}
  for _, f in ipairs(files) do
    if f:find(which, 1, true) then found[#found + 1] = f end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then return nil, "no file name contains '" .. which .. "'", "missing" end
  return nil, "ambiguous: " .. table.concat(found, ", "), "ambiguous"
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.run(ctx, opts)
  local ui = require "dbtool.ui"
  local dir = M.dir()
  local files = M.files(dir)
  if not files then
    errors.raise(errors.GENERIC, "log directory not found: " .. dir,
      { hint = "start the cluster with logging on (`database init`); PG_DISABLE_LOGGING=1 turns it off" })
  end
  local which = opts.which
  if which == "list" then
    if #files == 0 then
      ctx.log:warn("no log files in %s", dir)
      return 0
    end
    for i, f in ipairs(files) do io.stdout:write(string.format("%2d  %s\n", i, f)) end
    return 0
  end
  if which == nil then
    if #files == 0 then
      ctx.log:warn("no log files in %s", dir)
      return 0
    end
    local parts = {}
    for _, f in ipairs(files) do
      if #files > 1 then parts[#parts + 1] = "==> " .. f .. " <==\n" end
      parts[#parts + 1] = read(dir .. "/" .. f)
    end
    ui.page(table.concat(parts))
    return 0
  end
  local name, why, kind = M.pick(files, which)
  if not name then
    errors.raise(kind == "ambiguous" and errors.AMBIGUOUS or errors.GENERIC,
      "log file not found or ambiguous: " .. which .. " (" .. why .. ")",
      { hint = kind == "ambiguous" and "give more of the name, or its number from 'database log list'"
        or "use 'database log list' to inspect available files" })
  end
  ui.page(read(dir .. "/" .. name))
  return 0
end

return M
