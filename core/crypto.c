/*
 * crypto: libsodium for prisn, as the Lua module prisn.core.crypto.
 *
 * The top half (crypto.h) fixes the primitives: secret boxes are
 * XSalsa20-Poly1305 and AEAD is XChaCha20-Poly1305 (IETF), both with a random
 * 24-byte nonce stored in front of the ciphertext — random nonces of that
 * size never collide in practice, so no nonce state is kept; hashes are
 * 32-byte BLAKE2b, encodings are strict. The bottom half binds
 * them over Lua strings. Temporary buffers that held keys or plaintext are
 * Lua userdata (freed by the collector even when a call raises) and are
 * wiped with sodium_memzero before the call returns; the strings handed back
 * to Lua are Lua's to manage. No key management and no password hashing here.
 */
#include "crypto.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>

#include "binding.h"

_Static_assert(PRISN_CRYPTO_KEY_BYTES == crypto_secretbox_KEYBYTES, "secretbox key size");
_Static_assert(PRISN_CRYPTO_NONCE_BYTES == crypto_secretbox_NONCEBYTES, "secretbox nonce size");
_Static_assert(PRISN_CRYPTO_MAC_BYTES == crypto_secretbox_MACBYTES, "secretbox MAC size");
_Static_assert(PRISN_CRYPTO_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "aead key size");
_Static_assert(PRISN_CRYPTO_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "aead nonce size");
_Static_assert(PRISN_CRYPTO_MAC_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "aead tag size");
_Static_assert(PRISN_CRYPTO_HASH_BYTES == crypto_generichash_BYTES, "generichash size");
_Static_assert(PRISN_CRYPTO_HASH_KEY_MIN == crypto_generichash_KEYBYTES_MIN, "hash key min");
_Static_assert(PRISN_CRYPTO_HASH_KEY_MAX == crypto_generichash_KEYBYTES_MAX, "hash key max");

int prisn_crypto_init(void) {
    return sodium_init() < 0 ? -EIO : 0;
}

size_t prisn_crypto_sealed_size(size_t plaintext_len) {
    return PRISN_CRYPTO_NONCE_BYTES + PRISN_CRYPTO_MAC_BYTES + plaintext_len;
}

int prisn_crypto_seal(uint8_t *out, const uint8_t *plaintext, size_t len,
                      const uint8_t key[PRISN_CRYPTO_KEY_BYTES]) {
    if (len > crypto_secretbox_MESSAGEBYTES_MAX)
        return -EMSGSIZE;
    randombytes_buf(out, PRISN_CRYPTO_NONCE_BYTES);
    crypto_secretbox_easy(out + PRISN_CRYPTO_NONCE_BYTES, plaintext, len, out, key);
    return 0;
}

int prisn_crypto_open(uint8_t *out, const uint8_t *sealed, size_t len,
                      const uint8_t key[PRISN_CRYPTO_KEY_BYTES]) {
    if (len < PRISN_CRYPTO_NONCE_BYTES + PRISN_CRYPTO_MAC_BYTES)
        return -EBADMSG;
    size_t boxed = len - PRISN_CRYPTO_NONCE_BYTES;
    if (crypto_secretbox_open_easy(out, sealed + PRISN_CRYPTO_NONCE_BYTES, boxed, sealed, key) !=
        0) {
        sodium_memzero(out, boxed - PRISN_CRYPTO_MAC_BYTES);
        return -EBADMSG;
    }
    return 0;
}

size_t prisn_crypto_aead_sealed_size(size_t plaintext_len) {
    return PRISN_CRYPTO_NONCE_BYTES + plaintext_len + PRISN_CRYPTO_MAC_BYTES;
}

int prisn_crypto_aead_encrypt(uint8_t *out, const uint8_t *plaintext, size_t len, const uint8_t *ad,
                              size_t ad_len, const uint8_t key[PRISN_CRYPTO_KEY_BYTES]) {
    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
        return -EMSGSIZE;
    randombytes_buf(out, PRISN_CRYPTO_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + PRISN_CRYPTO_NONCE_BYTES, NULL, plaintext, len,
                                               ad_len > 0 ? ad : NULL, ad_len, NULL, out, key);
    return 0;
}

