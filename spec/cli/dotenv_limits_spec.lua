-- Limits of dotenv input (issue 20): values that expand each other exponentially stop at the
-- expansion limit with an error at file:line:col (exit 3) instead of eating the memory, and a
-- key hectic.secret cannot store is refused at its line before anything is sent. (Time and
-- peak memory of these cases: spec/cli/hostile_spec.lua.)
local t = require "testutil"
local d = require "dbproject"

-- 40 values, each twice the one before: 64 bytes · 2^40 if nothing stopped it
local function bomb()
  local lines = { "# db-tool: expand", "A=" .. string.rep("x", 64) }
  for i = 1, 40 do
    local prev = i == 1 and "A" or ("V" .. (i - 1))
    lines[#lines + 1] = string.format("V%d=${%s}${%s}", i, prev, prev)
  end
  return table.concat(lines, "\n") .. "\n"
end

local function no_bundle(url)
  return d.value(url, "SELECT to_regnamespace('hectic') IS NULL")
end

describe("dotenv limits", function()
  local dir

  setup(function()
    dir = d.project({ ["db/src/entrypoint.sql"] = "SELECT 1;\n", [".env.bomb"] = bomb(),
      [".env.bigkey"] = "OK=1\n" .. string.rep("K", 100 * 1024) .. "=v\n",
      [".env.maxkey"] = string.rep("M", 1024) .. "=kept\n" }, "dotenv")
  end)

  it("stops values that expand each other at 16 MiB, at file:line:col, exit 3, nothing applied", function()
    local url = t.fresh_db("bomb")
    local r = d.database(dir, { "hydrate" }, { PGURL = url, HECTIC_DOTENV_FILE = dir .. "/.env.bomb" },
      { timeout = 10 })
    assert.are.equal(3, r.code, r.stderr)
    -- 64 bytes doubling per line: all expansions together pass 16 MiB at V18's first ${V17}
    assert.matches(dir .. "/.env.bomb:20:5: invalid dotenv: expanding V17 in the value of V18 goes beyond "
      .. "16777216 bytes (16 MiB)", r.stderr, 1, true)
    assert.matches("hint: values that expand each other over and over", r.stderr, 1, true)
    assert.is_true(no_bundle(url))
    r = d.database(dir, { "secrets", "load", "-u", url, "-f", dir .. "/.env.bomb" }, {}, { timeout = 10 })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches(".env.bomb:20:5:", r.stderr, 1, true)
  end)

  it("refuses a key hectic.secret cannot store, at its line, before connecting", function()
    local url = t.fresh_db("bigkey")
    local r = d.database(dir, { "hydrate" }, { PGURL = url, HECTIC_DOTENV_FILE = dir .. "/.env.bigkey" })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches(dir .. "/.env.bigkey:2: the key " .. string.rep("K", 60) .. "… is 102400 bytes long; "
      .. "hectic.secret takes keys of at most 1024 bytes", r.stderr, 1, true)
    assert.is_true(#r.stderr < 2000, "the whole key was printed")
    assert.is_true(no_bundle(url))
    r = d.database(dir, { "secrets", "load", "-f", dir .. "/.env.bigkey" }, { PGURL = url })
    assert.are.equal(3, r.code, r.stderr)
    assert.matches(".env.bigkey:2: the key", r.stderr, 1, true)
    assert.is_true(no_bundle(url))
    -- the longest key allowed is stored
    r = d.database(dir, { "hydrate" }, { PGURL = url, HECTIC_DOTENV_FILE = dir .. "/.env.maxkey" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("kept", d.value(url, "SELECT value FROM hectic.secret WHERE length(key) = 1024"))
  end)

  it("checks the key length on the Lua API too (bundle.load_secrets), before sending", function()
    local bundle = require "dbtool.bundle"
    local ok, e = pcall(bundle.secrets_json, { [string.rep("k", 1025)] = "v" })
    assert.is_false(ok)
    assert.matches("the key is 1025 bytes long; hectic.secret takes keys of at most 1024 bytes",
      e.msg, 1, true)
    assert.is_true(#e.msg < 200)
  end)
end)
