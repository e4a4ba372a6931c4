-- hectic bundle: secrets (2 of 4: version, secret, migration, inheritance).
--
-- hectic.secret holds key/value pairs as plain TEXT: access control is the database's
-- privileges (db-tool can keep the dotenv encrypted on disk; the table itself is not).
--
--   hectic.load_secrets_from_env(text) -> void     replace all secrets from dotenv text
--   hectic.load_secrets(jsonb) -> integer          replace all secrets from {"KEY": "value"}
--   hectic.get_secret(text) -> text                a value, NULL when the key is absent
--
-- Functions that older bundles also define take positional ($1) parameters, and a DO block
-- re-uses the parameter names an existing definition has: PostgreSQL refuses a CREATE OR
-- REPLACE that renames an input parameter, so this keeps working over any older apply, and
-- the older bundle can still be applied over this one. Idempotent.

CREATE SCHEMA IF NOT EXISTS hectic;

CREATE TABLE IF NOT EXISTS hectic.secret (
  id    SERIAL PRIMARY KEY,
  key   TEXT UNIQUE NOT NULL,
  value TEXT NOT NULL
);

-- A table of that name made by something else would be skipped above: say so clearly.
DO $hectic_secret_check$
DECLARE
  missing text;
BEGIN
  SELECT string_agg(format('hectic.%s(%s)', c.tbl, c.col), ', ') INTO missing
    FROM (VALUES
        ('secret', 'key'),
        ('secret', 'value')
      ) AS c(tbl, col)
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = pg_catalog.to_regclass('hectic.' || c.tbl)
                        AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'hectic: table hectic.secret exists but was not made by the hectic bundle (no column %)', missing
      USING HINT = 'rename or drop that table, then apply the bundle again';
  END IF;
END
$hectic_secret_check$;

-- Dotenv loader, kept compatible with the original one for external callers:
--  * the text is split on LF; a trailing CR is removed from each line (deliberate fix: the
--    original kept it, so CRLF files gave values ending in CR with their quotes kept);
--  * each line is trimmed of spaces; empty lines and lines starting with # are skipped;
--  * key = text before the first '=', value = text after it, both trimmed of spaces; a line
--    without '=' gives key = value = the whole line; `export K=v` gives the key "export K";
--  * one outer pair of matching double or single quotes is removed from the value; there are
--    no escapes, no inline comments and no ${} expansion;
--  * all secrets are replaced (TRUNCATE); a duplicate key raises unique_violation and, the
--    call being one statement, the TRUNCATE is rolled back too: the old secrets survive.
-- db-tool itself parses dotenv files in Lua and calls hectic.load_secrets(jsonb).
DO $hectic_secret$
DECLARE
  arg_names text[] := coalesce(
    (SELECT p.proargnames FROM pg_catalog.pg_proc AS p
      WHERE p.oid = pg_catalog.to_regprocedure('hectic.load_secrets_from_env(text)')), '{}');
