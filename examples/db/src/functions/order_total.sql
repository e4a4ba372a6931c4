-- Total of an order in minor units; a plain SQL function (dollar-quoted body).
CREATE OR REPLACE FUNCTION shop.order_total(p_order bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(l.quantity * p.price_minor), 0)
  FROM shop.order_line l JOIN shop.product p USING (sku)
  WHERE l.order_id = p_order
$$;
