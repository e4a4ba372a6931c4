-- rickdb migrate <path>: apply the *.sql files of a directory that are not recorded yet.
local M = {
  name = "migrate",
  summary = "execute migrations from the specified location",
  usage = "rickdb [database] migrate <path_to_sql_files>",
  options = {
    { "--lock-wait", arg = "SECONDS",
      help = "wait for a concurrent migration at most this long (default 60)" },
    { "--json", help = "print one JSON document at the end: the migrations run, their timings, the error" },
  },
  positionals = { { "path", optional = true, complete = "dir" } },
  rest = "ARGS",
  help = [[
Applies every *.sql file of the directory that is not recorded yet, in byte order of the
file names, printing `Executing <file>... success` (or `skipping, already applied`,
`skipping, empty migration`). Each file and its _migration row are committed together; on
an error nothing of that file stays, earlier files stay applied, and the run stops (252).
Empty files are skipped and not recorded (as rick_db does).
  --lock-wait SECONDS   wait for a concurrent migration at most this long (default 60)
  --json                one JSON document on stdout at the end (the lines above go to stderr):
                        steps (each file run: name, outcome, duration_ms), done, the error
                        as data (README "Machine-readable results")]],
}

--- The migration policy of a run: the store's, the [rickdb] settings, the connection.
function M.policy(ctx)
  local store_rickdb = require "dbtool.migrate.store_rickdb"
  local pol = {}
  for k, v in pairs(store_rickdb.POLICY) do pol[k] = v end
  pol.checksum = ctx.settings.checksum or "warn"
  pol.lock_wait = ctx.lock_wait
  if ctx.settings.lock_timeout ~= nil then pol.lock_timeout = ctx.settings.lock_timeout end
  if ctx.conn.autocommit then pol.transaction = "none" end
  return pol
end

function M.run(ctx, opts)
  if opts.json then
    return require("dbtool.report").run("rickdb migrate",
      function(doc) return M.migrate(ctx, opts, doc) end)
  end
  return M.migrate(ctx, opts)
end

--- The run; `doc`: the --json document to fill, or nil.
function M.migrate(ctx, opts, doc)
  local common = require "dbtool.rickdb.common"
  local errors = require "dbtool.errors"
  common.setup(ctx, opts, 1)
  local s <close> = common.open_store(ctx, false)
  common.require_installed(s)
  local dir = common.migration_dir(ctx)
  local style, write = common.style, common.write

  -- the lines: every file in order; those the run does not apply are "already applied"
  local files, planned, nextf = nil, {}, 1
  local open_line = false
  local function skip_until(name)
    while files and files[nextf] and files[nextf].name ~= name do
      local f = files[nextf]
      if not planned[f.name] then
        write(1, "Executing " .. f.name .. "... " .. style("yellow", "skipping, already applied") .. "\n")
      end
      nextf = nextf + 1
    end
    if files and files[nextf] then nextf = nextf + 1 end
  end
  local pol = M.policy(ctx)
  pol.hooks = {
    before_migrate = function(info)
      files = common.flat_files(dir)
      for _, st in ipairs(info.plan.steps) do planned[st.m.name] = true end
    end,
    before_each = function(info)
      skip_until(info.name)
      write(1, "Executing " .. info.name .. "... ")
      open_line = true
    end,
    after_each = function(info)
      local text = ({ applied = { "green", "success" }, empty = { "yellow", "skipping, empty migration" },
        skipped = { "yellow", "skipping, already applied" } })[info.outcome] or { "green", "success" }
      write(1, style(text[1], text[2]) .. "\n")
      open_line = false
    end,
  }
  local steps_done = doc and require("dbtool.report").record_migrations(doc, pol)
  local eng = require("dbtool.migrate").new { store = s, layout = "flat", dir = dir, policy = pol,
    log = ctx.log, report_errors = false, progress = false }
  local ok, err = errors.try(eng.migrate, eng, { kind = "up", n = "all" })
  if doc then
    steps_done()
    if ok then doc.done = err.done end
  end
  if not ok then
    if open_line then write(1, style("red", "error") .. "\n") end
    if err.bug or err.interrupted then error(err, 0) end
    local cause = err.cause or err
    if err.cause and err.hint then cause.hint = cause.hint or err.hint end
    if err.note then cause.hint = err.note end
    common.fail(cause.msg, { where = cause.where, excerpt = cause.excerpt, detail = cause.detail,
      hint = cause.hint, sqlstate = cause.sqlstate })
  end
  if not files then files = common.flat_files(dir) end
  skip_until(nil)
  return 0
end

return M
