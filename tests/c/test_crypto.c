/*
 * crypto: sealed boxes open only with their key and only untouched, AEAD
 * ciphertexts open only with their key and their associated data, hashes
 * are deterministic and keyed hashes differ, the decoders refuse anything
 * that is not exactly their encoding — through the C mechanism and through
 * prisn.core.crypto in the booted state.
 */
#include <errno.h>
#include <lauxlib.h>
#include <sodium.h>

#include "boot.h"
#include "check.h"
#include "crypto.h"

/* ---- mechanism ------------------------------------------------------------ */

static void test_seal_open_round_trip(void) {
    CHECK_INT(prisn_crypto_init(), 0);
    CHECK_INT(prisn_crypto_init(), 0);
    uint8_t key[PRISN_CRYPTO_KEY_BYTES], other[PRISN_CRYPTO_KEY_BYTES];
    crypto_secretbox_keygen(key);
    crypto_secretbox_keygen(other);
    const char *msg = "database password: hunter2";
    size_t len = strlen(msg);
    uint8_t sealed[128], again[128], plain[128];
    CHECK_INT(prisn_crypto_sealed_size(len), len + 40);
    CHECK_INT(prisn_crypto_seal(sealed, (const uint8_t *)msg, len, key), 0);
    CHECK_INT(prisn_crypto_seal(again, (const uint8_t *)msg, len, key), 0);
    CHECK(memcmp(sealed, again, len + 40) != 0); /* fresh nonce each time */
    CHECK_INT(prisn_crypto_open(plain, sealed, len + 40, key), 0);
    CHECK(memcmp(plain, msg, len) == 0);

    CHECK_INT(prisn_crypto_open(plain, sealed, len + 40, other), -EBADMSG);
    sealed[30] ^= 1;
    CHECK_INT(prisn_crypto_open(plain, sealed, len + 40, key), -EBADMSG);
    sealed[30] ^= 1;
    sealed[2] ^= 0x80; /* the nonce is authenticated too */
    CHECK_INT(prisn_crypto_open(plain, sealed, len + 40, key), -EBADMSG);
    CHECK_INT(prisn_crypto_open(plain, sealed, 39, key), -EBADMSG);

    CHECK_INT(prisn_crypto_seal(sealed, (const uint8_t *)"", 0, key), 0);
    CHECK_INT(prisn_crypto_open(plain, sealed, 40, key), 0);
}

static void test_aead_round_trip(void) {
    CHECK_INT(prisn_crypto_init(), 0);
    uint8_t key[PRISN_CRYPTO_KEY_BYTES], other[PRISN_CRYPTO_KEY_BYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    crypto_aead_xchacha20poly1305_ietf_keygen(other);
    const char *msg = "{\"PASSWORD\":\"hunter2\"}";
    const uint8_t ad[] = "prisn-secret\0default\0db";
    const uint8_t moved[] = "prisn-secret\0default\0dc";
    size_t len = strlen(msg), ad_len = sizeof ad - 1, n = len + 40;
    uint8_t sealed[128], again[128], plain[128];
    CHECK_INT(prisn_crypto_aead_sealed_size(len), n);
    CHECK_INT(prisn_crypto_aead_encrypt(sealed, (const uint8_t *)msg, len, ad, ad_len, key), 0);
    CHECK_INT(prisn_crypto_aead_encrypt(again, (const uint8_t *)msg, len, ad, ad_len, key), 0);
    CHECK(memcmp(sealed, again, PRISN_CRYPTO_NONCE_BYTES) != 0); /* fresh nonce each time */
    CHECK(memcmp(sealed, again, n) != 0);
    memset(plain, 0, sizeof plain);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, ad, ad_len, key), 0);
    CHECK(memcmp(plain, msg, len) == 0);

    /* Another key, other associated data, none at all: all refused, out wiped. */
    memset(plain, 0xaa, sizeof plain);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, ad, ad_len, other), -EBADMSG);
    CHECK(plain[0] == 0 && plain[len - 1] == 0);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, moved, ad_len, key), -EBADMSG);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, NULL, 0, key), -EBADMSG);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, ad, ad_len - 1, key), -EBADMSG);

    /* Any flipped bit (nonce, ciphertext or tag) and truncation are refused. */
    for (size_t i = 0; i < n; i += 7) {
        sealed[i] ^= 0x10;
        CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, ad, ad_len, key), -EBADMSG);
        sealed[i] ^= 0x10;
    }
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n - 1, ad, ad_len, key), -EBADMSG);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, 39, ad, ad_len, key), -EBADMSG);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, 0, ad, ad_len, key), -EBADMSG);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, n, ad, ad_len, key), 0);

    /* Empty plaintext and empty associated data work too. */
    CHECK_INT(prisn_crypto_aead_encrypt(sealed, (const uint8_t *)"", 0, NULL, 0, key), 0);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, 40, NULL, 0, key), 0);
    CHECK_INT(prisn_crypto_aead_decrypt(plain, sealed, 40, ad, ad_len, key), -EBADMSG);
}

