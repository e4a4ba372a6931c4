-- Fleets: `migrator migrate up all --targets FILE --jobs J` over T databases (default 100) of
-- M tiny migrations each (default 20), J = 1, 2, 4, 8, against a shell loop running dbmate
-- over the same targets one after the other, interleaved in one run. Every case starts from
-- fresh databases cloned from a template (ours: with the hectic bundle installed, as after
-- `migrator init`; dbmate's: plain — the bundle's event triggers would refuse its own table),
-- untimed. The cluster runs with fsync off: what is measured is the tools and their
-- concurrency on this machine's cores, not the disk.
-- peers: dbmate
-- Usage: db-tool bench/fleet.lua [T] [M] [ROUNDS]        (as a non-root user: bench/run.sh)
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
local peers = require "peers"
package.path = b.top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local pg = require "dbtool.core.pg"

local T = tonumber(arg[1]) or 100
local NM = tonumber(arg[2]) or 20
local ROUNDS = tonumber(arg[3]) or 3

local dir = testutil.tmpdir("bench-fleet")
local cluster = require("dbtool.cluster").start { dir = dir .. "/pg", port = 5434, database = "postgres",
  preload = "", logging = false, settings = { fsync = "off", synchronous_commit = "off",
    full_page_writes = "off", max_connections = 200 } }
testutil.at_exit(function() cluster:stop("immediate") end)
local admin = pg.connect(cluster.conninfo)
local user = require("dbtool.env").user()

local function write(path, text)
  local d = path:match("^(.*)/[^/]*$")
  os.execute("mkdir -p '" .. d .. "'")
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- the migrations, in both tools' layouts
for i = 1, NM do
  local ts = string.format("2025%010d", i)
  local up = string.format("CREATE TABLE f%d (id int PRIMARY KEY, v text)%%s;\n"
    .. "INSERT INTO f%d (id, v) VALUES (1, 'x');\n", i, i)
  write(string.format("%s/ours/%s-f%d/up.sql", dir, ts, i), up:format(" INHERITS (hectic.created_at)"))
  write(string.format("%s/ours/%s-f%d/down.sql", dir, ts, i), string.format("DROP TABLE f%d;\n", i))
  write(string.format("%s/dbmate/%s_f%d.sql", dir, ts, i), "-- migrate:up\n" .. up:format("")
    .. "\n-- migrate:down\n" .. string.format("DROP TABLE f%d;\n", i))
end

-- templates: one with the bundle, one plain
admin:exec("CREATE DATABASE tpl_ours")
admin:exec("CREATE DATABASE tpl_plain")
b.ok({ b.build .. "/migrator", "-d", dir .. "/ours", "init", "-q" },
  { env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), DB_URL = cluster:db_url("tpl_ours") } })

local function recreate(template)
  for i = 1, T do
    admin:exec(string.format('DROP DATABASE IF EXISTS "t%03d"', i))
    admin:exec(string.format('CREATE DATABASE "t%03d" TEMPLATE %s', i, template))
  end
end

local ours_targets, dbmate_urls = {}, {}
for i = 1, T do
  ours_targets[i] = string.format("t%03d=%s", i, cluster:db_url(string.format("t%03d", i)))
  dbmate_urls[i] = string.format("postgres://%s@/t%03d?socket=%s&port=%d&sslmode=disable", user, i,
    cluster.host, cluster.port)
end
write(dir .. "/targets", table.concat(ours_targets, "\n") .. "\n")
write(dir .. "/dbmate-urls", table.concat(dbmate_urls, "\n") .. "\n")
local dbmate, why = peers.dbmate()
write(dir .. "/loop.sh", string.format([[
while read -r url; do
  %q --url "$url" --migrations-dir %q --no-dump-schema up >/dev/null || exit 1
done < %q
]], dbmate or "dbmate", dir .. "/dbmate", dir .. "/dbmate-urls"))

local function count_all()
  local n = 0
  for i = 1, T do
    local c <close> = pg.connect(cluster:db_url(string.format("t%03d", i)))
    n = n + c:exec("SELECT count(*)::int AS n FROM pg_tables WHERE tablename ~ '^f[0-9]+$'")[1].n
  end
  return n
end

local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), XDG_STATE_HOME = dir .. "/state" }
local cases = {}
for _, j in ipairs { 1, 2, 4, 8 } do
  cases[#cases + 1] = { name = string.format("migrator --targets --jobs %d", j), kind = "ours",
    setup = function() recreate("tpl_ours") end,
    run = function()
      local t = b.ok({ b.build .. "/migrator", "-d", dir .. "/ours", "migrate", "up", "all", "--targets",
        dir .. "/targets", "--jobs", tostring(j), "-q" }, { env = env })
      assert(count_all() == T * NM, "not every migration was applied")
      return t
    end }
end
cases[#cases + 1] = { name = "shell loop: dbmate up per target", kind = "peer",
  missing = not dbmate and why or nil, setup = function() recreate("tpl_plain") end,
  run = function()
    local t = b.ok({ "sh", dir .. "/loop.sh" }, { env = env })
    assert(count_all() == T * NM, "not every migration was applied")
    return t
  end }

io.stdout:write(string.format("%d targets × %d migrations; cluster %s (fsync off); %d cores\n", T, NM, dir,
  tonumber(io.popen("nproc"):read("l")) or 0))
b.rounds(cases, { rounds = ROUNDS, warm = 0 })
b.table(string.format("fleet: %d databases × %d migrations", T, NM), cases,
  { note = "ours ÷ case < 1: ours is faster; the jobs rows against --jobs 1 show the scaling" })
os.exit(0, true)
