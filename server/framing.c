/* framing.c - requests that two HTTP parsers could read in two ways
 * are refused, whatever libmicrohttpd lets through.
 *
 * libmicrohttpd 0.9.75 takes the first of two Content-Length headers,
 * lets Transfer-Encoding: chunked win over Content-Length, and keeps a
 * header named "Content-Length " (space before the colon) as an unknown
 * header. A proxy in front may pick the other reading: the bytes one of
 * them takes as a body the other runs as a second request (smuggling).
 * MHD_OPTION_STRICT_FOR_CLIENT covers none of these, so every header of a
 * request is checked here before anything else happens. Likewise a %00 in
 * a URL or query, or \u0000 in a JSON string, would cut an id or a name
 * short: C strings stop at the NUL.
 *
 * So would a raw NUL byte (0x00) in the request line or a header value:
 * libmicrohttpd 0.9.75 hands over the URL, the query's keys and values
 * and the header values as C strings cut at it, with lengths to match,
 * and MHD_OPTION_STRICT_FOR_CLIENT does not refuse it (a NUL in a header
 * name it does refuse). What it does leave is the request's head in one
 * buffer, parsed in place: each piece (method, path, query keys and
 * values, version, header names and values) a string where it stood,
 * the separators between them (space, '?', '&', '=', ':', CR, LF)
 * overwritten with NULs, and MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE its
 * length. serve_request_head_problem walks that buffer from piece to
 * piece, in order: between two pieces there may be only NULs and white
 * space; any other byte is the rest of a piece that a NUL cut short.
 * (serve_unescape clears what unescaping leaves behind a piece, so that
 * it is no such rest.) A header line folded onto the next (obs-fold),
 * whose pieces libmicrohttpd moves out of the buffer, is refused too, as
 * RFC 9112 allows. */
#include "node.h"

#include <string.h>
#include <strings.h>

static bool name_is(const char *name, size_t name_len, const char *want)
{
    return strlen(want) == name_len && strncasecmp(name, want, name_len) == 0;
}

/* RFC 9110 token characters, what a field name is made of. */
static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void serve_framing_add(struct serve_framing *f, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    if (name_len == 0)
        f->bad_name = true;
    for (size_t i = 0; i < name_len; i++)
        f->bad_name |= !is_token_char((unsigned char)name[i]);
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        f->bad_value |= (c < 0x20 && c != '\t') || c == 0x7f;
    }
    if (name_is(name, name_len, "Content-Length")) {
        f->content_lengths++;
        f->bad_content_length |= value_len == 0 || value_len > 20;
        for (size_t i = 0; i < value_len; i++)
            f->bad_content_length |= value[i] < '0' || value[i] > '9';
    } else if (name_is(name, name_len, "Transfer-Encoding")) {
        f->transfer_encodings++;
        f->bad_transfer_encoding |= !(value_len == 7 && strncasecmp(value, "chunked", 7) == 0);
    }
}

const char *serve_framing_problem(const struct serve_framing *f)
{
    if (f->bad_name)
        return "a header name that is not a token (white space before the colon?)";
    if (f->bad_value)
        return "a header value with a control byte";
    if (f->content_lengths > 1)
        return "more than one Content-Length";
    if (f->transfer_encodings > 1)
        return "more than one Transfer-Encoding";
    if (f->content_lengths && f->transfer_encodings)
        return "both Content-Length and Transfer-Encoding";
    if (f->bad_transfer_encoding)
        return "a Transfer-Encoding other than chunked";
    if (f->bad_content_length)
        return "a Content-Length that is not a number";
    return NULL;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    serve_framing_add(cls, key ? key : "", key ? key_size : 0, value ? value : "",
                      value ? value_size : 0);
    return MHD_YES;
}

const char *serve_request_framing_problem(struct MHD_Connection *conn)
{
    struct serve_framing f = { 0 };
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, framing_header, &f);
    return serve_framing_problem(&f);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Walks strings only: outside them \u0000 is not an escape, and a JSON
 * parser refuses it anyway. */
bool serve_json_has_nul(const char *text, size_t len)
{
    bool in_string = false;

    if (memchr(text, '\0', len))
        return true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"') {
            in_string = !in_string;
        } else if (in_string && text[i] == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len) {
                int code = 0;
                for (size_t k = i + 2; k < i + 6; k++)
                    code = code * 16 + (hex_value(text[k]) < 0 ? 0x10000 : hex_value(text[k]));
                if (code == 0)
                    return true;
            }
            i++; /* the escaped character: \" does not end the string */
        }
    }
    return false;
}

size_t serve_unescape(void *cls, struct MHD_Connection *conn, char *text)
{
    size_t raw = strlen(text), len = MHD_http_unescape(text);
    /* "%41" is one byte now: the two behind the string's end are cleared
     * (serve_request_head_problem takes any other byte for a cut piece) */
    memset(text + len, 0, raw - len);
    if (memchr(text, '\0', len))
        serve_conn_mark_nul(cls, conn);
    return len;
}

/* A walk through a request's head, piece by piece (see the top). */
struct head_walk {
    const char *at, *end; /* where the last piece ended; the head's end */
    const char *version;  /* its piece, due after the query's */
    bool cut;             /* a byte between pieces: a piece cut at a NUL */
    bool elsewhere;       /* a piece outside the head, or out of order */
};

/* The next piece starts at start and has len bytes. */
static void walk_to(struct head_walk *w, const char *start, size_t len)
{
    if (start < w->at || start > w->end || len > (size_t)(w->end - start)) {
        w->elsewhere = true;
        return;
    }
    for (const char *p = w->at; p < start; p++)
        w->cut |= *p != '\0' && *p != ' ' && *p != '\t';
    w->at = start + len;
}

static enum MHD_Result walk_value(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                  const char *value, size_t value_size)
{
    struct head_walk *w = cls;

    if (kind == MHD_HEADER_KIND && w->version) { /* the request line is done */
        walk_to(w, w->version, strlen(w->version));
        w->version = NULL;
    }
    walk_to(w, key, key_size);
    if (value)
        walk_to(w, value, value_size);
    return MHD_YES;
}

const char *serve_request_head_problem(struct MHD_Connection *conn, const char *method,
                                       const char *url, const char *version)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    struct head_walk w = { method, method, version, false, false };

    if (!info)
        return "a request head that cannot be checked";
    w.end = method + info->header_size;
    walk_to(&w, method, strlen(method));
    walk_to(&w, url, strlen(url));
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND | MHD_HEADER_KIND, walk_value, &w);
    if (w.version)
        walk_to(&w, w.version, strlen(w.version));
    walk_to(&w, w.end, 0);
    if (w.cut)
        return "a NUL byte in the request line or a header value";
    if (w.elsewhere)
        return "a header line folded onto the next (obs-fold), or a request head out of order";
    return NULL;
}
