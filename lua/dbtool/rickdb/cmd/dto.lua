-- rickdb dto <[schema.]object> <file>: a data transfer object class for a table or view.
local M = {
  name = "dto",
  summary = "generate a python data transfer object (DTO) for a given database object",
  usage = "rickdb [database] dto <[schema.]table_name> <output_file.py>",
  options = {
    { "-f", "--force", help = "overwrite an existing output file" },
    { "--template", arg = "MODULE", help = "another generator: a Lua module name or a .lua file" },
  },
  positionals = { { "object", optional = true }, { "file", optional = true, complete = "file" } },
  rest = "ARGS",
  help = [[
Writes a rick_db @fieldmapper class for a table or view (PostgreSQL: schema.table, public
by default; SQLite: main by default). Columns that would not work as Python attributes
(keywords, leading '_', record method names such as pk or values) get a trailing '_'; a
composite primary key sets no pk=. Renames are explained in comments.
  -f, --force          overwrite an existing output file
  --template MODULE    another generator: a Lua module name or a .lua file returning
                       {render = function(obj, dto) return text end} (see README)]],
}

-- Python's OSError text for a file that cannot be created ("[Errno 2] No such file or
-- directory: 'x/y.py'"), as rick_db printed it.
local function os_error(msg, errno, path)
  local text = tostring(msg):match(": ([^:]*)$") or tostring(msg)
  return string.format("[Errno %d] %s: '%s'", errno or 0, text, path)
end

local function write_output(common, path, text, force)
  local fcntl = require "posix.fcntl"
  local unistd = require "posix.unistd"
  local flags = fcntl.O_WRONLY | fcntl.O_CREAT | (force and fcntl.O_TRUNC or fcntl.O_EXCL)
  local fd, msg, errno = fcntl.open(path, flags, 420)
  if not fd then
    if errno == require("posix.errno").EEXIST then
      common.fail("Output file already exists", { hint = "pass --force to overwrite " .. path })
    end
    common.fail(os_error(msg, errno, path))
  end
  local n, wmsg = unistd.write(fd, text)
  unistd.close(fd)
  if n ~= #text then common.fail("cannot write " .. path .. ": " .. tostring(wmsg)) end
end

function M.run(ctx, opts)
  local common = require "dbtool.rickdb.common"
  local errors = require "dbtool.errors"
  common.setup(ctx, opts, 2)
  local object, file = ctx.args[1], ctx.args[2]
  if object == nil or object == "" then common.fail("Missing table name") end
  if file == nil or file == "" then common.fail("Missing output file") end
  local exists = require("posix.sys.stat").stat(file) ~= nil
  if exists and not opts.force then
    common.fail("Output file already exists", { hint = "pass --force to overwrite " .. file })
  end
  local dto = require "dbtool.rickdb.dto"
  local tpl
  do
    local spec, base = opts.template, "."
    if not spec and ctx.settings.dto_template then spec, base = ctx.settings.dto_template, ctx.cfg.dir end
    local ok, res = errors.try(dto.load_template, spec, base)
    if not ok then
      if res.bug then error(res, 0) end
      common.fail(res.msg)
    end
    tpl = res
  end
  local s <close> = common.open_store(ctx, false)
  local obj = dto.describe(s, object)
  if not obj then
    common.fail("Database object '" .. object .. "' not found",
      { hint = s.engine == "postgresql" and "name a table or view as [schema.]name (schema public by default)"
        or "name a table or view of the database" })
  end
  local ok, text = errors.try(dto.render, obj, tpl)
  if not ok then
    if text.bug then error(text, 0) end
    common.fail(text.msg)
  end
  write_output(common, file, text, opts.force)
  common.write(1, common.style("bold", "DTO written to file " .. file) .. "\n")
  return 0
end

return M
