/*
 * http: the parser turns any split of a byte stream into the same messages,
 * enforces its limits before storing what breaks them, stays dead after an
 * error, and the Lua binding builds the tables the server and the client
 * read (header joining, streaming entries, the nil, message, code failures).
 */
#include <lauxlib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "check.h"
#include "http.h"

/* ---- a sink that records copies of what it is told ------------------------------ */

typedef struct {
    prisn_http_event_type type;
    char start[256];    /* "GET /x" or "200 OK" */
    char headers[1024]; /* "name: value\n" per header, in order */
    char version[8];
    char body[4096];
    size_t body_len;
    bool keep_alive, upgrade;
    long long content_length; /* -1 when none was declared */
} rec_event;

typedef struct {
    rec_event ev[64];
    int n;
    int fail_at; /* the sink refuses event number fail_at (1-based); 0: never */
} recorder;

static int record(void *ctx, const prisn_http_event *e) {
    recorder *r = ctx;
    if (r->fail_at && r->n + 1 == r->fail_at)
        return -1;
    if (r->n == 64)
        return -1;
    rec_event *out = &r->ev[r->n++];
    memset(out, 0, sizeof *out);
    out->type = e->type;
    out->content_length = -1;
    const prisn_http_message *m = e->message;
    if (m) {
        if (m->kind == PRISN_HTTP_REQUEST)
            snprintf(out->start, sizeof out->start, "%s %.*s", m->method, (int)m->url_len, m->url);
        else
            snprintf(out->start, sizeof out->start, "%d %.*s", m->status, (int)m->reason_len,
                     m->reason);
        size_t used = 0;
        for (size_t i = 0; i < m->nheaders && used < sizeof out->headers; i++)
            used +=
                (size_t)snprintf(out->headers + used, sizeof out->headers - used, "%.*s: %.*s\n",
                                 (int)m->headers[i].name_len, m->headers[i].name,
                                 (int)m->headers[i].value_len, m->headers[i].value);
        snprintf(out->version, sizeof out->version, "%d.%d", m->http_major, m->http_minor);
        out->keep_alive = m->keep_alive;
        out->upgrade = m->upgrade;
        if (m->has_content_length)
            out->content_length = (long long)m->content_length;
    }
    const char *data = m ? m->body : e->data;
    size_t len = m ? m->body_len : e->len;
    if (data && len <= sizeof out->body) {
        memcpy(out->body, data, len);
        out->body_len = len;
    }
    return 0;
}

static int feed_str(prisn_http_parser *p, const char *s, recorder *r) {
    return prisn_http_feed(p, s, strlen(s), record, r);
}

static prisn_http_limits small_limits(size_t head, size_t body, size_t headers) {
    prisn_http_limits l;
    prisn_http_default_limits(&l);
    l.max_header_bytes = head;
    l.max_body_bytes = body;
    l.max_headers = headers;
    return l;
}

#define CHECK_BODY(ev, want)                                                                       \
    do {                                                                                           \
        CHECK_INT((ev).body_len, sizeof(want) - 1);                                                \
        CHECK(memcmp((ev).body, want, sizeof(want) - 1) == 0);                                     \
    } while (0)

/* ---- mechanism --------------------------------------------------------------------- */

