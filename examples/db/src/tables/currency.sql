-- Reference data that must not change outside migrations: inherits hectic.immutable.
CREATE TABLE IF NOT EXISTS shop.currency (
  code text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
  name text NOT NULL,
  minor_units int NOT NULL DEFAULT 2
) INHERITS (hectic.created_at, hectic.immutable);

BEGIN;
SET LOCAL hectic.migration_mode = 'on';
INSERT INTO shop.currency (code, name, minor_units) VALUES
  ('EUR', 'Euro', 2),
  ('USD', 'US Dollar', 2),
  ('JPY', 'Yen', 0)
ON CONFLICT (code) DO NOTHING;
COMMIT;
