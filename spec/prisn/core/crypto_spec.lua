-- prisn.core.crypto as Lua code sees it: secret boxes, AEAD, BLAKE2b hashes,
-- constant-time comparison, strict encodings and random bytes.
local crypto = require("prisn.core.crypto")

describe("prisn.core.crypto", function()
  describe("seal and open", function()
    local key = crypto.secretbox_keygen()

    it("round-trips binary data under a fresh nonce", function()
      assert.equal(32, #key)
      local sealed = crypto.seal(key, "s3cret\0bytes")
      assert.equal(24 + 16 + 12, #sealed)
      assert.are_not.equal(sealed, crypto.seal(key, "s3cret\0bytes"))
      assert.equal("s3cret\0bytes", crypto.open(key, sealed))
      assert.equal("", crypto.open(key, crypto.seal(key, "")))
    end)

    it("fails with EDECRYPT under another key", function()
      local ok, msg, code = crypto.open(crypto.secretbox_keygen(), crypto.seal(key, "x"))
      assert.is_nil(ok)
      assert.equal("EDECRYPT", code)
      assert.equal("EDECRYPT: sealed data: wrong key, truncated or tampered with", msg)
    end)

    it("fails with EDECRYPT when tampered with or truncated", function()
      local sealed = crypto.seal(key, "payload")
      for i = 1, #sealed do
        local byte = string.char(sealed:byte(i) ~ 0x01)
        local tampered = sealed:sub(1, i - 1) .. byte .. sealed:sub(i + 1)
        assert.equal("EDECRYPT", select(3, crypto.open(key, tampered)))
      end
      assert.equal("EDECRYPT", select(3, crypto.open(key, sealed:sub(1, -2))))
      assert.equal("EDECRYPT", select(3, crypto.open(key, "")))
    end)

    it("raises on a key of the wrong length", function()
      assert.has_error(function() crypto.seal("short", "x") end, "bad argument #1 to 'seal' (key must be 32 bytes)")
      assert.has_error(function() crypto.open(key .. "!", "x") end, "bad argument #1 to 'open' (key must be 32 bytes)")
    end)
  end)

  describe("aead_encrypt and aead_decrypt", function()
    local key = crypto.aead_keygen()
    local ad = "prisn-secret\0default\0db"

    it("round-trips binary data bound to its associated data", function()
      assert.equal(32, #key)
      assert.are_not.equal(key, crypto.aead_keygen())
      local sealed = crypto.aead_encrypt(key, "s3cret\0bytes", ad)
      assert.equal(24 + 12 + 16, #sealed)
      assert.equal("s3cret\0bytes", crypto.aead_decrypt(key, sealed, ad))
      assert.equal("", crypto.aead_decrypt(key, crypto.aead_encrypt(key, "", ad), ad))
      assert.equal("x", crypto.aead_decrypt(key, crypto.aead_encrypt(key, "x")))
    end)

    it("uses a fresh nonce for every call", function()
      local seen = {}
      for _ = 1, 100 do
        local nonce = crypto.aead_encrypt(key, "same", ad):sub(1, 24)
        assert.is_nil(seen[nonce])
        seen[nonce] = true
      end
    end)

    it("fails with EDECRYPT under other associated data", function()
      local sealed = crypto.aead_encrypt(key, "x", ad)
      local ok, msg, code = crypto.aead_decrypt(key, sealed, "prisn-secret\0default\0dc")
      assert.is_nil(ok)
      assert.equal("EDECRYPT", code)
      assert.equal("EDECRYPT: sealed data: wrong key or associated data, truncated or tampered with", msg)
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, sealed)))
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, sealed, ad .. "\0")))
    end)

    it("fails with EDECRYPT under another key", function()
      local sealed = crypto.aead_encrypt(key, "x", ad)
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(crypto.aead_keygen(), sealed, ad)))
    end)

    it("fails with EDECRYPT when tampered with or truncated", function()
      local sealed = crypto.aead_encrypt(key, "payload", ad)
      for i = 1, #sealed do
        local byte = string.char(sealed:byte(i) ~ 0x01)
        local tampered = sealed:sub(1, i - 1) .. byte .. sealed:sub(i + 1)
        assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, tampered, ad)))
      end
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, sealed:sub(1, -2), ad)))
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, sealed .. "!", ad)))
      assert.equal("EDECRYPT", select(3, crypto.aead_decrypt(key, "", ad)))
    end)

    it("raises on a key of the wrong length", function()
      assert.has_error(function() crypto.aead_encrypt("short", "x", ad) end,
        "bad argument #1 to 'aead_encrypt' (key must be 32 bytes)")
      assert.has_error(function() crypto.aead_decrypt(key .. "!", "x", ad) end,
        "bad argument #1 to 'aead_decrypt' (key must be 32 bytes)")
    end)
  end)

  describe("hash", function()
    it("is BLAKE2b-256 and deterministic", function()
      assert.equal("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319",
        crypto.to_hex(crypto.hash("abc")))
      assert.equal(crypto.hash("abc"), crypto.hash("abc"))
      assert.are_not.equal(crypto.hash("abc"), crypto.hash("abd"))
    end)

    it("differs with a key", function()
      local key = ("k"):rep(32)
      assert.equal(32, #crypto.hash("abc", key))
      assert.are_not.equal(crypto.hash("abc"), crypto.hash("abc", key))
      assert.equal(crypto.hash("abc", key), crypto.hash("abc", key))
      assert.has_error(function() crypto.hash("abc", ("k"):rep(15)) end,
        "bad argument #2 to 'hash' (key must be 16 to 64 bytes)")
      assert.has_error(function() crypto.hash("abc", ("k"):rep(65)) end,
        "bad argument #2 to 'hash' (key must be 16 to 64 bytes)")
    end)
  end)

  it("compares in constant time", function()
    assert.is_true(crypto.equal("token", "token"))
    assert.is_false(crypto.equal("token", "tokem"))
    assert.is_false(crypto.equal("token", "token2"))
    assert.is_true(crypto.equal("", ""))
  end)

  describe("encodings", function()
    it("round-trip hex and base64url", function()
      for _, s in ipairs({ "", "\0", "f", "fo", "foo", "foob", "\255\254\253", crypto.random_bytes(257) }) do
        assert.equal(s, crypto.from_hex(crypto.to_hex(s)))
        assert.equal(s, crypto.from_base64url(crypto.to_base64url(s)))
      end
      assert.equal("00ff10", crypto.to_hex("\0\255\16"))
      assert.equal("\0\255", crypto.from_hex("00FF"))
      assert.equal("Zm9vYg", crypto.to_base64url("foob"))
      assert.equal("_-8", crypto.to_base64url("\255\239"))
    end)

    it("rejects malformed input", function()
      local ok, msg, code = crypto.from_hex("abc")
      assert.is_nil(ok)
      assert.equal("EINVAL", code)
      assert.equal("EINVAL: from_hex: not a hexadecimal string", msg)
      assert.equal("EINVAL", select(3, crypto.from_hex("zz")))
      assert.equal("EINVAL", select(3, crypto.from_hex("00 ff")))
      ok, msg, code = crypto.from_base64url("Zm9vYg==")
      assert.is_nil(ok)
      assert.equal("EINVAL", code)
      assert.equal("EINVAL: from_base64url: not an unpadded base64url string", msg)
      assert.equal("EINVAL", select(3, crypto.from_base64url("a+b/")))
      assert.equal("EINVAL", select(3, crypto.from_base64url("Z")))
    end)
  end)

  describe("random_bytes", function()
    it("returns n fresh bytes", function()
      assert.equal(1, #crypto.random_bytes(1))
      assert.equal(65536, #crypto.random_bytes(65536))
      assert.are_not.equal(crypto.random_bytes(32), crypto.random_bytes(32))
    end)

    it("raises outside 1..65536", function()
      assert.has_error(function() crypto.random_bytes(0) end,
        "bad argument #1 to 'random_bytes' (must be between 1 and 65536)")
      assert.has_error(function() crypto.random_bytes(65537) end,
        "bad argument #1 to 'random_bytes' (must be between 1 and 65536)")
    end)
  end)

  it("reports the libsodium version", function()
    assert.matches("^%d+%.%d+%.%d+$", crypto.version())
  end)
end)
