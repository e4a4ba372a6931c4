-- `database test` runs this file inside BEGIN … ROLLBACK: nothing here is kept.
-- Plain SQL assertions: any error fails the tests (`database test --tap` prints TAP).

INSERT INTO shop.customer (email, name) VALUES ('t@example.com', 'Tess');
INSERT INTO shop.product (sku, title, price_minor, currency) VALUES ('T-1', 'Tee', 1500, 'EUR');
INSERT INTO shop.orders (customer_id)
  SELECT id FROM shop.customer WHERE email = 't@example.com';
INSERT INTO shop.order_line (order_id, sku, quantity)
  VALUES (currval('shop.orders_id_seq'), 'T-1', 3);

DO $$
BEGIN
  ASSERT shop.order_total(currval('shop.orders_id_seq')) = 4500, 'order_total sums the lines';
  ASSERT (SELECT count(*) FROM shop.currency) = 3, 'reference currencies are loaded';
END
$$;

-- immutable reference data cannot change outside a migration
DO $$
BEGIN
  BEGIN
    DELETE FROM shop.currency WHERE code = 'JPY';
    RAISE EXCEPTION 'currency should be immutable';
  EXCEPTION WHEN others THEN
    IF SQLERRM NOT LIKE '%inherits hectic.immutable%' THEN RAISE; END IF;
  END;
END
$$;
