-- hectic bundle: inheritance rules (4 of 4: version, secret, migration, inheritance).
--
-- Parent tables:
--   hectic.created_at(created_at)  every new user table must INHERITS it (directly)
--   hectic.updated_at(updated_at)  optional; children get a BEFORE UPDATE trigger that sets it
--   hectic.immutable()             marker; children reject INSERT/UPDATE/DELETE/TRUNCATE unless
--                                  hectic.migration_mode = 'on' (use SET LOCAL in a transaction)
-- One ddl_command_end event trigger on CREATE TABLE, hectic_on_create_table, enforces and
-- attaches these (the original bundle used three; see the end of this file).
-- Exempt from the created_at rule: the schemas hectic, information_schema, pg_*, and those
-- listed (comma-separated) in the GUC hectic.inheritance_extra_excluded_schemas, e.g.
--   ALTER DATABASE mydb SET hectic.inheritance_extra_excluded_schemas = 'legacy,etl';
-- the bookkeeping tables of migration tools (hectic._is_exempt_table: rickdb's _migration,
-- dbmate's schema_migrations, ...). Temporary tables and declarative partitions are always exempt. Only CREATE TABLE is checked
-- (not CREATE TABLE AS, SELECT INTO, ALTER TABLE ... INHERIT), tables that existed before the
-- bundle are not retrofitted, and partitioned tables (which cannot INHERITS) can only be
-- created in exempt schemas.
--
-- The bundle never sets these GUCs itself. Event triggers are created only when missing or
-- different, so re-applying changes nothing; creating them needs a superuser. Idempotent.

CREATE SCHEMA IF NOT EXISTS hectic;

CREATE TABLE IF NOT EXISTS hectic.created_at (
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS hectic.updated_at (
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS hectic.immutable ();

-- A table of that name made by something else would be skipped above: say so clearly.
DO $hectic_inheritance_check$
DECLARE
  missing text;
BEGIN
  SELECT string_agg(format('hectic.%s(%s)', c.tbl, c.col), ', ') INTO missing
    FROM (VALUES
        ('created_at', 'created_at'),
        ('updated_at', 'updated_at')
      ) AS c(tbl, col)
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = pg_catalog.to_regclass('hectic.' || c.tbl)
                        AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'hectic: a parent table exists but was not made by the hectic bundle (no column %)', missing
      USING HINT = 'rename or drop that table, then apply the bundle again';
  END IF;
END
$hectic_inheritance_check$;

-- Helpers that older bundles also define: positional parameters, existing names re-used
-- (see secret.sql for why).
DO $hectic_inheritance_helpers$
DECLARE
  excluded_args text[] := coalesce(
    (SELECT p.proargnames FROM pg_catalog.pg_proc AS p
      WHERE p.oid = pg_catalog.to_regprocedure('hectic._is_excluded_schema(text)')), '{}');
  inherits_args text[] := coalesce(
    (SELECT p.proargnames FROM pg_catalog.pg_proc AS p
      WHERE p.oid = pg_catalog.to_regprocedure('hectic._table_inherits(oid, regclass)')), '{}');
BEGIN
  -- Is a table in schema $1 exempt from the created_at rule?
  EXECUTE replace($definition$
CREATE OR REPLACE FUNCTION hectic._is_excluded_schema(/*1*/ text) RETURNS boolean
LANGUAGE sql STABLE AS $body$
  SELECT $1 IN ('hectic', 'information_schema')
      OR left($1, 3) = 'pg_'
      OR $1 IN (SELECT btrim(s.item)
                  FROM unnest(string_to_array(
                         coalesce(current_setting('hectic.inheritance_extra_excluded_schemas', true), ''),
                         ',')) AS s(item))
$body$
$definition$, '/*1*/', coalesce(quote_ident(nullif(excluded_args[1], '')), ''));

  -- Does relation $1 inherit $2 directly?
  EXECUTE replace(replace($definition$
CREATE OR REPLACE FUNCTION hectic._table_inherits(/*1*/ oid, /*2*/ regclass) RETURNS boolean
LANGUAGE sql STABLE AS $body$
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i
                  WHERE i.inhrelid = $1 AND i.inhparent = $2)
$body$
$definition$, '/*1*/', coalesce(quote_ident(nullif(inherits_args[1], '')), '')),
               '/*2*/', coalesce(quote_ident(nullif(inherits_args[2], '')), ''));
END
$hectic_inheritance_helpers$;

-- BEFORE UPDATE row trigger of hectic.updated_at children.
CREATE OR REPLACE FUNCTION hectic.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $hectic_set_updated_at$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$hectic_set_updated_at$;

-- Row and statement trigger of hectic.immutable children: DML passes only when
-- hectic.migration_mode is exactly 'on'.
CREATE OR REPLACE FUNCTION hectic.block_immutable_dml() RETURNS trigger
LANGUAGE plpgsql AS $hectic_block_immutable_dml$
BEGIN
  IF current_setting('hectic.migration_mode', true) = 'on' THEN
    IF TG_LEVEL = 'STATEMENT' THEN
      RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
      RETURN OLD;
    END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'hectic: table %.% inherits hectic.immutable; % blocked outside migration_mode',
    TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING HINT = 'wrap the statement in a migration transaction with SET LOCAL hectic.migration_mode = ''on''';
END
$hectic_block_immutable_dml$;

-- Tables of migration tools that users run beside db-tool, exempt from the created_at rule:
-- their bookkeeping tables (by table name, in any schema) and the schemas some of them keep
-- their registry in. Our own: rickdb's _migration and db-tool's _migration_checksum
-- (hectic.migration lives in the exempt schema hectic).
CREATE OR REPLACE FUNCTION hectic._is_exempt_table(/* schema */ text, /* table */ text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $hectic_is_exempt_table$
  SELECT $2 IN (
           '_migration', '_migration_checksum',              -- rickdb, db-tool
           'schema_migrations', 'ar_internal_metadata',      -- dbmate, golang-migrate, Rails, Ecto
           'gorp_migrations',                                -- sql-migrate
           'flyway_schema_history',                          -- Flyway
           'goose_db_version',                               -- goose
           'knex_migrations', 'knex_migrations_lock',        -- knex
           'pgmigrations',                                   -- node-pg-migrate
           'schemaversion',                                  -- postgrator
           'django_migrations',                              -- Django
           'alembic_version',                                -- Alembic
           '__diesel_schema_migrations',                     -- Diesel
           '_prisma_migrations',                             -- Prisma
           '_sqlx_migrations',                               -- sqlx
           'databasechangelog', 'databasechangeloglock',     -- Liquibase
           'SequelizeMeta',                                  -- Sequelize
           'kysely_migration', 'kysely_migration_lock',      -- Kysely
           'mikro_orm_migrations',                           -- MikroORM
           'doctrine_migration_versions',                    -- Doctrine
           'phinxlog')                                       -- Phinx
      OR $1 IN (
           'sqitch',                                         -- sqitch's registry
           'graphile_migrate',                               -- graphile-migrate
           'drizzle',                                        -- drizzle-kit
           'atlas_schema_revisions')                         -- Atlas
$hectic_is_exempt_table$;

-- The event trigger of CREATE TABLE: enforces the created_at rule and attaches the triggers
-- of hectic.updated_at and hectic.immutable children. It does the work of the original's
-- three event triggers (hectic_enforce_created_at_inheritance,
-- hectic_attach_updated_at_trigger, hectic_attach_immutable_triggers) with one call of
-- pg_event_trigger_ddl_commands() and one catalog query, which returns a row only for a table
-- that needs something: a trigger attached, or a closer look because it has no
-- hectic.created_at parent outside the fixed exempt schemas. A conforming table costs that
-- query and nothing else. The query names catalogs only (no user relation), so its cached
-- plan survives the relcache invalidations every CREATE TABLE … INHERITS causes.
CREATE OR REPLACE FUNCTION hectic.on_create_table() RETURNS event_trigger
LANGUAGE plpgsql AS $hectic_on_create_table$
DECLARE
  obj record;
BEGIN
  FOR obj IN
    SELECT c.oid, n.nspname, c.relname,
           coalesce(h.created_at, false) AS created_at,
           coalesce(h.updated_at, false) AS updated_at,
           coalesce(h.immutable, false) AS immutable
      FROM pg_catalog.pg_event_trigger_ddl_commands() AS d
      JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
      CROSS JOIN LATERAL (
        SELECT pg_catalog.bool_or(p.relname = 'created_at') AS created_at,
               pg_catalog.bool_or(p.relname = 'updated_at') AS updated_at,
               pg_catalog.bool_or(p.relname = 'immutable') AS immutable
          FROM pg_catalog.pg_inherits AS i
          JOIN pg_catalog.pg_class AS p ON p.oid = i.inhparent
          JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.relnamespace
         WHERE i.inhrelid = c.oid AND pn.nspname = 'hectic') AS h
     WHERE d.command_tag = 'CREATE TABLE'
       AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND c.relkind IN ('r', 'p')
       AND c.relpersistence <> 't'
       AND NOT c.relispartition
       AND n.nspname <> 'hectic'
       AND (h.updated_at OR h.immutable
            OR (h.created_at IS NOT TRUE
                AND n.nspname <> 'information_schema'
                AND pg_catalog.left(n.nspname, 3) <> 'pg_'))
  LOOP
    -- children of hectic.immutable: the row and the statement blockers
    IF obj.immutable THEN
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                      WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_block_immutable_dml') THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER hectic_block_immutable_dml '
                       || 'BEFORE INSERT OR UPDATE OR DELETE ON %I.%I '
                       || 'FOR EACH ROW EXECUTE FUNCTION hectic.block_immutable_dml()',
                       obj.nspname, obj.relname);
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                      WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_block_immutable_truncate') THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER hectic_block_immutable_truncate '
                       || 'BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I.%I '
                       || 'FOR EACH STATEMENT EXECUTE FUNCTION hectic.block_immutable_dml()',
                       obj.nspname, obj.relname);
      END IF;
    END IF;
    -- children of hectic.updated_at: hectic_set_updated_at
    IF obj.updated_at AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                                       WHERE t.tgrelid = obj.oid AND t.tgname = 'hectic_set_updated_at') THEN
      EXECUTE pg_catalog.format('CREATE TRIGGER hectic_set_updated_at BEFORE UPDATE ON %I.%I '
                     || 'FOR EACH ROW EXECUTE FUNCTION hectic.set_updated_at()',
                     obj.nspname, obj.relname);
    END IF;
    -- every table must directly inherit hectic.created_at, unless exempt
    CONTINUE WHEN obj.created_at
               OR hectic._is_excluded_schema(obj.nspname)
               OR hectic._is_exempt_table(obj.nspname, obj.relname);
    IF pg_catalog.to_regclass('hectic.created_at') IS NULL THEN
      RAISE EXCEPTION 'hectic: table hectic.created_at is missing, cannot check %.%',
        obj.nspname, obj.relname
        USING HINT = 're-apply the hectic bundle (migrator init)';
    END IF;
    RAISE EXCEPTION 'hectic: table %.% must INHERITS (hectic.created_at)', obj.nspname, obj.relname
      USING HINT = 'add INHERITS ("hectic"."created_at") to the CREATE TABLE statement, '
                   || 'or add the schema to hectic.inheritance_extra_excluded_schemas';
  END LOOP;
