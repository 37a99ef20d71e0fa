/*
 * tls: the mechanism half of prisn.core.tls (see tls.h for the shape).
 *
 * Sessions: mbedTLS drives the protocol through two memory BIOs. The send
 * BIO appends to the session's out buffer and never blocks (back-pressure is
 * the Lua stream's, which watches the socket's write queue); the receive BIO
 * serves the in buffer and says WANT_READ when it is empty. The minimum
 * version is TLS 1.2; mbedTLS 2.28 has no production TLS 1.3.
 *
 * Verification is ours, after the handshake (client sessions run with
 * authmode NONE so mbedTLS keeps the chain but decides nothing): a pinned
 * fingerprint makes the matching certificate of the presented chain the
 * only trust anchor; otherwise the configured CAs are. Host names are
 * matched against the leaf's SANs only (no CN fallback, as browsers do).
 *
 * Certificates: ECDSA P-256 keys, SHA-256 signatures, X.509 v3 with basic
 * constraints, key usage, key identifiers and a SAN extension written by
 * hand (mbedTLS 2.28 has no SAN writer). What lifetime a certificate gets
 * is the caller's policy.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int prisn_tls_random(void *unused, unsigned char *out, size_t len) {
    (void)unused;
    randombytes_buf(out, len);
    return 0;
}

/* ---- buffers ---------------------------------------------------------------- */