int prisn_crypto_aead_decrypt(uint8_t *out, const uint8_t *sealed, size_t len, const uint8_t *ad,
                              size_t ad_len, const uint8_t key[PRISN_CRYPTO_KEY_BYTES]) {
    if (len < PRISN_CRYPTO_NONCE_BYTES + PRISN_CRYPTO_MAC_BYTES)
        return -EBADMSG;
    size_t boxed = len - PRISN_CRYPTO_NONCE_BYTES;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, NULL, NULL, sealed + PRISN_CRYPTO_NONCE_BYTES, boxed, ad_len > 0 ? ad : NULL,
            ad_len, sealed, key) != 0) {
        sodium_memzero(out, boxed - PRISN_CRYPTO_MAC_BYTES);
        return -EBADMSG;
    }
    return 0;
}

int prisn_crypto_hash(uint8_t out[PRISN_CRYPTO_HASH_BYTES], const uint8_t *data, size_t len,
                      const uint8_t *key, size_t key_len) {
    if (key == NULL)
        key_len = 0;
    else if (key_len < PRISN_CRYPTO_HASH_KEY_MIN || key_len > PRISN_CRYPTO_HASH_KEY_MAX)
        return -EINVAL;
    if (crypto_generichash(out, PRISN_CRYPTO_HASH_BYTES, data, len, key, key_len) != 0)
        return -EINVAL;
    return 0;
}

int prisn_crypto_from_hex(uint8_t *out, size_t out_max, const char *hex, size_t len,
                          size_t *out_len) {
    /* With hex_end NULL, sodium rejects input that does not parse in full. */
    if (len % 2 != 0 || sodium_hex2bin(out, out_max, hex, len, NULL, out_len, NULL) != 0)
        return -EINVAL;
    return 0;
}

int prisn_crypto_from_base64url(uint8_t *out, size_t out_max, const char *b64, size_t len,
                                size_t *out_len) {
    if (sodium_base642bin(out, out_max, b64, len, NULL, out_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -EINVAL;
    return 0;
}

/* ---- Lua binding ------------------------------------------------------- */

/* A scratch buffer owned by the collector, so a raise cannot leak it. */
static uint8_t *scratch(lua_State *L, size_t size) {
    return lua_newuserdatauv(L, size > 0 ? size : 1, 0);
}

/* Replaces the scratch buffer at the top with a string of its first len
 * bytes, wiping the buffer. */
static void push_from_scratch(lua_State *L, uint8_t *buf, size_t size, size_t len) {
    lua_pushlstring(L, (const char *)buf, len);
    sodium_memzero(buf, size > 0 ? size : 1);
    lua_remove(L, -2);
}

static const uint8_t *check_key(lua_State *L, int arg) {
    size_t len;
    const char *key = luaL_checklstring(L, arg, &len);
    luaL_argcheck(L, len == PRISN_CRYPTO_KEY_BYTES, arg, "key must be 32 bytes");
    return (const uint8_t *)key;
}

/* nil, "CODE: message", CODE. */
static int push_failure(lua_State *L, const char *message, const char *code) {
    return prisn_binding_fail(L, code, "%s: %s", code, message);
}

/* crypto.version() -> the libsodium version, e.g. "1.0.18". */
static int l_crypto_version(lua_State *L) {
    lua_pushstring(L, sodium_version_string());
    return 1;
}

/* crypto.random_bytes(n) -> n random bytes. Raises unless 1 <= n <= 65536. */
static int l_crypto_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= (lua_Integer)PRISN_CRYPTO_RANDOM_MAX, 1,
                  "must be between 1 and 65536");
    uint8_t *buf = scratch(L, (size_t)n);
    randombytes_buf(buf, (size_t)n);
    push_from_scratch(L, buf, (size_t)n, (size_t)n);
    return 1;
}

/* crypto.to_hex(s) -> lowercase hexadecimal of s. */
static int l_crypto_to_hex(lua_State *L) {
    size_t len;
    const uint8_t *bin = (const uint8_t *)luaL_checklstring(L, 1, &len);
    size_t size = len * 2 + 1;
    char *hex = (char *)scratch(L, size);
    sodium_bin2hex(hex, size, bin, len);
    push_from_scratch(L, (uint8_t *)hex, size, len * 2);
    return 1;
}

