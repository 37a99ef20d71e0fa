/*
 * tls: the C mechanism without Lua — certificates carry what was asked
 * (SANs, dates, CA flag, a fingerprint of their DER), two sessions in memory
 * complete a handshake and carry data both ways through the buffers, and the
 * client refuses what it must (an expired leaf, another CA, another host, a
 * pin of nothing in the chain) with the stable codes the Lua side reports.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tls.h"

static char ca_key[1024], ca_cert[PRISN_TLS_PEM_MAX];

static void make_ca(void) {
    if (ca_cert[0] != '\0')
        return;
    CHECK_INT(prisn_tls_key_generate(ca_key, sizeof ca_key), 0);
    time_t now = time(NULL);
    prisn_tls_cert_spec spec = {.common_name = "test CA",
                                .key_pem = ca_key,
                                .is_ca = true,
                                .not_before = now - 60,
                                .not_after = now + 86400};
    char err[256];
    CHECK_INT(prisn_tls_cert_create(&spec, ca_cert, sizeof ca_cert, err, sizeof err), 0);
}

/* A leaf signed by the test CA, valid from now+from to now+to seconds. */
static void make_leaf(char *key, char *cert, const char *const *sans, size_t n, long from,
                      long to) {
    make_ca();
    CHECK_INT(prisn_tls_key_generate(key, 1024), 0);
    time_t now = time(NULL);
    prisn_tls_cert_spec spec = {.common_name = sans[0],
                                .key_pem = key,
                                .sans = sans,
                                .nsans = n,
                                .issuer_cert_pem = ca_cert,
                                .issuer_key_pem = ca_key,
                                .not_before = now + from,
                                .not_after = now + to};
    char err[256];
    CHECK_INT(prisn_tls_cert_create(&spec, cert, PRISN_TLS_PEM_MAX, err, sizeof err), 0);
}

/* Moves the out buffer of one session into the other. */
static void pass(prisn_tls_session *from, prisn_tls_session *to) {
    prisn_tls_buf *b = &from->out;
    if (b->len > b->off)
        CHECK_INT(prisn_tls_feed(to, b->data + b->off, b->len - b->off), 0);
    b->off = b->len = 0;
}

/* Runs a handshake; returns the client's last result. */
static int handshake(const char *cert, const char *key, const char *host, const char *trust_pem,
                     const uint8_t *pin, prisn_tls_session *client, prisn_tls_session *server,
                     prisn_tls_config *cc, prisn_tls_config *sc, prisn_tls_pair *pair) {
    char err[256], chain[2 * PRISN_TLS_PEM_MAX];
    snprintf(chain, sizeof chain, "%s%s", cert, ca_cert);
    prisn_tls_pair_init(pair);
    CHECK_INT(prisn_tls_pair_load(pair, chain, strlen(chain), key, strlen(key), err, sizeof err),
              0);
    CHECK_INT(prisn_tls_config_init(sc, true), 0);
    CHECK_INT(mbedtls_ssl_conf_own_cert(&sc->conf, &pair->chain, &pair->key), 0);
    CHECK_INT(prisn_tls_config_init(cc, false), 0);
    if (trust_pem)
        CHECK_INT(prisn_tls_config_set_ca(cc, trust_pem, strlen(trust_pem), err, sizeof err), 0);
    if (pin) {
        memcpy(cc->pin, pin, PRISN_TLS_FINGERPRINT_BYTES);
        cc->has_pin = true;
    }
    CHECK_INT(prisn_tls_session_init(server, sc, NULL), 0);
    CHECK_INT(prisn_tls_session_init(client, cc, host), 0);
    int rc = PRISN_TLS_WANT;
    for (int i = 0; i < 10 && rc == PRISN_TLS_WANT; i++) {
        rc = prisn_tls_handshake(client);
        pass(client, server);
        prisn_tls_handshake(server);
        pass(server, client);
    }
    return rc;
}

static void cleanup(prisn_tls_session *c, prisn_tls_session *s, prisn_tls_config *cc,
                    prisn_tls_config *sc, prisn_tls_pair *p) {
    prisn_tls_session_free(c);
    prisn_tls_session_free(s);
    prisn_tls_config_free(cc);
    prisn_tls_config_free(sc);
    prisn_tls_pair_free(p);
}