static void test_simple_get(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(
        feed_str(&p, "GET /api/v1/x?y=1 HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n", &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, PRISN_HTTP_EV_MESSAGE);
    CHECK_STR(r.ev[0].start, "GET /api/v1/x?y=1");
    CHECK_STR(r.ev[0].headers, "host: example\naccept: */*\n");
    CHECK_STR(r.ev[0].version, "1.1");
    CHECK_INT(r.ev[0].body_len, 0);
    CHECK(r.ev[0].keep_alive);
    CHECK(!r.ev[0].upgrade);
    CHECK_STR(prisn_http_error_code(&p), "ok");
    prisn_http_free(&p);
    prisn_http_free(&p); /* idempotent */
}

static void test_post_with_content_length_and_nul_bytes(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    static const char req[] = "POST /jobs HTTP/1.1\r\nContent-Length: 7\r\n\r\na\0b\0c\r\n";
    CHECK_INT(prisn_http_feed(&p, req, sizeof req - 1, record, &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_STR(r.ev[0].start, "POST /jobs");
    CHECK_BODY(r.ev[0], "a\0b\0c\r\n");
    CHECK_INT(r.ev[0].content_length, 7);
    prisn_http_free(&p);
}

static void test_chunked_request_body(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(feed_str(&p,
                       "PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
                       &r),
              0);
    CHECK_INT(r.n, 1);
    CHECK_BODY(r.ev[0], "hello world");
    CHECK_INT(r.ev[0].content_length, -1);
    /* trailers are dropped, not merged into the headers */
    CHECK_STR(r.ev[0].headers, "transfer-encoding: chunked\n");
    prisn_http_free(&p);
}

/* pending() follows a chunked request through its parts. */
static void test_pending_parts(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_NONE);
    CHECK_INT(feed_str(&p, "\r\nPUT /f HTTP/1.1\r\nTransfer-Enc", &r), 0);
    CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_HEAD);
    CHECK_INT(feed_str(&p, "oding: chunked\r\n\r\n5\r\nhel", &r), 0);
    CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_BODY);
    CHECK_INT(feed_str(&p, "lo\r\n0\r\nX-T: 1\r\n", &r), 0);
    CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_BODY); /* trailers */
    CHECK_INT(feed_str(&p, "\r\n", &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_NONE);
    prisn_http_free(&p);
}

static const char pipelined[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                                "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                                "PUT /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "2\r\nxy\r\n0\r\n\r\n"
                                "DELETE /4?q HTTP/1.1\r\nConnection: close\r\n\r\n";

static void check_pipelined(const recorder *r) {
    CHECK_INT(r->n, 4);
    CHECK_STR(r->ev[0].start, "GET /1");
    CHECK_STR(r->ev[1].start, "POST /2");
    CHECK_BODY(r->ev[1], "abc");
    CHECK_STR(r->ev[2].start, "PUT /3");
    CHECK_BODY(r->ev[2], "xy");
    CHECK_STR(r->ev[3].start, "DELETE /4?q");
    CHECK(r->ev[2].keep_alive);
    CHECK(!r->ev[3].keep_alive);
}

static void test_pipelined_in_one_feed(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(feed_str(&p, pipelined, &r), 0);
    check_pipelined(&r);
    prisn_http_free(&p);
}

static void test_byte_by_byte_and_every_split(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    for (size_t i = 0; i < sizeof pipelined - 1; i++)
        CHECK_INT(prisn_http_feed(&p, pipelined + i, 1, record, &r), 0);
    check_pipelined(&r);
    prisn_http_free(&p);

    /* every two-piece split gives the same messages */
    for (size_t cut = 1; cut < sizeof pipelined - 1; cut++) {
        recorder r2 = {0};
        prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
        CHECK_INT(prisn_http_feed(&p, pipelined, cut, record, &r2), 0);
        CHECK_INT(prisn_http_feed(&p, pipelined + cut, sizeof pipelined - 1 - cut, record, &r2), 0);
        check_pipelined(&r2);
        prisn_http_free(&p);
    }
}

static void test_header_names_lowered_values_trimmed(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(feed_str(&p,
                       "GET / HTTP/1.1\r\nCONTENT-Type:   application/json \t\r\nX-Empty:\r\n"
                       "X-Rep: 1\r\nx-rep: 2\r\n\r\n",
                       &r),
              0);
    CHECK_STR(r.ev[0].headers, "content-type: application/json\nx-empty: \nx-rep: 1\nx-rep: 2\n");
    prisn_http_free(&p);
}

static void test_keep_alive(void) {
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prisn_http_parser p;
        recorder r = {0};
        prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
        CHECK_INT(feed_str(&p, cases[i].req, &r), 0);
        CHECK_INT(r.n, 1);
        CHECK_INT(r.ev[0].keep_alive, cases[i].keep_alive);
        prisn_http_free(&p);
    }
}

