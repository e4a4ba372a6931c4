-- luacheck: no max line length
-- `db-ops`, the original's fourth program (reference/db-tool-upstream.md §1.16 and its tests
-- db-ops-help, -missing-dotenv, -missing-pgurl, -unreadable-dotenv, -secrets-load): the same
-- `secrets load` module as `database secrets load`, with db-ops' command line and messages.
local t = require "testutil"

local function has(text, s)
  assert(text:find(s, 1, true), "expected to find '" .. s .. "' in:\n" .. text)
end

local function ops(argv, env)
  local e = { PGURL = false, DB_URL = false, HECTIC_DOTENV_CONTENT = false, HECTIC_DOTENV_FILE = false,
    LOCAL_DIR = false, ENVIRONMENT = false, DATABASE_DIR = false, HECTIC_LOG = false }
  for k, v in pairs(env or {}) do e[k] = v end
  local a = { "db-ops" }
  for _, v in ipairs(argv) do a[#a + 1] = v end
  return t.run { argv = a, env = e, cwd = t.tmpdir("ops") }
end

describe("db-ops", function()
  it("has the original's help, messages and exit codes", function()
    local r = ops { "--help" }
    assert.are.equal(0, r.code)
    for _, word in ipairs { "secrets", "load", "HECTIC_DOTENV_FILE", "PGURL", "DB_URL" } do has(r.stdout, word) end
    assert.are.equal(r.stdout, ops({}).stdout) -- no subcommand: the help, exit 0
    r = ops { "secrets" }
    assert.are.equal(0, r.code)
    has(r.stdout, "Usage: db-ops secrets load [-u|--url URL] [-f|--dotenv-file PATH]")
    assert.are.equal(r.stdout, ops({ "secrets", "-h" }).stdout)
    for _, c in ipairs {
      { { "--url", "postgresql://example.invalid/test", "secrets", "load" }, 3, "dotenv source is required" },
      { { "secrets", "load", "--dotenv-file", "/etc/hostname" }, 3, "PGURL or DB_URL is required" },
      { { "--url", "postgresql://example.invalid/test", "secrets", "load", "--dotenv-file", "/nonexistent/x" }, 3,
        "dotenv file is not readable" },
      { { "-u" }, 3, "missing value for -u" },
      { { "--bogus", "secrets" }, 9, "argument --bogus does not exist" },
      { { "nope" }, 9, "subcommand nope does not exist" },
      { { "secrets", "unload" }, 9, "secrets subcommand unload does not exist" },
      { { "secrets", "load", "--bogus" }, 9, "secrets load argument --bogus does not exist" },
      { { "secrets", "load", "extra" }, 9, "secrets load subcommand extra does not exist" },
      { { "secrets", "load", "-f" }, 3, "missing value for -f" },
    } do
      r = ops(c[1])
      assert.are.equal(c[2], r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      has(r.stderr, c[3])
      has(r.stderr, "db ops")
    end
  end)

  it("loads the secrets of a dotenv file (db-ops-secrets-load)", function()
    local url = t.fresh_db("ops")
    local dir = t.tmpdir("ops")
    local file = t.write(dir .. "/test.env",
      "TEST_SECRET=hello-world\nQUOTED_SECRET=\"quoted value\"\nDELIMITER_SECRET=before$ps_env$after\n")
    local r = ops({ "secrets", "load", "--dotenv-file", file }, { PGURL = url })
    assert.are.equal(0, r.code, r.stderr)
    has(r.stderr, "db ops secrets load> apply hectic bundle and load secrets")
    local c <close> = t.connect(url)
    local got = {}
    for _, row in ipairs(c:exec("SELECT key, value FROM hectic.secret")) do got[row.key] = row.value end
    assert.are.same({ TEST_SECRET = "hello-world", QUOTED_SECRET = "quoted value",
      DELIMITER_SECRET = "before$ps_env$after" }, got)
    -- db-ops' own -u before the subcommand
    local other = t.fresh_db("ops")
    r = ops({ "-u", other, "secrets", "load", "-f", file })
    assert.are.equal(0, r.code, r.stderr)
    local c2 <close> = t.connect(other)
    assert.are.equal(3, c2:exec("SELECT count(*)::int AS n FROM hectic.secret")[1].n)
  end)
end)
