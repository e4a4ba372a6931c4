-- The migrations (db/migration) build the same shop as the hydrate sources: a template
-- deployed with `deploy = "migrations"`, then specs of what they leave behind.
local testing = require "dbtool.testing"

describe("the migrations", function()
  local db = testing.suite { deploy = "migrations" }

  it("are all recorded in hectic.migration, in order", function()
    db:assert_rows("SELECT name FROM hectic.migration ORDER BY name", {
      { "20260101000000-base-schema" },
      { "20260102000000-catalog" },
      { "20260103000000-functions" },
      { "20260104000000-customer-name-index" },
    })
  end)

  it("create the index outside a transaction (CREATE INDEX CONCURRENTLY)", function()
    db:assert_rows([[SELECT indexrelid::regclass::text AS name, indisvalid AS valid
                     FROM pg_index WHERE indexrelid = 'shop.customer_name_idx'::regclass]], {
      { name = "shop.customer_name_idx", valid = true },
    })
  end)

  it("load the reference currencies inside the migration (immutable table)", function()
    assert.are.equal(3, db:count("shop.currency"))
    db:assert_error("inherits hectic.immutable",
      "INSERT INTO shop.currency (code, name) VALUES ('GBP', 'Pound')")
  end)

  it("give a working schema: an order totals its lines", function()
    db:sql([[
      INSERT INTO shop.customer (email, name) VALUES ('m@example.com', 'M');
      INSERT INTO shop.product (sku, title, price_minor, currency) VALUES ('P', 'p', 250, 'EUR');
      INSERT INTO shop.orders (customer_id) SELECT id FROM shop.customer;
      INSERT INTO shop.order_line (order_id, sku, quantity) SELECT id, 'P', 4 FROM shop.orders;
    ]])
    assert.are.equal(1000, db:value("SELECT shop.order_total(id) FROM shop.orders"))
  end)
end)
