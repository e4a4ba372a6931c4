-- database secrets: encrypted dotenv files (keygen, encrypt, decrypt, edit, set, unset, list)
-- and `load` (the original `db-ops secrets load`). The work is in dbtool.secrets.
local M = {
  name = "secrets",
  summary = "encrypted dotenv files (keygen, encrypt, decrypt, edit, set, list) and loading secrets",
  usage = "database secrets <keygen|encrypt|decrypt|edit|set|unset|list|load> [options]",
  raw = true,
}

local HELP = [[
Usage: database secrets <subcommand> [options]

Dotenv files with the secrets of an environment, kept encrypted in the repository, and
loaded into hectic.secret by `database hydrate` and `database secrets load`.

Subcommands:
  keygen [--force] [--key-file PATH]   make the project's key pair (once per project)
  encrypt FILE [-o OUT] [--keep]       FILE → FILE.enc (the plaintext is then removed)
  decrypt FILE [-o OUT] [--force]      print the plaintext (or write OUT, mode 0600)
  edit [FILE]                          decrypt to a private temporary file, run $EDITOR,
                                       check, re-encrypt, wipe the temporary file
  set KEY [FILE]                       set KEY to the value read from standard input
  unset KEY [FILE]                     remove KEY
  list [FILE]                          the keys (never the values)
  load [-u URL] [-f FILE]              apply the hectic bundle and load the secrets
FILE defaults to $LOCAL_DIR/.env.$ENVIRONMENT(.enc); FILE also finds FILE.enc. New files
made by edit/set are encrypted. `database secrets <subcommand> --help` for details.

Keys:
  public   $DATABASE_DIR/secrets.pub — commit it; encrypting needs only this.
  private  DB_TOOL_SECRET_KEY (the key itself, e.g. in CI), else the file
           DB_TOOL_SECRET_KEY_FILE, else ${XDG_CONFIG_HOME:-~/.config}/db-tool/keys/<id>.key.
           Never in the repository; a key file must have mode 0600 (looser is refused).

Encrypted file format (FILE.enc), version 1:
  db-tool secrets v1 sealedbox <key id: 16 hex digits of SHA-256(public key)>
  <base64 of a libsodium sealed box (X25519 + XSalsa20-Poly1305) of the dotenv text,
   64 characters a line>

Dotenv syntax: KEY=value lines, `export KEY=value`, 'single' (literal) and "double" quotes
(escapes \n \r \t \\ \" \$, may span lines), ` # comments`, CRLF files; a key given twice:
the last wins (warning); anything else is an error at file:line (exit 3). ${VAR} expansion
only in files that start with the line `# db-tool: expand`.

Exit codes: 0 ok, 1 error (wrong key, damaged file, loose key file mode), 2 both FILE and
FILE.enc exist, 3 missing file/key/variable or invalid dotenv, 9 unknown subcommand or option.]]

local function secrets() return require "dbtool.secrets" end
local function errors() return require "dbtool.errors" end

-- ---------------------------------------------------------------- subcommands

local SUB = {}

SUB.keygen = {
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

SUB.encrypt = {
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
    local written = assert(io.open(out, "rb")):read("a")
    local plain = sec.decrypt(written, out, { key = key })
    key:close()
    if plain ~= text then
      errors().raise(errors().BUG, out .. " does not decrypt to " .. path .. "; the plaintext was kept")
    end
    sec.wipe_file(path)
    ctx.log:info("removed the plaintext %s", path)
    return 0
  end,
}

SUB.decrypt = {
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

local function tty_retry(log)
  local unistd = require "posix.unistd"
  if not (unistd.isatty(0) and unistd.isatty(2)) then return nil end
  return function(err)
    local cli = require "dbtool.cli"
    cli.report(err, log.name)
    io.stderr:write("reopen the editor to fix it? [Y/n] ")
    local answer = io.stdin:read("l")
    return answer ~= nil and not answer:match("^%s*[nN]")
  end
end

SUB.edit = {
  usage = "database secrets edit [FILE]",
  summary = "Edit an encrypted dotenv file with $EDITOR (default vi).",
  positionals = { { "file", arg = "FILE", optional = true } },
  help = [[
FILE (default $LOCAL_DIR/.env.$ENVIRONMENT.enc) is decrypted into a private temporary file
(a 0700 directory on tmpfs when available, file mode 0600), $EDITOR runs on it, the result
is checked (invalid dotenv: on a terminal you may reopen the editor, else exit 3 and FILE
is unchanged), encrypted for the project's public key and written atomically; the
temporary file (and editor backups next to it) are overwritten and removed, whatever
happens. An editor exiting non-zero changes nothing. A new FILE is created encrypted.]],
  run = function(ctx, opts)
    local outcome, t = secrets().edit(opts.file, ctx.log, { retry = tty_retry(ctx.log) })
    if outcome == "unchanged" then
      ctx.log:notice("no changes: %s left as it was", t.path)
    else
      ctx.log:notice("saved %s%s", t.path, t.encrypted and " (encrypted)" or "")
    end
    return 0
  end,
}

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

SUB.set = {
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

SUB.unset = {
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

SUB.list = {
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

SUB.load = {
  usage = "database secrets load [-u|--url URL] [-f|--dotenv-file PATH]",
  summary = "Apply the hectic bundle and replace hectic.secret with the secrets of a dotenv file.",
  options = {
    { "-u", "--url", arg = "URL", help = "database (default: PGURL, else DB_URL)" },
    { "-f", "--dotenv-file", arg = "PATH",
      help = "dotenv file (encrypted or not); overrides HECTIC_DOTENV_FILE" },
  },
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s subcommand %s does not exist",
  },
  help = [[
Like the original `db-ops secrets load`. The dotenv content comes from, first match wins:
HECTIC_DOTENV_CONTENT; --dotenv-file or HECTIC_DOTENV_FILE (must be readable: exit 3, no
fallback); $LOCAL_DIR/.env.$ENVIRONMENT (or .env.$ENVIRONMENT.enc); else exit 3. Encrypted
files are decrypted with the private key. The file is read, decrypted and checked before
connecting; then the bundle and the secrets are applied in one transaction (all secrets are
replaced). An empty file applies the bundle and leaves the secrets as they are.]],
  run = function(ctx, opts)
    local env = require "dbtool.env"
    local url = opts.url or ctx.url or env.get("PGURL") or env.get("DB_URL")
    if not url then
      errors().raise(errors().MISSING, "PGURL or DB_URL is required",
        { hint = "pass -u URL, or export PGURL / DB_URL" })
    end
    local prepared = secrets().prepare(ctx.log, { file = opts.dotenv_file, required = true })
    ctx.log:notice("apply hectic bundle and load secrets")
    local pg = require "dbtool.pg"
    local conn <close> = pg.connect(url, { log = ctx.log })
    pg.transaction(conn, function()
      require("dbtool.bundle").apply(conn, { log = ctx.log })
      if prepared then secrets().load(conn, prepared, ctx.log) end
    end)
    return 0
  end,
}

local ORDER = { "keygen", "encrypt", "decrypt", "edit", "set", "unset", "list", "load" }
M.subcommands = ORDER

function M.run(ctx, argv)
  local args = require "dbtool.args"
  local sub = argv[1]
  if sub == nil or sub == "-h" or sub == "--help" or sub == "help" then
    io.stdout:write(HELP, "\n")
    return 0
  end
  local spec = SUB[sub]
  if not spec then
    errors().raise(errors().NOT_FOUND, "secrets subcommand " .. sub .. " does not exist",
      { hint = "one of: " .. table.concat(ORDER, ", ") .. " (see 'database secrets --help')" })
  end
  spec.name = "secrets " .. sub
  spec.prog = "database secrets " .. sub
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  -- the original's message for an option without its value
  for i, a in ipairs(rest) do
    if a == "--" then break end
    for _, o in ipairs(spec.options or {}) do
      if o.arg and (a == o[1] or a == o[2]) and rest[i + 1] == nil then
        errors().raise(errors().MISSING, "missing value for " .. a,
          { hint = "see '" .. spec.prog .. " --help'" })
      end
    end
  end
  local opts = args.parse(spec, rest)
  if opts.help then
    io.stdout:write(args.help(spec))
    return 0
  end
  ctx.log = require("dbtool.log").ns("db secrets " .. sub)
  require("dbtool.cli").namespace = "db secrets " .. sub
  return spec.run(ctx, opts)
end

return M
