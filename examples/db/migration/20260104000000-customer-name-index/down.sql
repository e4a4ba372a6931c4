-- db-tool: no-transaction
DROP INDEX CONCURRENTLY IF EXISTS shop.customer_name_idx;
