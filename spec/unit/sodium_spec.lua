local na = require "dbtool.core.sodium"
local testutil = require "testutil"

-- Flip one bit of byte i (1-based) of s.
local function flip(s, i)
  return s:sub(1, i - 1) .. string.char(s:byte(i) ~ 1) .. s:sub(i + 1)
end

local ALL_BYTES = {}
for i = 0, 255 do ALL_BYTES[#ALL_BYTES + 1] = string.char(i) end
ALL_BYTES = table.concat(ALL_BYTES)

describe("dbtool.core.sodium", function()
  it("reports the library version", function()
    assert.matches("^1%.0%.%d+$", na.version)
  end)

  describe("sha256", function()
    -- FIPS 180-2 test vectors
    local EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    local ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    local MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

    it("hashes the standard test vectors", function()
      assert.are.equal(EMPTY, na.sha256(""))
      assert.are.equal(ABC, na.sha256("abc"))
      assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        na.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
      assert.are.equal(MILLION_A, na.sha256(string.rep("a", 1000000)))
    end)

    it("streams: uneven chunks give the one-shot hash", function()
      local h = na.sha256_init()
      local total, sizes, i = 1000000, { 1, 63, 64, 65, 4096, 65537, 7 }, 0
      local done = 0
      while done < total do
        i = i % #sizes + 1
        local n = math.min(sizes[i], total - done)
        assert.are.equal(h, h:update(string.rep("a", n)))    -- chainable
        done = done + n
      end
      assert.are.equal(MILLION_A, h:final())
      assert.are.equal(EMPTY, na.sha256_init():final("hex"))
      assert.are.equal(ABC, na.sha256_init():update("a"):update(""):update("bc"):final())
    end)

    it("gives the raw 32 bytes on request", function()
      local raw = na.sha256_init():update("abc"):final("raw")
      assert.are.equal(32, #raw)
      assert.are.equal(ABC, na.to_hex(raw))
    end)

    it("refuses to reuse a finalized hash and unknown formats", function()
      local h = na.sha256_init():update("x")
      assert.has_error(function() h:final("base32") end)
      h:final()
      assert.has_error(function() h:update("y") end, "sha256: hash already finalized")
      assert.has_error(function() h:final() end, "sha256: hash already finalized")
    end)

    it("hashes files like sha256sum, including sizes around the 64 KiB chunk", function()
      local dir = testutil.tmpdir("sodium")
      for _, size in ipairs { 0, 1, 65536, 65537, 3 * 65536 - 1, 1048576 + 13 } do
        local path = testutil.write(dir .. "/f" .. size, na.random(size))
        local res = testutil.run { argv = { "sha256sum", path } }
        assert.are.equal(0, res.code, res.stderr)
        local expected = res.stdout:match("^(%x+)")
        assert.are.equal(expected, na.sha256_file(path))
        assert.are.equal(expected, na.sha256(testutil.read(path)))
      end
    end)

    it("returns nil, message, errno when a file cannot be read", function()
      local dir = testutil.tmpdir("sodium")
      local h, msg, errno = na.sha256_file(dir .. "/missing")
      assert.is_nil(h)
      assert.are.equal(dir .. "/missing: No such file or directory", msg)
      assert.are.equal(2, errno)                              -- ENOENT
      h, msg, errno = na.sha256_file(dir)
      assert.is_nil(h)
      assert.are.equal(dir .. ": Is a directory", msg)
      assert.are.equal(21, errno)                             -- EISDIR
      assert.has_error(function() na.sha256_file(dir .. "/x\0y") end)
    end)
  end)

  describe("encodings", function()
    it("round-trips hex and accepts both cases", function()
      assert.are.equal("", na.to_hex(""))
      assert.are.equal("00ff10", na.to_hex("\0\255\16"))
      assert.are.equal(ALL_BYTES, na.from_hex(na.to_hex(ALL_BYTES)))
      assert.are.equal("\171\205", na.from_hex("ABcd"))
      assert.are.equal("", na.from_hex(""))
    end)

    it("rejects bad hex with a message", function()
      for _, bad in ipairs { "abc", "0g", " 00", "00 ", "0x00", "zz" } do
        local v, msg = na.from_hex(bad)
        assert.is_nil(v, bad)
        assert.matches("^invalid hex string", msg)
      end
    end)

    it("encodes base64 (RFC 4648 vectors) and round-trips", function()
      local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
        fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
      for plain, enc in pairs(vectors) do
        assert.are.equal(enc, na.to_base64(plain))
        assert.are.equal(plain, na.from_base64(enc))
      end
      assert.are.equal("+/8=", na.to_base64("\251\255"))     -- original alphabet
      assert.are.equal(ALL_BYTES, na.from_base64(na.to_base64(ALL_BYTES)))
      local r = na.random(1000)
      assert.are.equal(r, na.from_base64(na.to_base64(r)))
    end)

    it("rejects bad base64 with a message", function()
      for _, bad in ipairs { "Zg", "Zm9", "Zm9v!", "Zm9v\n", "-_8=", "Zg===", "Z===" } do
        local v, msg = na.from_base64(bad)
        assert.is_nil(v, bad)
        assert.matches("^invalid base64 string", msg)
      end
    end)
  end)

  describe("random and compare", function()
    it("returns the requested number of random bytes", function()
      assert.are.equal("", na.random(0))
      local a, b = na.random(32), na.random(32)
      assert.are.equal(32, #a)
      assert.are_not.equal(a, b)
      assert.are.equal(100000, #na.random(100000))
      assert.has_error(function() na.random(-1) end)
    end)

    it("compares in constant time, lengths must match", function()
      assert.is_true(na.compare("", ""))
      assert.is_true(na.compare("secret", "secret"))
      assert.is_false(na.compare("secret", "secreT"))
      assert.is_false(na.compare("secret", "secret2"))
      assert.is_false(na.compare("a\0", "a"))
    end)
  end)

  describe("sealed boxes", function()
    it("seals and opens", function()
      local pk, sk = na.box_keypair()
      assert.are.equal(32, #pk)
      assert.are.equal(na.BOX_PUBLICKEYBYTES, #pk)
      assert.are.equal("box", sk:kind())
      assert.are.equal(pk, na.box_public_key(sk))
      for _, msg in ipairs { "", "hello", ALL_BYTES, string.rep("x", 200000) } do
        local ct = na.seal(msg, pk)
        assert.are.equal(#msg + na.SEALBYTES, #ct)
        assert.are.equal(#msg + 48, #ct)
        assert.are.equal(msg, na.seal_open(ct, pk, sk))
      end
      assert.are_not.equal(na.seal("same", pk), na.seal("same", pk))   -- ephemeral sender key
    end)

    it("fails cleanly with the wrong key pair", function()
      local pk = na.box_keypair()
      local pk2, sk2 = na.box_keypair()
      local ct = na.seal("for pk only", pk)
      local plain, msg = na.seal_open(ct, pk2, sk2)
      assert.is_nil(plain)
      assert.are.equal("decryption failed", msg)
    end)

    it("detects tampering and truncation", function()
      local pk, sk = na.box_keypair()
      local ct = na.seal("attack at dawn", pk)
      for _, i in ipairs { 1, 20, 33, 40, #ct } do
        local plain, msg = na.seal_open(flip(ct, i), pk, sk)
        assert.is_nil(plain, "byte " .. i)
        assert.are.equal("decryption failed", msg)
      end
      assert.is_nil((na.seal_open(ct:sub(1, -2), pk, sk)))
      assert.is_nil((na.seal_open(ct:sub(1, 47), pk, sk)))
      assert.is_nil((na.seal_open("", pk, sk)))
      assert.is_nil((na.seal_open(ct .. "x", pk, sk)))
    end)

    it("rejects malformed public keys and keys of the wrong kind", function()
      local pk, sk = na.box_keypair()
      assert.error_matches(function() na.seal("m", "short") end,
        "bad argument #2 to '[%w%.]*seal' %(public key must be 32 bytes, got 5%)")
      assert.has_error(function() na.seal_open(na.seal("m", pk), pk:sub(2), sk) end)
      local k = na.secretbox_keygen()
      assert.error_matches(function() na.seal_open(na.seal("m", pk), pk, k) end,
        "bad argument #3 to '[%w%.]*seal_open' %(box key expected, got a secretbox key%)")
      assert.has_error(function() na.box_public_key("raw bytes") end)
    end)
  end)

  describe("secretbox", function()
    it("encrypts with a fresh nonce and decrypts", function()
      local k = na.secretbox_keygen()
      assert.are.equal("secretbox", k:kind())
      for _, msg in ipairs { "", "password=hunter2", ALL_BYTES, string.rep("y", 300000) } do
        local ct = na.secretbox(msg, k)
        assert.are.equal(#msg + na.SECRETBOX_NONCEBYTES + na.SECRETBOX_MACBYTES, #ct)
        assert.are.equal(#msg + 40, #ct)
        assert.are.equal(msg, na.secretbox_open(ct, k))
      end
      local a, b = na.secretbox("same", k), na.secretbox("same", k)
      assert.are_not.equal(a:sub(1, 24), b:sub(1, 24))
    end)

    it("fails cleanly with the wrong key, tampering or truncation", function()
      local k, other = na.secretbox_keygen(), na.secretbox_keygen()
      local ct = na.secretbox("top secret", k)
      local plain, msg = na.secretbox_open(ct, other)
      assert.is_nil(plain)
      assert.are.equal("decryption failed", msg)
      for _, i in ipairs { 1, 24, 25, 40, 41, #ct } do
        plain, msg = na.secretbox_open(flip(ct, i), k)
        assert.is_nil(plain, "byte " .. i)
        assert.are.equal("decryption failed", msg)
      end
      assert.is_nil((na.secretbox_open(ct:sub(1, 39), k)))
      assert.is_nil((na.secretbox_open("", k)))
      assert.has_error(function() na.secretbox("m", "a raw string is not a key") end)
    end)
  end)

  describe("keys", function()
    it("exports and imports secretbox keys", function()
      local k = na.secretbox_keygen()
      local raw = k:export()
      assert.are.equal(na.SECRETBOX_KEYBYTES, #raw)
      local ct = na.secretbox("payload", k)
      local k2 = assert(na.key(raw, "secretbox"))
      assert.are.equal("secretbox", k2:kind())
      assert.are.equal("payload", na.secretbox_open(ct, k2))
      assert.are.equal(raw, k2:export())
    end)

    it("exports and imports box secret keys", function()
      local pk, sk = na.box_keypair()
      local sk2 = assert(na.key(sk:export(), "box"))
      assert.are.equal(pk, na.box_public_key(sk2))
      assert.are.equal("sealed", na.seal_open(na.seal("sealed", pk), pk, sk2))
    end)

    it("rejects key material of the wrong size and unknown kinds", function()
      local k, msg = na.key("too short", "secretbox")
      assert.is_nil(k)
      assert.are.equal("invalid secretbox key: expected 32 bytes, got 9", msg)
      k, msg = na.key(string.rep("k", 33), "box")
      assert.is_nil(k)
      assert.are.equal("invalid box key: expected 32 bytes, got 33", msg)
      assert.has_error(function() na.key(string.rep("k", 32), "aes") end)
      assert.has_error(function() na.key(string.rep("k", 32)) end)
    end)

    it("never shows key bytes and protects the metatable", function()
      local raw = string.rep("S", 32)
      local k = assert(na.key(raw, "secretbox"))
      assert.are.equal("sodium secretbox key", tostring(k))
      assert.is_nil(tostring(k):find(raw, 1, true))
      assert.are.equal("protected", getmetatable(k))
    end)

    it("wipes keys idempotently on close, <close> and collection", function()
      local k = na.secretbox_keygen()
      k:close()
      k:close()
      assert.are.equal("sodium secretbox key (wiped)", tostring(k))
      assert.has_error(function() k:export() end, "attempt to use a wiped key")
      assert.has_error(function() k:kind() end, "attempt to use a wiped key")
      assert.has_error(function() na.secretbox("m", k) end, "attempt to use a wiped key")

      local escaped
      do
        local scoped <close> = na.secretbox_keygen()
        escaped = scoped
        assert.are.equal(32, #scoped:export())
      end
      assert.has_error(function() escaped:export() end, "attempt to use a wiped key")

      for _ = 1, 200 do na.box_keypair() end
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
