-- db-tool: no-transaction
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block: the marker above makes
-- the migrator run this file outside one (and record it afterwards).
CREATE INDEX CONCURRENTLY IF NOT EXISTS customer_name_idx ON shop.customer (name);
