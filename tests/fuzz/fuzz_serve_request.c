/* fuzz_serve_request.c - whole raw HTTP requests (one or several,
 * pipelined) into a real `mdbx serve` in this process: request line,
 * headers, bodies, every route, chunked encoding, whatever the bytes say.
 *
 * Properties: the server closes the connection within the deadline; what
 * it sends, if anything, starts with an HTTP status line that is not 500;
 * no sanitizer report, no leak, in the server's threads or ours. */
#include "fuzz.h"
#include "known_findings.h"
#include "serve_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    serve_fixture_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fixture_reply reply;
    struct http_response first;

    if (fuzz_skip_known()) {
        char *text = fuzz_strndup(data, size);
        const char *body = strstr(text, "\r\n\r\n");
        bool known = memmem(data, size, "/register", 9) && body &&
                     fuzz_known_register_size_overflow(body + 4);
        free(text);
        if (known)
            return 0;
    }
    serve_fixture_exchange(data, size, &reply);
    if (getenv("FUZZ_VERBOSE")) { /* to see what the seeds reach */
        const char *eol = memchr(data, '\r', size);
        fprintf(stderr, "%.*s -> %.*s\n", (int)(eol ? (size_t)(eol - (const char *)data) : size),
                (const char *)data, (int)strcspn(reply.data, "\r\n"), reply.data);
    }
    if (reply.size > 0) {
        if (!http_response_parse(reply.data, reply.size, &first))
            fuzz_fail("the server sent something that is not an HTTP response: %.80s", reply.data);
        if (first.status == 500)
            fuzz_fail("500 Internal Server Error: %.300s", first.body);
    }
    free(reply.data);
    serve_fixture_reset();
    return 0;
}
