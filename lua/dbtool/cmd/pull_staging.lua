-- database pull_staging: staging tables → test-data.sql (see dbtool.staging).
--
-- A project customises it with ${DATABASE_DIR}/lua/dbtool/cmd/pull_staging.lua:
--
--   local cmd = require "dbtool.builtin.cmd.pull_staging"
--   local staging = require "dbtool.staging"
--   cmd.steps.transform = function(line, st)
--     if st.table == "public.users" and st.copy then
--       local v, n = staging.decode_copy(line)
--       v[3] = "user" .. v[1] .. "@example.com"
--       return staging.encode_copy(v, n)
--     end
--   end
--   return cmd
local M = {
  name = "pull_staging",
  summary = "dump staging tables over ssh into test-data.sql (replaced only on success)",
  usage = "database pull_staging",
  options = {},
  messages = {
    unknown = "%s argument %s does not exist",
    unexpected = "%s: unexpected argument %s",
  },
  help = [[
Runs pg_dump on the staging host through ssh and writes its output to the patch file
($PATCH_SQL, default ${PROFILE_DIR:-$LOCAL_DIR}/test-data.sql): a header, the dump, then
statements that reset every serial/identity sequence of the dumped tables past the
imported rows. The file is written to a temporary file and renamed over the old one only
when everything succeeded; on any failure the old file is kept.

Environment (all four required; a missing one exits 3 naming it):
  STAGING_SSH_HOST     ssh destination of the staging server ([user@]host)
  STAGING_DB_URL       connection string of the staging database, as seen from that host
  STAGING_DUMP_TABLES  space-separated tables (pg_dump -t patterns; ? matches one character,
                       e.g. a space)
  STAGING_DUMP_FLAGS   extra pg_dump flags, split on spaces (e.g. --data-only --column-inserts)

The remote command is built from an argument array with every word single-quoted for the
remote shell, so table names, flags and the URL cannot run shell code there. The project
hook pull_staging_transform(line, st) can rewrite or drop data lines (anonymise e-mails,
...); a project can also replace the steps (transport, dump command, transform, writer)
in ${DATABASE_DIR}/lua/dbtool/cmd/pull_staging.lua.]],
  -- step overrides (see dbtool.staging.steps); a project override module sets entries here
  steps = {},
}

function M.run(ctx, _opts)
  local errors = require "dbtool.errors"
  local staging = require "dbtool.staging"
  local ok, cfg = errors.try(staging.config)
  if not ok then
    if cfg.variable then
      -- as the original: the plain message on stderr, exit 3
      io.stderr:write(cfg.msg, "\n")
      return cfg.exit
    end
    error(cfg, 0)
  end
  staging.pull(ctx, cfg, M.steps)
  return 0
end

return M