int prisn_tls_buf_append(prisn_tls_buf *b, const uint8_t *data, size_t len) {
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void prisn_tls_buf_free(prisn_tls_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int bio_send(void *ctx, const unsigned char *data, size_t len) {
    prisn_tls_session *s = ctx;
    if (len > INT_MAX)
        len = INT_MAX;
    if (prisn_tls_buf_append(&s->out, data, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *data, size_t len) {
    prisn_tls_session *s = ctx;
    size_t avail = s->in.len - s->in.off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = avail < len ? avail : len;
    if (n > INT_MAX)
        n = INT_MAX;
    memcpy(data, s->in.data + s->in.off, n);
    s->in.off += n;
    return (int)n;
}

/* ---- errors ----------------------------------------------------------------- */

static int fail(prisn_tls_session *s, const char *code, const char *fmt, const char *arg) {
    s->err_code = code;
    snprintf(s->err_msg, sizeof s->err_msg, fmt, arg);
    return PRISN_TLS_ERROR;
}

static const char *alert_name(unsigned char alert) {
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
        return "bad certificate";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
        return "unknown CA";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
        return "certificate expired";
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
        return "handshake failure";
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
        return "protocol version";
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
        return "unrecognized name";
    case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR:
        return "decode error";
    default:
        return "fatal alert";
    }
}

static int fail_mbedtls(prisn_tls_session *s, int ret) {
    if (s->err_code != NULL && !s->handshake_done)
        return PRISN_TLS_ERROR; /* the SNI callback said why */
    switch (ret) {
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return fail(s, "EPEERALERT", "the peer refused the connection: %s",
                    alert_name(s->ssl.in_msg ? s->ssl.in_msg[1] : 0));
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
        return fail(s, "EPROTOVERSION", "%s", "the peer does not speak TLS 1.2 or later");
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO:
        if (!s->handshake_done)
            return fail(s, "ENOTTLS", "%s", "the peer does not speak TLS (not a TLS handshake)");
        break;
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
    case MBEDTLS_ERR_SSL_PRIVATE_KEY_REQUIRED:
        return fail(s, "ENOCERT", "no certificate for server name '%s'", s->server_name);
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
        return fail(s, "ENOMEM", "%s", "out of memory");
    default:
        break;
    }
    char buf[160];
    mbedtls_strerror(ret, buf, sizeof buf);
    return fail(s, "ETLS", "TLS error: %s", buf);
}

/* ---- verification ------------------------------------------------------------ */

void prisn_tls_fingerprint(const mbedtls_x509_crt *crt, uint8_t out[PRISN_TLS_FINGERPRINT_BYTES]) {
    mbedtls_sha256_ret(crt->raw.p, crt->raw.len, out, 0);
}

static bool dns_matches(const unsigned char *pattern, size_t plen, const char *host) {
    size_t hlen = strlen(host);
    if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        if (dot == NULL || dot == host)
            return false; /* a wildcard stands for exactly one non-empty label */
        host = dot + 1;
        hlen = strlen(host);
        pattern += 2;
        plen -= 2;
    }
    return plen == hlen && strncasecmp((const char *)pattern, host, hlen) == 0;
}

static bool host_matches(const mbedtls_x509_crt *leaf, const char *host) {
    uint8_t ip[16];
    size_t iplen = 0;
    if (inet_pton(AF_INET, host, ip) == 1)
        iplen = 4;
    else if (inet_pton(AF_INET6, host, ip) == 1)
        iplen = 16;
    for (const mbedtls_x509_sequence *c = &leaf->subject_alt_names; c; c = c->next) {
        if (c->buf.p == NULL)
            continue;
        if (iplen > 0 && c->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && c->buf.len == iplen &&
            memcmp(c->buf.p, ip, iplen) == 0)
            return true;
        if (iplen == 0 && c->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) &&
            dns_matches(c->buf.p, c->buf.len, host))
            return true;
    }
    return false;
}

static uint32_t validity_flags(const mbedtls_x509_crt *crt) {
    uint32_t flags = 0;
    if (mbedtls_x509_time_is_past(&crt->valid_to))
        flags |= MBEDTLS_X509_BADCERT_EXPIRED;
    if (mbedtls_x509_time_is_future(&crt->valid_from))
        flags |= MBEDTLS_X509_BADCERT_FUTURE;
    return flags;
}

/* The flags of the chain against the pin: 0 when trusted. */
static uint32_t verify_pinned(prisn_tls_session *s, const mbedtls_x509_crt *peer, bool *found) {
    const mbedtls_x509_crt *match = NULL;
    for (const mbedtls_x509_crt *c = peer; c && c->raw.p; c = c->next) {
        uint8_t fp[PRISN_TLS_FINGERPRINT_BYTES];
        prisn_tls_fingerprint(c, fp);
        if (sodium_memcmp(fp, s->cfg->pin, sizeof fp) == 0) {
            match = c;
            break;
        }
    }
    *found = match != NULL;
    if (match == NULL)
        return MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    if (match == peer)
        return validity_flags(peer); /* the leaf itself is pinned */
    mbedtls_x509_crt anchor;
    mbedtls_x509_crt_init(&anchor);
    uint32_t flags = MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    if (mbedtls_x509_crt_parse_der(&anchor, match->raw.p, match->raw.len) == 0)
        mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &anchor, NULL, NULL, &flags, NULL, NULL);
    mbedtls_x509_crt_free(&anchor);
    return flags;
}

static int verify_peer(prisn_tls_session *s) {
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&s->ssl);
    if (peer == NULL)
        return fail(s, "ENOCERT", "%s", "the server sent no certificate");
    uint32_t flags = MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    bool pin_found = false;
    if (s->cfg->has_pin)
        flags = verify_pinned(s, peer, &pin_found);
    else if (s->cfg->has_ca)
        mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &s->cfg->ca, NULL, NULL, &flags, NULL,
                                NULL);
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return fail(s, "ECERTEXPIRED", "%s", "certificate has expired");
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return fail(s, "ECERTFUTURE", "%s", "certificate is not valid yet");
    if (s->cfg->has_pin && !pin_found)
        return fail(s, "EPINMISMATCH", "%s",
                    "no certificate of the server matches the pinned SHA-256 fingerprint");
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return fail(s, "EUNKNOWNCA", "%s", "certificate signed by an unknown CA");
    if (flags != 0) {
        char buf[200];
        mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags);
        buf[strcspn(buf, "\n")] = '\0';
        return fail(s, "ECERTBAD", "certificate refused: %s", buf);
    }
    if (s->host[0] != '\0' && !host_matches(peer, s->host))
        return fail(s, "EHOSTMISMATCH", "hostname mismatch: the certificate is not valid for %s",
                    s->host);
    return PRISN_TLS_DONE;
}

