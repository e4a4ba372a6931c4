-- database secrets edit: edit an encrypted dotenv file with $EDITOR, nothing left behind.
local function secrets() return require "dbtool.secrets" end

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

local M = {
  name = "edit",
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

return M
