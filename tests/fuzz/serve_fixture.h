/*
 * serve_fixture.h - a real `mdbx serve` inside the fuzzer's process.
 *
 * serve_fixture_start runs the node of `mdbx serve` (server/server.h, the
 * library mdbx links) in a thread, listening on 127.0.0.1 and a free port,
 * over a local store in a temp dir with a write token, and fills the store
 * with a baseline: a small (inline) object, a large one kept as a file, an
 * empty one, names pointing at them and a record of the Go /register
 * endpoint.
 *
 * serve_fixture_exchange sends one request on a new connection and reads
 * the answer until the server closes, within a deadline (a server that
 * takes longer is a finding). The connection is one end of a socketpair
 * that the node's daemon is given as its accept would (MHD_add_connection,
 * from 127.0.0.1): no TCP handshake or TIME_WAIT per input. serve_fixture_reset
 * then puts the store back to the baseline, so that every input meets the
 * same state and a crash reproduces from its input alone.
 *
 * The server stops (SIGTERM to its thread, as `mdbx serve` is stopped)
 * and the store is closed at exit, so LeakSanitizer sees what is left.
 */
#ifndef MINIDBX_SERVE_FIXTURE_H
#define MINIDBX_SERVE_FIXTURE_H

#include <minidbx.h>
#include <stdbool.h>
#include <stddef.h>

#define FIXTURE_WRITE_TOKEN "fuzz-write-token"
#define FIXTURE_MAX_OBJECT_BYTES (1u << 20)

/* The baseline objects. */
enum fixture_object_kind { OBJ_SMALL, OBJ_LARGE, OBJ_EMPTY, OBJ_RECORD, OBJ_COUNT };

struct fixture_object {
    minidbx_id id;
    char hex[MINIDBX_ID_HEX_SIZE];
    unsigned char *bytes;
    size_t size;
    const char *name; /* a name that points at it */
};

extern struct fixture_object fixture_objects[OBJ_COUNT];

/* Start the server once (later calls do nothing). */
void serve_fixture_start(void);

/* What came back for one input: the raw bytes (NUL-terminated, at most
 * FIXTURE_REPLY_MAX kept; *truncated says more came). */
#define FIXTURE_REPLY_MAX (8u << 20)
struct fixture_reply {
    char *data;
    size_t size;
    bool truncated;
};

/* Send one request of size bytes that says "Connection: close"; fill
 * *reply (free reply->data) with what comes until the server closes. */
void serve_fixture_exchange(const void *request, size_t size, struct fixture_reply *reply);
/* The same for raw bytes (any number of requests, or none whole): shut
 * the write side once they are sent, so that the server sees their end.
 * (Not for the others: a request the server suspends, such as a verify
 * or gc job, is dropped by libmicrohttpd when the client half-closes.) */
void serve_fixture_exchange_raw(const void *request, size_t size, struct fixture_reply *reply);

/* Undo what requests did to the store: back to the baseline. */
void serve_fixture_reset(void);

/* The server's store handle (shared with the server: thread-safe calls
 * only), to check what a request did. */
minidbx *serve_fixture_db(void);

/* ---- reading a reply --------------------------------------------------- */

struct http_response {
    unsigned status;
    const char *headers;  /* after the status line, up to the blank line */
    size_t headers_size;
    const char *body;     /* what follows the blank line */
    size_t body_size;
};

/* Parse the first response in data: false when it is not an HTTP/1.x
 * status line followed by headers and a blank line. */
bool http_response_parse(const char *data, size_t size, struct http_response *out);

/* The value of header name (case-insensitive) in out (of cap bytes, cut),
 * or false when the response has no such header. */
bool http_response_header(const struct http_response *r, const char *name, char *out, size_t cap);

/* The common properties of a reply to a well-framed request: it is an
 * HTTP response, its status is not 500 (an internal error is not an
 * answer to a bad request), its Content-Length (when not head) is the
 * size of its body, and a JSON body parses. Returns the parsed response. */
void fixture_check_reply(const struct fixture_reply *reply, bool head, struct http_response *out);

/* Append text to a growing request buffer. */
struct fuzz_buf {
    char *data;
    size_t size, cap;
};
void fuzz_buf_add(struct fuzz_buf *b, const void *data, size_t size);
void fuzz_buf_addf(struct fuzz_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append size bytes, percent-encoding every byte that may not stand as it
 * is in a URL path or query (keep is a list of bytes left as they are). */
void fuzz_buf_add_escaped(struct fuzz_buf *b, const void *data, size_t size, const char *keep);
void fuzz_buf_free(struct fuzz_buf *b);

#endif /* MINIDBX_SERVE_FIXTURE_H */
