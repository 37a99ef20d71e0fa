/*
 * http: incremental HTTP/1.x message parsing over http-parser 2.9.
 *
 * A prisn_http_parser is fed the bytes of one connection as they arrive and
 * reports every complete message (or, in streaming mode, the head, the body
 * pieces and the end of each message) to a sink callback, synchronously,
 * from inside prisn_http_feed. The bytes a message needs (start line,
 * headers, body) are copied into buffers owned by the parser; they grow as
 * needed but never past the limits, so a peer can make the parser hold at
 * most max_header_bytes + max_body_bytes (+ one feed, in streaming mode).
 *
 * Mechanism only: no sockets, no routing, no response writing. What a limit
 * should be, and what to answer a peer that broke one, is the caller's policy.
 */
#ifndef PRISN_HTTP_H
#define PRISN_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRISN_HTTP_DEFAULT_MAX_HEADER_BYTES 16384
#define PRISN_HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define PRISN_HTTP_DEFAULT_MAX_HEADERS 100
#define PRISN_HTTP_UNLIMITED SIZE_MAX

typedef enum {
    PRISN_HTTP_REQUEST,
    PRISN_HTTP_RESPONSE,
} prisn_http_kind;

typedef struct {
    /* The head (start line and header lines, counted as a canonical message
     * carries them: "NAME: VALUE\r\n" per header, CRLFs included; optional
     * whitespace the peer adds is not counted). Trailers of a chunked body
     * count against it too. http-parser itself also stops any raw head at
     * 80 KiB; both are reported as PRISN_HTTP_E_HEADER_TOO_LARGE.
     * http-parser hands a token over when it ends or the input does, so a
     * head that breaks this limit (or max_headers) and the syntax at once
     * may fail either way, depending on how its bytes were split. */
    size_t max_header_bytes;
    /* The body: a declared Content-Length above it fails as soon as the head
     * is complete, a chunk size that would cross it fails at the chunk
     * header, before any of its bytes are stored; a streamed body with no
     * declared length fails after exactly its first max_body_bytes were
     * reported. PRISN_HTTP_UNLIMITED: no limit (sensible only with
     * stream_body). */
    size_t max_body_bytes;
    size_t max_headers;
    /* Streaming: report the head, then the body in pieces, then the end,
     * instead of one event per complete message. */
    bool stream_body;
} prisn_http_limits;

typedef enum {
    PRISN_HTTP_OK = 0,
    PRISN_HTTP_E_PARSE,            /* http-parser's verdict, see http_errno */
    PRISN_HTTP_E_HEADER_TOO_LARGE, /* "header_too_large" */
    PRISN_HTTP_E_BODY_TOO_LARGE,   /* "body_too_large" */
    PRISN_HTTP_E_TOO_MANY_HEADERS, /* "too_many_headers" */
    PRISN_HTTP_E_INCOMPLETE,       /* "incomplete_message": EOF mid-message */
    PRISN_HTTP_E_UPGRADED,         /* "upgraded": data after a protocol switch */
    PRISN_HTTP_E_NOMEM,            /* "ENOMEM" */
    PRISN_HTTP_E_SINK,             /* "sink_failed": the sink returned non-zero */
    PRISN_HTTP_E_ABORTED,          /* "aborted": a feed never returned (longjmp) */
} prisn_http_error;

/* Header names are lower-cased; values have surrounding whitespace removed.
 * Offsets point into the message's buffers, valid during the sink call only. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} prisn_http_header;

typedef struct {
    prisn_http_kind kind;
    const char *method; /* requests: "GET", ... */
    const char *url;    /* requests: the request-target as sent */
    size_t url_len;
    int status;         /* responses */
    const char *reason; /* responses: the reason phrase, possibly empty */
    size_t reason_len;
    int http_major, http_minor;
    const prisn_http_header *headers; /* in arrival order, repeats kept */
    size_t nheaders;
    const char *body; /* NULL in streaming mode */
    size_t body_len;
    bool keep_alive; /* http_should_keep_alive: false = last message */
    bool upgrade;    /* the connection switches protocols after this message */
    bool has_content_length;
    uint64_t content_length;
} prisn_http_message;

typedef enum {
    PRISN_HTTP_EV_MESSAGE, /* buffered mode: a complete message */
    PRISN_HTTP_EV_HEAD,    /* streaming: the head is complete (body == NULL) */
    PRISN_HTTP_EV_CHUNK,   /* streaming: body bytes in data/len */
    PRISN_HTTP_EV_DONE,    /* streaming: the message is complete */
} prisn_http_event_type;

typedef struct {
    prisn_http_event_type type;
    const prisn_http_message *message; /* MESSAGE and HEAD */
    const char *data;                  /* CHUNK */
    size_t len;
} prisn_http_event;

