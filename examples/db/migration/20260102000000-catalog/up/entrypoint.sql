-- Multi-file migration: the entrypoint includes its parts relative to itself.
\ir product.sql
\ir orders.sql
