-- database secrets keygen: make the project's key pair (once per project).
local function secrets() return require "dbtool.secrets" end

local M = {
  name = "keygen",
  usage = "database secrets keygen [--force] [--key-file PATH]",
  summary = "Generate the project's key pair: the public key to $DATABASE_DIR/secrets.pub (commit "
    .. "it), the private key to ~/.config/db-tool/keys/<key id>.key (mode 0600).",
  options = {
    { "--force", help = "replace an existing secrets.pub (a new key: re-encrypt the files)" },
    { "--key-file", arg = "PATH", help = "write the private key here (outside the project)" },
  },
  help = [[
The private key is written first, with mode 0600, in a 0700 directory, and never inside
the project directory. Share it privately with whoever must decrypt (colleagues, CI:
DB_TOOL_SECRET_KEY="$(cat KEYFILE)").]],
  run = function(ctx, opts)
    local env = require "dbtool.env"
    if not env.get("DATABASE_DIR") then env.local_dir() end  -- exit 3 without a project
    local r = secrets().keygen { force = opts.force, key_file = opts.key_file }
    if r.replaced then
      ctx.log:warn("replaced the public key %s (key id %s): files encrypted for it must be "
        .. "re-encrypted (`database secrets edit FILE` and save)", r.public, r.replaced)
    end
    io.stdout:write(string.format("key id:      %s\npublic key:  %s (commit it)\n"
      .. "private key: %s (mode 0600; keep it out of the repository)\n"
      .. "for CI:      DB_TOOL_SECRET_KEY=\"$(cat %s)\"\n", r.id, r.public, r.private, r.private))
    return 0
  end,
}

return M
