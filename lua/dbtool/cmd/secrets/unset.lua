-- database secrets unset: remove one key of a dotenv file.
local function secrets() return require "dbtool.secrets" end

local M = {
  name = "unset",
  usage = "database secrets unset KEY [FILE]",
  summary = "Remove KEY from a dotenv file (encrypted or not).",
  positionals = { { "key", arg = "KEY" }, { "file", arg = "FILE", optional = true } },
  run = function(ctx, opts)
    local t, n = secrets().unset(opts.file, opts.key, ctx.log)
    if n == 0 then
      ctx.log:warn("%s is not in %s: nothing changed", opts.key, t.path)
    else
      ctx.log:notice("removed %s from %s", opts.key, t.path)
    end
    return 0
  end,
}

return M
