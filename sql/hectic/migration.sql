-- hectic bundle: migration bookkeeping (3 of 4: version, secret, migration, inheritance).
--
-- hectic.migration is the table `migrator` records applied migrations in: one row per
-- migration directory name (unique), with the SHA-256 of what was run.
--
-- Deliberate difference from the original bundle: `hash` is NOT unique, so two migrations
-- whose scripts are byte-identical (two `-- noop` files) can both be applied. A database that
-- an older apply created with UNIQUE(hash) has that constraint dropped; UNIQUE(name) stays.
-- Idempotent.

CREATE SCHEMA IF NOT EXISTS hectic;

-- Domains are created only when absent (their checks are never altered once created).
DO $hectic_domains$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type AS t
                  WHERE t.typnamespace = 'hectic'::regnamespace AND t.typname = 'migration_name') THEN
    CREATE DOMAIN hectic.migration_name AS TEXT
      CHECK (VALUE ~ '^[0-9]{14}-.*');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type AS t
                  WHERE t.typnamespace = 'hectic'::regnamespace AND t.typname = 'sha256') THEN
    CREATE DOMAIN hectic.sha256 AS CHAR(64)
      CHECK (VALUE ~ '^[0-9a-f]{64}$');
  END IF;
END
$hectic_domains$;

CREATE TABLE IF NOT EXISTS hectic.migration (
  id         SERIAL PRIMARY KEY,
  name       hectic.migration_name UNIQUE NOT NULL,
  hash       hectic.sha256 NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A table of that name made by something else would be skipped above: say so clearly.
DO $hectic_migration_check$
DECLARE
  missing text;
BEGIN
  SELECT string_agg(format('hectic.%s(%s)', c.tbl, c.col), ', ') INTO missing
    FROM (VALUES
        ('migration', 'name'),
        ('migration', 'hash')
      ) AS c(tbl, col)
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = pg_catalog.to_regclass('hectic.' || c.tbl)
                        AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'hectic: table hectic.migration exists but was not made by the hectic bundle (no column %)', missing
      USING HINT = 'a table without hash was probably made by pg-migration: rename it (ALTER TABLE hectic.migration '
                   || 'RENAME TO migration_old), apply the bundle again and record the applied migrations anew';
  END IF;
END
$hectic_migration_check$;

-- Upgrade: drop any UNIQUE constraint on exactly (hash) (the original named it
-- migration_hash_key; match by columns, not by name).
DO $hectic_migration_hash$
DECLARE
  con name;
BEGIN
  FOR con IN
    SELECT c.conname FROM pg_catalog.pg_constraint AS c
      JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = c.conrelid AND a.attname = 'hash' AND NOT a.attisdropped
     WHERE c.conrelid = 'hectic.migration'::regclass AND c.contype = 'u'
       AND c.conkey = ARRAY[a.attnum]::int2[]
  LOOP
    EXECUTE format('ALTER TABLE hectic.migration DROP CONSTRAINT %I', con);
    RAISE NOTICE 'hectic: dropped UNIQUE constraint % on hectic.migration(hash): byte-identical migrations can now both be applied', con;
  END LOOP;
END
$hectic_migration_hash$;

-- Lower-cases `hash` before it is stored. Kept for compatibility; in practice the domain
-- check rejects an upper-case value before any BEFORE trigger runs.
CREATE OR REPLACE FUNCTION hectic.sha256_lower() RETURNS trigger
LANGUAGE plpgsql AS $hectic_sha256_lower$
BEGIN
  NEW.hash := lower(NEW.hash);
  RETURN NEW;
END
$hectic_sha256_lower$;

DO $hectic_migration_trigger$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                  WHERE t.tgrelid = 'hectic.migration'::regclass
                    AND t.tgname = 'hectic_t_sha256_lower') THEN
    CREATE TRIGGER hectic_t_sha256_lower
      BEFORE INSERT OR UPDATE ON hectic.migration
      FOR EACH ROW EXECUTE FUNCTION hectic.sha256_lower();
  END IF;
END
$hectic_migration_trigger$;
