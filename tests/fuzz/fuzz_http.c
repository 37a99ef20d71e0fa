/*
 * fuzz_http: libFuzzer target for the HTTP parsing mechanism (core/http.c).
 *
 * Every input is parsed eight ways: as a request stream and as a response
 * stream, buffered and streaming, each fed whole and fed in three pieces
 * cut at points taken from the input's first bytes, then ended with
 * feed_eof. The limits are small so the fuzzer reaches them. Besides the
 * sanitizers' findings, the target traps when
 *   - a split changes the outcome: the events (as a digest, chunk
 *     boundaries ignored) or the error code (except for a head breaking a
 *     limit and the syntax at once, see http.h),
 *   - a limit is exceeded in what reaches the sink, or a buffer outgrows it,
 *   - streaming events come out of order (head, chunk*, done),
 *   - an error is left as http-parser's HPE_CB_* instead of our own code.
 * Only C: no Lua state, so an execution costs microseconds.
 *
 * Build and run (Debian packages: clang, libclang-rt-14-dev):
 *   CC=clang cmake -B build-fuzz -DPRISN_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_http
 *   mkdir -p build-fuzz/corpus
 *   build-fuzz/fuzz_http -max_total_time=60 -max_len=2048 \
 *       build-fuzz/corpus tests/fuzz/corpus/http
 * New inputs go to build-fuzz/corpus (the first directory); the seeds in
 * tests/fuzz/corpus/http stay as they are. A crash leaves crash-<sha1> in
 * the current directory; rerun it with `build-fuzz/fuzz_http crash-<sha1>`.
 * `ctest --test-dir build-fuzz -R fuzz` runs the seeds once (regression).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define FUZZ_MAX_HEADER_BYTES 256
#define FUZZ_MAX_BODY_BYTES 512
#define FUZZ_MAX_HEADERS 6

/* A broken invariant traps; -DFUZZ_VERBOSE names it first (for a crash
 * file replayed outside libFuzzer). */
#ifdef FUZZ_VERBOSE
#include <stdio.h>
#define FUZZ_SAY(cond) fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond)
#else
#define FUZZ_SAY(cond) ((void)0)
#endif
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            FUZZ_SAY(cond);                                                                        \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

typedef struct {
    uint64_t digest;
    bool streaming;
    bool in_message; /* streaming: between a head and its done */
    size_t max_body;
    uint64_t streamed; /* body bytes of the current streamed message */
} fuzz_state;

static void mix(uint64_t *h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        *h = (*h ^ p[i]) * 1099511628211ull;
}

static void mix_int(uint64_t *h, uint64_t v) {
    mix(h, &v, sizeof v);
}

static void mix_message(fuzz_state *s, const prisn_http_message *m) {
    REQUIRE(m->nheaders <= FUZZ_MAX_HEADERS);
    mix_int(&s->digest, (uint64_t)m->kind);
    if (m->kind == PRISN_HTTP_REQUEST) {
        mix(&s->digest, m->method, strlen(m->method));
        mix(&s->digest, m->url, m->url_len);
        const char *path, *query;
        size_t path_len, query_len;
        bool has_query;
        prisn_http_split_url(m->url, m->url_len, &path, &path_len, &query, &query_len, &has_query);
        mix(&s->digest, path, path_len);
        if (has_query)
            mix(&s->digest, query, query_len);
    } else {
        mix_int(&s->digest, (uint64_t)m->status);
        mix(&s->digest, m->reason, m->reason_len);
    }
    size_t head = m->url_len + m->reason_len;
    for (size_t i = 0; i < m->nheaders; i++) {
        const prisn_http_header *h = &m->headers[i];
        for (size_t j = 0; j < h->name_len; j++)
            REQUIRE(h->name[j] < 'A' || h->name[j] > 'Z');
        mix(&s->digest, h->name, h->name_len);
        mix(&s->digest, ":", 1);
        mix(&s->digest, h->value, h->value_len);
        head += h->name_len + h->value_len;
    }
    REQUIRE(head <= FUZZ_MAX_HEADER_BYTES);
    mix_int(&s->digest, (uint64_t)(m->http_major * 1000 + m->http_minor));
    mix_int(&s->digest, (uint64_t)(m->keep_alive * 2 + m->upgrade));
}

