/* fuzz_serve_multipart.c - POST /upload bodies (multipart/form-data with a
 * "file" field, as the Go clients send them) and their Content-Type,
 * against a real `mdbx serve` in this process.
 *
 * Input: "CONTENT-TYPE\nBODY"; an empty first line means
 * "multipart/form-data; boundary=----fuzzboundary" (CR and LF in the
 * Content-Type become spaces).
 *
 * Properties: the common ones of fixture_check_reply; a 200 names, as its
 * "id", an object that is in the store ("hash" is its MD5: the fixture
 * keeps MD5 aliases, as `mdbx serve` does by default). */
#include "fuzz.h"
#include "serve_fixture.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TYPE "multipart/form-data; boundary=----fuzzboundary"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    serve_fixture_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t type_size = nl ? (size_t)(nl - data) : 0;
    const uint8_t *body = nl ? nl + 1 : data;
    size_t body_size = size - (size_t)(body - data);
    char *type = type_size ? fuzz_strndup(data, type_size) : NULL;
    struct fuzz_buf req = { 0 };
    struct fixture_reply reply;
    struct http_response r;

    for (char *p = type; p && *p; p++)
        if (*p == '\r')
            *p = ' ';
    fuzz_buf_addf(&req, "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                        "Authorization: Bearer " FIXTURE_WRITE_TOKEN "\r\n"
                        "Content-Type: %.900s\r\nContent-Length: %zu\r\n\r\n",
                  type ? type : DEFAULT_TYPE, body_size);
    fuzz_buf_add(&req, body, body_size);
    serve_fixture_exchange(req.data, req.size, &reply);
    fixture_check_reply(&reply, false, &r);
    if (r.status == 200) {
        cJSON *json = cJSON_ParseWithLength(r.body, r.body_size);
        const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(json, "id"));
        minidbx_id id;
        if (!hex || minidbx_id_parse(&id, hex) != 0 || minidbx_exists(serve_fixture_db(), &id) != 1)
            fuzz_fail("/upload answered 200 for an object that is not in the store");
        cJSON_Delete(json);
    }
    free(reply.data);
    fuzz_buf_free(&req);
    free(type);
    serve_fixture_reset();
    return 0;
}