/* ---- configurations and pairs ------------------------------------------------ */

static int on_sni(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len) {
    (void)unused;
    prisn_tls_session *s = (prisn_tls_session *)ssl; /* ssl is the first member */
    if (len >= sizeof s->server_name || memchr(name, '\0', len) != NULL)
        return -1;
    memcpy(s->server_name, name, len);
    s->server_name[len] = '\0';
    return s->on_sni ? s->on_sni(s, s->server_name) : 0;
}

/* Key exchange groups, fastest first: mbedTLS's default list starts with
 * secp521r1, which made a handshake cost about 4 ms of server CPU. */
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

int prisn_tls_config_init(prisn_tls_config *c, bool is_server) {
    memset(c, 0, sizeof *c);
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    c->is_server = is_server;
    int ret = mbedtls_ssl_config_defaults(&c->conf,
                                          is_server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        return ret;
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&c->conf, prisn_tls_random, NULL);
    mbedtls_ssl_conf_curves(&c->conf, curves);
    if (is_server)
        mbedtls_ssl_conf_sni(&c->conf, on_sni, NULL);
    else
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE); /* verify_peer decides */
    return 0;
}

static int parse_error(int ret, const char *what, char *err, size_t errlen) {
    char buf[160];
    mbedtls_strerror(ret, buf, sizeof buf);
    snprintf(err, errlen, "%s: %s", what, buf);
    return ret;
}

/* PEM parsers want the terminating NUL counted; DER has none. */
static size_t pem_len(const char *data, size_t len) {
    return strstr(data, "-----BEGIN") != NULL ? len + 1 : len;
}

int prisn_tls_config_set_ca(prisn_tls_config *c, const char *pem, size_t len, char *err,
                            size_t errlen) {
    int ret = mbedtls_x509_crt_parse(&c->ca, (const unsigned char *)pem, pem_len(pem, len));
    if (ret != 0)
        return parse_error(ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT, "CA certificate", err,
                           errlen);
    c->has_ca = true;
    return 0;
}

void prisn_tls_config_free(prisn_tls_config *c) {
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
}

void prisn_tls_pair_init(prisn_tls_pair *p) {
    mbedtls_x509_crt_init(&p->chain);
    mbedtls_pk_init(&p->key);
}

int prisn_tls_pair_load(prisn_tls_pair *p, const char *cert_pem, size_t cert_len,
                        const char *key_pem, size_t key_len, char *err, size_t errlen) {
    int ret = mbedtls_x509_crt_parse(&p->chain, (const unsigned char *)cert_pem,
                                     pem_len(cert_pem, cert_len));
    if (ret != 0)
        return parse_error(ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT, "certificate", err,
                           errlen);
    ret = mbedtls_pk_parse_key(&p->key, (const unsigned char *)key_pem, pem_len(key_pem, key_len),
                               NULL, 0);
    if (ret != 0)
        return parse_error(ret, "private key", err, errlen);
    ret = mbedtls_pk_check_pair(&p->chain.pk, &p->key);
    if (ret != 0) {
        snprintf(err, errlen, "the private key does not belong to the certificate");
        return ret;
    }
    return 0;
}

void prisn_tls_pair_free(prisn_tls_pair *p) {
    mbedtls_x509_crt_free(&p->chain);
    mbedtls_pk_free(&p->key);
}

/* ---- sessions ------------------------------------------------------------------ */

