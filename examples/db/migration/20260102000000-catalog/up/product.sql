CREATE TABLE shop.product (
  sku text PRIMARY KEY,
  title text NOT NULL,
  price_minor bigint NOT NULL CHECK (price_minor >= 0),
  currency text NOT NULL REFERENCES shop.currency (code)
) INHERITS (hectic.created_at, hectic.updated_at);