static int sink(void *ctx, const prisn_http_event *ev) {
    fuzz_state *s = ctx;
    switch (ev->type) {
    case PRISN_HTTP_EV_MESSAGE:
        REQUIRE(!s->streaming);
        REQUIRE(ev->message->body_len <= s->max_body);
        mix_message(s, ev->message);
        mix(&s->digest, ev->message->body, ev->message->body_len);
        mix_int(&s->digest, ev->message->body_len);
        break;
    case PRISN_HTTP_EV_HEAD:
        REQUIRE(s->streaming && !s->in_message);
        s->in_message = true;
        s->streamed = 0;
        mix_int(&s->digest, 0x4ead);
        mix_message(s, ev->message);
        break;
    case PRISN_HTTP_EV_CHUNK:
        REQUIRE(s->streaming && s->in_message && ev->len > 0);
        s->streamed += ev->len;
        REQUIRE(s->streamed <= s->max_body);
        mix(&s->digest, ev->data, ev->len); /* boundaries left out on purpose */
        break;
    case PRISN_HTTP_EV_DONE:
        REQUIRE(s->streaming && s->in_message);
        s->in_message = false;
        mix_int(&s->digest, 0xd0e);
        break;
    }
    return 0;
}

typedef struct {
    uint64_t digest;
    prisn_http_error error;
    enum http_errno hpe;
} fuzz_outcome;

/* Parses data fed as the pieces between the cuts, then EOF. */
static fuzz_outcome parse(const uint8_t *data, size_t size, prisn_http_kind kind, bool streaming,
                          const size_t *cuts, size_t ncuts) {
    prisn_http_limits limits = {FUZZ_MAX_HEADER_BYTES, FUZZ_MAX_BODY_BYTES, FUZZ_MAX_HEADERS,
                                streaming};
    prisn_http_parser p;
    prisn_http_init(&p, kind, &limits);
    fuzz_state s = {1469598103934665603ull, streaming, false, FUZZ_MAX_BODY_BYTES, 0};
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : size;
        rc = prisn_http_feed(&p, (const char *)data + at, end - at, sink, &s);
        at = end;
    }
    if (rc == 0)
        rc = prisn_http_feed_eof(&p, sink, &s);
    /* a dead parser stays dead */
    if (rc != 0) {
        prisn_http_error first = p.error;
        REQUIRE(prisn_http_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, sink, &s) == -1);
        REQUIRE(p.error == first);
        REQUIRE(strncmp(prisn_http_error_code(&p), "HPE_CB_", 7) != 0);
        char buf[128];
        REQUIRE(prisn_http_error_description(&p, buf, sizeof buf) != NULL);
    }
    REQUIRE(p.head_cap <= FUZZ_MAX_HEADER_BYTES);
    REQUIRE(p.nheaders <= FUZZ_MAX_HEADERS);
    if (!streaming)
        REQUIRE(p.body_cap <= FUZZ_MAX_BODY_BYTES);
    fuzz_outcome out = {s.digest, p.error, p.hpe};
    prisn_http_free(&p);
    return out;
}

static bool head_limit(prisn_http_error e) {
    return e == PRISN_HTTP_E_HEADER_TOO_LARGE || e == PRISN_HTTP_E_TOO_MANY_HEADERS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cuts[2] = {0, 0};
    if (size >= 4) {
        cuts[0] = ((size_t)data[0] | (size_t)data[1] << 8) % (size + 1);
        cuts[1] = cuts[0] + ((size_t)data[2] | (size_t)data[3] << 8) % (size - cuts[0] + 1);
    }
    for (int kind = 0; kind < 2; kind++) {
        for (int streaming = 0; streaming < 2; streaming++) {
            prisn_http_kind k = kind ? PRISN_HTTP_RESPONSE : PRISN_HTTP_REQUEST;
            fuzz_outcome whole = parse(data, size, k, streaming, NULL, 0);
            fuzz_outcome split = parse(data, size, k, streaming, cuts, 2);
            if (whole.error != split.error || whole.hpe != split.hpe) {
                /* Allowed only for a head that breaks a limit and the syntax
                 * at once: http-parser hands over a token when it ends or
                 * the input does, so the split decides which is seen first. */
                REQUIRE(whole.error != PRISN_HTTP_OK && split.error != PRISN_HTTP_OK);
                REQUIRE(head_limit(whole.error) || head_limit(split.error));
            }
            REQUIRE(whole.digest == split.digest);
        }
    }
    return 0;
}