int prisn_tls_session_init(prisn_tls_session *s, prisn_tls_config *c, const char *host) {
    memset(s, 0, sizeof *s);
    mbedtls_ssl_init(&s->ssl);
    s->cfg = c;
    int ret = mbedtls_ssl_setup(&s->ssl, &c->conf);
    if (ret != 0)
        return ret;
    mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
    if (host == NULL || c->is_server)
        return 0;
    if (strlen(host) >= sizeof s->host)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    strcpy(s->host, host);
    uint8_t ip[16];
    bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    return literal ? 0 : mbedtls_ssl_set_hostname(&s->ssl, host); /* SNI is for names only */
}

void prisn_tls_session_free(prisn_tls_session *s) {
    mbedtls_ssl_free(&s->ssl);
    prisn_tls_buf_free(&s->in);
    prisn_tls_buf_free(&s->out);
}

int prisn_tls_use_pair(prisn_tls_session *s, prisn_tls_pair *p) {
    return mbedtls_ssl_set_hs_own_cert(&s->ssl, &p->chain, &p->key);
}

int prisn_tls_feed(prisn_tls_session *s, const uint8_t *data, size_t len) {
    return prisn_tls_buf_append(&s->in, data, len);
}

int prisn_tls_handshake(prisn_tls_session *s) {
    if (s->handshake_done)
        return PRISN_TLS_DONE;
    int ret = mbedtls_ssl_handshake(&s->ssl);
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return PRISN_TLS_WANT;
    if (ret != 0)
        return fail_mbedtls(s, ret);
    if (!s->cfg->is_server && verify_peer(s) != PRISN_TLS_DONE) {
        unsigned char alert =
            strcmp(s->err_code, "ECERTEXPIRED") == 0 ? MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED
            : strcmp(s->err_code, "EUNKNOWNCA") == 0 ? MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA
                                                     : MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
        mbedtls_ssl_send_alert_message(&s->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
        return PRISN_TLS_ERROR;
    }
    s->handshake_done = true;
    return PRISN_TLS_DONE;
}

int prisn_tls_read(prisn_tls_session *s, prisn_tls_buf *dst) {
    unsigned char tmp[16384];
    for (;;) {
        int ret = mbedtls_ssl_read(&s->ssl, tmp, sizeof tmp);
        if (ret > 0) {
            if (prisn_tls_buf_append(dst, tmp, (size_t)ret) != 0)
                return fail(s, "ENOMEM", "%s", "out of memory");
            continue;
        }
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            s->closed = true;
            return PRISN_TLS_CLOSED;
        }
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return PRISN_TLS_DONE;
        return fail_mbedtls(s, ret);
    }
}

int prisn_tls_write(prisn_tls_session *s, const uint8_t *data, size_t len) {
    while (len > 0) {
        int ret = mbedtls_ssl_write(&s->ssl, data, len);
        if (ret <= 0)
            return ret == 0 ? fail(s, "ETLS", "%s", "TLS write made no progress")
                            : fail_mbedtls(s, ret);
        data += ret;
        len -= (size_t)ret;
    }
    return PRISN_TLS_DONE;
}

int prisn_tls_close_notify(prisn_tls_session *s) {
    int ret = mbedtls_ssl_close_notify(&s->ssl);
    return ret == 0 || ret == MBEDTLS_ERR_SSL_WANT_WRITE ? PRISN_TLS_DONE : fail_mbedtls(s, ret);
}

/* ---- certificates ------------------------------------------------------------- */

int prisn_tls_key_generate(char *out, size_t outlen) {
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    int ret = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (ret == 0)
        ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), prisn_tls_random,
                                  NULL);
    if (ret == 0)
        ret = mbedtls_pk_write_key_pem(&pk, (unsigned char *)out, outlen);
    mbedtls_pk_free(&pk);
    return ret;
}

static int format_time(time_t t, char out[16]) {
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1950)
        return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
    return 0;
}

/* The SAN extension's value, written backwards into buf as asn1write does;
 * *start gets its first byte. Returns its length or a negative error. */
