-- hectic bundle: inheritance rules (4 of 4: version, secret, migration, inheritance).
--
-- Parent tables:
--   hectic.created_at(created_at)  every new user table must INHERITS it (directly)
--   hectic.updated_at(updated_at)  optional; children get a BEFORE UPDATE trigger that sets it
--   hectic.immutable()             marker; children reject INSERT/UPDATE/DELETE/TRUNCATE unless
--                                  hectic.migration_mode = 'on' (use SET LOCAL in a transaction)
-- Three ddl_command_end event triggers (on CREATE TABLE) enforce and attach these:
--   hectic_enforce_created_at_inheritance, hectic_attach_updated_at_trigger,
--   hectic_attach_immutable_triggers.
-- Exempt from the created_at rule: the schemas hectic, information_schema, pg_*, and those
-- listed (comma-separated) in the GUC hectic.inheritance_extra_excluded_schemas, e.g.
--   ALTER DATABASE mydb SET hectic.inheritance_extra_excluded_schemas = 'legacy,etl';
-- Temporary tables and declarative partitions are always exempt. Only CREATE TABLE is checked
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

-- The event triggers: (re)created only when missing or not exactly as below (for example
-- disabled), so a second apply takes no catalog locks for them.
DO $hectic_event_triggers$
DECLARE
  et record;
BEGIN
  FOR et IN
    SELECT s.evtname, s.fn
      FROM (VALUES
        ('hectic_enforce_created_at_inheritance', 'hectic.enforce_created_at_inheritance()'),
        ('hectic_attach_updated_at_trigger',      'hectic.attach_updated_at_trigger()'),
        ('hectic_attach_immutable_triggers',      'hectic.attach_immutable_triggers()')
      ) AS s(evtname, fn)
  LOOP
    CONTINUE WHEN EXISTS (
      SELECT 1 FROM pg_catalog.pg_event_trigger AS e
       WHERE e.evtname = et.evtname
         AND e.evtevent = 'ddl_command_end'
         AND e.evtfoid = et.fn::regprocedure
         AND e.evtenabled = 'O'
         AND e.evttags = ARRAY['CREATE TABLE']::text[]);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = et.evtname) THEN
      EXECUTE format('DROP EVENT TRIGGER %I', et.evtname);
      RAISE NOTICE 'hectic: recreated event trigger %', et.evtname;
    ELSE
      RAISE NOTICE 'hectic: created event trigger %', et.evtname;
    END IF;
    EXECUTE format('CREATE EVENT TRIGGER %I ON ddl_command_end WHEN TAG IN (''CREATE TABLE'') '
                   || 'EXECUTE FUNCTION %s', et.evtname, et.fn);
  END LOOP;
END
$hectic_event_triggers$;
