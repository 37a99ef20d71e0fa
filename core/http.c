/*
 * http: incremental HTTP/1.x parsing over http-parser 2.9 (see http.h).
 *
 * http-parser is a push parser that hands out pieces of the input through
 * callbacks and keeps no bytes itself. This file collects those pieces into
 * one head buffer (the request-target or reason phrase, then the header
 * names and values) and one body buffer, and reports a message to the sink
 * when http-parser says it is complete, so a message split over any number
 * of feeds, or many messages in one feed, come out the same.
 *
 * Limits are enforced in the callbacks, before a byte is stored: a callback
 * that refuses returns -1, which makes http-parser stop with an HPE_CB_*
 * error that this file replaces by its own, more precise one. The head is
 * measured as a canonical message would carry it (see http.h), since
 * http-parser does not report the whitespace and line ends it skips; its own
 * 80 KiB cap on the raw head bounds those.
 *
 * A response has no body when it is 1xx, 204 or 304, or when the caller said
 * it answers HEAD (prisn_http_skip_body): on_headers_complete returns 1,
 * http-parser's "no body follows".
 *
 * Not done here: CONNECT response bodies, obs-fold joining, content codings, trailers (parsed,
 * counted against max_header_bytes, and dropped).
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A body buffer larger than this is released after its message, so an idle
 * keep-alive connection does not keep its biggest body forever. */
#define HTTP_BODY_KEEP (64 * 1024)

/* At most this much is reserved up front for a declared Content-Length; the
 * rest grows as the bytes arrive, so a claim alone cannot allocate much. */
#define HTTP_BODY_PRERESERVE (1024 * 1024)

void prisn_http_default_limits(prisn_http_limits *limits) {
    limits->max_header_bytes = PRISN_HTTP_DEFAULT_MAX_HEADER_BYTES;
    limits->max_body_bytes = PRISN_HTTP_DEFAULT_MAX_BODY_BYTES;
    limits->max_headers = PRISN_HTTP_DEFAULT_MAX_HEADERS;
    limits->stream_body = false;
}

/* ---- buffers -------------------------------------------------------------- */

/* Makes room for need bytes (need > 0), doubling from 256 but never past max
 * when need fits under it. False when out of memory. */
static bool http_reserve(void **buf, size_t *cap, size_t need, size_t elem, size_t max) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : (elem < 256 ? 256 / elem : 1);
    while (n < need)
        n = n > SIZE_MAX / 4 ? need : n * 2;
    if (n > max && need <= max)
        n = max;
    if (n > SIZE_MAX / elem)
        return false;
    void *grown = realloc(*buf, n * elem);
    if (grown == NULL)
        return false;
    *buf = grown;
    *cap = n;
    return true;
}

static int http_fail(prisn_http_parser *p, prisn_http_error error) {
    if (p->error == PRISN_HTTP_OK)
        p->error = error;
    return -1;
}