/* crypto.from_hex(s) -> bytes | nil, message, "EINVAL"
 * s must be even-length hexadecimal, either case, nothing else. */
static int l_crypto_from_hex(lua_State *L) {
    size_t len, out_len;
    const char *hex = luaL_checklstring(L, 1, &len);
    uint8_t *buf = scratch(L, len / 2);
    if (prisn_crypto_from_hex(buf, len / 2, hex, len, &out_len) != 0)
        return push_failure(L, "from_hex: not a hexadecimal string", "EINVAL");
    push_from_scratch(L, buf, len / 2, out_len);
    return 1;
}

/* crypto.to_base64url(s) -> URL-safe base64 of s, without padding. */
static int l_crypto_to_base64url(lua_State *L) {
    size_t len;
    const uint8_t *bin = (const uint8_t *)luaL_checklstring(L, 1, &len);
    size_t size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *b64 = (char *)scratch(L, size);
    sodium_bin2base64(b64, size, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    push_from_scratch(L, (uint8_t *)b64, size, size - 1);
    return 1;
}

/* crypto.from_base64url(s) -> bytes | nil, message, "EINVAL"
 * s must be URL-safe base64 without padding, nothing else. */
static int l_crypto_from_base64url(lua_State *L) {
    size_t len, out_len;
    const char *b64 = luaL_checklstring(L, 1, &len);
    size_t size = len / 4 * 3 + 2;
    uint8_t *buf = scratch(L, size);
    if (prisn_crypto_from_base64url(buf, size, b64, len, &out_len) != 0)
        return push_failure(L, "from_base64url: not an unpadded base64url string", "EINVAL");
    push_from_scratch(L, buf, size, out_len);
    return 1;
}

/* crypto.hash(data [, key]) -> 32-byte BLAKE2b digest (binary)
 * key, when given, must be 16 to 64 bytes; raises otherwise. */
static int l_crypto_hash(lua_State *L) {
    size_t len, key_len = 0;
    const uint8_t *data = (const uint8_t *)luaL_checklstring(L, 1, &len);
    const uint8_t *key = (const uint8_t *)luaL_optlstring(L, 2, NULL, &key_len);
    luaL_argcheck(L,
                  key == NULL || (key_len >= PRISN_CRYPTO_HASH_KEY_MIN &&
                                  key_len <= PRISN_CRYPTO_HASH_KEY_MAX),
                  2, "key must be 16 to 64 bytes");
    uint8_t digest[PRISN_CRYPTO_HASH_BYTES];
    prisn_crypto_hash(digest, data, len, key, key_len);
    lua_pushlstring(L, (const char *)digest, sizeof digest);
    sodium_memzero(digest, sizeof digest);
    return 1;
}

/* crypto.equal(a, b) -> boolean, in time independent of the contents;
 * false at once when the lengths differ. */
static int l_crypto_equal(lua_State *L) {
    size_t a_len, b_len;
    const char *a = luaL_checklstring(L, 1, &a_len);
    const char *b = luaL_checklstring(L, 2, &b_len);
    lua_pushboolean(L, a_len == b_len && sodium_memcmp(a, b, a_len) == 0);
    return 1;
}

/* crypto.secretbox_keygen() -> a random 32-byte key. */
static int l_crypto_secretbox_keygen(lua_State *L) {
    uint8_t key[PRISN_CRYPTO_KEY_BYTES];
    crypto_secretbox_keygen(key);
    lua_pushlstring(L, (const char *)key, sizeof key);
    sodium_memzero(key, sizeof key);
    return 1;
}

/* crypto.seal(key, plaintext) -> nonce .. ciphertext (binary)
 * Raises unless key is 32 bytes. */
static int l_crypto_seal(lua_State *L) {
    const uint8_t *key = check_key(L, 1);
    size_t len;
    const uint8_t *plaintext = (const uint8_t *)luaL_checklstring(L, 2, &len);
    size_t size = prisn_crypto_sealed_size(len);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, size);
    if (prisn_crypto_seal(out, plaintext, len, key) != 0)
        return luaL_argerror(L, 2, "too long");
    luaL_pushresultsize(&b, size);
    return 1;
}

/* crypto.open(key, sealed) -> plaintext | nil, message, "EDECRYPT"
 * Fails when sealed is truncated, tampered with or sealed under another key.
 * Raises unless key is 32 bytes. */