static int write_sans(const prisn_tls_cert_spec *spec, unsigned char *buf, size_t size,
                      unsigned char **start) {
    unsigned char *p = buf + size;
    int len = 0, ret;
    for (size_t i = spec->nsans; i-- > 0;) {
        const char *name = spec->sans[i];
        uint8_t ip[16];
        size_t n;
        const unsigned char *bytes;
        unsigned char tag;
        if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
            n = strchr(name, ':') ? 16 : 4;
            bytes = ip;
            tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;
        } else {
            n = strlen(name);
            bytes = (const unsigned char *)name;
            tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2;
        }
        MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(&p, buf, bytes, n));
        MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, n));
        MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf, tag));
    }
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, (size_t)len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    *start = p;
    return len;
}

static int set_names_and_dates(mbedtls_x509write_cert *w, const prisn_tls_cert_spec *spec,
                               const mbedtls_x509_crt *issuer, char *err, size_t errlen) {
    const char *cn = spec->common_name;
    if (cn == NULL || cn[0] == '\0' || strlen(cn) > 64 || strpbrk(cn, ",=+\\\"<>;#") != NULL) {
        snprintf(err, errlen, "common name must be 1-64 characters without ,=+\\\"<>;#");
        return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
    }
    char subject[80], issuer_name[256], nb[16], na[16];
    snprintf(subject, sizeof subject, "CN=%s", cn);
    if (issuer != NULL &&
        mbedtls_x509_dn_gets(issuer_name, sizeof issuer_name, &issuer->subject) < 0)
        return MBEDTLS_ERR_X509_BAD_INPUT_DATA;
    int ret = format_time(spec->not_before, nb);
    if (ret == 0)
        ret = format_time(spec->not_after, na);
    if (ret != 0) {
        snprintf(err, errlen, "validity dates out of range");
        return ret;
    }
    if ((ret = mbedtls_x509write_crt_set_subject_name(w, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(w, issuer ? issuer_name : subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_validity(w, nb, na)) != 0)
        return parse_error(ret, "certificate names", err, errlen);
    return 0;
}

static int set_extensions(mbedtls_x509write_cert *w, const prisn_tls_cert_spec *spec, char *err,
                          size_t errlen) {
    int ret = mbedtls_x509write_crt_set_basic_constraints(w, spec->is_ca ? 1 : 0, -1);
    if (ret == 0)
        ret = mbedtls_x509write_crt_set_subject_key_identifier(w);
    if (ret == 0)
        ret = mbedtls_x509write_crt_set_authority_key_identifier(w);
    if (ret == 0)
        ret = mbedtls_x509write_crt_set_key_usage(
            w, spec->is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN |
                                 MBEDTLS_X509_KU_DIGITAL_SIGNATURE
                           : MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    if (ret == 0 && spec->nsans > 0) {
        unsigned char buf[4096], *start = NULL;
        int len = write_sans(spec, buf, sizeof buf, &start);
        if (len < 0)
            ret = len;
        else
            ret = mbedtls_x509write_crt_set_extension(
                w, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                start, (size_t)len);
    }
    return ret != 0 ? parse_error(ret, "certificate extensions", err, errlen) : 0;
}

int prisn_tls_cert_create(const prisn_tls_cert_spec *spec, char *out, size_t outlen, char *err,
                          size_t errlen) {
    mbedtls_pk_context key, issuer_key;
    mbedtls_x509_crt issuer;
    mbedtls_x509write_cert w;
    mbedtls_mpi serial;
    mbedtls_pk_init(&key);
    mbedtls_pk_init(&issuer_key);
    mbedtls_x509_crt_init(&issuer);
    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&serial);
    bool self = spec->issuer_cert_pem == NULL;
    int ret = mbedtls_pk_parse_key(&key, (const unsigned char *)spec->key_pem,
                                   strlen(spec->key_pem) + 1, NULL, 0);
    if (ret != 0) {
        parse_error(ret, "key", err, errlen);
        goto done;
    }
    if (!self) {
        ret = mbedtls_x509_crt_parse(&issuer, (const unsigned char *)spec->issuer_cert_pem,
                                     strlen(spec->issuer_cert_pem) + 1);
        if (ret == 0)
            ret = mbedtls_pk_parse_key(&issuer_key, (const unsigned char *)spec->issuer_key_pem,
                                       strlen(spec->issuer_key_pem) + 1, NULL, 0);
        if (ret == 0 && mbedtls_pk_check_pair(&issuer.pk, &issuer_key) != 0)
            ret = MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
        if (ret != 0) {
            parse_error(ret, "issuer certificate or key", err, errlen);
            goto done;
        }
    }
    unsigned char serial_bytes[16];
    prisn_tls_random(NULL, serial_bytes, sizeof serial_bytes);
    serial_bytes[0] &= 0x7f; /* positive */
    serial_bytes[0] |= 0x01; /* and of full length */
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, &key);
    mbedtls_x509write_crt_set_issuer_key(&w, self ? &key : &issuer_key);
    if ((ret = mbedtls_mpi_read_binary(&serial, serial_bytes, sizeof serial_bytes)) != 0 ||
        (ret = mbedtls_x509write_crt_set_serial(&w, &serial)) != 0 ||
        (ret = set_names_and_dates(&w, spec, self ? NULL : &issuer, err, errlen)) != 0 ||
        (ret = set_extensions(&w, spec, err, errlen)) != 0)
        goto done;
    ret = mbedtls_x509write_crt_pem(&w, (unsigned char *)out, outlen, prisn_tls_random, NULL);
    if (ret != 0)
        parse_error(ret, "certificate", err, errlen);
done:
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&issuer_key);
    mbedtls_x509_crt_free(&issuer);
    mbedtls_x509write_crt_free(&w);
    mbedtls_mpi_free(&serial);
    return ret;
}

