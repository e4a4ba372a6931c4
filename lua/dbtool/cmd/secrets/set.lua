-- database secrets set: set one key of a dotenv file from standard input.
local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

-- The value for `set`: hidden prompt on a terminal, else all of stdin minus one newline.
local function read_value(key)
  local unistd = require "posix.unistd"
  if unistd.isatty(0) then
    local termio = require "posix.termio"
    local saved = termio.tcgetattr(0)
    io.stderr:write("value for " .. key .. " (not shown): ")
    io.stderr:flush()
    local line
    errors().finally(function()
      if saved then termio.tcsetattr(0, termio.TCSANOW, saved) end
      io.stderr:write("\n")
    end, function()
      if saved then
        local quiet = {}
        for k, v in pairs(saved) do quiet[k] = v end
        quiet.lflag = saved.lflag & ~termio.ECHO
        termio.tcsetattr(0, termio.TCSANOW, quiet)
      end
      line = io.stdin:read("l")
    end)
    if line == nil then
      errors().raise(errors().MISSING, "no value given for " .. key)
    end
    return line
  end
  local v = io.stdin:read("a")
  if v == nil or v == "" then
    errors().raise(errors().MISSING, "no value for " .. key .. " on standard input", {
      hint = "pipe it in: printf '%s' \"$VALUE\" | database secrets set " .. key
        .. " (send a newline for an empty value)" })
  end
  return (v:gsub("\r?\n$", ""))
end

local M = {
  name = "set",
  usage = "database secrets set KEY [FILE]",
  summary = "Set KEY in a dotenv file (encrypted or not) to the value read from standard input.",
  positionals = { { "key", arg = "KEY" }, { "file", arg = "FILE", optional = true } },
  help = [[
The value is all of standard input without its final newline (on a terminal: one hidden
line). It is never printed or logged. The rest of FILE (comments, order) is kept; a new
FILE (default $LOCAL_DIR/.env.$ENVIRONMENT.enc) is created encrypted.]],
  run = function(ctx, opts)
    local value = read_value(opts.key)
    local t, is_new = secrets().set(opts.file, opts.key, value, ctx.log)
    ctx.log:notice("%s %s in %s", is_new and "added" or "updated", opts.key, t.path)
    return 0
  end,
}

return M
