/* fuzz_serve_headers.c - the headers of an object request: Range,
 * If-None-Match and Authorization, on GET or HEAD of /v1/objects/ID or
 * /retrieve?hash=ID, against a real `mdbx serve` in this process.
 *
 * Input: byte 0 picks the object (bits 0-1: small inline, large file,
 * empty, a JSON record), HEAD (bit 2) and the /retrieve route (bit 3);
 * the rest is "RANGE\nIF-NONE-MATCH\nAUTHORIZATION" (a missing or empty
 * part: no such header; CR inside a value becomes a space; values are cut
 * at HEADER_VALUE_MAX bytes).
 *
 * Properties: 400 when a value holds a control byte (other than a tab);
 * otherwise the reply is 200, 206, 304 or 416; 304 when If-None-Match
 * holds the quoted id, and never when it holds neither that nor '*';
 * 200 carries the whole
 * object; 206 a Content-Range "bytes A-B/SIZE" within the object and
 * exactly those bytes; 416 "bytes *\/SIZE"; HEAD the object's size. */
#include "fuzz.h"
#include "serve_fixture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_VALUE_MAX 900

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    serve_fixture_start();
    return 0;
}

/* The part'th '\n'-separated part of text, or NULL when empty/missing. */
static char *input_part(const uint8_t *data, size_t size, int part)
{
    size_t start = 0;
    for (int i = 0; i < part; i++) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        if (!nl)
            return NULL;
        start = (size_t)(nl - data) + 1;
    }
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t end = nl ? (size_t)(nl - data) : size;
    if (end == start)
        return NULL;
    if (end - start > HEADER_VALUE_MAX)
        end = start + HEADER_VALUE_MAX;
    char *text = fuzz_strndup(data + start, end - start);
    for (char *p = text; *p; p++)
        if (*p == '\r')
            *p = ' ';
    return text;
}

static bool has_control_byte(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; p && *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return true;
    return false;
}

static void check_range_reply(const struct fixture_object *o, const struct http_response *r, bool head)
{
    char text[128];
    unsigned long long first, last, total;
    char tail;

    if (!http_response_header(r, "Content-Range", text, sizeof text) ||
        sscanf(text, "bytes %llu-%llu/%llu%c", &first, &last, &total, &tail) != 3)
        fuzz_fail("206 without a Content-Range bytes A-B/SIZE (%s)", text);
    if (total != o->size || first > last || last >= o->size)
        fuzz_fail("206 with Content-Range %s for an object of %zu bytes", text, o->size);
    if (!head && (r->body_size != last - first + 1 || memcmp(r->body, o->bytes + first, r->body_size) != 0))
        fuzz_fail("206 %s: the body is not those bytes of the object", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct fixture_object *o = &fixture_objects[data[0] & 3];
    bool head = data[0] & 4, retrieve = data[0] & 8;
    char *range = input_part(data + 1, size - 1, 0);
    char *inm = input_part(data + 1, size - 1, 1);
    char *auth = input_part(data + 1, size - 1, 2);
    struct fuzz_buf req = { 0 };
    struct fixture_reply reply;
    struct http_response r;
    char text[128], quoted[MINIDBX_ID_HEX_SIZE + 2];

    fuzz_buf_addf(&req, "%s %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
                  head ? "HEAD" : "GET", retrieve ? "/retrieve?hash=" : "/v1/objects/", o->hex);
    if (range)
        fuzz_buf_addf(&req, "Range: %s\r\n", range);
    if (inm)
        fuzz_buf_addf(&req, "If-None-Match: %s\r\n", inm);
    if (auth)
        fuzz_buf_addf(&req, "Authorization: %s\r\n", auth);
    fuzz_buf_add(&req, "\r\n", 2);
    serve_fixture_exchange(req.data, req.size, &reply);
    fixture_check_reply(&reply, head, &r);

    /* the node refuses control bytes in header values (framing.c) */
    if (has_control_byte(range) || has_control_byte(inm) || has_control_byte(auth)) {
        if (r.status != 400)
            fuzz_fail("status %u for a header value with a control byte", r.status);
        goto out;
    }

    /* 304 when If-None-Match holds the quoted id, never when it holds
     * neither that nor a '*' (how blanks around a lone '*' count is
     * libmicrohttpd's business) */
    snprintf(quoted, sizeof quoted, "\"%s\"", o->hex);
    bool inm_matches = inm && strstr(inm, quoted) != NULL;
    bool inm_cannot_match = !inm || (!inm_matches && !strchr(inm, '*'));
    if ((r.status == 304 && inm_cannot_match) || (r.status != 304 && inm_matches))
        fuzz_fail("status %u, but If-None-Match is '%s'", r.status, inm ? inm : "(none)");
    switch (r.status) {
    case 304:
        break;
    case 200:
        if (!head && (r.body_size != o->size || memcmp(r.body, o->bytes, o->size) != 0))
            fuzz_fail("200 without the whole object (%zu of %zu bytes)", r.body_size, o->size);
        if (head && (!http_response_header(&r, "Content-Length", text, sizeof text) ||
                     strtoull(text, NULL, 10) != o->size))
            fuzz_fail("HEAD 200 without the object's size as Content-Length");
        break;
    case 206:
        check_range_reply(o, &r, head);
        break;
    case 416:
        snprintf(quoted, sizeof quoted, "bytes */%zu", o->size);
        if (!http_response_header(&r, "Content-Range", text, sizeof text) || strcmp(text, quoted) != 0)
            fuzz_fail("416 without Content-Range %s", quoted);
        break;
    default:
        fuzz_fail("status %u for a read of an object that is there", r.status);
    }
out:
    free(reply.data);
    fuzz_buf_free(&req);
    free(range);
    free(inm);
    free(auth);
    serve_fixture_reset();
    return 0;
}
