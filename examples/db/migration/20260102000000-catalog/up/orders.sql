CREATE TABLE shop.orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customer (id),
  placed_at timestamptz NOT NULL DEFAULT now()
) INHERITS (hectic.created_at);

CREATE TABLE shop.order_line (
  order_id bigint NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
  sku text NOT NULL REFERENCES shop.product (sku),
  quantity int NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, sku)
) INHERITS (hectic.created_at);
