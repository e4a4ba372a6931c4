-- Hydrate entrypoint of the example project: `database hydrate` runs this file as a psql
-- script over one connection, after the hectic bundle. Files are pulled in with \ir
-- (relative to this file).
\set ON_ERROR_STOP on
\echo hydrating the example shop schema

CREATE SCHEMA IF NOT EXISTS shop;

\ir tables/currency.sql
\ir tables/customer.sql
\ir tables/product.sql
\ir tables/orders.sql
\ir functions/order_total.sql
\ir functions/payment_gateway.sql

\if :{?USE_MOCK}
  \echo mock mode: payments are stubbed
  \ir functions/payment_gateway_mock.sql
\endif
