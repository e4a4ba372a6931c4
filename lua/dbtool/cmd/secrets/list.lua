-- database secrets list: the keys of a dotenv file (never the values).
local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

local M = {
  name = "list",
  usage = "database secrets list [FILE]",
  summary = "Print the keys of a dotenv file (encrypted or not), one a line; never the values.",
  positionals = { { "file", arg = "FILE", optional = true } },
  run = function(ctx, opts)
    local sec = secrets()
    local t = sec.target(opts.file)
    if not t.exists then
      errors().raise(errors().MISSING, "dotenv file is not readable: " .. t.path, { file = t.path })
    end
    local plain = sec.open_target(t)
    local res = sec.parse(plain, t.path, ctx.log)
    for _, k in ipairs(res.keys) do io.stdout:write(k, "\n") end
    return 0
  end,
}

return M