static int http_append(prisn_http_parser *p, const char *at, size_t len, bool lower) {
    if (len == 0)
        return 0;
    if (!http_reserve((void **)&p->head, &p->head_cap, p->head_len + len, 1,
                      p->limits.max_header_bytes))
        return http_fail(p, PRISN_HTTP_E_NOMEM);
    char *dst = p->head + p->head_len;
    if (lower) {
        for (size_t i = 0; i < len; i++) {
            char c = at[i];
            dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    } else {
        memcpy(dst, at, len);
    }
    p->head_len += len;
    return 0;
}

/* Adds n bytes to the head's canonical size; fails past the limit. */
static int http_count(prisn_http_parser *p, size_t n) {
    if (n > p->limits.max_header_bytes - p->head_bytes)
        return http_fail(p, PRISN_HTTP_E_HEADER_TOO_LARGE);
    p->head_bytes += n;
    return 0;
}

/* The start line's fixed part: "METHOD " and " HTTP/1.1\r\n" around the
 * target, or "HTTP/1.1 200 " and "\r\n" around the reason. Counted once,
 * at the first callback that follows the start line's fields. */
static int http_count_start_line(prisn_http_parser *p) {
    if (p->start_counted)
        return 0;
    p->start_counted = true;
    if (p->kind == PRISN_HTTP_REQUEST)
        return http_count(p, strlen(http_method_str((enum http_method)p->hp.method)) + 1 + 11);
    return http_count(p, 13 + 2);
}

/* Drops the optional whitespace that ends the last header's value. */
static void http_finish_value(prisn_http_parser *p) {
    if (p->nheaders == 0)
        return;
    prisn_http_header_span *s = &p->spans[p->nheaders - 1];
    while (s->value_len > 0) {
        char c = p->head[s->value_off + s->value_len - 1];
        if (c != ' ' && c != '\t')
            break;
        s->value_len--;
    }
}

static void http_begin(prisn_http_parser *p) {
    p->head_len = 0;
    p->head_bytes = 0;
    p->url_len = 0;
    p->nheaders = 0;
    p->body_len = 0;
    p->body_total = 0;
    p->last = PRISN_HTTP_IN_NONE;
    p->start_counted = false;
    p->in_trailers = false;
}

/* ---- the message and its events -------------------------------------------- */

static int http_emit(prisn_http_parser *p, const prisn_http_event *ev) {
    if (p->sink(p->sink_ctx, ev) != 0)
        return http_fail(p, PRISN_HTTP_E_SINK);
    return 0;
}

/* Fills m from the parser's state; the pointers stay valid until the next
 * byte is parsed. -1 when out of memory. */
static int http_build(prisn_http_parser *p, prisn_http_message *m, bool with_body) {
    if (p->nheaders > 0 && !http_reserve((void **)&p->headers, &p->headers_cap, p->nheaders,
                                         sizeof *p->headers, p->limits.max_headers))
        return http_fail(p, PRISN_HTTP_E_NOMEM);
    const char *head = p->head ? p->head : "";
    for (size_t i = 0; i < p->nheaders; i++) {
        const prisn_http_header_span *s = &p->spans[i];
        p->headers[i] =
            (prisn_http_header){head + s->name_off, s->name_len, head + s->value_off, s->value_len};
    }
    memset(m, 0, sizeof *m);
    m->kind = p->kind;
    if (p->kind == PRISN_HTTP_REQUEST) {
        m->method = http_method_str((enum http_method)p->hp.method);
        m->url = head;
        m->url_len = p->url_len;
    } else {
        m->status = (int)p->hp.status_code;
        m->reason = head;
        m->reason_len = p->url_len;
    }
    m->http_major = p->hp.http_major;
    m->http_minor = p->hp.http_minor;
    m->headers = p->headers;
    m->nheaders = p->nheaders;
    if (with_body) {
        m->body = p->body ? p->body : "";
        m->body_len = p->body_len;
    }
    m->keep_alive = http_should_keep_alive(&p->hp) != 0;
    m->upgrade = p->hp.upgrade != 0;
    m->has_content_length = (p->hp.flags & F_CONTENTLENGTH) != 0;
    m->content_length = m->has_content_length ? p->body_total : 0;
    return 0;
}

/* Streaming: hands the body bytes gathered so far to the sink. */
static int http_flush_chunk(prisn_http_parser *p) {
    if (p->body_len == 0)
        return 0;
    prisn_http_event ev = {PRISN_HTTP_EV_CHUNK, NULL, p->body, p->body_len};
    p->body_len = 0;
    return http_emit(p, &ev);
}

/* ---- http-parser callbacks ------------------------------------------------- */

#define PARSER(hp) ((prisn_http_parser *)(hp)->data)

static int http_on_message_begin(http_parser *hp) {
    prisn_http_parser *p = PARSER(hp);
    http_begin(p);
    p->in_message = true;
    return 0;
}

/* The request-target (requests) or the reason phrase (responses). */
static int http_on_start_text(http_parser *hp, const char *at, size_t len) {
    prisn_http_parser *p = PARSER(hp);
    if (http_count_start_line(p) < 0 || http_count(p, len) < 0 || http_append(p, at, len, false))
        return -1;
    p->url_len += len;
    return 0;
}

static int http_on_header_field(http_parser *hp, const char *at, size_t len) {
    prisn_http_parser *p = PARSER(hp);
    if (http_count_start_line(p) < 0)
        return -1;
    if (p->last != PRISN_HTTP_IN_FIELD) {
        if (http_count(p, 4) < 0) /* ": " and CRLF */
            return -1;
        if (!p->in_trailers) {
            http_finish_value(p);
            if (p->nheaders >= p->limits.max_headers)
                return http_fail(p, PRISN_HTTP_E_TOO_MANY_HEADERS);
            if (!http_reserve((void **)&p->spans, &p->spans_cap, p->nheaders + 1, sizeof *p->spans,
                              p->limits.max_headers))
                return http_fail(p, PRISN_HTTP_E_NOMEM);
            p->spans[p->nheaders++] = (prisn_http_header_span){p->head_len, 0, p->head_len, 0};
        }
        p->last = PRISN_HTTP_IN_FIELD;
    }
    if (http_count(p, len) < 0)
        return -1;
    if (p->in_trailers)
        return 0;
    p->spans[p->nheaders - 1].name_len += len;
    return http_append(p, at, len, true);
}

static int http_on_header_value(http_parser *hp, const char *at, size_t len) {
    prisn_http_parser *p = PARSER(hp);
    if (http_count(p, len) < 0)
        return -1;
    if (p->in_trailers || p->nheaders == 0) {
        p->last = PRISN_HTTP_IN_VALUE;
        return 0;
    }
    prisn_http_header_span *s = &p->spans[p->nheaders - 1];
    if (p->last != PRISN_HTTP_IN_VALUE) {
        s->value_off = p->head_len;
        s->value_len = 0;
        p->last = PRISN_HTTP_IN_VALUE;
    }
    s->value_len += len;
    return http_append(p, at, len, false);
}

/* Whether the response being parsed can have no body (see http.h). */
static bool http_bodyless(const prisn_http_parser *p) {
    if (p->kind != PRISN_HTTP_RESPONSE)
        return false;
    unsigned status = p->hp.status_code;
    return p->skip_body || status / 100 == 1 || status == 204 || status == 304;
}

static int http_on_headers_complete(http_parser *hp) {
    prisn_http_parser *p = PARSER(hp);
    int no_body = http_bodyless(p) ? 1 : 0;
    if (http_count_start_line(p) < 0 || http_count(p, 2) < 0) /* the empty line */
        return -1;
    http_finish_value(p);
    p->in_trailers = true;
    p->last = PRISN_HTTP_IN_NONE;
    bool has_length = (hp->flags & F_CONTENTLENGTH) != 0;
    if (has_length && !no_body && hp->content_length > p->limits.max_body_bytes)
        return http_fail(p, PRISN_HTTP_E_BODY_TOO_LARGE);
    if (!p->limits.stream_body) {
        size_t want = has_length && hp->content_length < HTTP_BODY_PRERESERVE
                          ? (size_t)hp->content_length
                          : HTTP_BODY_PRERESERVE;
        if (has_length && want > 0 &&
            !http_reserve((void **)&p->body, &p->body_cap, want, 1, p->limits.max_body_bytes))
            return http_fail(p, PRISN_HTTP_E_NOMEM);
        return no_body;
    }
    prisn_http_message m;
    if (http_build(p, &m, false) < 0)
        return -1;
    m.content_length = has_length ? hp->content_length : 0;
    prisn_http_event ev = {PRISN_HTTP_EV_HEAD, &m, NULL, 0};
    return http_emit(p, &ev) < 0 ? -1 : no_body;
}

/* A chunk larger than what is left of the body limit fails before any of
 * its bytes arrive. hp->content_length is the chunk's size here. */
static int http_on_chunk_header(http_parser *hp) {
    prisn_http_parser *p = PARSER(hp);
    if (hp->content_length > p->limits.max_body_bytes - p->body_total)
        return http_fail(p, PRISN_HTTP_E_BODY_TOO_LARGE);
    return 0;
}

/* Streaming a body with no declared length, exactly the first
 * max_body_bytes are reported before the failure, however they were split. */
static int http_on_body(http_parser *hp, const char *at, size_t len) {
    prisn_http_parser *p = PARSER(hp);
    bool over = len > p->limits.max_body_bytes - p->body_total;
    if (over && !p->limits.stream_body)
        return http_fail(p, PRISN_HTTP_E_BODY_TOO_LARGE);
    if (over)
        len = (size_t)(p->limits.max_body_bytes - p->body_total);
    size_t max = p->limits.stream_body ? SIZE_MAX : p->limits.max_body_bytes;
    if (len == 0)
        return over ? http_fail(p, PRISN_HTTP_E_BODY_TOO_LARGE) : 0;
    if (!http_reserve((void **)&p->body, &p->body_cap, p->body_len + len, 1, max))
        return http_fail(p, PRISN_HTTP_E_NOMEM);
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    p->body_total += len;
    return over ? http_fail(p, PRISN_HTTP_E_BODY_TOO_LARGE) : 0;
}

static int http_on_message_complete(http_parser *hp) {
    prisn_http_parser *p = PARSER(hp);
    int rc;
    if (p->limits.stream_body) {
        prisn_http_event done = {PRISN_HTTP_EV_DONE, NULL, NULL, 0};
        rc = http_flush_chunk(p);
        if (rc == 0)
            rc = http_emit(p, &done);
    } else {
        prisn_http_message m;
        rc = http_build(p, &m, true);
        if (rc == 0) {
            prisn_http_event ev = {PRISN_HTTP_EV_MESSAGE, &m, NULL, 0};
            rc = http_emit(p, &ev);
        }
    }
    if (p->kind == PRISN_HTTP_RESPONSE && hp->status_code >= 200)
        p->skip_body = false;
    /* http-parser stops right after a message that switches protocols. */
    if (hp->upgrade)
        p->upgraded = true;
    http_begin(p);
    p->in_message = false;
    if (p->body_cap > HTTP_BODY_KEEP) {
        free(p->body);
        p->body = NULL;
        p->body_cap = 0;
    }
    return rc;
}

static const http_parser_settings http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_start_text,
    .on_status = http_on_start_text,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
    .on_chunk_header = http_on_chunk_header,
    .on_chunk_complete = NULL,
};

