-- The hectic bundle (sql/hectic/*, lua/dbtool/bundle.lua) against a real server: every case
-- of the original's `init-hectic-bundle` test, plus versions, secrets, upgrades from an
-- original install, idempotence and the one-transaction apply.
local t = require "testutil"
local pg = require "dbtool.core.pg"
local bundle = require "dbtool.bundle"
local proc = require "dbtool.core.proc"

-- A logger that records instead of printing.
local function capture_log()
  local lines = {}
  local l = { lines = lines }
  for _, level in ipairs { "trace", "debug", "info", "notice", "warn", "error" } do
    l[level] = function(_, fmt, ...)
      lines[#lines + 1] = { level = level, msg = select("#", ...) > 0 and fmt:format(...) or fmt }
    end
  end
  return l
end

local function apply(conn)
  return bundle.apply(conn, { log = capture_log() })
end

local function failing(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

local function value(conn, sql, ...)
  local r = conn:exec(sql, ...)
  return r[1] and r[1][1]
end

local function column(conn, sql, ...)
  local out = {}
  for i, row in ipairs(conn:exec(sql, ...)) do out[i] = row[1] end
  return out
end

-- Every hectic catalog object, as text: two equal snapshots mean nothing was changed.
local SNAPSHOT_SQL = [[
SELECT concat_ws(E'\n',
  (SELECT string_agg(format('class %s %s', c.relname, c.relkind), E'\n' ORDER BY c.relname)
     FROM pg_class c WHERE c.relnamespace = 'hectic'::regnamespace),
  (SELECT string_agg(format('column %s.%s %s %s %s', c.relname, a.attname,
            format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)),
            E'\n' ORDER BY c.relname, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'hectic'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
      AND NOT a.attisdropped),
  (SELECT string_agg(format('constraint %s %s', co.conname, pg_get_constraintdef(co.oid)),
            E'\n' ORDER BY co.conname)
     FROM pg_constraint co WHERE co.connamespace = 'hectic'::regnamespace),
  (SELECT string_agg(format('function %s(%s) %s %s %s', p.proname,
            pg_get_function_arguments(p.oid), p.prorettype::regtype, p.provolatile, md5(p.prosrc)),
            E'\n' ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'hectic'::regnamespace),
  (SELECT string_agg(format('type %s %s', ty.typname, ty.typtype), E'\n' ORDER BY ty.typname)
     FROM pg_type ty WHERE ty.typnamespace = 'hectic'::regnamespace),
  (SELECT string_agg(pg_get_triggerdef(tg.oid), E'\n' ORDER BY tg.tgname)
     FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
    WHERE c.relnamespace = 'hectic'::regnamespace),
  (SELECT string_agg(format('event trigger %s %s %s %s %s %s', e.oid, e.evtname, e.evtevent,
            e.evtenabled, e.evtfoid::regprocedure, e.evttags), E'\n' ORDER BY e.evtname)
     FROM pg_event_trigger e),
  (SELECT string_agg(format('version %s %s %s', v.name, v.version, v.installed_at), E'\n'
            ORDER BY v.name) FROM hectic.version v)
) AS snapshot
]]

-- What the original bundle leaves in a database, written from its description
-- (reference/db-tool-upstream.md §4.2): named function parameters, UNIQUE(hash), event
-- triggers dropped and recreated. Re-running it is what the original tools do on every
-- `migrator migrate`, so it also plays "the original tool applied over our database".
local ORIGINAL_LIKE = [[
CREATE SCHEMA IF NOT EXISTS hectic;
CREATE TABLE IF NOT EXISTS hectic.version (name TEXT PRIMARY KEY, version TEXT NOT NULL,
  installed_at TIMESTAMPTZ NOT NULL DEFAULT now());
INSERT INTO hectic.version (name, version) VALUES ('hectic', '0.1.0') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS hectic.secret (id SERIAL PRIMARY KEY, key TEXT UNIQUE NOT NULL,
  value TEXT NOT NULL);
CREATE OR REPLACE FUNCTION hectic.load_secrets_from_env(p_content text) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE l text;
BEGIN
  TRUNCATE hectic.secret;
  FOR l IN SELECT regexp_split_to_table(p_content, E'\n') LOOP
    l := btrim(l);
    CONTINUE WHEN l = '' OR left(l, 1) = '#';
    INSERT INTO hectic.secret (key, value)
      VALUES (btrim(split_part(l, '=', 1)), btrim(regexp_replace(l, '^[^=]*=', '')));
  END LOOP;
END $f$;
CREATE OR REPLACE FUNCTION hectic.get_secret(p_key text) RETURNS text
LANGUAGE sql STABLE AS $f$ SELECT value FROM hectic.secret WHERE key = p_key $f$;
DO $d$ BEGIN
  IF to_regtype('hectic.migration_name') IS NULL THEN
    CREATE DOMAIN hectic.migration_name AS TEXT CHECK (VALUE ~ '^[0-9]{14}-.*');
  END IF;
  IF to_regtype('hectic.sha256') IS NULL THEN
    CREATE DOMAIN hectic.sha256 AS CHAR(64) CHECK (VALUE ~ '^[0-9a-f]{64}$');
  END IF;
END $d$;
CREATE OR REPLACE FUNCTION hectic.sha256_lower() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN NEW.hash := lower(NEW.hash); RETURN NEW; END $f$;
CREATE TABLE IF NOT EXISTS hectic.migration (id SERIAL PRIMARY KEY,
  name hectic.migration_name UNIQUE NOT NULL, hash hectic.sha256 UNIQUE NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
DO $d$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'hectic_t_sha256_lower') THEN
    CREATE TRIGGER hectic_t_sha256_lower BEFORE INSERT OR UPDATE ON hectic.migration
      FOR EACH ROW EXECUTE FUNCTION hectic.sha256_lower();
  END IF;
END $d$;
CREATE TABLE IF NOT EXISTS hectic.created_at (created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS hectic.updated_at (updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS hectic.immutable ();
CREATE OR REPLACE FUNCTION hectic._is_excluded_schema(schema_name text) RETURNS boolean
LANGUAGE sql STABLE AS $f$ SELECT schema_name IN ('hectic', 'information_schema')
  OR schema_name LIKE 'pg\_%' $f$;
CREATE OR REPLACE FUNCTION hectic._table_inherits(child oid, parent regclass) RETURNS boolean
LANGUAGE sql STABLE AS $f$ SELECT EXISTS (SELECT 1 FROM pg_inherits
  WHERE inhrelid = child AND inhparent = parent) $f$;
CREATE OR REPLACE FUNCTION hectic.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN NEW.updated_at := now(); RETURN NEW; END $f$;
CREATE OR REPLACE FUNCTION hectic.block_immutable_dml() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RETURN NEW; END $f$;
CREATE OR REPLACE FUNCTION hectic.enforce_created_at_inheritance() RETURNS event_trigger
LANGUAGE plpgsql AS $f$ BEGIN END $f$;
CREATE OR REPLACE FUNCTION hectic.attach_updated_at_trigger() RETURNS event_trigger
LANGUAGE plpgsql AS $f$ BEGIN END $f$;
CREATE OR REPLACE FUNCTION hectic.attach_immutable_triggers() RETURNS event_trigger
LANGUAGE plpgsql AS $f$ BEGIN END $f$;
DROP EVENT TRIGGER IF EXISTS hectic_enforce_created_at_inheritance;
CREATE EVENT TRIGGER hectic_enforce_created_at_inheritance ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.enforce_created_at_inheritance();
DROP EVENT TRIGGER IF EXISTS hectic_attach_updated_at_trigger;
CREATE EVENT TRIGGER hectic_attach_updated_at_trigger ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.attach_updated_at_trigger();
DROP EVENT TRIGGER IF EXISTS hectic_attach_immutable_triggers;
CREATE EVENT TRIGGER hectic_attach_immutable_triggers ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION hectic.attach_immutable_triggers();
]]

local HASH_A = string.rep("a", 64)
local INSERT1 = "INSERT INTO hectic.migration (name, hash) VALUES ($1, $2)"
local INSERT2 = [[INSERT INTO hectic.migration (name, hash)
  VALUES ('20250101000000-a', $1), ('20250101000001-b', $1)]]

describe("hectic bundle", function()
  describe("files", function()
    it("has version 0.1.0 and substitutes the placeholder in version.sql only", function()
      assert.are.equal("0.1.0", bundle.version())
      local files = bundle.files()
      assert.are.same({ "version", "secret", "migration", "inheritance" },
        { files[1].name, files[2].name, files[3].name, files[4].name })
      assert.are.equal("sql/hectic/version.sql", files[1].path)
      assert.matches("expected CONSTANT text := '0.1.0'", files[1].sql, 1, true)
      for _, f in ipairs(files) do assert.is_nil(f.sql:find("@HECTIC_VERSION@", 1, true)) end
      local raw = require("dbtool.core").embedded("sql/hectic/version.sql")
      assert.truthy(raw:find("@HECTIC_VERSION@", 1, true))
    end)

    it("maps an error position (characters) to line:column", function()
      local text = "SELECT 1;\n-- é\nSELECT x FROM y;\n"
      assert.are.same({ 1, 1 }, { bundle._line_col(text, 1) })
      assert.are.same({ 2, 4 }, { bundle._line_col(text, 14) })  -- "é" is one character
      assert.are.same({ 3, 8 }, { bundle._line_col(text, 23) })  -- the "x"
    end)

    it("sql() is the four files in order inside one transaction", function()
      local s = bundle.sql()
      local a = s:find("-- sql/hectic/version.sql", 1, true)
      local b = s:find("-- sql/hectic/secret.sql", 1, true)
      local c = s:find("-- sql/hectic/migration.sql", 1, true)
      local d = s:find("-- sql/hectic/inheritance.sql", 1, true)
      assert.truthy(a and b and c and d)
      assert.is_true(a < b and b < c and c < d)
      assert.matches("^%-%- hectic bundle 0%.1%.0 %(db%-tool%)\nBEGIN;\n", s)
      assert.matches("\nCOMMIT;\n$", s)
      assert.is_nil(s:find("@HECTIC_VERSION@", 1, true))
      local bare = bundle.sql { transaction = false }
      assert.is_nil(bare:find("BEGIN;", 1, true))
      assert.is_nil(bare:find("COMMIT;", 1, true))
    end)
  end)

  -- The original's init-hectic-bundle test, case by case.
  describe("init-hectic-bundle", function()
    local url, dbname

    setup(function()
      url, dbname = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      local log = capture_log()
      local r = bundle.apply(conn, { log = log })
      assert.is_true(r.installed)
      assert.is_nil(r.previous)
      assert.are.equal("0.1.0", r.version)
      assert.are.same({ "created event trigger hectic_on_create_table" }, r.changes)
      -- NOTICE noise goes to debug, one info line says what happened
      local infos = {}
      for _, line in ipairs(log.lines) do
        if line.level ~= "debug" then infos[#infos + 1] = line.level .. " " .. line.msg end
      end
      assert.are.same({ "info installed the hectic bundle 0.1.0" }, infos)
    end)

    it("creates the hectic schema and its tables", function()
      local conn <close> = pg.connect(url)
      assert.are.same({ "created_at", "immutable", "migration", "secret", "updated_at", "version" },
        column(conn, [[SELECT c.relname::text FROM pg_class c
          WHERE c.relnamespace = 'hectic'::regnamespace AND c.relkind = 'r' ORDER BY 1]]))
      assert.are.same({ "migration_name", "sha256" }, column(conn, [[SELECT typname::text FROM pg_type
        WHERE typnamespace = 'hectic'::regnamespace AND typtype = 'd' ORDER BY 1]]))
      assert.are.same({ "hectic_on_create_table" }, column(conn, [[SELECT evtname::text
        FROM pg_event_trigger WHERE evtevent = 'ddl_command_end' AND evttags = '{CREATE TABLE}'
        AND evtenabled = 'O' ORDER BY 1]]))
    end)

    it("has one version row", function()
      local conn <close> = pg.connect(url)
      local rows = conn:exec("SELECT name, version FROM hectic.version")
      assert.are.equal(1, rows.n)
      assert.are.equal("hectic", rows[1].name)
      assert.are.equal("0.1.0", rows[1].version)
    end)

    it("can be applied again", function()
      local conn <close> = pg.connect(url)
      local r = apply(conn)
      assert.is_false(r.installed)
      assert.are.equal("0.1.0", r.previous)
      assert.are.same({}, r.changes)
      assert.are.same({}, r.repaired)
      assert.are.equal(1, value(conn, "SELECT count(*) FROM hectic.version"))
    end)

    it("rejects a plain CREATE TABLE with the original message and hint", function()
      local conn <close> = pg.connect(url)
      local e = failing(conn.exec, conn, "CREATE TABLE public.plain (id int)")
      assert.are.equal("hectic: table public.plain must INHERITS (hectic.created_at)", e.msg)
      assert.are.equal('add INHERITS ("hectic"."created_at") to the CREATE TABLE statement, '
        .. "or add the schema to hectic.inheritance_extra_excluded_schemas", e.hint)
      assert.is_nil(value(conn, "SELECT to_regclass('public.plain')::text"))
      -- inside a transaction the whole transaction fails
      conn:exec("BEGIN")
      conn:exec("CREATE TABLE public.first_ok (id int) INHERITS (hectic.created_at)")
      failing(conn.exec, conn, "CREATE TABLE public.second_bad (id int)")
      conn:exec("ROLLBACK")
      assert.is_nil(value(conn, "SELECT to_regclass('public.first_ok')::text"))
    end)

    it("accepts a table that INHERITS hectic.created_at", function()
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE TABLE public.ok (id serial PRIMARY KEY, name text UNIQUE)
        INHERITS (hectic.created_at)]])
      conn:exec("INSERT INTO public.ok (name) VALUES ('a')")
      assert.is_true(value(conn, "SELECT created_at <= now() FROM public.ok"))
    end)

    it("rejects a grandchild that does not list hectic.created_at itself", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE TABLE public.parent_ok (id int) INHERITS (hectic.created_at)")
      local e = failing(conn.exec, conn, "CREATE TABLE public.grandchild (x int) INHERITS (public.parent_ok)")
      assert.are.equal("hectic: table public.grandchild must INHERITS (hectic.created_at)", e.msg)
      conn:exec("CREATE TABLE public.grandchild2 (x int) INHERITS (public.parent_ok, hectic.created_at)")
    end)

    it("exempts temporary tables, CREATE TABLE AS and the hectic schema", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE TEMP TABLE scratch (x int)")
      conn:exec("CREATE TABLE public.ctas AS SELECT 1 AS x")
      conn:exec("CREATE TABLE hectic.user_table (x int)")
      assert.is_not_nil(value(conn, "SELECT to_regclass('hectic.user_table')::text"))
    end)

    it("attaches the updated_at trigger and moves updated_at on UPDATE", function()
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE TABLE public.upd (id int PRIMARY KEY, v text)
        INHERITS (hectic.created_at, hectic.updated_at)]])
      assert.are.same({ "hectic_set_updated_at" }, column(conn,
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'public.upd'::regclass"))
      assert.matches("BEFORE UPDATE ON public.upd FOR EACH ROW EXECUTE FUNCTION hectic.set_updated_at()",
        value(conn, [[SELECT pg_get_triggerdef(oid) FROM pg_trigger
          WHERE tgrelid = 'public.upd'::regclass]]), 1, true)
      conn:exec("INSERT INTO public.upd (id, v) VALUES (1, 'a')")
      -- a transaction's now() is fixed: the insert and the update run in different ones
      local before = value(conn, "SELECT updated_at::text FROM public.upd")
      conn:exec("SELECT pg_sleep(0.01)")
      conn:exec("UPDATE public.upd SET v = 'b'")
      assert.is_true(value(conn, "SELECT updated_at > $1::timestamptz FROM public.upd", before))
    end)

    it("exempts schemas listed by ALTER DATABASE SET hectic.inheritance_extra_excluded_schemas", function()
      local admin <close> = pg.connect(url)
      admin:exec("CREATE SCHEMA legacy; CREATE SCHEMA etl; CREATE SCHEMA other")
      admin:exec('ALTER DATABASE "' .. dbname
        .. "\" SET hectic.inheritance_extra_excluded_schemas = 'legacy, etl'")
      local conn <close> = pg.connect(url) -- a new session sees the database setting
      conn:exec("CREATE TABLE legacy.old_style (x int)")
      conn:exec("CREATE TABLE etl.staging (x int)")
      local e = failing(conn.exec, conn, "CREATE TABLE other.nope (x int)")
      assert.are.equal("hectic: table other.nope must INHERITS (hectic.created_at)", e.msg)
      -- the bundle never persists nor overrides the setting
      apply(conn)
      assert.are.equal("legacy, etl",
        value(conn, "SELECT current_setting('hectic.inheritance_extra_excluded_schemas')"))
      conn:exec("CREATE TABLE legacy.after_apply (x int)")
    end)

    it("exempts declarative partitions", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE SCHEMA IF NOT EXISTS parts")
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = 'parts'")
      conn:exec("CREATE TABLE parts.measurements (at date, v int) PARTITION BY RANGE (at)")
      conn:exec("RESET hectic.inheritance_extra_excluded_schemas")
      conn:exec([[CREATE TABLE public.measurements_2025 PARTITION OF parts.measurements
        FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')]])
      conn:exec("INSERT INTO parts.measurements VALUES ('2025-06-01', 1)")
      assert.are.equal(1, value(conn, "SELECT count(*) FROM public.measurements_2025"))
      -- a partitioned table cannot INHERITS, so outside an exempt schema it is refused
      local e = failing(conn.exec, conn, "CREATE TABLE public.parted (v int) PARTITION BY LIST (v)")
      assert.are.equal("hectic: table public.parted must INHERITS (hectic.created_at)", e.msg)
    end)

    describe("immutable tables", function()
      setup(function()
        local conn <close> = pg.connect(url)
        conn:exec([[CREATE TABLE public.frozen (id int PRIMARY KEY, label text)
          INHERITS (hectic.created_at, hectic.immutable)]])
      end)

      it("get the row and the statement trigger", function()
        local conn <close> = pg.connect(url)
        assert.are.same({ "hectic_block_immutable_dml", "hectic_block_immutable_truncate" }, column(conn,
          "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'public.frozen'::regclass ORDER BY 1"))
        local defs = column(conn, [[SELECT pg_get_triggerdef(oid) FROM pg_trigger
          WHERE tgrelid = 'public.frozen'::regclass ORDER BY tgname]])
        assert.matches("BEFORE INSERT OR DELETE OR UPDATE ON public.frozen FOR EACH ROW", defs[1], 1, true)
        assert.matches("BEFORE INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.frozen FOR EACH STATEMENT",
          defs[2], 1, true)
      end)

      it("block INSERT, UPDATE, DELETE and TRUNCATE outside migration mode", function()
        local conn <close> = pg.connect(url)
        local hint = "wrap the statement in a migration transaction with "
          .. "SET LOCAL hectic.migration_mode = 'on'"
        for op, sql in pairs {
          INSERT = "INSERT INTO public.frozen (id, label) VALUES (1, 'x')",
          UPDATE = "UPDATE public.frozen SET label = 'y'",
          DELETE = "DELETE FROM public.frozen WHERE false",
          TRUNCATE = "TRUNCATE public.frozen",
        } do
          local e = failing(conn.exec, conn, sql)
          assert.are.equal("hectic: table public.frozen inherits hectic.immutable; " .. op
            .. " blocked outside migration_mode", e.msg)
          assert.are.equal(hint, e.hint)
        end
        -- 'on' is the only value that unlocks
        conn:exec("BEGIN; SET LOCAL hectic.migration_mode = 'true'")
        failing(conn.exec, conn, "INSERT INTO public.frozen (id, label) VALUES (1, 'x')")
        conn:exec("ROLLBACK")
        assert.are.equal(0, value(conn, "SELECT count(*) FROM public.frozen"))
      end)

      it("allow DML under SET LOCAL hectic.migration_mode = 'on', which does not leak past COMMIT", function()
        local conn <close> = pg.connect(url)
        conn:exec([[BEGIN;
          SET LOCAL hectic.migration_mode = 'on';
          INSERT INTO public.frozen (id, label) VALUES (1, 'x'), (2, 'y');
          UPDATE public.frozen SET label = 'z' WHERE id = 2;
          DELETE FROM public.frozen WHERE id = 1;
          COMMIT]])
        assert.are.same({ "z" }, column(conn, "SELECT label FROM public.frozen ORDER BY id"))
        assert.are_not.equal("on", value(conn, "SELECT current_setting('hectic.migration_mode', true)"))
        local e = failing(conn.exec, conn, "UPDATE public.frozen SET label = 'w'")
        assert.matches("UPDATE blocked outside migration_mode", e.msg, 1, true)
        conn:exec("BEGIN; SET LOCAL hectic.migration_mode = 'on'; TRUNCATE public.frozen; COMMIT")
        assert.are.equal(0, value(conn, "SELECT count(*) FROM public.frozen"))
        failing(conn.exec, conn, "TRUNCATE public.frozen")
      end)
    end)
  end)

  -- Every rule of the seed's inheritance section (seeds/db-tool.md, "hectic Bundle") and of
  -- the original's observed behaviour (reference/db-tool-upstream.md §4.5), one fresh database.
  describe("inheritance rules", function()
    local url, dbname

    setup(function()
      url, dbname = t.fresh_db("rules")
      local conn <close> = pg.connect(url)
      apply(conn)
    end)

    local ALL_THREE = { "hectic_block_immutable_dml", "hectic_block_immutable_truncate",
      "hectic_set_updated_at" }

    local function triggers(conn, rel)
      return column(conn, "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::regclass ORDER BY 1", rel)
    end

    it("checks unlogged tables and CREATE TABLE (LIKE …), not SELECT INTO nor ALTER TABLE … INHERIT",
      function()
      local conn <close> = pg.connect(url)
      local e = failing(conn.exec, conn, "CREATE UNLOGGED TABLE public.unlogged_plain (x int)")
      assert.are.equal("hectic: table public.unlogged_plain must INHERITS (hectic.created_at)", e.msg)
      conn:exec("CREATE UNLOGGED TABLE public.unlogged_ok (x int) INHERITS (hectic.created_at)")
      conn:exec("CREATE TABLE public.like_src (x int) INHERITS (hectic.created_at)")
      e = failing(conn.exec, conn, "CREATE TABLE public.like_copy (LIKE public.like_src)")
      assert.are.equal("hectic: table public.like_copy must INHERITS (hectic.created_at)", e.msg)
      conn:exec("SELECT 1 AS x INTO public.selected_into")
      conn:exec("ALTER TABLE public.like_src NO INHERIT hectic.created_at")
      assert.are.equal(0, value(conn, [[SELECT count(*) FROM pg_inherits
        WHERE inhrelid = 'public.like_src'::regclass]]))
    end)

    it("accepts a table with serial, primary key, unique, check (several DDL commands)", function()
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE TABLE public.rich (id bigserial PRIMARY KEY, code text UNIQUE CHECK (code <> ''),
        ref int GENERATED ALWAYS AS IDENTITY) INHERITS (hectic.created_at)]])
      local e = failing(conn.exec, conn,
        "CREATE TABLE public.rich_bad (id serial PRIMARY KEY, u text UNIQUE)")
      assert.are.equal("hectic: table public.rich_bad must INHERITS (hectic.created_at)", e.msg)
      assert.is_nil(value(conn, "SELECT to_regclass('public.rich_bad_id_seq')::text"))
    end)

    it("leaves CREATE TABLE IF NOT EXISTS of an existing table alone", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE SCHEMA IF NOT EXISTS before")
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = 'before'")
      conn:exec("CREATE TABLE before.existing (x int)")
      conn:exec("RESET hectic.inheritance_extra_excluded_schemas")
      conn:exec("CREATE TABLE IF NOT EXISTS before.existing (x int)")
      local e = failing(conn.exec, conn, "CREATE TABLE IF NOT EXISTS before.absent (x int)")
      assert.are.equal("hectic: table before.absent must INHERITS (hectic.created_at)", e.msg)
    end)

    it("exempts information_schema and the hectic schema, whatever the table inherits", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE TABLE information_schema.tool_state (x int)")
      conn:exec("CREATE TABLE hectic.plain_internal (x int)")
      -- and in hectic no trigger is attached to updated_at/immutable children
      conn:exec("CREATE TABLE hectic.internal_child (x int) INHERITS (hectic.updated_at, hectic.immutable)")
      assert.are.same({}, triggers(conn, "hectic.internal_child"))
      conn:exec("INSERT INTO hectic.internal_child (x) VALUES (1)")
    end)

    it("reads the excluded schemas from the session too, trimmed, skipping empty items", function()
      local conn <close> = pg.connect(url)
      conn:exec('CREATE SCHEMA IF NOT EXISTS "Mixed Case"; CREATE SCHEMA IF NOT EXISTS spaced')
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = ' spaced , ,Mixed Case,'")
      conn:exec("CREATE TABLE spaced.a (x int)")
      conn:exec('CREATE TABLE "Mixed Case".b (x int)')
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = 'mixed case'")
      local e = failing(conn.exec, conn, 'CREATE TABLE "Mixed Case".c (x int)')
      assert.are.equal("hectic: table Mixed Case.c must INHERITS (hectic.created_at)", e.msg)
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = ''")
      e = failing(conn.exec, conn, "CREATE TABLE spaced.d (x int)")
      assert.are.equal("hectic: table spaced.d must INHERITS (hectic.created_at)", e.msg)
      conn:exec("RESET hectic.inheritance_extra_excluded_schemas")
    end)

    it("attaches triggers in excluded schemas too, and names odd identifiers correctly", function()
      local conn <close> = pg.connect(url)
      conn:exec('CREATE SCHEMA IF NOT EXISTS "We ird"')
      conn:exec([[SET hectic.inheritance_extra_excluded_schemas = 'We ird']])
      conn:exec([[CREATE TABLE "We ird"."Ta""ble" (id int PRIMARY KEY, v text)
        INHERITS (hectic.updated_at, hectic.immutable)]])
      conn:exec("RESET hectic.inheritance_extra_excluded_schemas")
      assert.are.same(ALL_THREE, triggers(conn, '"We ird"."Ta""ble"'))
      local e = failing(conn.exec, conn, [[INSERT INTO "We ird"."Ta""ble" (id, v) VALUES (1, 'x')]])
      assert.are.equal('hectic: table We ird.Ta"ble inherits hectic.immutable; '
        .. "INSERT blocked outside migration_mode", e.msg)
      e = failing(conn.exec, conn, [[CREATE TABLE "We ird"."Ta""ble2" (x int)]])
      assert.are.equal('hectic: table We ird.Ta"ble2 must INHERITS (hectic.created_at)', e.msg)
    end)

    it("gives a table inheriting updated_at and immutable all three triggers", function()
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE TABLE public.both_parents (id int PRIMARY KEY, v text)
        INHERITS (hectic.created_at, hectic.updated_at, hectic.immutable)]])
      assert.are.same(ALL_THREE, triggers(conn, "public.both_parents"))
      conn:exec([[BEGIN; SET LOCAL hectic.migration_mode = 'on';
        INSERT INTO public.both_parents (id, v) VALUES (1, 'a'); COMMIT]])
      local before = value(conn, "SELECT updated_at::text FROM public.both_parents")
      conn:exec("SELECT pg_sleep(0.01)")
      conn:exec([[BEGIN; SET LOCAL hectic.migration_mode = 'on';
        UPDATE public.both_parents SET v = 'b'; COMMIT]])
      assert.is_true(value(conn, "SELECT updated_at > $1::timestamptz FROM public.both_parents", before))
    end)

    it("attaches nothing to temporary tables, and only to direct children", function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE TEMP TABLE temp_child (x int) INHERITS (hectic.updated_at, hectic.immutable)")
      assert.are.same({}, triggers(conn, "pg_temp.temp_child"))
      conn:exec("INSERT INTO temp_child (x) VALUES (1)")
      conn:exec([[CREATE TABLE public.frozen_parent (id int) INHERITS (hectic.created_at, hectic.immutable)]])
      conn:exec([[CREATE TABLE public.frozen_grandchild (y int)
        INHERITS (public.frozen_parent, hectic.created_at)]])
      assert.are.same({}, triggers(conn, "public.frozen_grandchild"))
      conn:exec("INSERT INTO public.frozen_grandchild (id, y) VALUES (1, 2)")
      conn:exec([[CREATE TABLE public.upd_parent (id int) INHERITS (hectic.created_at, hectic.updated_at)]])
      conn:exec([[CREATE TABLE public.upd_grandchild (y int)
        INHERITS (public.upd_parent, hectic.created_at)]])
      assert.are.same({}, triggers(conn, "public.upd_grandchild"))
    end)

    it("blocks COPY FROM into an immutable table; a session-level SET also unlocks (as the original)",
      function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE TABLE public.frozen_copy (id int) INHERITS (hectic.created_at, hectic.immutable)")
      local e = failing(conn.exec, conn, "COPY public.frozen_copy (id) FROM PROGRAM 'echo 1'")
      assert.matches("INSERT blocked outside migration_mode", e.msg, 1, true)
      conn:exec("SET hectic.migration_mode = 'on'")
      conn:exec("INSERT INTO public.frozen_copy (id) VALUES (1)")
      conn:exec("RESET hectic.migration_mode")
      e = failing(conn.exec, conn, "DELETE FROM public.frozen_copy")
      assert.matches("DELETE blocked outside migration_mode", e.msg, 1, true)
    end)

    it("says so when hectic.created_at itself is missing", function()
      local own = t.fresh_db("rules")
      local conn <close> = pg.connect(own)
      apply(conn)
      conn:exec("DROP TABLE hectic.created_at")
      local e = failing(conn.exec, conn, "CREATE TABLE public.orphan (x int)")
      assert.are.equal("hectic: table hectic.created_at is missing, cannot check public.orphan", e.msg)
      assert.are.equal("re-apply the hectic bundle (migrator init)", e.hint)
      -- exempt schemas still pass, and updated_at children still get their trigger
      conn:exec("CREATE TABLE hectic.still_fine (x int)")
      conn:exec("SET hectic.inheritance_extra_excluded_schemas = 'public'")
      conn:exec("CREATE TABLE public.upd_only (x int) INHERITS (hectic.updated_at)")
      assert.are.same({ "hectic_set_updated_at" }, triggers(conn, "public.upd_only"))
    end)

    it("exempts the bookkeeping tables of our programs and of other migration tools, in any schema",
      function()
      local conn <close> = pg.connect(url)
      conn:exec("CREATE SCHEMA IF NOT EXISTS app")
      local tables = {
        "_migration", "_migration_checksum",             -- rickdb, db-tool
        "schema_migrations", "ar_internal_metadata",     -- dbmate, golang-migrate, Rails
        "gorp_migrations", "flyway_schema_history", "goose_db_version", "knex_migrations",
        "knex_migrations_lock", "pgmigrations", "schemaversion", "django_migrations", "alembic_version",
        "__diesel_schema_migrations", "_prisma_migrations", "_sqlx_migrations", "databasechangelog",
        "databasechangeloglock", "SequelizeMeta", "kysely_migration", "kysely_migration_lock",
        "mikro_orm_migrations", "doctrine_migration_versions", "phinxlog",
      }
      for _, name in ipairs(tables) do
        for _, schema in ipairs { "public", "app" } do
          conn:exec(string.format('CREATE TABLE %s."%s" (version text PRIMARY KEY)', schema, name))
        end
      end
      -- the registries that live in a schema of their own
      for _, schema in ipairs { "sqitch", "graphile_migrate", "drizzle", "atlas_schema_revisions" } do
        conn:exec(string.format("CREATE SCHEMA %s; CREATE TABLE %s.anything (x int)", schema, schema))
      end
      -- exact names only: near misses and other tables in those schemas' neighbours are checked
      for _, name in ipairs { "schema_migrations2", "Schema_Migrations", "migration", "_migrations" } do
        local e = failing(conn.exec, conn, string.format('CREATE TABLE public."%s" (x int)', name))
        assert.are.equal("hectic: table public." .. name .. " must INHERITS (hectic.created_at)", e.msg)
      end
      local e = failing(conn.exec, conn, "CREATE TABLE app.users (x int)")
      assert.are.equal("hectic: table app.users must INHERITS (hectic.created_at)", e.msg)
      -- an exempt table that inherits updated_at or immutable still gets its triggers
      conn:exec("DROP TABLE app.schema_migrations")
      conn:exec("CREATE TABLE app.schema_migrations (v int) INHERITS (hectic.updated_at)")
      assert.are.same({ "hectic_set_updated_at" }, triggers(conn, "app.schema_migrations"))
    end)

    it("checks every session of the database (ALTER DATABASE … SET is read at connect)", function()
      local admin <close> = pg.connect(url)
      admin:exec("CREATE SCHEMA IF NOT EXISTS late")
      local before <close> = pg.connect(url)
      admin:exec('ALTER DATABASE "' .. dbname .. "\" SET hectic.inheritance_extra_excluded_schemas = 'late'")
      local e = failing(before.exec, before, "CREATE TABLE late.a (x int)")
      assert.are.equal("hectic: table late.a must INHERITS (hectic.created_at)", e.msg)
      local after <close> = pg.connect(url)
      after:exec("CREATE TABLE late.b (x int)")
      admin:exec('ALTER DATABASE "' .. dbname .. '" RESET hectic.inheritance_extra_excluded_schemas')
    end)
  end)

  describe("version", function()
    it("check_version says missing, then ok", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      local c = bundle.check_version(conn)
      assert.are.equal("missing", c.status)
      assert.is_nil(c.installed)
      assert.are.equal("0.1.0", c.expected)
      apply(conn)
      c = bundle.check_version(conn)
      assert.are.equal("ok", c.status)
      assert.are.equal("0.1.0", c.installed)
      assert.are.same({}, c.missing)
    end)

    it("check_version lists what is missing, and apply repairs it", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
      conn:exec("ALTER EVENT TRIGGER hectic_on_create_table DISABLE")
      conn:exec("DROP FUNCTION hectic.load_secrets(jsonb)")
      local c = bundle.check_version(conn)
      assert.are.equal("incomplete", c.status)
      assert.are.same({ "function hectic.load_secrets(jsonb)", "event trigger hectic_on_create_table" },
        c.missing)
      local r = apply(conn)
      assert.are.same(c.missing, r.repaired)
      assert.are.same({ "recreated event trigger hectic_on_create_table" }, r.changes)
      assert.are.equal("ok", bundle.check_version(conn).status)
      conn:exec("DROP EVENT TRIGGER hectic_on_create_table")
      assert.are.same({ "event trigger hectic_on_create_table" }, bundle.check_version(conn).missing)
      assert.are.same({ "created event trigger hectic_on_create_table" }, apply(conn).changes)

      conn:exec("DELETE FROM hectic.version")
      c = bundle.check_version(conn)
      assert.are.equal("incomplete", c.status)
      assert.are.equal("row 'hectic' of hectic.version", c.missing[1])
    end)

    it("a different version raises the original message, exit 13, and changes nothing", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
      conn:exec("UPDATE hectic.version SET version = '0.0.9' WHERE name = 'hectic'")
      conn:exec("DROP EVENT TRIGGER hectic_on_create_table")
      local e = failing(bundle.check_version, conn)
      assert.are.equal(13, e.exit)
      assert.are.equal("hectic schema version mismatch: database has 0.0.9, code expects 0.1.0", e.msg)
      assert.matches("no automatic upgrade", e.hint, 1, true)

      e = failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal(13, e.exit)
      assert.are.equal("hectic schema version mismatch: database has 0.0.9, code expects 0.1.0", e.msg)
      assert.are.equal("sql/hectic/version.sql", e.file)
      assert.are.equal("P0001", e.sqlstate)
      assert.are.equal("idle", conn:transaction_status())
      -- nothing of the later files ran
      assert.are.equal(0, value(conn, [[SELECT count(*) FROM pg_event_trigger
        WHERE evtname = 'hectic_on_create_table']]))
      assert.are.equal("0.0.9", value(conn, "SELECT version FROM hectic.version"))
    end)

    it("the SQL itself raises the mismatch (for psql users)", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec(bundle.files()[1].sql)
      conn:exec("UPDATE hectic.version SET version = '9.9.9'")
      local e = failing(conn.exec, conn, bundle.files()[1].sql)
      assert.are.equal("hectic schema version mismatch: database has 9.9.9, code expects 0.1.0", e.msg)
    end)

    it("ignores other rows, such as an old 'migrator' row", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec(bundle.files()[1].sql)
      conn:exec("INSERT INTO hectic.version (name, version) VALUES ('migrator', '0.0.1')")
      apply(conn)
      assert.are.equal("ok", bundle.check_version(conn).status)
      assert.are.equal(2, value(conn, "SELECT count(*) FROM hectic.version"))
    end)
  end)

  describe("secrets", function()
    local url

    setup(function()
      url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
    end)

    local function secrets(conn)
      local out = {}
      for _, row in ipairs(conn:exec("SELECT key, value FROM hectic.secret")) do out[row.key] = row.value end
      return out
    end

    it("load_secrets_from_env parses like the original", function()
      local conn <close> = pg.connect(url)
      local dotenv = table.concat({
        "# a comment",
        "",
        "   ",
        "PLAIN=value",
        "  SPACED  =  spaced value  ",
        'DOUBLE="double quoted"',
        "SINGLE='single quoted'",
        'INNER="in"side"',
        'UNBALANCED="abc',
        "EQUALS=a=b=c",
        "DOLLAR=before$ps_env$after",
        "QUOTE=it's",
        "export EXPORTED=1",
        "NOEQUALS",
        "=empty key",
        "EMPTY=",
        "   # indented comment",
      }, "\n")
      conn:exec("SELECT hectic.load_secrets_from_env($1)", dotenv)
      assert.are.same({
        PLAIN = "value", SPACED = "spaced value", DOUBLE = "double quoted", SINGLE = "single quoted",
        INNER = 'in"side', UNBALANCED = '"abc', EQUALS = "a=b=c", DOLLAR = "before$ps_env$after",
        QUOTE = "it's", ["export EXPORTED"] = "1", NOEQUALS = "NOEQUALS", [""] = "empty key", EMPTY = "",
      }, secrets(conn))
      assert.are.equal("a=b=c", value(conn, "SELECT hectic.get_secret('EQUALS')"))
      assert.is_nil(value(conn, "SELECT hectic.get_secret('ABSENT')"))
    end)

    it("load_secrets_from_env handles CRLF (deliberate fix)", function()
      local conn <close> = pg.connect(url)
      conn:exec("SELECT hectic.load_secrets_from_env($1)",
        "A=1\r\nB=\"quoted\"\r\n\r\nC='x y' \r\n# c\r\nD=last\r\n")
      assert.are.same({ A = "1", B = "quoted", C = "x y", D = "last" }, secrets(conn))
    end)

    it("replaces everything, and a duplicate key rolls back the whole call", function()
      local conn <close> = pg.connect(url)
      conn:exec("SELECT hectic.load_secrets_from_env($1)", "OLD=1\nKEEP=2")
      conn:exec("SELECT hectic.load_secrets_from_env($1)", "NEW=1")
      assert.are.same({ NEW = "1" }, secrets(conn))
      local e = failing(conn.exec, conn, "SELECT hectic.load_secrets_from_env($1)", "X=1\nDUP=a\nDUP=b")
      assert.are.equal("23505", e.sqlstate)
      assert.are.equal('hectic.load_secrets_from_env: duplicate key "DUP" on line 3', e.msg)
      assert.are.same({ NEW = "1" }, secrets(conn))
      e = failing(conn.exec, conn, "SELECT hectic.load_secrets_from_env(NULL)")
      assert.matches("NULL", e.msg, 1, true)
      assert.are.same({ NEW = "1" }, secrets(conn))
    end)

    it("load_secrets (jsonb) replaces all secrets from a table", function()
      local conn <close> = pg.connect(url)
      local tricky = {
        QUOTES = [["double" and 'single']],
        EQ = "a=b",
        DOLLAR = "$ps_env$ $$ $x$",
        NEWLINE = "line1\nline2\r\n",
        BACKSLASH = [[C:\path\n]],
        UNICODE = "héllo ✓",
        CONTROL = "tab\there\1bell",
        ["KEY WITH SPACE"] = "v",
        EMPTY = "",
      }
      assert.are.equal(9, bundle.load_secrets(conn, tricky))
      assert.are.same(tricky, secrets(conn))
      assert.are.equal("$ps_env$ $$ $x$", value(conn, "SELECT hectic.get_secret('DOLLAR')"))
      assert.are.equal(1, bundle.load_secrets(conn, { ONLY = "one" }))
      assert.are.same({ ONLY = "one" }, secrets(conn))
      assert.are.equal(0, bundle.load_secrets(conn, {}))
      assert.are.same({}, secrets(conn))
    end)

    it("load_secrets rejects bad input and keeps the old secrets", function()
      local conn <close> = pg.connect(url)
      bundle.load_secrets(conn, { KEEP = "me" })
      local e = failing(bundle.load_secrets, conn, { A = 1 })
      assert.are.equal(1, e.exit)
      assert.are.equal("secret A: the value must be a string, got number", e.msg)
      e = failing(bundle.load_secrets, conn, { [""] = "x" })
      assert.matches("non%-empty", e.msg)
      e = failing(bundle.load_secrets, conn, { BIN = "\255\254" })
      assert.are.equal("secret BIN: the value is not valid UTF-8", e.msg)
      e = failing(bundle.load_secrets, conn, { NUL = "a\0b" })
      assert.are.equal("secret NUL: the value contains a NUL byte", e.msg)
      e = failing(bundle.load_secrets, conn, "A=1")
      assert.matches("must be a table", e.msg)
      -- the SQL function checks too, before touching the table
      for sql, msg in pairs {
        ["SELECT hectic.load_secrets('[1]')"] = "expected a JSON object",
        ["SELECT hectic.load_secrets(NULL)"] = "got NULL",
        [ [[SELECT hectic.load_secrets('{"A": "x", "B": 2}')]] ] =
          'the value of "B" must be a JSON string, got number',
        [ [[SELECT hectic.load_secrets('{"A": null}')]] ] =
          'the value of "A" must be a JSON string, got null',
        [ [[SELECT hectic.load_secrets('{"": "x"}')]] ] = "empty key",
      } do
        e = failing(conn.exec, conn, sql)
        assert.are.equal("22023", e.sqlstate)
        assert.matches(msg, e.msg, 1, true)
      end
      assert.are.same({ KEEP = "me" }, secrets(conn))
    end)

    it("load_secrets says to apply the bundle when it is not there", function()
      local bare = t.fresh_db("bundle")
      local conn <close> = pg.connect(bare)
      local e = failing(bundle.load_secrets, conn, { A = "1" })
      assert.are.equal(13, e.exit)
      assert.matches("hectic.load_secrets(jsonb) does not exist", e.msg, 1, true)
      assert.matches("migrator init", e.hint, 1, true)
    end)
  end)

  describe("hectic.migration", function()
    it("accepts byte-identical migrations (no UNIQUE on hash) and keeps name unique", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
      conn:exec(INSERT2, HASH_A)
      assert.are.equal(2, value(conn, "SELECT count(*) FROM hectic.migration"))
      local e = failing(conn.exec, conn, INSERT1, "20250101000000-a", HASH_A)
      assert.are.equal("23505", e.sqlstate)
      assert.are.equal("migration_name_key", e.constraint)
      e = failing(conn.exec, conn, INSERT1, "bad-name", HASH_A)
      assert.are.equal("23514", e.sqlstate)
      e = failing(conn.exec, conn, INSERT1, "20250101000002-c", string.rep("A", 64))
      assert.are.equal("23514", e.sqlstate)
      assert.are.same({ "hectic_t_sha256_lower" }, column(conn,
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'hectic.migration'::regclass"))
    end)

    it("refuses, clearly and without leftovers, a hectic.migration made by pg-migration", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE SCHEMA hectic; CREATE TABLE hectic.migration (id serial PRIMARY KEY,
        name text UNIQUE, applied_at timestamptz DEFAULT now())]])
      local e = failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal(13, e.exit)
      assert.are.equal("hectic bundle apply failed: hectic: table hectic.migration exists but was not "
        .. "made by the hectic bundle (no column hectic.migration(hash))", e.msg)
      assert.matches("pg-migration", e.hint, 1, true)
      assert.are.equal("sql/hectic/migration.sql", e.where)
      assert.is_nil(value(conn, "SELECT to_regclass('hectic.version')::text"))
    end)
  end)

  describe("compatibility with the original bundle", function()
    it("upgrades a database an original apply created: drops UNIQUE(hash), keeps data", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec(ORIGINAL_LIKE)
      conn:exec("INSERT INTO hectic.migration (name, hash) VALUES ('20250101000000-a', $1)", HASH_A)
      conn:exec("SELECT hectic.load_secrets_from_env('TOKEN=abc')")
      assert.are.equal(1, value(conn, [[SELECT count(*) FROM pg_constraint
        WHERE conrelid = 'hectic.migration'::regclass AND conname = 'migration_hash_key']]))
      local c = bundle.check_version(conn)
      assert.are.equal("incomplete", c.status)
      assert.are.same({ "function hectic.load_secrets(jsonb)",
        "the old UNIQUE constraint on hectic.migration(hash) is still there" }, c.missing)
      assert.are.same({ "event trigger hectic_attach_immutable_triggers of the original bundle",
        "event trigger hectic_attach_updated_at_trigger of the original bundle",
        "event trigger hectic_enforce_created_at_inheritance of the original bundle" }, c.stale)

      local r = apply(conn)
      assert.is_false(r.installed)
      assert.are.equal("0.1.0", r.previous)
      assert.are.same(c.stale, r.updated)
      assert.are.same({ "dropped UNIQUE constraint migration_hash_key on hectic.migration(hash): "
        .. "byte-identical migrations can now both be applied",
        "created event trigger hectic_on_create_table",
        "dropped event trigger hectic_attach_immutable_triggers (replaced by hectic_on_create_table)",
        "dropped event trigger hectic_attach_updated_at_trigger (replaced by hectic_on_create_table)",
        "dropped event trigger hectic_enforce_created_at_inheritance (replaced by hectic_on_create_table)",
      }, r.changes)
      assert.are.same({ "hectic_on_create_table" }, column(conn,
        "SELECT evtname::text FROM pg_event_trigger ORDER BY 1"))
      -- their functions went with them
      assert.are.same({}, column(conn, [[SELECT proname::text FROM pg_proc
        WHERE pronamespace = 'hectic'::regnamespace AND prorettype = 'event_trigger'::regtype
          AND proname <> 'on_create_table']]))
      assert.are.equal("ok", bundle.check_version(conn).status)
      assert.are.same({ "migration_name_key", "migration_pkey" }, column(conn, [[SELECT conname::text
        FROM pg_constraint WHERE conrelid = 'hectic.migration'::regclass AND contype IN ('u', 'p')
        ORDER BY 1]]))
      conn:exec("INSERT INTO hectic.migration (name, hash) VALUES ('20250101000001-b', $1)", HASH_A)
      assert.are.equal(2, value(conn, "SELECT count(*) FROM hectic.migration"))
      assert.are.equal("abc", value(conn, "SELECT hectic.get_secret('TOKEN')"))
      -- our definitions are in place (CRLF handling, real enforcement), parameter names kept
      conn:exec("SELECT hectic.load_secrets_from_env($1)", "K=\"v\"\r\n")
      assert.are.equal("v", value(conn, "SELECT hectic.get_secret('K')"))
      assert.are.equal("p_content text", value(conn,
        "SELECT pg_get_function_arguments('hectic.load_secrets_from_env(text)'::regprocedure)"))
      assert.are.equal("child oid, parent regclass", value(conn,
        "SELECT pg_get_function_arguments('hectic._table_inherits(oid, regclass)'::regprocedure)"))
      local e = failing(conn.exec, conn, "CREATE TABLE public.plain (id int)")
      assert.are.equal("hectic: table public.plain must INHERITS (hectic.created_at)", e.msg)
      -- and again: nothing left to change
      assert.are.same({}, apply(conn).changes)
    end)

    it("lets the original tools apply their bundle over a database we set up", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
      conn:exec(INSERT2, HASH_A)
      conn:exec(ORIGINAL_LIKE) -- what `migrator init`/`migrate` of the original runs every time
      conn:exec(ORIGINAL_LIKE)
      assert.are.equal(2, value(conn, "SELECT count(*) FROM hectic.migration"))
      conn:exec("INSERT INTO hectic.migration (name, hash) VALUES ('20250101000002-c', $1)", HASH_A)
      -- both sets of event triggers fire: the original's (a no-op in ORIGINAL_LIKE) and ours
      local c = bundle.check_version(conn)
      assert.are.equal("ok", c.status)
      assert.are.equal(3, #c.stale)
      local e = failing(conn.exec, conn, "CREATE TABLE public.plain (id int)")
      assert.are.equal("hectic: table public.plain must INHERITS (hectic.created_at)", e.msg)
      -- and back to us
      apply(conn)
      c = bundle.check_version(conn)
      assert.are.equal("ok", c.status)
      assert.are.same({}, c.stale)
      assert.are.same({ "hectic_on_create_table" }, column(conn,
        "SELECT evtname::text FROM pg_event_trigger ORDER BY 1"))
    end)

    it("keeps user data in a hectic schema that existed before", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec([[CREATE SCHEMA hectic; CREATE TABLE hectic.test_table (id int, v text);
        INSERT INTO hectic.test_table VALUES (1, 'kept'), (2, 'also kept');
        CREATE TABLE public.users (id int PRIMARY KEY, name text);
        INSERT INTO public.users VALUES (1, 'ann')]])
      apply(conn)
      assert.are.same({ "kept", "also kept" }, column(conn, "SELECT v FROM hectic.test_table ORDER BY id"))
      -- tables made before the bundle are not retrofitted
      conn:exec("INSERT INTO public.users VALUES (2, 'bob')")
      conn:exec("ALTER TABLE public.users ADD COLUMN bio text")
      assert.are.equal(2, value(conn, "SELECT count(*) FROM public.users"))
    end)
  end)

  describe("apply", function()
    it("is idempotent: a second apply leaves every catalog object as it was", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      apply(conn)
      local first = value(conn, SNAPSHOT_SQL)
      assert.matches("event trigger %d+ hectic_on_create_table ddl_command_end O", first)
      assert.matches("class migration r", first, 1, true)
      local r = apply(conn)
      assert.are.same({}, r.changes)
      assert.are.equal(first, value(conn, SNAPSHOT_SQL))
      apply(conn)
      assert.are.equal(first, value(conn, SNAPSHOT_SQL))
    end)

    it("gives the same schema as running bundle.sql() as a script", function()
      local a_url = t.fresh_db("bundle")
      local b_url = t.fresh_db("bundle")
      local a <close> = pg.connect(a_url)
      local b <close> = pg.connect(b_url)
      apply(a)
      b:exec(bundle.sql())
      assert.are.equal("idle", b:transaction_status())
      local strip = function(s)
        return (s:gsub("event trigger %d+", "event trigger"):gsub("version hectic 0%.1%.0 [^\n]*", "version"))
      end
      assert.are.equal(strip(value(a, SNAPSHOT_SQL)), strip(value(b, SNAPSHOT_SQL)))
    end)

    it("runs in one transaction: a failure in the last file leaves nothing behind", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      -- an object the last file cannot replace
      conn:exec([[CREATE SCHEMA hectic;
        CREATE FUNCTION hectic.set_updated_at() RETURNS integer LANGUAGE sql AS 'SELECT 1']])
      local e = failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal(13, e.exit)
      assert.matches("^hectic bundle apply failed: cannot change return type of existing function", e.msg)
      assert.are.equal("sql/hectic/inheritance.sql", e.file)
      assert.matches("^sql/hectic/inheritance%.sql", e.where)
      assert.are.equal("idle", conn:transaction_status())
      assert.are.same({ "set_updated_at" }, column(conn,
        "SELECT proname::text FROM pg_proc WHERE pronamespace = 'hectic'::regnamespace"))
      assert.are.equal(0, value(conn,
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'hectic'::regnamespace"))
      assert.are.equal(0, value(conn,
        "SELECT count(*) FROM pg_type WHERE typnamespace = 'hectic'::regnamespace"))
    end)

    it("without superuser fails at the event triggers, leaves no hectic schema, and says why", function()
      local url, name = t.fresh_db("bundle")
      local admin <close> = pg.connect(url)
      admin:exec([[DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bundle_nosuper') THEN
          CREATE ROLE bundle_nosuper LOGIN;
        END IF; END $$]])
      admin:exec('GRANT CREATE ON DATABASE "' .. name .. '" TO bundle_nosuper')
      local conn <close> = pg.connect(url .. "&user=bundle_nosuper")
      local e = failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal(13, e.exit)
      assert.are.equal("42501", e.sqlstate)
      assert.matches("permission denied to create event trigger", e.msg, 1, true)
      assert.matches("needs a superuser", e.hint, 1, true)
      assert.are.equal("sql/hectic/inheritance.sql", e.file)
      assert.is_nil(value(admin, "SELECT to_regnamespace('hectic')::text"))
    end)

    it("inside the caller's transaction uses a savepoint and restores search_path", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec("BEGIN; SET LOCAL search_path TO public, pg_catalog; CREATE TABLE before_bundle (x int)")
      apply(conn)
      assert.are.equal("intrans", conn:transaction_status())
      assert.are.equal("public, pg_catalog", value(conn, "SHOW search_path"))
      conn:exec("CREATE TABLE after_bundle (x int) INHERITS (hectic.created_at)")
      conn:exec("ROLLBACK")
      assert.is_nil(value(conn, "SELECT to_regnamespace('hectic')::text"))

      -- a failing apply rolls back to the savepoint: the caller's work survives
      conn:exec([[CREATE SCHEMA hectic;
        CREATE FUNCTION hectic.set_updated_at() RETURNS integer LANGUAGE sql AS 'SELECT 1']])
      conn:exec("BEGIN; CREATE TABLE mine (x int)")
      failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal("intrans", conn:transaction_status())
      conn:exec("INSERT INTO mine VALUES (1)")
      conn:exec("COMMIT")
      assert.are.equal(1, value(conn, "SELECT count(*) FROM mine"))
      assert.is_nil(value(conn, "SELECT to_regclass('hectic.version')::text"))
    end)

    it("refuses a connection whose transaction failed", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      conn:exec("BEGIN")
      pcall(conn.exec, conn, "SELECT 1/0")
      local e = failing(bundle.apply, conn, { log = capture_log() })
      assert.are.equal(13, e.exit)
      assert.matches("roll it back first", e.msg, 1, true)
      conn:exec("ROLLBACK")
    end)

    it("routes notices to debug and gives the caller's notice handler back", function()
      local url = t.fresh_db("bundle")
      local conn <close> = pg.connect(url)
      local seen = {}
      conn:on_notice(function(n) seen[#seen + 1] = n.msg end)
      local log = capture_log()
      local r = bundle.apply(conn, { log = log })
      assert.are.same({}, seen)
      assert.is_true(#r.notices >= 3)
      for _, line in ipairs(log.lines) do
        if line.msg:match("NOTICE") then assert.are.equal("debug", line.level) end
      end
      conn:exec("DO $$ BEGIN RAISE NOTICE 'after'; END $$")
      assert.are.same({ "after" }, seen)
    end)

    it("serialises concurrent applies on a fresh database", function()
      local url = t.fresh_db("bundle")
      local script = [[
        local conn = require("dbtool.core.pg").connect(arg[1])
        local log = { debug = function() end, info = function() end }
        require("dbtool.bundle").apply(conn, { log = log })
        conn:close()
      ]]
      local dir = t.tmpdir("bundle")
      local file = t.write(dir .. "/apply.lua", script)
      local procs = {}
      for i = 1, 3 do
        procs[i] = assert(proc.spawn { argv = { t.bin, file, url }, stdin = "null",
          stdout = { path = t.watch_output(dir .. "/out" .. i) }, stderr = "stdout" })
      end
      for i, p in ipairs(procs) do
        local how, code = p:wait(60)
        assert.are.equal("exited", how)
        assert.are.equal(0, code, t.read(dir .. "/out" .. i))
      end
      local conn <close> = pg.connect(url)
      assert.are.equal("ok", bundle.check_version(conn).status)
      assert.are.equal(1, value(conn, "SELECT count(*) FROM hectic.version"))
    end)
  end)
end)
