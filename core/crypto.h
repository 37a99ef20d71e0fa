/*
 * crypto: the few libsodium primitives prisn needs — random bytes, BLAKE2b
 * hashing for token digests, XSalsa20-Poly1305 secret boxes, and
 * XChaCha20-Poly1305 AEAD (encryption bound to associated data) for secrets
 * encrypted at rest — behind fixed sizes, so callers cannot pick weak ones.
 *
 * Functions return 0 or a negative errno. Key storage, token formats and
 * which key seals what are decided in Lua.
 */
#ifndef PRISN_CRYPTO_H
#define PRISN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define PRISN_CRYPTO_KEY_BYTES 32u     /* crypto_secretbox_KEYBYTES */
#define PRISN_CRYPTO_NONCE_BYTES 24u   /* crypto_secretbox_NONCEBYTES */
#define PRISN_CRYPTO_MAC_BYTES 16u     /* crypto_secretbox_MACBYTES */
#define PRISN_CRYPTO_HASH_BYTES 32u    /* crypto_generichash_BYTES */
#define PRISN_CRYPTO_HASH_KEY_MIN 16u  /* crypto_generichash_KEYBYTES_MIN */
#define PRISN_CRYPTO_HASH_KEY_MAX 64u  /* crypto_generichash_KEYBYTES_MAX */
#define PRISN_CRYPTO_RANDOM_MAX 65536u /* largest random_bytes request */

/* Initializes libsodium; safe to call more than once. 0 or -EIO. */
int prisn_crypto_init(void);

/* The size of a sealed message: nonce + MAC + plaintext. */
size_t prisn_crypto_sealed_size(size_t plaintext_len);

/* Encrypts and authenticates plaintext under key with a random nonce. out
 * receives prisn_crypto_sealed_size(len) bytes: nonce, then ciphertext. */
int prisn_crypto_seal(uint8_t *out, const uint8_t *plaintext, size_t len,
                      const uint8_t key[PRISN_CRYPTO_KEY_BYTES]);

/* Opens what prisn_crypto_seal made. out receives len - nonce - MAC bytes.
 * Returns -EBADMSG when sealed is too short, forged, or under another key;
 * out is then wiped. */
int prisn_crypto_open(uint8_t *out, const uint8_t *sealed, size_t len,
                      const uint8_t key[PRISN_CRYPTO_KEY_BYTES]);

/* The size of an AEAD-sealed message: nonce + ciphertext + tag. */
size_t prisn_crypto_aead_sealed_size(size_t plaintext_len);

/* Encrypts plaintext under key with XChaCha20-Poly1305 and a fresh random
 * nonce, authenticating ad (NULL when ad_len is 0) along with it. out
 * receives prisn_crypto_aead_sealed_size(len) bytes: nonce, then ciphertext
 * and tag. -EMSGSIZE when len is beyond what the construction allows. */
int prisn_crypto_aead_encrypt(uint8_t *out, const uint8_t *plaintext, size_t len, const uint8_t *ad,
                              size_t ad_len, const uint8_t key[PRISN_CRYPTO_KEY_BYTES]);

/* Opens what prisn_crypto_aead_encrypt made with the same key and ad. out
 * receives len - nonce - tag bytes. Returns -EBADMSG when sealed is too
 * short, forged, under another key or bound to other associated data; out
 * is then wiped. */
int prisn_crypto_aead_decrypt(uint8_t *out, const uint8_t *sealed, size_t len, const uint8_t *ad,
                              size_t ad_len, const uint8_t key[PRISN_CRYPTO_KEY_BYTES]);

/* BLAKE2b of data into out (PRISN_CRYPTO_HASH_BYTES), keyed when key is not
 * NULL. Returns -EINVAL for a key length outside 16..64. */
int prisn_crypto_hash(uint8_t out[PRISN_CRYPTO_HASH_BYTES], const uint8_t *data, size_t len,
                      const uint8_t *key, size_t key_len);

/* Strict decoders: the whole input must be valid (even-length hex; base64url
 * without padding). out must hold len / 2 (hex) or len * 3 / 4 (base64url)
 * bytes; *out_len receives the decoded size. 0 or -EINVAL. */
int prisn_crypto_from_hex(uint8_t *out, size_t out_max, const char *hex, size_t len,
                          size_t *out_len);
int prisn_crypto_from_base64url(uint8_t *out, size_t out_max, const char *b64, size_t len,
                                size_t *out_len);

#endif