/* ---- the parser -------------------------------------------------------------- */

void prisn_http_init(prisn_http_parser *p, prisn_http_kind kind, const prisn_http_limits *limits) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    if (limits)
        p->limits = *limits;
    else
        prisn_http_default_limits(&p->limits);
    http_parser_init(&p->hp, kind == PRISN_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p->hp.data = p;
}

void prisn_http_free(prisn_http_parser *p) {
    free(p->head);
    free(p->spans);
    free(p->headers);
    free(p->body);
    p->head = p->body = NULL;
    p->spans = NULL;
    p->headers = NULL;
    p->head_cap = p->spans_cap = p->headers_cap = p->body_cap = 0;
    http_begin(p);
}

void prisn_http_reset(prisn_http_parser *p) {
    http_begin(p);
    p->in_message = false;
    p->upgraded = false;
    p->skip_body = false;
    p->busy = false;
    p->error = PRISN_HTTP_OK;
    p->hpe = HPE_OK;
    http_parser_init(&p->hp, p->kind == PRISN_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p->hp.data = p;
}

/* Common entry checks: -1 when the parser is dead, else marks it busy. */
static int http_enter(prisn_http_parser *p, prisn_http_sink sink, void *ctx) {
    if (p->busy) /* a sink raised through us: the state is unknown */
        http_fail(p, PRISN_HTTP_E_ABORTED);
    if (p->error != PRISN_HTTP_OK)
        return -1;
    p->busy = true;
    p->sink = sink;
    p->sink_ctx = ctx;
    return 0;
}

/* Turns http-parser's verdict into ours and ends the call. */
static int http_leave(prisn_http_parser *p, bool eof) {
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (p->error == PRISN_HTTP_OK && e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW) {
            p->error = PRISN_HTTP_E_HEADER_TOO_LARGE;
        } else if (eof && e == HPE_INVALID_EOF_STATE) {
            p->error = PRISN_HTTP_E_INCOMPLETE;
        } else {
            p->error = PRISN_HTTP_E_PARSE;
            p->hpe = e;
        }
    }
    /* Body bytes that arrived before a parse error are still the peer's
     * data; report them (a sink or memory failure ends everything). */
    if (p->limits.stream_body) {
        if (p->error != PRISN_HTTP_E_SINK && p->error != PRISN_HTTP_E_NOMEM)
            http_flush_chunk(p);
        p->body_len = 0;
    }
    p->busy = false;
    return p->error == PRISN_HTTP_OK ? 0 : -1;
}

