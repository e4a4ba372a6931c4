-- hectic bundle: version (1 of 4: version, secret, migration, inheritance).
--
-- One row per hectic system in hectic.version. A database set up by another bundle version
-- is refused (there is no automatic upgrade path between versions); other rows, such as an
-- old 'migrator' row, are left alone. @HECTIC_VERSION@ is substituted by the applier with
-- the contents of sql/hectic/VERSION. Idempotent.

CREATE SCHEMA IF NOT EXISTS hectic;

CREATE TABLE IF NOT EXISTS hectic.version (
  name         TEXT PRIMARY KEY,
  version      TEXT NOT NULL,
  installed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A table of that name made by something else would be skipped above: say so clearly.
DO $hectic_version_check$
DECLARE
  missing text;
BEGIN
  SELECT string_agg(format('hectic.%s(%s)', c.tbl, c.col), ', ') INTO missing
    FROM (VALUES
        ('version', 'name'),
        ('version', 'version')
      ) AS c(tbl, col)
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = pg_catalog.to_regclass('hectic.' || c.tbl)
                        AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'hectic: table hectic.version exists but was not made by the hectic bundle (no column %)', missing
      USING HINT = 'rename or drop that table, then apply the bundle again';
  END IF;
END
$hectic_version_check$;

DO $hectic_version$
DECLARE
  expected CONSTANT text := '@HECTIC_VERSION@';
  found_version text;
BEGIN
  -- ON CONFLICT: two sessions installing at the same time both end up comparing one row.
  INSERT INTO hectic.version AS hv (name, version) VALUES ('hectic', expected)
    ON CONFLICT (name) DO NOTHING;
  SELECT hv.version INTO found_version FROM hectic.version AS hv WHERE hv.name = 'hectic';
  IF found_version IS DISTINCT FROM expected THEN
    RAISE EXCEPTION 'hectic schema version mismatch: database has %, code expects %',
      found_version, expected
      USING HINT = 'this database was set up by another version of the hectic bundle; '
                   || 'there is no automatic upgrade: migrate the hectic schema by hand, '
                   || 'or use the tool version that matches the database';
  END IF;
END
$hectic_version$;
