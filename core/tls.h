/*
 * tls: TLS 1.2 sessions and X.509 certificates over mbedTLS 2.28 (tls.c).
 *
 * A session is a pure transform over memory: ciphertext goes in with
 * prisn_tls_feed, plaintext comes out of prisn_tls_read, plaintext goes in
 * with prisn_tls_write and the ciphertext to send is taken from the out
 * buffer. No socket is touched here: I/O stays in Lua on luv, so a TLS
 * connection is driven by the same event loop as every other handle.
 *
 * Clients verify after the handshake, before any application data leaves:
 * the chain against the trust anchors (a CA file) or against a pinned
 * SHA-256 fingerprint of any certificate in the presented chain (prisn pins
 * its CA), and the expected host name against the leaf's SANs (DNS names
 * with one leading wildcard label, and IP addresses, which mbedTLS 2.28 does
 * not match itself). Entropy comes from libsodium's randombytes (getrandom).
 */
#ifndef PRISN_TLS_H
#define PRISN_TLS_H

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PRISN_TLS_FINGERPRINT_BYTES 32
#define PRISN_TLS_NAME_MAX 256
#define PRISN_TLS_PEM_MAX 8192

/* Results of the session steps. */
enum { PRISN_TLS_DONE = 0, PRISN_TLS_WANT = 1, PRISN_TLS_CLOSED = 2, PRISN_TLS_ERROR = -1 };

typedef struct {
    uint8_t *data;
    size_t off, len, cap; /* unread bytes are data[off, len) */
} prisn_tls_buf;

/* A certificate chain (leaf first) with the leaf's private key. */
typedef struct {
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
} prisn_tls_pair;

typedef struct {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca; /* client: trust anchors */
    bool is_server, has_ca, has_pin;
    uint8_t pin[PRISN_TLS_FINGERPRINT_BYTES];
} prisn_tls_config;

typedef struct prisn_tls_session prisn_tls_session;

/* Server: called with the SNI name the client sent; returns 0 after
 * choosing a pair with prisn_tls_use_pair (or to keep the default), -1 to
 * refuse the name (the handshake fails with unrecognized_name). */
typedef int (*prisn_tls_sni_fn)(prisn_tls_session *s, const char *name);

struct prisn_tls_session {
    mbedtls_ssl_context ssl;
    prisn_tls_config *cfg;
    prisn_tls_buf in, out;
    prisn_tls_sni_fn on_sni;
    void *user;
    bool handshake_done, closed;
    char host[PRISN_TLS_NAME_MAX];        /* client: the name the leaf must hold */
    char server_name[PRISN_TLS_NAME_MAX]; /* server: the SNI received */
    const char *err_code;                 /* static: "ECERTEXPIRED", "ETLS", ... */
    char err_msg[PRISN_TLS_NAME_MAX + 128];
};

/* What a certificate says (prisn_tls_cert_info). */
typedef struct {
    char subject[256], issuer[256];
    char sans[16][PRISN_TLS_NAME_MAX];
    size_t nsans;
    time_t not_before, not_after;
    uint8_t fingerprint[PRISN_TLS_FINGERPRINT_BYTES];
    bool self_signed, is_ca;
} prisn_tls_cert_info;

/* What a new certificate is (prisn_tls_cert_create). The issuer is the
 * subject itself (self-signed) when issuer_cert_pem is NULL. SANs are host
 * names or IP address literals, told apart by inet_pton. */
typedef struct {
    const char *common_name;
    const char *key_pem; /* the subject's key */
    const char *issuer_cert_pem, *issuer_key_pem;
    bool is_ca;
    const char *const *sans;
    size_t nsans;
    time_t not_before, not_after;
} prisn_tls_cert_spec;

/* mbedTLS's f_rng over libsodium. */
int prisn_tls_random(void *unused, unsigned char *out, size_t len);

/* Certificates. Each returns 0 or a negative mbedTLS error; err (errlen
 * bytes) gets a message. PEM outputs are NUL-terminated in out (outlen). */
int prisn_tls_key_generate(char *out, size_t outlen);
int prisn_tls_cert_create(const prisn_tls_cert_spec *spec, char *out, size_t outlen, char *err,
                          size_t errlen);
int prisn_tls_cert_info_of(const char *pem, size_t len, prisn_tls_cert_info *info, char *err,
                           size_t errlen);
void prisn_tls_fingerprint(const mbedtls_x509_crt *crt, uint8_t out[PRISN_TLS_FINGERPRINT_BYTES]);

/* Pairs and configurations. pem strings are NUL-terminated, len excludes
 * the NUL. */
void prisn_tls_pair_init(prisn_tls_pair *p);
int prisn_tls_pair_load(prisn_tls_pair *p, const char *cert_pem, size_t cert_len,
                        const char *key_pem, size_t key_len, char *err, size_t errlen);
void prisn_tls_pair_free(prisn_tls_pair *p);
int prisn_tls_config_init(prisn_tls_config *c, bool is_server);
int prisn_tls_config_set_ca(prisn_tls_config *c, const char *pem, size_t len, char *err,
                            size_t errlen);
void prisn_tls_config_free(prisn_tls_config *c);

/* Sessions. host (client, may be NULL) is sent as SNI unless it is an IP
 * literal, and checked against the leaf. */
int prisn_tls_session_init(prisn_tls_session *s, prisn_tls_config *c, const char *host);
void prisn_tls_session_free(prisn_tls_session *s);
int prisn_tls_use_pair(prisn_tls_session *s, prisn_tls_pair *p);
int prisn_tls_feed(prisn_tls_session *s, const uint8_t *data, size_t len);
/* DONE, WANT (feed more, send the out buffer) or ERROR (err_code/err_msg). */
int prisn_tls_handshake(prisn_tls_session *s);
/* Appends the plaintext available to dst: DONE, CLOSED (close_notify) or ERROR. */
int prisn_tls_read(prisn_tls_session *s, prisn_tls_buf *dst);
int prisn_tls_write(prisn_tls_session *s, const uint8_t *data, size_t len);
int prisn_tls_close_notify(prisn_tls_session *s);

int prisn_tls_buf_append(prisn_tls_buf *b, const uint8_t *data, size_t len);
void prisn_tls_buf_free(prisn_tls_buf *b);

#endif