/* "GET / HTTP/1.1\r\n" is 16 bytes, "Host: x\r\n" 9, the empty line 2. */
static void test_header_too_large_exact_boundary(void) {
    prisn_http_limits l = small_limits(27, 100, 10);
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\nHost: xy\r\n\r\n", &r), -1);
    CHECK_INT(r.n, 1);
    CHECK_STR(prisn_http_error_code(&p), "header_too_large");
    char buf[128];
    CHECK_STR(prisn_http_error_description(&p, buf, sizeof buf), "message head exceeds 27 bytes");
    prisn_http_free(&p);

    /* a long URL alone trips it too, before the line ends */
    l = small_limits(64, 100, 10);
    recorder r2 = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    char url[200] = "GET /";
    memset(url + 5, 'a', 100);
    url[105] = '\0';
    CHECK_INT(feed_str(&p, url, &r2), -1);
    CHECK_STR(prisn_http_error_code(&p), "header_too_large");
    CHECK(p.head_cap <= 64);
    prisn_http_free(&p);
}

static void test_too_many_headers(void) {
    prisn_http_limits l = small_limits(4096, 100, 2);
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", &r), 0);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &r), -1);
    CHECK_INT(r.n, 1);
    CHECK_STR(prisn_http_error_code(&p), "too_many_headers");
    prisn_http_free(&p);
}

