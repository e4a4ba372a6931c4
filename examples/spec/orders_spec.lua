-- Specs of the example project's own SQL, with dbtool.testing: one cluster for this file,
-- the project hydrated once into a template database, a fresh copy of it for every test.
-- Run: `busted --lua=db-tool spec` in examples/ (or `make check` at the top).
local testing = require "dbtool.testing"

describe("shop orders", function()
  local db = testing.suite { patch = true } -- hydrate db/src, then test-data.sql

  it("totals an order from its lines and product prices", function()
    -- order 1 (test-data.sql): 1 × BOOK-1 at 2500 + 2 × MUG-7 at 1200
    assert.are.equal(4900, db:value("SELECT shop.order_total($1)", 1))
    assert.are.equal(0, db:value("SELECT shop.order_total($1)", 999))
  end)

  it("gives every test its own copy of the template", function()
    db:exec("DELETE FROM shop.order_line")
    assert.are.equal(0, db:count("shop.order_line"))
    assert.are.equal(0, db:value("SELECT shop.order_total(1)"))
  end)

  it("still has the test data after the previous test deleted it", function()
    assert.are.equal(3, db:count("shop.order_line"))
    db:assert_rows("SELECT order_id, sku, quantity FROM shop.order_line ORDER BY order_id, sku", {
      { 1, "BOOK-1", 1 },
      { 1, "MUG-7", 2 },
      { 2, "TEA-3", 5 },
    })
  end)

  it("rejects an order line with a non-positive quantity", function()
    local err = db:assert_error("23514",
      "INSERT INTO shop.order_line (order_id, sku, quantity) VALUES (2, 'BOOK-1', 0)")
    assert.matches("order_line_quantity_check", err.msg)
  end)
end)
