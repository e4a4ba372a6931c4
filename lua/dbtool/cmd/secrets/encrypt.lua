-- database secrets encrypt: a dotenv file → its encrypted FILE.enc.
local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

local M = {
  name = "encrypt",
  usage = "database secrets encrypt FILE [-o OUT] [--keep]",
  summary = "Encrypt the dotenv FILE for the project's public key into FILE.enc (or OUT).",
  options = {
    { "-o", "--output", arg = "OUT", help = "where to write (default FILE.enc)" },
    { "--keep", help = "keep the plaintext FILE" },
  },
  positionals = { { "file", arg = "FILE" } },
  help = [[
FILE must be valid dotenv (errors at FILE:line, exit 3). Only the public key is needed.
Afterwards the plaintext is overwritten and removed, once the encrypted file was checked
with your private key; without a private key here it is kept (delete it yourself; never
commit it). An existing OUT is replaced.]],
  run = function(ctx, opts)
    local sec = secrets()
    local path = opts.file
    local stat = require "posix.sys.stat"
    local st = stat.stat(path)
    local f = st and stat.S_ISREG(st.st_mode) ~= 0 and io.open(path, "rb")
    if not f then
      errors().raise(errors().MISSING, "dotenv file is not readable: " .. path, { file = path })
    end
    local text = f:read("a")
    f:close()
    if sec.is_encrypted(text) then
      errors().raise(errors().GENERIC, path .. " is already encrypted",
        { hint = "`database secrets edit " .. path .. "` to change it" })
    end
    local res = sec.parse(text, path, ctx.log)
    local pk, id = sec.read_public_key()
    local out = opts.output or (path .. sec.SUFFIX)
    if out == path then
      errors().raise(errors().GENERIC, "the output must not be the input file", { hint = "leave out -o" })
    end
    sec.write_atomic(out, sec.encrypt(text, pk))
    ctx.log:notice("encrypted %s → %s (%d secret%s, key id %s)", path, out, #res.keys,
      #res.keys == 1 and "" or "s", id)
    if opts.keep then
      ctx.log:warn("kept the plaintext %s: never commit it", path)
      return 0
    end
    -- remove the plaintext only once the encrypted file is known to decrypt to it
    local ok, key = pcall(sec.secret_key, id, out)
    if not ok then
      ctx.log:warn("kept the plaintext %s: no usable private key here to check %s (%s); delete %s "
        .. "once the encrypted file is checked, and never commit it", path, out,
        errors().is(key) and key.msg or tostring(key), path)
      return 0
    end
    local check <close> = key                              -- wiped on every path
    local written = assert(io.open(out, "rb")):read("a")
    local plain = sec.decrypt(written, out, { key = check })
    if plain ~= text then
      errors().raise(errors().BUG, out .. " does not decrypt to " .. path .. "; the plaintext was kept")
    end
    sec.wipe_file(path)
    ctx.log:info("removed the plaintext %s", path)
    return 0
  end,
}

return M