static void test_hash(void) {
    uint8_t a[32], b[32], keyed[32], key[16] = "0123456789abcdef";
    CHECK_INT(prisn_crypto_hash(a, (const uint8_t *)"abc", 3, NULL, 0), 0);
    CHECK_INT(prisn_crypto_hash(b, (const uint8_t *)"abc", 3, NULL, 99), 0);
    CHECK(memcmp(a, b, 32) == 0);
    /* BLAKE2b-256("abc"), as published with the reference implementation. */
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, a, 32);
    CHECK_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    CHECK_INT(prisn_crypto_hash(keyed, (const uint8_t *)"abc", 3, key, 16), 0);
    CHECK(memcmp(a, keyed, 32) != 0);
    CHECK_INT(prisn_crypto_hash(keyed, (const uint8_t *)"abc", 3, key, 15), -EINVAL);
}

static void test_decoders_are_strict(void) {
    uint8_t out[16];
    size_t n = 99;
    CHECK_INT(prisn_crypto_from_hex(out, sizeof out, "00fFa9", 6, &n), 0);
    CHECK_INT(n, 3);
    CHECK(out[0] == 0x00 && out[1] == 0xff && out[2] == 0xa9);
    CHECK_INT(prisn_crypto_from_hex(out, sizeof out, "abc", 3, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_hex(out, sizeof out, "zz", 2, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_hex(out, sizeof out, "ab:c", 4, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_hex(out, 1, "abcd", 4, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_hex(out, sizeof out, "", 0, &n), 0);
    CHECK_INT(n, 0);

    CHECK_INT(prisn_crypto_from_base64url(out, sizeof out, "_-8", 3, &n), 0);
    CHECK_INT(n, 2);
    CHECK(out[0] == 0xff && out[1] == 0xef);
    CHECK_INT(prisn_crypto_from_base64url(out, sizeof out, "_-8=", 4, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_base64url(out, sizeof out, "/+8", 3, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_base64url(out, sizeof out, "A", 1, &n), -EINVAL);
    CHECK_INT(prisn_crypto_from_base64url(out, sizeof out, "_-9", 3, &n), -EINVAL);
}

/* ---- Lua binding ----------------------------------------------------------- */

#define LUA_CHECK(L, code) lua_check(L, code, __FILE__, __LINE__)

/* Runs code in the booted state; the chunk must return true. */
static void lua_check(lua_State *L, const char *code, const char *file, int line) {
    lua_pushcfunction(L, prisn_boot_traceback);
    int handler = lua_gettop(L);
    if (luaL_loadstring(L, code) != LUA_OK)
        check_fail(file, line, "load: %s", lua_tostring(L, -1));
    else if (lua_pcall(L, 0, 1, handler) != LUA_OK)
        check_fail(file, line, "%s", lua_tostring(L, -1));
    else if (lua_toboolean(L, -1) != 1)
        check_fail(file, line, "chunk returned %s", luaL_tolstring(L, -1, NULL));
    lua_settop(L, handler - 1);
}

static void test_lua_seal_and_open(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L,
              "local c = require('prisn.core.crypto')\n"
              "local key, other = c.secretbox_keygen(), c.secretbox_keygen()\n"
              "assert(#key == 32 and key ~= other)\n"
              "local sealed = c.seal(key, 'secret\\0value')\n"
              "assert(#sealed == 12 + 40)\n"
              "assert(c.open(key, sealed) == 'secret\\0value')\n"
              "assert(c.open(key, c.seal(key, '')) == '')\n"
              "local ok, msg, code = c.open(other, sealed)\n"
              "assert(ok == nil and code == 'EDECRYPT', msg)\n"
              "assert(msg == 'EDECRYPT: sealed data: wrong key, truncated or tampered with', msg)\n"
              "local last = #sealed\n"
              "local tampered = sealed:sub(1, last - 1) .. string.char(sealed:byte(last) ~ 1)\n"
              "assert(select(3, c.open(key, tampered)) == 'EDECRYPT')\n"
              "assert(select(3, c.open(key, sealed:sub(1, 39))) == 'EDECRYPT')\n"
              "assert(select(3, c.open(key, '')) == 'EDECRYPT')\n"
              "local raised, err = pcall(c.seal, 'short', 'x')\n"
              "assert(not raised and err:find('key must be 32 bytes'), err)\n"
              "raised, err = pcall(c.open, key .. 'x', sealed)\n"
              "assert(not raised and err:find('key must be 32 bytes'), err)\n"
              "return true");
    prisn_boot_close_state(L);
}

static void test_lua_aead(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L,
              "local c = require('prisn.core.crypto')\n"
              "local key, other = c.aead_keygen(), c.aead_keygen()\n"
              "assert(#key == 32 and key ~= other)\n"
              "local ad = 'prisn-secret\\0ns\\0name'\n"
              "local sealed = c.aead_encrypt(key, 'secret\\0value', ad)\n"
              "assert(#sealed == 12 + 40)\n"
              "assert(sealed:sub(1, 24) ~= c.aead_encrypt(key, 'secret\\0value', ad):sub(1, 24))\n"
              "assert(c.aead_decrypt(key, sealed, ad) == 'secret\\0value')\n"
              "assert(c.aead_decrypt(key, c.aead_encrypt(key, '')) == '')\n"
              "local ok, msg, code = c.aead_decrypt(key, sealed, ad .. 'x')\n"
              "assert(ok == nil and code == 'EDECRYPT', msg)\n"
              "assert(msg == 'EDECRYPT: sealed data: wrong key or associated data, truncated or "
              "tampered with', msg)\n"
              "assert(select(3, c.aead_decrypt(other, sealed, ad)) == 'EDECRYPT')\n"
              "assert(select(3, c.aead_decrypt(key, sealed)) == 'EDECRYPT')\n"
              "assert(select(3, c.aead_decrypt(key, sealed:sub(1, 39), ad)) == 'EDECRYPT')\n"
              "local raised, err = pcall(c.aead_encrypt, 'short', 'x')\n"
              "assert(not raised and err:find('key must be 32 bytes'), err)\n"
              "raised, err = pcall(c.aead_decrypt, key .. 'x', sealed, ad)\n"
              "assert(not raised and err:find('key must be 32 bytes'), err)\n"
              "return true");
    prisn_boot_close_state(L);
}

static void test_lua_hash_and_equal(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L, "local c = require('prisn.core.crypto')\n"
                 "local h = c.hash('abc')\n"
                 "assert(#h == 32 and h == c.hash('abc'))\n"
                 "assert(c.to_hex(h) == "
                 "'bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319')\n"
                 "local k = c.hash('abc', ('k'):rep(16))\n"
                 "assert(#k == 32 and k ~= h and k == c.hash('abc', ('k'):rep(16)))\n"
                 "assert(c.hash('abc', ('k'):rep(64)) ~= k)\n"
                 "assert(not pcall(c.hash, 'abc', ('k'):rep(15)))\n"
                 "assert(not pcall(c.hash, 'abc', ('k'):rep(65)))\n"
                 "assert(c.equal(h, c.hash('abc')) == true)\n"
                 "assert(c.equal(h, c.hash('abd')) == false)\n"
                 "assert(c.equal('abc', 'abcd') == false and c.equal('', '') == true)\n"
                 "return true");
    prisn_boot_close_state(L);
}

static void test_lua_encodings_and_random(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L, "local c = require('prisn.core.crypto')\n"
                 "assert(c.version():match('^%d+%.%d+%.%d+$'))\n"
                 "for _, s in ipairs({'', '\\0', 'a', 'ab', 'abc', '\\255\\254\\253\\252',"
                 " c.random_bytes(1000)}) do\n"
                 "  assert(c.from_hex(c.to_hex(s)) == s)\n"
                 "  assert(c.from_base64url(c.to_base64url(s)) == s)\n"
                 "end\n"
                 "assert(c.to_hex('\\0\\255') == '00ff' and c.from_hex('00FF') == '\\0\\255')\n"
                 "assert(c.to_base64url('\\255\\239') == '_-8')\n"
                 "local ok, msg, code = c.from_hex('abc')\n"
                 "assert(ok == nil and code == 'EINVAL', msg)\n"
                 "assert(msg == 'EINVAL: from_hex: not a hexadecimal string', msg)\n"
                 "assert(select(3, c.from_base64url('ab==')) == 'EINVAL')\n"
                 "assert(select(3, c.from_base64url('a+b/')) == 'EINVAL')\n"
                 "local r = c.random_bytes(32)\n"
                 "assert(#r == 32 and r ~= c.random_bytes(32))\n"
                 "assert(#c.random_bytes(65536) == 65536 and #c.random_bytes(1) == 1)\n"
                 "assert(not pcall(c.random_bytes, 0) and not pcall(c.random_bytes, 65537))\n"
                 "return true");
    prisn_boot_close_state(L);
}

int main(void) {
    static const check_case cases[] = {
        {"seal/open round trip, wrong key and tampering", test_seal_open_round_trip},
        {"aead round trip, wrong key or ad, tampering", test_aead_round_trip},
        {"hash", test_hash},
        {"decoders are strict", test_decoders_are_strict},
        {"lua: seal and open", test_lua_seal_and_open},
        {"lua: aead", test_lua_aead},
        {"lua: hash and equal", test_lua_hash_and_equal},
        {"lua: encodings and random bytes", test_lua_encodings_and_random},
        {NULL, NULL},
    };
    return check_main(cases);
}
