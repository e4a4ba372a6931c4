-- The hectic bundle's CREATE TABLE event trigger: what it adds to each CREATE TABLE, today's
-- bundle against the original's three event triggers (as our bundle had them until it merged
-- them into hectic_on_create_table) and against no trigger at all, measured in one run.
--
-- Each round makes a fresh database per variant (order rotated between rounds) and runs N
-- `CREATE TABLE t_i (id int PRIMARY KEY, v text) INHERITS (hectic.created_at)` over one
-- connection: in one transaction (rolled back), then in autocommit (a transaction each, as
-- migrations do). Measured: the server backend's CPU time (utime + stime from /proc, which a
-- busy machine disturbs less than wall time) and wall time. The trigger's cost is a variant
-- minus "none"; the goal is today's cost <= 0.5x the original's.
-- Usage: db-tool bench/bundle.lua [N] [ROUNDS]     (as a non-root user: bench/run.sh bundle)
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local b = require "lib"
package.path = b.top .. "/spec/support/?.lua;" .. package.path
local testutil = require "testutil"
local core = require "dbtool.core"
local pg = require "dbtool.pg"
local bundle = require "dbtool.bundle"

local N = tonumber(arg[1]) or 300
local ROUNDS = tonumber(arg[2]) or 9

-- The original's three event triggers: one catalog pass and helper calls each.
local LEGACY = [==[
-- Event trigger: every table made by CREATE TABLE must directly inherit hectic.created_at.
CREATE OR REPLACE FUNCTION hectic.enforce_created_at_inheritance() RETURNS event_trigger
LANGUAGE plpgsql AS $hectic_enforce_created_at$
DECLARE
  created_at_parent regclass := to_regclass('hectic.created_at');
  obj record;
BEGIN
  FOR obj IN
    SELECT c.oid, n.nspname, c.relname
      FROM pg_event_trigger_ddl_commands() AS d
      JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE d.command_tag = 'CREATE TABLE'
       AND d.classid = 'pg_catalog.pg_class'::regclass
       AND c.relkind IN ('r', 'p')
       AND c.relpersistence <> 't'
       AND NOT c.relispartition
  LOOP
    CONTINUE WHEN hectic._is_excluded_schema(obj.nspname);
    IF created_at_parent IS NULL THEN
      RAISE EXCEPTION 'hectic: table hectic.created_at is missing, cannot check %.%',
        obj.nspname, obj.relname
        USING HINT = 're-apply the hectic bundle (migrator init)';
    END IF;
    IF NOT hectic._table_inherits(obj.oid, created_at_parent) THEN
      RAISE EXCEPTION 'hectic: table %.% must INHERITS (hectic.created_at)', obj.nspname, obj.relname
        USING HINT = 'add INHERITS ("hectic"."created_at") to the CREATE TABLE statement, '
                     || 'or add the schema to hectic.inheritance_extra_excluded_schemas';
    END IF;
  END LOOP;
END
$hectic_enforce_created_at$;

-- Event trigger: children of hectic.updated_at get hectic_set_updated_at.
CREATE OR REPLACE FUNCTION hectic.attach_updated_at_trigger() RETURNS event_trigger
LANGUAGE plpgsql AS $hectic_attach_updated_at$
DECLARE
  updated_at_parent regclass := to_regclass('hectic.updated_at');
  obj record;
BEGIN
  IF updated_at_parent IS NULL THEN
    RETURN;
  END IF;
  FOR obj IN
    SELECT c.oid, n.nspname, c.relname
      FROM pg_event_trigger_ddl_commands() AS d
      JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE d.command_tag = 'CREATE TABLE'
       AND d.classid = 'pg_catalog.pg_class'::regclass
       AND c.relkind IN ('r', 'p')
       AND c.relpersistence <> 't'
       AND NOT c.relispartition
       AND n.nspname <> 'hectic'
  LOOP
    CONTINUE WHEN NOT hectic._table_inherits(obj.oid, updated_at_parent);
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                    WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_set_updated_at') THEN
      EXECUTE format('CREATE TRIGGER hectic_set_updated_at BEFORE UPDATE ON %I.%I '
                     || 'FOR EACH ROW EXECUTE FUNCTION hectic.set_updated_at()',
                     obj.nspname, obj.relname);
    END IF;
  END LOOP;
END
$hectic_attach_updated_at$;

-- Event trigger: children of hectic.immutable get the row and the statement blockers.
CREATE OR REPLACE FUNCTION hectic.attach_immutable_triggers() RETURNS event_trigger
LANGUAGE plpgsql AS $hectic_attach_immutable$
DECLARE
  immutable_parent regclass := to_regclass('hectic.immutable');
  obj record;
BEGIN
  IF immutable_parent IS NULL THEN
    RETURN;
  END IF;
  FOR obj IN
    SELECT c.oid, n.nspname, c.relname
      FROM pg_event_trigger_ddl_commands() AS d
      JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE d.command_tag = 'CREATE TABLE'
       AND d.classid = 'pg_catalog.pg_class'::regclass
       AND c.relkind IN ('r', 'p')
       AND c.relpersistence <> 't'
       AND NOT c.relispartition
       AND n.nspname <> 'hectic'
  LOOP
    CONTINUE WHEN NOT hectic._table_inherits(obj.oid, immutable_parent);
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                    WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_block_immutable_dml') THEN
      EXECUTE format('CREATE TRIGGER hectic_block_immutable_dml '
                     || 'BEFORE INSERT OR UPDATE OR DELETE ON %I.%I '
                     || 'FOR EACH ROW EXECUTE FUNCTION hectic.block_immutable_dml()',
                     obj.nspname, obj.relname);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                    WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_block_immutable_truncate') THEN
      EXECUTE format('CREATE TRIGGER hectic_block_immutable_truncate '
                     || 'BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I.%I '
                     || 'FOR EACH STATEMENT EXECUTE FUNCTION hectic.block_immutable_dml()',
                     obj.nspname, obj.relname);
    END IF;
  END LOOP;
END
$hectic_attach_immutable$;
DROP EVENT TRIGGER hectic_on_create_table;
CREATE EVENT TRIGGER hectic_enforce_created_at_inheritance ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.enforce_created_at_inheritance();
CREATE EVENT TRIGGER hectic_attach_updated_at_trigger ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.attach_updated_at_trigger();
CREATE EVENT TRIGGER hectic_attach_immutable_triggers ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.attach_immutable_triggers();
]==]