int prisn_http_feed(prisn_http_parser *p, const char *data, size_t len, prisn_http_sink sink,
                    void *ctx) {
    if (http_enter(p, sink, ctx) < 0)
        return -1;
    if (len > 0 && p->upgraded)
        http_fail(p, PRISN_HTTP_E_UPGRADED);
    if (len == 0 || p->error != PRISN_HTTP_OK) {
        p->busy = false;
        return p->error == PRISN_HTTP_OK ? 0 : -1;
    }
    size_t n = http_parser_execute(&p->hp, &http_settings, data, len);
    /* What follows an upgrade belongs to a protocol this parser does not
     * speak. (hp.upgrade alone is set as soon as the head is complete,
     * while a body may still follow: only a completed message counts.) */
    if (p->upgraded && n < len && HTTP_PARSER_ERRNO(&p->hp) == HPE_OK)
        http_fail(p, PRISN_HTTP_E_UPGRADED);
    return http_leave(p, false);
}

int prisn_http_feed_eof(prisn_http_parser *p, prisn_http_sink sink, void *ctx) {
    if (http_enter(p, sink, ctx) < 0)
        return -1;
    if (p->upgraded) {
        p->busy = false;
        return 0;
    }
    http_parser_execute(&p->hp, &http_settings, NULL, 0);
    return http_leave(p, true);
}

