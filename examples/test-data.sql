-- Test data for local development (the format pull_staging writes: pg_dump output).
-- Applied by `database patch` / `database deploy`.

COPY shop.customer (id, email, name, created_at, updated_at) FROM stdin;
1	ada@example.com	Ada Lovelace	2026-01-05 10:00:00+00	2026-01-05 10:00:00+00
2	grace@example.com	Grace Hopper	2026-01-06 11:30:00+00	2026-01-06 11:30:00+00
3	edsger@example.com	Edsger W. Dijkstra	2026-01-07 09:15:00+00	2026-01-07 09:15:00+00
\.

COPY shop.product (sku, title, price_minor, currency, created_at, updated_at) FROM stdin;
BOOK-1	Notes on the Analytical Engine	2500	EUR	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00
MUG-7	"Goto considered harmful" mug	1200	USD	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00
TEA-3	Sencha, 100 g	900	JPY	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00
\.

INSERT INTO shop.orders (id, customer_id, placed_at) VALUES (1, 1, '2026-02-01 12:00:00+00');
INSERT INTO shop.orders (id, customer_id, placed_at) VALUES (2, 2, '2026-02-02 12:00:00+00');
INSERT INTO shop.order_line (order_id, sku, quantity) VALUES (1, 'BOOK-1', 1), (1, 'MUG-7', 2), (2, 'TEA-3', 5);

-- Reset sequences to match imported data
SELECT pg_catalog.setval(pg_get_serial_sequence('shop.customer', 'id'), (SELECT max(id) FROM shop.customer));
SELECT pg_catalog.setval(pg_get_serial_sequence('shop.orders', 'id'), (SELECT max(id) FROM shop.orders));
