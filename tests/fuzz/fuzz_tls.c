/*
 * fuzz_tls: libFuzzer target for the TLS mechanism (core/tls.c) as a peer
 * sees it: whatever bytes arrive, a session must answer with WANT, DONE or
 * ERROR (with a code and a message), never crash, leak or read past its
 * buffers.
 *
 * The first byte picks the side: even, a server session (with a default
 * certificate and the SNI hook) fed the rest as what a client sent; odd, a
 * client session (expecting "localhost", trusting a CA) fed the rest as what
 * a server sent, so certificate parsing and the post-handshake checks run on
 * hostile input. The second byte cuts the input in two feeds. The key pair
 * and the CA are made once. Only C: no Lua state.
 *
 * Build and run (Debian packages: clang, libclang-rt-14-dev):
 *   CC=clang cmake -B build-fuzz -DPRISN_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_tls
 *   mkdir -p build-fuzz/corpus-tls
 *   build-fuzz/fuzz_tls -max_total_time=60 -max_len=4096 \
 *       build-fuzz/corpus-tls tests/fuzz/corpus/tls
 * The seeds (tests/fuzz/corpus/tls) are a real ClientHello and a real
 * server flight, made by prisn's own sessions. `ctest --test-dir build-fuzz
 * -R fuzz` runs them once (regression).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

static prisn_tls_pair pair;
static prisn_tls_config server_conf, client_conf;
static char ca_cert[PRISN_TLS_PEM_MAX];

static int sni(prisn_tls_session *s, const char *name) {
    (void)s;
    return strcmp(name, "refused.test") == 0 ? -1 : 0;
}

static void setup(void) {
    if (sodium_init() < 0)
        abort();
    static char ca_key[1024], key[1024], cert[PRISN_TLS_PEM_MAX], chain[2 * PRISN_TLS_PEM_MAX];
    static const char *const sans[] = {"localhost", "127.0.0.1"};
    char err[256];
    time_t now = time(NULL);
    prisn_tls_cert_spec ca = {.common_name = "fuzz CA",
                              .key_pem = ca_key,
                              .is_ca = true,
                              .not_before = now - 60,
                              .not_after = now + 86400};
    prisn_tls_cert_spec leaf = {.common_name = "localhost",
                                .key_pem = key,
                                .sans = sans,
                                .nsans = 2,
                                .issuer_cert_pem = ca_cert,
                                .issuer_key_pem = ca_key,
                                .not_before = now - 60,
                                .not_after = now + 86400};
    if (prisn_tls_key_generate(ca_key, sizeof ca_key) != 0 ||
        prisn_tls_key_generate(key, sizeof key) != 0 ||
        prisn_tls_cert_create(&ca, ca_cert, sizeof ca_cert, err, sizeof err) != 0 ||
        prisn_tls_cert_create(&leaf, cert, sizeof cert, err, sizeof err) != 0)
        abort();
    snprintf(chain, sizeof chain, "%s%s", cert, ca_cert);
    prisn_tls_pair_init(&pair);
    if (prisn_tls_pair_load(&pair, chain, strlen(chain), key, strlen(key), err, sizeof err) != 0 ||
        prisn_tls_config_init(&server_conf, true) != 0 ||
        mbedtls_ssl_conf_own_cert(&server_conf.conf, &pair.chain, &pair.key) != 0 ||
        prisn_tls_config_init(&client_conf, false) != 0 ||
        prisn_tls_config_set_ca(&client_conf, ca_cert, strlen(ca_cert), err, sizeof err) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool ready = false;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 2)
        return 0;
    bool server = (data[0] & 1) == 0;
    size_t cut = 2 + (size - 2) * data[1] / 256;
    prisn_tls_session s;
    if (prisn_tls_session_init(&s, server ? &server_conf : &client_conf,
                               server ? NULL : "localhost") != 0)
        abort();
    s.on_sni = sni;
    int rc = prisn_tls_handshake(&s); /* a client sends its hello first */
    const uint8_t *parts[2] = {data + 2, data + cut};
    size_t lens[2] = {cut - 2, size - cut};
    for (int i = 0; i < 2 && rc == PRISN_TLS_WANT; i++) {
        if (prisn_tls_feed(&s, parts[i], lens[i]) != 0)
            abort();
        rc = prisn_tls_handshake(&s);
    }
    if (rc == PRISN_TLS_ERROR && (s.err_code == NULL || s.err_msg[0] == '\0'))
        abort(); /* every failure says what it is */
    if (rc == PRISN_TLS_DONE) {
        prisn_tls_buf plain = {0};
        prisn_tls_read(&s, &plain);
        prisn_tls_buf_free(&plain);
    }
    prisn_tls_session_free(&s);
    return 0;
}
