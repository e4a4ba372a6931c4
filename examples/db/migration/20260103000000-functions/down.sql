DROP FUNCTION shop.payment_request(bigint);
DROP FUNCTION shop.order_total(bigint);