/* Called for each event, in stream order. Returning non-zero stops the feed
 * with PRISN_HTTP_E_SINK. The sink must not feed, reset or free the parser. */
typedef int (*prisn_http_sink)(void *ctx, const prisn_http_event *event);

/* The per-header bookkeeping; offsets into head. */
typedef struct {
    size_t name_off, name_len, value_off, value_len;
} prisn_http_header_span;

typedef struct {
    http_parser hp;
    prisn_http_kind kind;
    prisn_http_limits limits;

    char *head; /* url or reason, then names and values */
    size_t head_len, head_cap;
    size_t head_bytes; /* the canonical size counted so far */
    size_t url_len;    /* url / reason: the first url_len bytes of head */
    prisn_http_header_span *spans;
    size_t nheaders, spans_cap;
    prisn_http_header *headers; /* built from spans when a head is reported */
    size_t headers_cap;
    char *body;
    size_t body_len, body_cap;
    uint64_t body_total; /* body bytes of this message, also when streamed */

    enum { PRISN_HTTP_IN_NONE, PRISN_HTTP_IN_FIELD, PRISN_HTTP_IN_VALUE } last;
    bool in_message;    /* a message has begun and not yet completed */
    bool start_counted; /* the start line's fixed bytes are in head_bytes */
    bool in_trailers;
    bool upgraded;
    bool skip_body; /* responses: the next final one answers HEAD */
    bool busy;      /* inside prisn_http_feed */

    prisn_http_sink sink;
    void *sink_ctx;
    prisn_http_error error;
    enum http_errno hpe; /* for PRISN_HTTP_E_PARSE */
} prisn_http_parser;

/* Fills in the defaults above (stream_body false). */
void prisn_http_default_limits(prisn_http_limits *limits);

/* Initializes p in place; allocates nothing (buffers grow on first use).
 * limits NULL: the defaults. */
void prisn_http_init(prisn_http_parser *p, prisn_http_kind kind, const prisn_http_limits *limits);

/* Frees the buffers; p may be initialized again. Idempotent. */
void prisn_http_free(prisn_http_parser *p);

/* Forgets any partial message and any error; keeps kind and limits. */
void prisn_http_reset(prisn_http_parser *p);

/* Responses: the next final (non-1xx) response has no body whatever its
 * head says, since it answers a HEAD request (RFC 9112 6.3); 1xx, 204 and
 * 304 responses never have one. Cleared when that response completes and by
 * a reset. http-parser cannot know what was asked: the caller says. */
void prisn_http_skip_body(prisn_http_parser *p);

/* Parses len bytes (len 0 is a no-op; EOF is prisn_http_feed_eof), calling
 * sink for every event they complete. Returns 0, or -1 when the parser has
 * failed, now or in an earlier call: events reported before the failure
 * stand, and every later feed fails the same way until a reset. */
int prisn_http_feed(prisn_http_parser *p, const char *data, size_t len, prisn_http_sink sink,
                    void *ctx);

/* Signals the end of the stream: completes a message delimited by the close
 * of the connection, or fails with PRISN_HTTP_E_INCOMPLETE when the stream
 * ends inside a message. Same return convention as prisn_http_feed. */
int prisn_http_feed_eof(prisn_http_parser *p, prisn_http_sink sink, void *ctx);

/* Where the stream stands between feeds: no message begun (line ends
 * between messages do not begin one), inside a message's head, or past its
 * head (in its body or trailers). A caller times a slow peer with it: a
 * head must arrive sooner than a large body. */
typedef enum {
    PRISN_HTTP_PENDING_NONE,
    PRISN_HTTP_PENDING_HEAD,
    PRISN_HTTP_PENDING_BODY,
} prisn_http_pending_part;

prisn_http_pending_part prisn_http_pending(const prisn_http_parser *p);

/* Stable code of the parser's error: "HPE_INVALID_METHOD", "body_too_large",
 * ...; "ok" when there is none. */
const char *prisn_http_error_code(const prisn_http_parser *p);

/* Its description: "invalid HTTP method", "body exceeds 1048576 bytes"... */
const char *prisn_http_error_description(const prisn_http_parser *p, char *buf, size_t size);

/* "Not Found" for 404; NULL for a code http-parser does not name. */
const char *prisn_http_status_text(int status);

/* Splits a request-target into path and query: "/a/b?x=1#f" gives "/a/b" and
 * "x=1" (has_query true); an absolute-form target loses its scheme and
 * authority ("http://h:1/p" gives "/p", "http://h" gives "/"); a fragment
 * is dropped. */
void prisn_http_split_url(const char *url, size_t len, const char **path, size_t *path_len,
                          const char **query, size_t *query_len, bool *has_query);

#endif
