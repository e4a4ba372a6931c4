-- shop.payment_request reads its API key with hectic.get_secret: the secrets come from
-- .env.development when the template is hydrated with ENVIRONMENT=development, and mock
-- mode (`hydrate --mock`) replaces the function so that no key is needed.
local testing = require "dbtool.testing"

describe("payments with the development secrets", function()
  local db = testing.suite { patch = true, env = { ENVIRONMENT = "development" } }

  it("builds the request with the key and endpoint from .env.development", function()
    db:assert_rows([[SELECT r->>'endpoint' AS endpoint, (r->>'amount')::int AS amount,
                            (r->>'authorized')::boolean AS authorized
                     FROM shop.payment_request(1) AS r]], {
      { endpoint = "https://sandbox.payments.invalid/v1", amount = 4900, authorized = true },
    })
  end)

  it("loaded exactly the two secrets of the file into hectic.secret", function()
    db:assert_rows("SELECT key FROM hectic.secret ORDER BY key",
      { { "PAYMENT_API_KEY" }, { "PAYMENT_ENDPOINT" } })
    assert.are.equal("dev-key-not-a-real-secret", db:value("SELECT hectic.get_secret('PAYMENT_API_KEY')"))
  end)
end)

describe("payments without secrets", function()
  local db = testing.suite { patch = true, env = { ENVIRONMENT = false, HECTIC_DOTENV_FILE = false } }

  it("refuses to build a request, with a hint", function()
    local err = db:assert_error("PAYMENT_API_KEY is not loaded", "SELECT shop.payment_request(1)")
    assert.matches("database hydrate", err.hint)
  end)
end)

describe("payments in mock mode", function()
  local db = testing.suite { patch = true, mock = true, env = { ENVIRONMENT = false } }

  it("stubs the provider", function()
    assert.are.equal("mock://payments", db:value("SELECT shop.payment_request(2)->>'endpoint'"))
    assert.are.equal(4500, db:value("SELECT (shop.payment_request(2)->>'amount')::int"))
  end)
end)
