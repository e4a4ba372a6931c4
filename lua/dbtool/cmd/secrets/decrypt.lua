-- database secrets decrypt: print (or write) the plaintext of an encrypted dotenv file.
local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

local M = {
  name = "decrypt",
  usage = "database secrets decrypt FILE [-o OUT] [--force]",
  summary = "Decrypt FILE (or FILE.enc) to standard output, or to OUT (mode 0600).",
  options = {
    { "-o", "--output", arg = "OUT", help = "write the plaintext to OUT (mode 0600) instead of stdout" },
    { "--force", help = "replace an existing OUT" },
  },
  positionals = { { "file", arg = "FILE" } },
  help = [[
Needs the private key (DB_TOOL_SECRET_KEY, DB_TOOL_SECRET_KEY_FILE or the key directory).
To change a file, prefer `database secrets edit` (no plaintext left behind).]],
  run = function(ctx, opts)
    local sec = secrets()
    local real = sec.resolve(opts.file) or opts.file
    local f = io.open(real, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    if not text then
      errors().raise(errors().MISSING, "dotenv file is not readable: " .. opts.file, { file = opts.file })
    end
    if not sec.is_encrypted(text) then
      errors().raise(errors().GENERIC, real .. " is not an encrypted dotenv file",
        { hint = "`database secrets encrypt " .. real .. "` encrypts it" })
    end
    local plain = sec.decrypt(text, real)
    if opts.output then
      sec.write_private(opts.output, plain, opts.force)
      ctx.log:notice("decrypted %s → %s (mode 0600)", real, opts.output)
    else
      io.stdout:write(plain)
    end
    return 0
  end,
}

return M