BEGIN
  EXECUTE replace($definition$
CREATE OR REPLACE FUNCTION hectic.load_secrets_from_env(/*1*/ text) RETURNS void
LANGUAGE plpgsql AS $body$
#variable_conflict use_column
DECLARE
  dotenv_line  text;
  dotenv_no    bigint;
  dotenv_key   text;
  dotenv_value text;
  eq_pos       integer;
BEGIN
  IF $1 IS NULL THEN
    RAISE EXCEPTION 'hectic.load_secrets_from_env: the dotenv content is NULL'
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the text of a dotenv file; the secrets were not changed';
  END IF;
  TRUNCATE hectic.secret;
  FOR dotenv_line, dotenv_no IN
    SELECT t.line, t.no FROM regexp_split_to_table($1, E'\n') WITH ORDINALITY AS t(line, no)
     ORDER BY t.no
  LOOP
    dotenv_line := btrim(regexp_replace(dotenv_line, E'\r$', ''));
    CONTINUE WHEN dotenv_line = '' OR left(dotenv_line, 1) = '#';
    eq_pos := strpos(dotenv_line, '=');
    IF eq_pos = 0 THEN
      dotenv_key := dotenv_line;
      dotenv_value := dotenv_line;
    ELSE
      dotenv_key := btrim(left(dotenv_line, eq_pos - 1));
      dotenv_value := btrim(substr(dotenv_line, eq_pos + 1));
    END IF;
    IF dotenv_value ~ '^".*"$' OR dotenv_value ~ '^''.*''$' THEN
      dotenv_value := substr(dotenv_value, 2, length(dotenv_value) - 2);
    END IF;
    IF EXISTS (SELECT 1 FROM hectic.secret AS hs WHERE hs.key = dotenv_key) THEN
      RAISE EXCEPTION 'hectic.load_secrets_from_env: duplicate key "%" on line %',
        dotenv_key, dotenv_no
        USING ERRCODE = 'unique_violation',
              HINT = 'each key may appear once; the secrets were not changed';
    END IF;
    INSERT INTO hectic.secret (key, value) VALUES (dotenv_key, dotenv_value);
  END LOOP;
END
$body$
$definition$, '/*1*/', coalesce(quote_ident(nullif(arg_names[1], '')), ''));

  EXECUTE replace($definition$
CREATE OR REPLACE FUNCTION hectic.get_secret(/*1*/ text) RETURNS text
LANGUAGE sql STABLE AS $body$
  SELECT hs.value FROM hectic.secret AS hs WHERE hs.key = $1
$body$
$definition$, '/*1*/', coalesce(quote_ident(nullif(
    (SELECT p.proargnames FROM pg_catalog.pg_proc AS p
      WHERE p.oid = pg_catalog.to_regprocedure('hectic.get_secret(text)'))[1], '')), ''));
END
$hectic_secret$;

-- Structured loader (db-tool's own): {"KEY": "value", ...} replaces all secrets at once, as
-- load_secrets_from_env does, with nothing to misparse. Every value must be a JSON string and
-- every key non-empty; anything else raises before the table is touched. Returns the number
-- of secrets loaded. (JSON objects cannot carry a key twice: jsonb keeps the last one.)
CREATE OR REPLACE FUNCTION hectic.load_secrets(secrets jsonb) RETURNS integer
LANGUAGE plpgsql AS $hectic_load_secrets$
#variable_conflict use_column
DECLARE
  bad_key  text;
  bad_type text;
  loaded   integer;
BEGIN
  IF $1 IS NULL OR jsonb_typeof($1) <> 'object' THEN
    RAISE EXCEPTION 'hectic.load_secrets: expected a JSON object {"KEY": "value", ...}, got %',
      coalesce(jsonb_typeof($1), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'the secrets were not changed';
  END IF;
  SELECT e.key, jsonb_typeof(e.value) INTO bad_key, bad_type
    FROM jsonb_each($1) AS e
   WHERE e.key = '' OR jsonb_typeof(e.value) <> 'string'
   ORDER BY e.key LIMIT 1;
  IF FOUND THEN
    IF bad_key = '' THEN
      RAISE EXCEPTION 'hectic.load_secrets: a secret has an empty key'
        USING ERRCODE = 'invalid_parameter_value', HINT = 'the secrets were not changed';
    END IF;
    RAISE EXCEPTION 'hectic.load_secrets: the value of "%" must be a JSON string, got %',
      bad_key, bad_type
      USING ERRCODE = 'invalid_parameter_value', HINT = 'the secrets were not changed';
  END IF;
  TRUNCATE hectic.secret;
  INSERT INTO hectic.secret (key, value)
    SELECT e.key, e.value FROM jsonb_each_text($1) AS e ORDER BY e.key;
  GET DIAGNOSTICS loaded = ROW_COUNT;
  RETURN loaded;
END
$hectic_load_secrets$;
