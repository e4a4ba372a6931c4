CREATE SCHEMA shop;

CREATE TABLE shop.currency (
  code text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
  name text NOT NULL,
  minor_units int NOT NULL DEFAULT 2
) INHERITS (hectic.created_at, hectic.immutable);

-- migrator runs each migration with SET LOCAL hectic.migration_mode = 'on'
INSERT INTO shop.currency (code, name, minor_units) VALUES
  ('EUR', 'Euro', 2),
  ('USD', 'US Dollar', 2),
  ('JPY', 'Yen', 0);

CREATE TABLE shop.customer (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL
) INHERITS (hectic.created_at, hectic.updated_at);
