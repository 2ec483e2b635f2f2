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
 * short: C strings stop at the NUL. */
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
    size_t len = MHD_http_unescape(text);
    if (memchr(text, '\0', len))
        serve_conn_mark_nul(cls, conn);
    return len;
}