static time_t x509_time(const mbedtls_x509_time *t) {
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}

static void san_text(const mbedtls_x509_buf *b, char *out, size_t size) {
    out[0] = '\0';
    if (b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && b->len < size) {
        memcpy(out, b->p, b->len);
        out[b->len] = '\0';
    } else if (b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && (b->len == 4 || b->len == 16)) {
        inet_ntop(b->len == 4 ? AF_INET : AF_INET6, b->p, out, (socklen_t)size);
    }
}

int prisn_tls_cert_info_of(const char *pem, size_t len, prisn_tls_cert_info *info, char *err,
                           size_t errlen) {
    memset(info, 0, sizeof *info);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, pem_len(pem, len));
    if (ret != 0) {
        parse_error(ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT, "certificate", err, errlen);
        mbedtls_x509_crt_free(&crt);
        return ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT;
    }
    mbedtls_x509_dn_gets(info->subject, sizeof info->subject, &crt.subject);
    mbedtls_x509_dn_gets(info->issuer, sizeof info->issuer, &crt.issuer);
    for (const mbedtls_x509_sequence *c = &crt.subject_alt_names; c && c->buf.p; c = c->next) {
        if (info->nsans == sizeof info->sans / sizeof info->sans[0])
            break;
        san_text(&c->buf, info->sans[info->nsans], sizeof info->sans[0]);
        if (info->sans[info->nsans][0] != '\0')
            info->nsans++;
    }
    info->not_before = x509_time(&crt.valid_from);
    info->not_after = x509_time(&crt.valid_to);
    prisn_tls_fingerprint(&crt, info->fingerprint);
    info->self_signed = crt.issuer_raw.len == crt.subject_raw.len &&
                        memcmp(crt.issuer_raw.p, crt.subject_raw.p, crt.issuer_raw.len) == 0;
    info->is_ca = crt.ca_istrue != 0;
    mbedtls_x509_crt_free(&crt);
    return 0;
}