-- CPU seconds (user + system) of process `pid` (the connection's backend).
local function cpu(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local s = f:read("a")
  f:close()
  local fields = {}
  for w in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
  local hz = 100 -- sysconf(_SC_CLK_TCK) on Linux
  return (tonumber(fields[12]) + tonumber(fields[13])) / hz
end

local cluster = testutil.cluster()
local counter = 0
local quiet = { debug = function() end, info = function() end, notice = function() end }

local VARIANTS = {
  { name = "none", setup = function(conn)
    conn:exec("CREATE SCHEMA hectic; "
      .. "CREATE TABLE hectic.created_at (created_at timestamptz NOT NULL DEFAULT now())")
  end },
  { name = "original (3 triggers)", setup = function(conn)
    bundle.apply(conn, { log = quiet })
    conn:exec(LEGACY)
  end },
  { name = "bundle (hectic_on_create_table)", setup = function(conn)
    bundle.apply(conn, { log = quiet })
  end },
}

local function fresh(variant)
  counter = counter + 1
  local name = "bench_bundle_" .. counter
  local admin <close> = pg.connect(cluster.conninfo, { quiet = true })
  admin:exec('CREATE DATABASE "' .. name .. '"')
  local conn = pg.connect(testutil.db_url(name), { quiet = true })
  variant.setup(conn)
  return conn, name
end

local function drop(name)
  local admin <close> = pg.connect(cluster.conninfo, { quiet = true })
  admin:exec('DROP DATABASE "' .. name .. '"')
end

-- N tables over `conn`; returns cpu and wall seconds per table
local function create_tables(conn, tag, in_tx)
  local pid = conn:backend_pid()
  if in_tx then conn:exec("BEGIN") end
  local c0, t0 = cpu(pid), core.now()
  for i = 1, N do
    conn:exec(string.format("CREATE TABLE %s_%d (id int PRIMARY KEY, v text) INHERITS (hectic.created_at)",
      tag, i))
  end
  local wall, c = core.now() - t0, cpu(pid) - c0
  if in_tx then conn:exec("ROLLBACK") end
  return c / N, wall / N
end

local results = {}
for _, v in ipairs(VARIANTS) do results[v.name] = { tx_cpu = {}, tx_wall = {}, ac_cpu = {}, ac_wall = {} } end

io.stdout:write(string.format("%d CREATE TABLE … INHERITS per run, %d rounds (variants interleaved), "
  .. "load %s\n",
  N, ROUNDS, (io.open("/proc/loadavg"):read("l"):match("^(%S+ %S+ %S+)"))))
for r = 1, ROUNDS do
  for k = 0, #VARIANTS - 1 do
    local v = VARIANTS[(r + k) % #VARIANTS + 1]
    local conn, name = fresh(v)
    -- warm the session's caches (plpgsql compile, plans) on a few tables first
    for i = 1, 10 do
      conn:exec(string.format("CREATE TABLE warm_%d (id int) INHERITS (hectic.created_at)", i))
    end
    local res = results[v.name]
    local c, w = create_tables(conn, "tx", true)
    res.tx_cpu[#res.tx_cpu + 1], res.tx_wall[#res.tx_wall + 1] = c, w
    c, w = create_tables(conn, "ac", false)
    res.ac_cpu[#res.ac_cpu + 1], res.ac_wall[#res.ac_wall + 1] = c, w
    conn:close()
    drop(name)
  end
end

local function us(x) return string.format("%7.1f µs", x * 1e6) end
local function range(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return string.format("[%s … %s]", us(s[1]):gsub("^%s+", ""), us(s[#s]):gsub("^%s+", ""))
end

for _, mode in ipairs { { "tx", "one transaction" }, { "ac", "autocommit" } } do
  io.stdout:write(string.format("\n%s: per CREATE TABLE, median [range]\n", mode[2]))
  local med = {}
  for _, v in ipairs(VARIANTS) do
    local res = results[v.name]
    local cpu_m, wall_m = b.median(res[mode[1] .. "_cpu"]), b.median(res[mode[1] .. "_wall"])
    med[v.name] = { cpu = cpu_m, wall = wall_m }
    io.stdout:write(string.format("  %-32s cpu %s %s   wall %s %s\n", v.name, us(cpu_m),
      range(res[mode[1] .. "_cpu"]), us(wall_m), range(res[mode[1] .. "_wall"])))
  end
  local none, old, new = med["none"], med["original (3 triggers)"], med["bundle (hectic_on_create_table)"]
  for _, what in ipairs { "cpu", "wall" } do
    local old_cost, new_cost = old[what] - none[what], new[what] - none[what]
    io.stdout:write(string.format("  trigger cost (%s): original %s, bundle %s, ratio %.2fx (goal <= 0.5x)\n",
      what, us(old_cost), us(new_cost), old_cost > 0 and new_cost / old_cost or 0 / 0))
  end
end
