-- Total of an order in minor units; a plain SQL function (dollar-quoted body).
CREATE OR REPLACE FUNCTION shop.order_total(p_order bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(l.quantity * p.price_minor), 0)
  FROM shop.order_line l JOIN shop.product p USING (sku)
  WHERE l.order_id = p_order
$$;
-- Calls the payment provider with the API key kept in hectic.secret (loaded by hydrate from
-- .env.$ENVIRONMENT, encrypted or not). Here it only builds the request it would send.
CREATE OR REPLACE FUNCTION shop.payment_request(p_order bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_key text := hectic.get_secret('PAYMENT_API_KEY');
BEGIN
  IF v_key IS NULL THEN
    RAISE EXCEPTION 'PAYMENT_API_KEY is not loaded'
      USING HINT = 'set it in .env.$ENVIRONMENT and run database hydrate';
  END IF;
  RETURN jsonb_build_object(
    'endpoint', coalesce(hectic.get_secret('PAYMENT_ENDPOINT'), 'https://payments.invalid/v1'),
    'order', p_order,
    'amount', shop.order_total(p_order),
    'authorized', length(v_key) > 0);
END
$$;
