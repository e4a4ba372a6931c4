-- Mock mode (`database hydrate --mock` / `deploy --mock`): no secret needed.
CREATE OR REPLACE FUNCTION shop.payment_request(p_order bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('endpoint', 'mock://payments', 'order', p_order,
                            'amount', shop.order_total(p_order), 'authorized', true)
$$;
