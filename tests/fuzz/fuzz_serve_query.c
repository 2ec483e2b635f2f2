/* fuzz_serve_query.c - query strings (?after= &limit= &prefix= &hash= &id=
 * &repair= &cascade= ...) of every route that reads one, against a real
 * `mdbx serve` in this process.
 *
 * Input: byte 0 picks the route (see routes[] below), the rest is the
 * query string. Bytes that cannot stand in a request line are
 * percent-encoded; '%', '&', '=' and '+' are left for the input to use.
 *
 * Properties: the common ones of fixture_check_reply (an HTTP reply, not
 * 500, the body its Content-Length says, JSON that parses), and a listing
 * never holds more entries than its limit allows. */
#include "fuzz.h"
#include "serve_fixture.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct query_route {
    const char *method;
    const char *path;     /* "%s": the small object's id */
    const char *list_key; /* a listing: the array in its reply */
    bool write;
};

static const struct query_route routes[] = {
    { "GET", "/v1/objects", "objects", false },
    { "GET", "/v1/names", "names", false },
    { "GET", "/retrieve", NULL, false },
    { "GET", "/get", NULL, false },
    { "POST", "/v1/verify", NULL, true },
    { "DELETE", "/v1/objects/%s", NULL, true },
    { "GET", "/list", NULL, false },
    { "GET", "/v1/objects/%s", NULL, false },
    { "POST", "/v1/gc", NULL, true },
    { "HEAD", "/v1/objects/%s", NULL, false },
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])
#define LIST_MAX 10000 /* proto_v1.c's bound on ?limit= */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    serve_fixture_start();
    return 0;
}

static void check_listing(const struct http_response *r, const char *key)
{
    cJSON *json = cJSON_ParseWithLength(r->body, r->body_size);
    const cJSON *array = cJSON_GetObjectItemCaseSensitive(json, key);

    if (!cJSON_IsArray(array))
        fuzz_fail("a listing without its \"%s\" array", key);
    if (cJSON_GetArraySize(array) > LIST_MAX)
        fuzz_fail("a listing of %d entries, over the limit of %d", cJSON_GetArraySize(array), LIST_MAX);
    cJSON_Delete(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct query_route *route = &routes[data[0] % ROUTE_COUNT];
    bool head = strcmp(route->method, "HEAD") == 0;
    struct fuzz_buf req = { 0 };
    struct fixture_reply reply;
    struct http_response r;

    fuzz_buf_addf(&req, "%s ", route->method);
    fuzz_buf_addf(&req, route->path, fixture_objects[OBJ_SMALL].hex);
    fuzz_buf_add(&req, "?", 1);
    fuzz_buf_add_escaped(&req, data + 1, size - 1, "%&=+/:,;*()!$'@");
    fuzz_buf_addf(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
                  route->write ? "Authorization: Bearer " FIXTURE_WRITE_TOKEN "\r\n" : "");
    serve_fixture_exchange(req.data, req.size, &reply);
    fixture_check_reply(&reply, head, &r);
    if (route->list_key && r.status == 200)
        check_listing(&r, route->list_key);
    free(reply.data);
    fuzz_buf_free(&req);
    serve_fixture_reset();
    return 0;
}
