/* fuzz_serve_json.c - the JSON bodies the server parses: POST /register
 * (the Go master's record), POST /v1/missing (an array of ids) and
 * PUT /v1/names/NAME ({"id": ID}), against a real `mdbx serve` in this
 * process.
 *
 * Input: byte 0 picks the route (0 /register, 1 /v1/missing, 2 a name);
 * for a name the rest is "NAME\nBODY" (NAME percent-encoded into the
 * path, '/' kept), else the rest is the body.
 *
 * Properties: the common ones of fixture_check_reply; a 200 from
 * /v1/missing lists only ids that were asked for and are not in the store;
 * a 200 from a name PUT leaves the name pointing at the id of the body;
 * a 200 from /register leaves the Go record findable by GET /get. */
#include "fuzz.h"
#include "serve_fixture.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    serve_fixture_start();
    return 0;
}

/* Every id in the reply's "missing" was in the request and is not here. */
static void check_missing(const char *body, size_t body_size, const char *request)
{
    cJSON *reply = cJSON_ParseWithLength(body, body_size);
    cJSON *asked = cJSON_Parse(request);
    const cJSON *item;

    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(reply, "missing"))
    {
        const char *hex = cJSON_GetStringValue(item);
        minidbx_id id;
        bool found = false;
        const cJSON *a;
        if (!hex || minidbx_id_parse(&id, hex) != 0)
            fuzz_fail("/v1/missing answered a non-id");
        cJSON_ArrayForEach(a, asked)
        {
            minidbx_id asked_id;
            if (cJSON_GetStringValue(a) && minidbx_id_parse(&asked_id, cJSON_GetStringValue(a)) == 0 &&
                minidbx_id_equal(&asked_id, &id))
                found = true;
        }
        if (!found)
            fuzz_fail("/v1/missing answered %s, which was not asked", hex);
        if (minidbx_exists(serve_fixture_db(), &id) != 0)
            fuzz_fail("/v1/missing says %s is missing, but it is there", hex);
    }
    cJSON_Delete(reply);
    cJSON_Delete(asked);
}

/* After a 200, the name (as the server decoded it) points at the body's id. */
static void check_name(const char *body, size_t body_size, const char *request)
{
    cJSON *reply = cJSON_ParseWithLength(body, body_size);
    cJSON *asked = cJSON_Parse(request);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "name"));
    const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(asked, "id"));
    minidbx_name_info info;
    minidbx_id id;

    if (!name || !hex || minidbx_id_parse(&id, hex) != 0)
        fuzz_fail("a name PUT answered 200 without a name, or for a body without an id");
    if (minidbx_name_get(serve_fixture_db(), name, &info) != 0 || !minidbx_id_equal(&info.id, &id))
        fuzz_fail("after a name PUT answered 200, '%s' does not point at %s", name, hex);
    cJSON_Delete(reply);
    cJSON_Delete(asked);
}

static void check_register(const char *body, size_t body_size)
{
    cJSON *reply = cJSON_ParseWithLength(body, body_size);
    const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "hash"));
    struct fuzz_buf req = { 0 };
    struct fixture_reply got;
    struct http_response r;

    /* the hash: an id, or an MD5 as the Go system's clients send */
    if (!hex || (strlen(hex) != 64 && strlen(hex) != 32))
        fuzz_fail("/register answered 200 without the hash");
    fuzz_buf_addf(&req, "GET /get?hash=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", hex);
    serve_fixture_exchange(req.data, req.size, &got);
    fixture_check_reply(&got, false, &r);
    if (r.status != 200)
        fuzz_fail("a record /register accepted is not found by /get (%u)", r.status);
    free(got.data);
    fuzz_buf_free(&req);
    cJSON_Delete(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int route = data[0] % 3;
    const uint8_t *body = data + 1;
    size_t body_size = size - 1;
    struct fuzz_buf req = { 0 };
    struct fixture_reply reply;
    struct http_response r;

    if (route == 2) {
        const uint8_t *nl = memchr(body, '\n', body_size);
        size_t name_size = nl ? (size_t)(nl - body) : body_size;
        fuzz_buf_add(&req, "PUT /v1/names/", 14);
        fuzz_buf_add_escaped(&req, body, name_size, "/");
        body += nl ? name_size + 1 : name_size;
        body_size -= nl ? name_size + 1 : name_size;
    } else {
        fuzz_buf_addf(&req, "POST %s", route == 0 ? "/register" : "/v1/missing");
    }
    fuzz_buf_addf(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                        "Authorization: Bearer " FIXTURE_WRITE_TOKEN "\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", body_size);
    fuzz_buf_add(&req, body, body_size);
    serve_fixture_exchange(req.data, req.size, &reply);
    fixture_check_reply(&reply, false, &r);
    if (r.status == 200) {
        char *text = fuzz_strndup(body, body_size);
        if (route == 1)
            check_missing(r.body, r.body_size, text);
        else if (route == 2)
            check_name(r.body, r.body_size, text);
        else
            check_register(r.body, r.body_size);
        free(text);
    }
    free(reply.data);
    fuzz_buf_free(&req);
    serve_fixture_reset();
    return 0;
}
