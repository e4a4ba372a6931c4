-- database secrets: encrypted dotenv files (keygen, encrypt, decrypt, edit, set, unset, list)
-- and `load` (the original `db-ops secrets load`). A command group: each verb is a module
-- dbtool.cmd.secrets.<verb>, overridable and extensible from a project like any command
-- (db/lua/dbtool/cmd/secrets/<verb>.lua, or db-tool.lua's commands["secrets <verb>"]).
-- The work is in dbtool.secrets.
local M = {
  name = "secrets",
  summary = "encrypted dotenv files (keygen, encrypt, decrypt, edit, set, list) and loading secrets",
  usage = "database secrets <subcommand> [options]",
  commands = "dbtool.cmd.secrets.",
  project_key = "secrets ",
  help_words = { "help" },
  order = { keygen = 1, encrypt = 2, decrypt = 3, edit = 4, set = 5, unset = 6, list = 7, load = 8 },
  messages = {
    unknown_command = "%s subcommand %s does not exist",
    -- the original's message for an option without its value
    missing = function(_, flag) return "missing value for " .. flag end,
  },
  description = [[
Dotenv files with the secrets of an environment, kept encrypted in the repository, and
loaded into hectic.secret by `database hydrate` and `database secrets load`.]],
  help = [[
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
only in files that start with the line `# db-tool: expand`.]],
  exit_codes = {
    { 0, "ok" },
    { 1, "error (wrong key, damaged file, loose key file mode)" },
    { 2, "both FILE and FILE.enc exist" },
    { 3, "missing file, key or variable, invalid dotenv, missing option value" },
    { 9, "unknown subcommand or option" },
  },
}

return M