END
$hectic_on_create_table$;

-- The event trigger: (re)created only when missing or not exactly as below (for example
-- disabled), so a second apply takes no catalog locks for it. The original bundle's three
-- event triggers (same rules, one catalog pass each, no exemption for migration tools'
-- tables) are dropped where present, and so are their functions unless something else
-- uses them; applying the original bundle again brings them back, and this file removes
-- them again.
DO $hectic_event_triggers$
DECLARE
  legacy record;
BEGIN
  IF NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_event_trigger AS e
       WHERE e.evtname = 'hectic_on_create_table'
         AND e.evtevent = 'ddl_command_end'
         AND e.evtfoid = 'hectic.on_create_table()'::pg_catalog.regprocedure
         AND e.evtenabled = 'O'
         AND e.evttags = ARRAY['CREATE TABLE']::text[]) THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'hectic_on_create_table') THEN
      DROP EVENT TRIGGER hectic_on_create_table;
      RAISE NOTICE 'hectic: recreated event trigger hectic_on_create_table';
    ELSE
      RAISE NOTICE 'hectic: created event trigger hectic_on_create_table';
    END IF;
    CREATE EVENT TRIGGER hectic_on_create_table ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
      EXECUTE FUNCTION hectic.on_create_table();
  END IF;
  FOR legacy IN
    SELECT e.evtname FROM pg_catalog.pg_event_trigger AS e
     WHERE e.evtname IN ('hectic_enforce_created_at_inheritance', 'hectic_attach_updated_at_trigger',
                         'hectic_attach_immutable_triggers')
     ORDER BY e.evtname
  LOOP
    EXECUTE pg_catalog.format('DROP EVENT TRIGGER %I', legacy.evtname);
    RAISE NOTICE 'hectic: dropped event trigger % (replaced by hectic_on_create_table)', legacy.evtname;
  END LOOP;
  FOR legacy IN
    SELECT p.oid::pg_catalog.regprocedure AS fn FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'hectic'::pg_catalog.regnamespace
       AND p.proname IN ('enforce_created_at_inheritance', 'attach_updated_at_trigger',
                         'attach_immutable_triggers')
       AND p.pronargs = 0
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtfoid = p.oid)
  LOOP
    EXECUTE pg_catalog.format('DROP FUNCTION %s', legacy.fn);
  END LOOP;
END
$hectic_event_triggers$;