void prisn_http_skip_body(prisn_http_parser *p) {
    p->skip_body = true;
}

prisn_http_pending_part prisn_http_pending(const prisn_http_parser *p) {
    if (!p->in_message)
        return PRISN_HTTP_PENDING_NONE;
    /* in_trailers is set once the head is complete, for the body too. */
    return p->in_trailers ? PRISN_HTTP_PENDING_BODY : PRISN_HTTP_PENDING_HEAD;
}

/* ---- names --------------------------------------------------------------------- */

const char *prisn_http_error_code(const prisn_http_parser *p) {
    switch (p->error) {
    case PRISN_HTTP_OK:
        return "ok";
    case PRISN_HTTP_E_PARSE:
        return http_errno_name(p->hpe);
    case PRISN_HTTP_E_HEADER_TOO_LARGE:
        return "header_too_large";
    case PRISN_HTTP_E_BODY_TOO_LARGE:
        return "body_too_large";
    case PRISN_HTTP_E_TOO_MANY_HEADERS:
        return "too_many_headers";
    case PRISN_HTTP_E_INCOMPLETE:
        return "incomplete_message";
    case PRISN_HTTP_E_UPGRADED:
        return "upgraded";
    case PRISN_HTTP_E_NOMEM:
        return "ENOMEM";
    case PRISN_HTTP_E_SINK:
        return "sink_failed";
    case PRISN_HTTP_E_ABORTED:
        return "aborted";
    }
    return "unknown";
}

const char *prisn_http_error_description(const prisn_http_parser *p, char *buf, size_t size) {
    size_t head_max = p->limits.max_header_bytes;
    if (head_max > HTTP_MAX_HEADER_SIZE)
        head_max = HTTP_MAX_HEADER_SIZE;
    switch (p->error) {
    case PRISN_HTTP_OK:
        return "success";
    case PRISN_HTTP_E_PARSE:
        return http_errno_description(p->hpe);
    case PRISN_HTTP_E_HEADER_TOO_LARGE:
        snprintf(buf, size, "message head exceeds %zu bytes", head_max);
        return buf;
    case PRISN_HTTP_E_BODY_TOO_LARGE:
        snprintf(buf, size, "message body exceeds %zu bytes", p->limits.max_body_bytes);
        return buf;
    case PRISN_HTTP_E_TOO_MANY_HEADERS:
        snprintf(buf, size, "more than %zu header fields", p->limits.max_headers);
        return buf;
    case PRISN_HTTP_E_INCOMPLETE:
        return "the stream ended inside a message";
    case PRISN_HTTP_E_UPGRADED:
        return "data after a message that switched protocols";
    case PRISN_HTTP_E_NOMEM:
        return "out of memory";
    case PRISN_HTTP_E_SINK:
        return "the event sink failed";
    case PRISN_HTTP_E_ABORTED:
        return "an earlier feed was interrupted";
    }
    return "unknown error";
}

const char *prisn_http_status_text(int status) {
    if (status < 100 || status > 999)
        return NULL;
    const char *text = http_status_str((enum http_status)status);
    return (text == NULL || text[0] == '<') ? NULL : text;
}

void prisn_http_split_url(const char *url, size_t len, const char **path, size_t *path_len,
                          const char **query, size_t *query_len, bool *has_query) {
    const char *end = url + len;
    const char *p = url;
    /* absolute-form: skip "scheme://authority" */
    if (len > 0 && url[0] != '/') {
        const char *sep = memchr(url, ':', len);
        if (sep && end - sep >= 3 && sep[1] == '/' && sep[2] == '/') {
            const char *slash = memchr(sep + 3, '/', (size_t)(end - sep - 3));
            const char *q = memchr(sep + 3, '?', (size_t)(end - sep - 3));
            p = slash && (!q || slash < q) ? slash : (q ? q : end);
        }
    }
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash)
        end = hash;
    const char *q = memchr(p, '?', (size_t)(end - p));
    *path = p;
    *path_len = (size_t)((q ? q : end) - p);
    if (*path_len == 0 && p != url) { /* "http://host" or "http://host?x" */
        *path = "/";
        *path_len = 1;
    }
    *has_query = q != NULL;
    *query = q ? q + 1 : end;
    *query_len = q ? (size_t)(end - q - 1) : 0;
}