static void test_content_length_over_limit_before_body(void) {
    prisn_http_limits l = small_limits(4096, 10, 10);
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    CHECK_INT(feed_str(&p, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", &r), 0);
    CHECK_INT(r.n, 1);
    /* no body byte has been sent: the head alone is refused */
    CHECK_INT(feed_str(&p, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &r), -1);
    CHECK_STR(prisn_http_error_code(&p), "body_too_large");
    CHECK(p.body_cap <= 10);
    char buf[128];
    CHECK_STR(prisn_http_error_description(&p, buf, sizeof buf), "message body exceeds 10 bytes");
    prisn_http_free(&p);

    /* a huge claim allocates nothing */
    l = small_limits(4096, PRISN_HTTP_UNLIMITED, 10);
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    CHECK_INT(feed_str(&p, "POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\nab", &r), 0);
    CHECK(p.body_cap <= 1024 * 1024);
    prisn_http_free(&p);
}

static void test_chunked_body_over_limit(void) {
    prisn_http_limits l = small_limits(4096, 8, 10);
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, &l);
    const char *head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK_INT(feed_str(&p, head, &r), 0);
    CHECK_INT(feed_str(&p, "4\r\nabcd\r\n4\r\nefgh\r\n", &r), 0);
    /* the third chunk's size already crosses the limit */
    CHECK_INT(feed_str(&p, "1\r\n", &r), -1);
    CHECK_STR(prisn_http_error_code(&p), "body_too_large");
    CHECK_INT(r.n, 0);
    prisn_http_free(&p);
}

static void test_malformed_and_dead_after_error(void) {
    static const struct {
        const char *req;
        const char *code;
    } cases[] = {
        {"FOO\x01 / HTTP/1.1\r\n\r\n", "HPE_INVALID_METHOD"},
        {"GET / HTTP/x.1\r\n\r\n", "HPE_INVALID_VERSION"},
        {"GET / HTTP/1.1\r\nBad\x01Header: 1\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"},
        {"GET /\x7f HTTP/1.1\r\n\r\n", "HPE_INVALID_URL"},
        {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HPE_INVALID_CHUNK_SIZE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prisn_http_parser p;
        recorder r = {0};
        prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
        CHECK_INT(feed_str(&p, cases[i].req, &r), -1);
        CHECK_STR(prisn_http_error_code(&p), cases[i].code);
        /* dead: the same error, even for a valid request or EOF */
        CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\n\r\n", &r), -1);
        CHECK_INT(prisn_http_feed_eof(&p, record, &r), -1);
        CHECK_STR(prisn_http_error_code(&p), cases[i].code);
        CHECK_INT(r.n, 0);
        /* until a reset */
        prisn_http_reset(&p);
        CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\n\r\n", &r), 0);
        CHECK_INT(r.n, 1);
        prisn_http_free(&p);
    }
    prisn_http_parser p;
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    recorder r = {0};
    feed_str(&p, "FOO\x01", &r);
    char buf[64];
    CHECK_STR(prisn_http_error_description(&p, buf, sizeof buf), "invalid HTTP method");
    prisn_http_free(&p);
}

static void test_messages_before_an_error_stand(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(
        feed_str(&p, "GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nBad\x01Header: 1\r\n\r\n", &r),
        -1);
    CHECK_INT(r.n, 1);
    CHECK_STR(r.ev[0].start, "GET /ok");
    CHECK_STR(prisn_http_error_code(&p), "HPE_INVALID_HEADER_TOKEN");
    prisn_http_free(&p);
}

static void test_responses(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, NULL);
    CHECK_INT(feed_str(&p,
                       "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
                       "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nno!\r\n0\r\n\r\n"
                       "HTTP/1.1 204\r\n\r\n",
                       &r),
              0);
    CHECK_INT(r.n, 4);
    CHECK_STR(r.ev[0].start, "100 Continue");
    CHECK_STR(r.ev[1].start, "200 OK");
    CHECK_BODY(r.ev[1], "hi");
    CHECK_STR(r.ev[2].start, "404 Not Found");
    CHECK_BODY(r.ev[2], "no!");
    CHECK_STR(r.ev[3].start, "204 ");
    CHECK_INT(prisn_http_feed_eof(&p, record, &r), 0);
    CHECK_INT(r.n, 4);
    prisn_http_free(&p);
}

/* A response to HEAD declares the GET's length but carries no body; 304 and
 * 1xx never carry one; the flag outlives a 1xx and ends with the final
 * response, in both modes. */
static void test_skip_body(void) {
    for (int streaming = 0; streaming < 2; streaming++) {
        prisn_http_parser p;
        recorder r = {0};
        prisn_http_limits l;
        prisn_http_default_limits(&l);
        l.stream_body = streaming;
        prisn_http_init(&p, PRISN_HTTP_RESPONSE, &l);
        prisn_http_skip_body(&p);
        CHECK_INT(feed_str(&p,
                           "HTTP/1.1 103 Early Hints\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                           &r),
                  0);
        int per = streaming ? 2 : 1; /* head + done, or one message */
        CHECK_INT(r.n, 4 * per + (streaming ? 1 : 0));
        CHECK_STR(r.ev[0].start, "103 Early Hints");
        CHECK_STR(r.ev[per].start, "200 OK");
        CHECK_INT(r.ev[per].content_length, streaming ? 5 : 0); /* buffered: the body's length */
        CHECK_INT(r.ev[per].body_len, 0);
        CHECK_STR(r.ev[2 * per].start, "304 Not Modified");
        CHECK_STR(r.ev[3 * per].start, "200 OK");
        if (streaming)
            CHECK_BODY(r.ev[3 * per + 1], "hi");
        else
            CHECK_BODY(r.ev[3 * per], "hi");
        CHECK_INT(prisn_http_pending(&p), PRISN_HTTP_PENDING_NONE);
        prisn_http_free(&p);
    }
}

static void test_close_delimited_response_and_truncation(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, NULL);
    CHECK_INT(feed_str(&p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ", &r), 0);
    CHECK_INT(feed_str(&p, "part two", &r), 0);
    CHECK_INT(r.n, 0);
    CHECK_INT(prisn_http_feed_eof(&p, record, &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_BODY(r.ev[0], "part one, part two");
    CHECK(!r.ev[0].keep_alive);
    prisn_http_free(&p);

    /* EOF inside a Content-Length body, inside a head, inside chunks */
    static const char *const truncated[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Le",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    };
    for (size_t i = 0; i < 3; i++) {
        recorder r2 = {0};
        prisn_http_init(&p, PRISN_HTTP_RESPONSE, NULL);
        CHECK_INT(feed_str(&p, truncated[i], &r2), 0);
        CHECK_INT(prisn_http_feed_eof(&p, record, &r2), -1);
        CHECK_STR(prisn_http_error_code(&p), "incomplete_message");
        CHECK_INT(r2.n, 0);
        prisn_http_free(&p);
    }
    /* EOF between requests is a normal end */
    recorder r3 = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\n\r\n", &r3), 0);
    CHECK_INT(prisn_http_feed_eof(&p, record, &r3), 0);
    CHECK_INT(r3.n, 1);
    prisn_http_free(&p);
}

static void test_streaming(void) {
    prisn_http_limits l;
    prisn_http_default_limits(&l);
    l.stream_body = true;
    l.max_body_bytes = PRISN_HTTP_UNLIMITED;
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, &l);
    CHECK_INT(feed_str(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &r), 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, PRISN_HTTP_EV_HEAD);
    CHECK_STR(r.ev[0].start, "200 OK");
    /* two HTTP chunks in one feed come out as one piece */
    CHECK_INT(feed_str(&p, "6\r\nline1\n\r\n6\r\nline2\n\r\n3\r\nli", &r), 0);
    CHECK_INT(r.n, 2);
    CHECK_INT(r.ev[1].type, PRISN_HTTP_EV_CHUNK);
    CHECK_BODY(r.ev[1], "line1\nline2\nli");
    CHECK_INT(feed_str(&p, "n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", &r), 0);
    CHECK_INT(r.n, 7);
    CHECK_INT(r.ev[2].type, PRISN_HTTP_EV_CHUNK);
    CHECK_BODY(r.ev[2], "n");
    CHECK_INT(r.ev[3].type, PRISN_HTTP_EV_DONE);
    CHECK_INT(r.ev[4].type, PRISN_HTTP_EV_HEAD);
    CHECK_INT(r.ev[4].content_length, 3);
    CHECK_INT(r.ev[5].type, PRISN_HTTP_EV_CHUNK);
    CHECK_BODY(r.ev[5], "abc");
    CHECK_INT(r.ev[6].type, PRISN_HTTP_EV_DONE);
    prisn_http_free(&p);

    /* the body buffer holds at most one feed, whatever the total */
    recorder r2 = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, &l);
    CHECK_INT(feed_str(&p, "HTTP/1.1 200 OK\r\n\r\n", &r2), 0);
    char block[1000];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 1000; i++) {
        r2.n = 1;
        CHECK_INT(prisn_http_feed(&p, block, sizeof block, record, &r2), 0);
    }
    CHECK(p.body_cap <= 1024);
    CHECK_INT(prisn_http_feed_eof(&p, record, &r2), 0);
    CHECK_INT(r2.ev[r2.n - 1].type, PRISN_HTTP_EV_DONE);
    prisn_http_free(&p);

    /* an explicit limit still applies to the total */
    l.max_body_bytes = 5;
    recorder r3 = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, &l);
    CHECK_INT(feed_str(&p, "HTTP/1.1 200 OK\r\n\r\nabc", &r3), 0);
    CHECK_INT(feed_str(&p, "def", &r3), -1);
    CHECK_STR(prisn_http_error_code(&p), "body_too_large");
    /* exactly the first 5 bytes came out, as they would in one feed */
    CHECK_INT(r3.n, 3);
    CHECK_BODY(r3.ev[1], "abc");
    CHECK_BODY(r3.ev[2], "de");
    prisn_http_free(&p);
}

static void test_upgrade_and_sink_failure(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(
        feed_str(&p, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &r),
        0);
    CHECK_INT(r.n, 1);
    CHECK(r.ev[0].upgrade);
    CHECK_INT(prisn_http_leftover(&p), 0);
    CHECK_INT(feed_str(&p, "\x81\x05hello", &r), -1);
    CHECK_STR(prisn_http_error_code(&p), "upgraded");
    CHECK_INT(prisn_http_leftover(&p), 7); /* the whole feed is the new protocol's */
    prisn_http_free(&p);

    /* the new protocol's first bytes in the same feed as the 101 */
    recorder rl = {0};
    prisn_http_init(&p, PRISN_HTTP_RESPONSE, NULL);
    CHECK_INT(feed_str(&p,
                       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Upgrade: websocket\r\n\r\n\x81\x02hi",
                       &rl),
              -1);
    CHECK_STR(prisn_http_error_code(&p), "upgraded");
    CHECK_INT(rl.n, 1);
    CHECK_STR(rl.ev[0].start, "101 Switching Protocols");
    CHECK_INT(prisn_http_leftover(&p), 4);
    prisn_http_reset(&p);
    CHECK_INT(prisn_http_leftover(&p), 0);
    prisn_http_free(&p);

    /* an upgrade with a body: parsing goes on until the body is complete,
     * however it is split, and only then stops */
    recorder r1 = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(feed_str(&p,
                       "POST /up HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: x\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n3\r\nab",
                       &r1),
              0);
    CHECK_INT(feed_str(&p, "c\r\n0\r\n\r\n", &r1), 0);
    CHECK_INT(r1.n, 1);
    CHECK_BODY(r1.ev[0], "abc");
    CHECK(r1.ev[0].upgrade);
    CHECK_INT(feed_str(&p, "next protocol", &r1), -1);
    CHECK_STR(prisn_http_error_code(&p), "upgraded");
    prisn_http_free(&p);

    recorder r2 = {.fail_at = 2};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    CHECK_INT(
        feed_str(&p, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n", &r2),
        -1);
    CHECK_INT(r2.n, 1);
    CHECK_STR(prisn_http_error_code(&p), "sink_failed");
    prisn_http_free(&p);
}

static jmp_buf escape;

static int escaping_sink(void *ctx, const prisn_http_event *e) {
    (void)ctx;
    (void)e;
    longjmp(escape, 1); /* what a Lua memory error does to a feed */
}

static void test_a_feed_left_by_longjmp_is_aborted(void) {
    prisn_http_parser p;
    recorder r = {0};
    prisn_http_init(&p, PRISN_HTTP_REQUEST, NULL);
    static const char req[] = "GET / HTTP/1.1\r\n\r\n";
    if (setjmp(escape) == 0)
        prisn_http_feed(&p, req, sizeof req - 1, escaping_sink, NULL);
    /* the state http-parser was left in is unknown: refuse to go on */
    CHECK_INT(feed_str(&p, req, &r), -1);
    CHECK_STR(prisn_http_error_code(&p), "aborted");
    prisn_http_reset(&p);
    CHECK_INT(feed_str(&p, "GET / HTTP/1.1\r\n\r\n", &r), 0);
    CHECK_INT(r.n, 1);
    prisn_http_free(&p);
}

static void test_split_url_and_status_text(void) {
    static const struct {
        const char *url, *path, *query;
    } cases[] = {
        {"/api/v1/x?y=1", "/api/v1/x", "y=1"},
        {"/a", "/a", NULL},
        {"/a?", "/a", ""},
        {"/a?b=1#frag", "/a", "b=1"},
        {"/a#frag?x", "/a", NULL},
        {"http://host:8080/p/q?z", "/p/q", "z"},
        {"http://host", "/", NULL},
        {"http://host?x=1", "/", "x=1"},
        {"*", "*", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path, *query;
        size_t path_len, query_len;
        bool has_query;
        prisn_http_split_url(cases[i].url, strlen(cases[i].url), &path, &path_len, &query,
                             &query_len, &has_query);
        char got[64];
        snprintf(got, sizeof got, "%.*s", (int)path_len, path);
        CHECK_STR(got, cases[i].path);
        CHECK_INT(has_query, cases[i].query != NULL);
        if (cases[i].query) {
            snprintf(got, sizeof got, "%.*s", (int)query_len, query);
            CHECK_STR(got, cases[i].query);
        }
    }
    CHECK_STR(prisn_http_status_text(404), "Not Found");
    CHECK_STR(prisn_http_status_text(431), "Request Header Fields Too Large");
    CHECK(prisn_http_status_text(299) == NULL);
    CHECK(prisn_http_status_text(-1) == NULL);
}

/* ---- Lua binding ------------------------------------------------------------------- */

#define LUA_CHECK(L, code) lua_check(L, code, __FILE__, __LINE__)

/* Runs code with `http` as its first argument; the chunk must return true. */
static void lua_check(lua_State *L, const char *code, const char *file, int line) {
    lua_pushcfunction(L, prisn_boot_traceback);
    int handler = lua_gettop(L);
    if (luaL_loadstring(L, code) != LUA_OK) {
        check_fail(file, line, "load: %s", lua_tostring(L, -1));
    } else {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "prisn.core.http");
        lua_call(L, 1, 1);
        if (lua_pcall(L, 1, 1, handler) != LUA_OK)
            check_fail(file, line, "%s", lua_tostring(L, -1));
        else if (lua_toboolean(L, -1) != 1)
            check_fail(file, line, "chunk returned %s", luaL_tolstring(L, -1, NULL));
    }
    lua_settop(L, handler - 1);
}

static void test_lua_request_table(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L,
              "local http = ...\n"
              "local p = http.new_parser('request')\n"
              "local list = assert(p:feed('POST /api/v1/x?y=1 HTTP/1.1\\r\\nHost: h\\r\\n'\n"
              "  .. 'Accept: a\\r\\nACCEPT: b\\r\\nSet-Cookie: c=1, x\\r\\nset-cookie: d=2\\r\\n'\n"
              "  .. 'Content-Length: 3\\r\\n\\r\\na\\0b'))\n"
              "assert(#list == 1)\n"
              "local m = list[1]\n"
              "assert(m.method == 'POST' and m.url == '/api/v1/x?y=1')\n"
              "assert(m.path == '/api/v1/x' and m.query == 'y=1')\n"
              "assert(m.headers.accept == 'a, b', m.headers.accept)\n"
              "assert(m.headers['set-cookie'] == 'c=1, x\\nd=2')\n"
              "assert(m.headers.host == 'h' and m.headers.Host == nil)\n"
              "assert(m.body == 'a\\0b' and #m.body == 3)\n"
              "assert(m.keep_alive == true and m.upgrade == false)\n"
              "assert(m.http_version == '1.1')\n"
              "m = p:feed('GET /p HTTP/1.0\\r\\n\\r\\n')[1]\n"
              "assert(m.query == nil and m.body == '' and m.keep_alive == false)\n"
              "assert(m.http_version == '1.0')\n"
              "return true");
    prisn_boot_close_state(L);
}

static void test_lua_errors(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(
        L, "local http = ...\n"
           "local p = http.new_parser('request', { max_body_bytes = 4 })\n"
           "local list, msg, code = p:feed('GET /a HTTP/1.1\\r\\n\\r\\n'\n"
           "  .. 'POST /b HTTP/1.1\\r\\nContent-Length: 5\\r\\n\\r\\n')\n"
           "assert(#list == 1 and list[1].path == '/a')\n"
           "assert(code == 'body_too_large', code)\n"
           "assert(msg == 'body_too_large: message body exceeds 4 bytes', msg)\n"
           "local l2, m2, c2 = p:feed('GET / HTTP/1.1\\r\\n\\r\\n')\n"
           "assert(l2 == nil and m2 == msg and c2 == code)\n"
           "p:reset()\n"
           "local l3, m3, c3 = p:feed('BAD\\1')\n"
           "assert(l3 == nil and c3 == 'HPE_INVALID_METHOD')\n"
           "assert(m3 == 'HPE_INVALID_METHOD: invalid HTTP method', m3)\n"
           "local r = http.new_parser('response')\n"
           "assert(#assert(r:feed('HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\nab')) == 0)\n"
           "local l4, m4, c4 = r:feed_eof()\n"
           "assert(l4 == nil and c4 == 'incomplete_message', m4)\n"
           "return true");
    prisn_boot_close_state(L);
}

static void test_lua_streaming_and_eof(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L,
              "local http = ...\n"
              "local p = http.new_parser('response', { stream_body = true })\n"
              "local l = assert(p:feed('HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n'\n"
              "  .. '\\r\\n4\\r\\nab\\0c\\r\\n'))\n"
              "assert(#l == 2 and l[1].streaming and l[1].status == 200 and l[1].reason == 'OK')\n"
              "assert(l[1].body == nil and l[2].chunk == 'ab\\0c')\n"
              "l = assert(p:feed('0\\r\\n\\r\\n'))\n"
              "assert(#l == 1 and l[1].done == true)\n"
              "local q = http.new_parser('response')\n"
              "assert(#q:feed('HTTP/1.0 200 OK\\r\\n\\r\\nuntil close') == 0)\n"
              "l = assert(q:feed_eof())\n"
              "assert(#l == 1 and l[1].body == 'until close' and l[1].keep_alive == false)\n"
              "return true");
    prisn_boot_close_state(L);
}

static void test_lua_handle_lifecycle_and_misuse(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    LUA_CHECK(L,
              "local http = ...\n"
              "local p = http.new_parser('request')\n"
              "assert(tostring(p) == 'prisn.http.parser (request)')\n"
              "p:close() p:close()\n"
              "assert(tostring(p) == 'prisn.http.parser (request, closed)')\n"
              "local ok, err = pcall(p.feed, p, 'x')\n"
              "assert(not ok and err:find('closed'), err)\n"
              "do local q <close> = http.new_parser('response') end\n"
              "assert(not pcall(http.new_parser, 'both'))\n"
              "ok, err = pcall(http.new_parser, 'request', { max_bodybytes = 1 })\n"
              "assert(not ok and err:find(\"unknown limit 'max_bodybytes'\"), err)\n"
              "ok, err = pcall(http.new_parser, 'request', { max_headers = -1 })\n"
              "assert(not ok and err:find('max_headers'), err)\n"
              "assert(not pcall(http.new_parser('request').feed, http.new_parser('request'), {}))\n"
              "assert(http.status_text(404) == 'Not Found' and http.status_text(299) == nil)\n"
              "assert(http.version() == '2.9.4')\n"
              "for _ = 1, 200 do http.new_parser('request'):feed('GET / HTTP/1.1\\r\\nA') end\n"
              "collectgarbage()\n"
              "return true");
    prisn_boot_close_state(L);
}

int main(void) {
    static const check_case cases[] = {
        {"simple GET", test_simple_get},
        {"POST with Content-Length and NUL bytes", test_post_with_content_length_and_nul_bytes},
        {"chunked request body", test_chunked_request_body},
        {"pending parts of a request", test_pending_parts},
        {"pipelined requests in one feed", test_pipelined_in_one_feed},
        {"byte by byte and every split", test_byte_by_byte_and_every_split},
        {"header names lowered, values trimmed", test_header_names_lowered_values_trimmed},
        {"keep-alive", test_keep_alive},
        {"header too large at the exact boundary", test_header_too_large_exact_boundary},
        {"too many headers", test_too_many_headers},
        {"Content-Length over the limit before the body",
         test_content_length_over_limit_before_body},
        {"chunked body over the limit", test_chunked_body_over_limit},
        {"malformed requests, dead after an error", test_malformed_and_dead_after_error},
        {"messages before an error stand", test_messages_before_an_error_stand},
        {"responses", test_responses},
        {"skip_body: HEAD, 304 and 1xx responses", test_skip_body},
        {"close-delimited response and truncation", test_close_delimited_response_and_truncation},
        {"streaming", test_streaming},
        {"upgrade and sink failure", test_upgrade_and_sink_failure},
        {"a feed left by longjmp is aborted", test_a_feed_left_by_longjmp_is_aborted},
        {"split_url and status_text", test_split_url_and_status_text},
        {"lua: request table", test_lua_request_table},
        {"lua: errors", test_lua_errors},
        {"lua: streaming and eof", test_lua_streaming_and_eof},
        {"lua: handle lifecycle and misuse", test_lua_handle_lifecycle_and_misuse},
        {NULL, NULL},
    };
    return check_main(cases);
}
