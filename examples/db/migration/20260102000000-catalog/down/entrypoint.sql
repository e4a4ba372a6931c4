DROP TABLE shop.order_line;
DROP TABLE shop.orders;
DROP TABLE shop.product;