static int l_crypto_open(lua_State *L) {
    const uint8_t *key = check_key(L, 1);
    size_t len;
    const uint8_t *sealed = (const uint8_t *)luaL_checklstring(L, 2, &len);
    size_t overhead = PRISN_CRYPTO_NONCE_BYTES + PRISN_CRYPTO_MAC_BYTES;
    size_t size = len > overhead ? len - overhead : 0;
    uint8_t *buf = scratch(L, size);
    if (prisn_crypto_open(buf, sealed, len, key) != 0)
        return push_failure(L, "sealed data: wrong key, truncated or tampered with", "EDECRYPT");
    push_from_scratch(L, buf, size, size);
    return 1;
}

/* crypto.aead_keygen() -> a random 32-byte key for aead_encrypt. */
static int l_crypto_aead_keygen(lua_State *L) {
    uint8_t key[PRISN_CRYPTO_KEY_BYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    lua_pushlstring(L, (const char *)key, sizeof key);
    sodium_memzero(key, sizeof key);
    return 1;
}

/* crypto.aead_encrypt(key, plaintext [, ad]) -> nonce .. ciphertext .. tag
 * XChaCha20-Poly1305 under a fresh random nonce; ad (default "") is
 * authenticated, not stored: aead_decrypt needs the same ad. Raises unless
 * key is 32 bytes. */
static int l_crypto_aead_encrypt(lua_State *L) {
    const uint8_t *key = check_key(L, 1);
    size_t len, ad_len;
    const uint8_t *plaintext = (const uint8_t *)luaL_checklstring(L, 2, &len);
    const uint8_t *ad = (const uint8_t *)luaL_optlstring(L, 3, "", &ad_len);
    size_t size = prisn_crypto_aead_sealed_size(len);
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, size);
    if (prisn_crypto_aead_encrypt(out, plaintext, len, ad, ad_len, key) != 0)
        return luaL_argerror(L, 2, "too long");
    luaL_pushresultsize(&b, size);
    return 1;
}

/* crypto.aead_decrypt(key, sealed [, ad]) -> plaintext | nil, message, "EDECRYPT"
 * Fails when sealed is truncated, tampered with, sealed under another key or
 * bound to another ad. Raises unless key is 32 bytes. */
static int l_crypto_aead_decrypt(lua_State *L) {
    const uint8_t *key = check_key(L, 1);
    size_t len, ad_len;
    const uint8_t *sealed = (const uint8_t *)luaL_checklstring(L, 2, &len);
    const uint8_t *ad = (const uint8_t *)luaL_optlstring(L, 3, "", &ad_len);
    size_t overhead = PRISN_CRYPTO_NONCE_BYTES + PRISN_CRYPTO_MAC_BYTES;
    size_t size = len > overhead ? len - overhead : 0;
    uint8_t *buf = scratch(L, size);
    if (prisn_crypto_aead_decrypt(buf, sealed, len, ad, ad_len, key) != 0)
        return push_failure(
            L, "sealed data: wrong key or associated data, truncated or tampered with", "EDECRYPT");
    push_from_scratch(L, buf, size, size);
    return 1;
}

static const luaL_Reg crypto_functions[] = {
    {"version", l_crypto_version},
    {"random_bytes", l_crypto_random_bytes},
    {"to_hex", l_crypto_to_hex},
    {"from_hex", l_crypto_from_hex},
    {"to_base64url", l_crypto_to_base64url},
    {"from_base64url", l_crypto_from_base64url},
    {"hash", l_crypto_hash},
    {"equal", l_crypto_equal},
    {"secretbox_keygen", l_crypto_secretbox_keygen},
    {"seal", l_crypto_seal},
    {"open", l_crypto_open},
    {"aead_keygen", l_crypto_aead_keygen},
    {"aead_encrypt", l_crypto_aead_encrypt},
    {"aead_decrypt", l_crypto_aead_decrypt},
    {NULL, NULL},
};

/* Raises when libsodium cannot initialize (no usable entropy source). */
int luaopen_prisn_core_crypto(lua_State *L) {
    if (prisn_crypto_init() != 0)
        return luaL_error(L, "prisn.core.crypto: sodium_init failed");
    luaL_newlib(L, crypto_functions);
    return 1;
}
