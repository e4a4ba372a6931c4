-- shop.currency inherits hectic.immutable: its rows change only inside a migration
-- (hectic.migration_mode), and every table inherits hectic.created_at.
local testing = require "dbtool.testing"

describe("reference data", function()
  local db = testing.suite {}

  it("has the three currencies", function()
    db:assert_rows("SELECT code, minor_units FROM shop.currency ORDER BY code", {
      { "EUR", 2 }, { "JPY", 0 }, { "USD", 2 },
    })
  end)

  it("cannot change outside a migration", function()
    db:assert_error("inherits hectic.immutable", "DELETE FROM shop.currency WHERE code = 'JPY'")
    db:assert_error("inherits hectic.immutable", "UPDATE shop.currency SET minor_units = 3")
    assert.are.equal(3, db:count("shop.currency"))
  end)

  it("can change inside a migration's transaction", function()
    db:exec([[BEGIN;
      SET LOCAL hectic.migration_mode = 'on';
      INSERT INTO shop.currency (code, name) VALUES ('CHF', 'Swiss Franc');
      COMMIT]])
    assert.are.equal(4, db:count("shop.currency"))
  end)

  it("refuses a table that does not inherit hectic.created_at", function()
    db:assert_error("must INHERITS", "CREATE TABLE shop.loose (id int)")
  end)

  it("stamps rows with created_at and updated_at", function()
    db:exec("INSERT INTO shop.customer (email, name) VALUES ('new@example.com', 'New')")
    db:assert_rows("SELECT created_at IS NOT NULL AS c, updated_at >= created_at AS u FROM shop.customer", {
      { c = true, u = true },
    })
  end)
end)