static void test_cert_info(void) {
    static const char *const sans[] = {"api.test", "10.1.2.3", "::1"};
    char key[1024], cert[PRISN_TLS_PEM_MAX], err[256];
    make_leaf(key, cert, sans, 3, -60, 3600);
    prisn_tls_cert_info info;
    CHECK_INT(prisn_tls_cert_info_of(cert, strlen(cert), &info, err, sizeof err), 0);
    CHECK_STR(info.subject, "CN=api.test");
    CHECK_STR(info.issuer, "CN=test CA");
    CHECK_INT(info.nsans, 3);
    CHECK_STR(info.sans[1], "10.1.2.3");
    CHECK_STR(info.sans[2], "::1");
    CHECK(!info.is_ca && !info.self_signed);
    CHECK_INT(info.not_after - info.not_before, 3660);
    CHECK_INT(prisn_tls_cert_info_of(ca_cert, strlen(ca_cert), &info, err, sizeof err), 0);
    CHECK(info.is_ca && info.self_signed);
    CHECK(prisn_tls_cert_info_of("junk", 4, &info, err, sizeof err) != 0);
}

static void test_handshake_and_data(void) {
    static const char *const sans[] = {"localhost", "127.0.0.1"};
    char key[1024], cert[PRISN_TLS_PEM_MAX];
    make_leaf(key, cert, sans, 2, -60, 3600);
    prisn_tls_session c, s;
    prisn_tls_config cc, sc;
    prisn_tls_pair p;
    CHECK_INT(handshake(cert, key, "127.0.0.1", ca_cert, NULL, &c, &s, &cc, &sc, &p),
              PRISN_TLS_DONE);
    CHECK_INT(prisn_tls_handshake(&s), PRISN_TLS_DONE);
    CHECK_STR(mbedtls_ssl_get_version(&c.ssl), "TLSv1.2");
    CHECK_INT(prisn_tls_write(&c, (const uint8_t *)"hello", 5), PRISN_TLS_DONE);
    pass(&c, &s);
    prisn_tls_buf got = {0};
    CHECK_INT(prisn_tls_read(&s, &got), PRISN_TLS_DONE);
    CHECK_INT(got.len, 5);
    CHECK(memcmp(got.data, "hello", 5) == 0);
    CHECK_INT(prisn_tls_close_notify(&c), PRISN_TLS_DONE);
    pass(&c, &s);
    CHECK_INT(prisn_tls_read(&s, &got), PRISN_TLS_CLOSED);
    prisn_tls_buf_free(&got);
    cleanup(&c, &s, &cc, &sc, &p);
}

static void expect_refused(const char *cert, const char *key, const char *host, const char *trust,
                           const uint8_t *pin, const char *code) {
    prisn_tls_session c, s;
    prisn_tls_config cc, sc;
    prisn_tls_pair p;
    CHECK_INT(handshake(cert, key, host, trust, pin, &c, &s, &cc, &sc, &p), PRISN_TLS_ERROR);
    CHECK_STR(c.err_code, code);
    cleanup(&c, &s, &cc, &sc, &p);
}

static void test_refusals(void) {
    static const char *const sans[] = {"localhost"};
    char key[1024], cert[PRISN_TLS_PEM_MAX], old_key[1024], old[PRISN_TLS_PEM_MAX];
    make_leaf(key, cert, sans, 1, -60, 3600);
    make_leaf(old_key, old, sans, 1, -7200, -3600);
    expect_refused(old, old_key, "localhost", ca_cert, NULL, "ECERTEXPIRED");
    expect_refused(cert, key, "example.com", ca_cert, NULL, "EHOSTMISMATCH");
    uint8_t zero[PRISN_TLS_FINGERPRINT_BYTES] = {0};
    expect_refused(cert, key, "localhost", NULL, zero, "EPINMISMATCH");
    expect_refused(cert, key, "localhost", NULL, NULL, "EUNKNOWNCA");
}

static void test_garbage_to_server(void) {
    make_ca();
    prisn_tls_config sc;
    prisn_tls_session s;
    CHECK_INT(prisn_tls_config_init(&sc, true), 0);
    CHECK_INT(prisn_tls_session_init(&s, &sc, NULL), 0);
    CHECK_INT(prisn_tls_feed(&s, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), 0);
    CHECK_INT(prisn_tls_handshake(&s), PRISN_TLS_ERROR);
    CHECK_STR(s.err_code, "ENOTTLS");
    prisn_tls_session_free(&s);
    prisn_tls_config_free(&sc);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    static const check_case cases[] = {
        {"cert_info", test_cert_info},
        {"handshake_and_data", test_handshake_and_data},
        {"refusals", test_refusals},
        {"garbage_to_server", test_garbage_to_server},
        {NULL, NULL},
    };
    return check_main(cases);
}
