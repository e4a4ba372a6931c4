-- The example project's extension file: a new subcommand and hooks.
-- `database --help` lists `stats`; `database stats` runs it.
local log = require("dbtool.log").ns("db shop")

return {
  commands = {
    stats = {
      summary = "row counts of the shop schema (example project command)",
      usage = "database stats [--json]",
      options = { { "--json", help = "print JSON instead of a table" } },
      run = function(ctx, opts)
        local db = require "dbtool.db"
        local conn <close> = db.connect(ctx)
        local rows = conn:exec([[
          SELECT c.relname AS name,
                 (xpath('/row/n/text()', query_to_xml(format(
                   'SELECT count(*) AS n FROM shop.%I', c.relname), false, true, '')))[1]::text::int AS n
          FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
          WHERE s.nspname = 'shop' AND c.relkind = 'r' ORDER BY 1]])
        if opts.json then
          local parts = {}
          for i = 1, rows.n do parts[#parts + 1] = string.format('"%s": %d', rows[i].name, rows[i].n) end
          print("{" .. table.concat(parts, ", ") .. "}")
        else
          for i = 1, rows.n do print(string.format("%-12s %6d", rows[i].name, rows[i].n)) end
        end
        return 0
      end,
    },
  },
  hooks = {
    before_deploy = function()
      log:info("deploying the example shop")
    end,
    after_hydrate = function(ctx)
      -- a hook can use the same connection API as the built-ins
      local db = require "dbtool.db"
      local conn <close> = require("dbtool.pg").connect(ctx.url or db.require_url(ctx))
      local n = conn:exec("SELECT count(*) AS n FROM shop.currency")[1].n
      log:info("hydrated: %d currencies", n)
    end,
  },
  settings = {
    log_level = nil, -- e.g. "debug"
  },
}
