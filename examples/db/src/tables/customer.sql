CREATE TABLE IF NOT EXISTS shop.customer (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL
) INHERITS (hectic.created_at, hectic.updated_at);

CREATE INDEX IF NOT EXISTS customer_name_idx ON shop.customer (name);
