/*
 * roundtrip.c - store a few bytes and read them back by their id.
 *
 *   usage: roundtrip STORE
 *
 * Shows the whole-buffer calls: minidbx_open, minidbx_put, minidbx_get,
 * and how errors are reported (a code, its name and the detail message).
 * Whole-buffer calls are for small objects; see stream.c for large ones.
 */
#include <minidbx.h>

#include <stdio.h>
#include <string.h>

static int report(const char *what, int code)
{
    fprintf(stderr, "roundtrip: %s: %s (%s)\n", what, minidbx_strerror(code),
            minidbx_errmsg(NULL));
    return 1;
}

int main(int argc, char **argv)
{
    static const char message[] = "hello, minidbx";
    minidbx *db = NULL;
    minidbx_id id, expected;
    char hex[MINIDBX_ID_HEX_SIZE];
    void *data = NULL;
    size_t size = 0;
    int code, status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: roundtrip STORE\n");
        return 2;
    }
    /* NULL options: the defaults; the store is created if missing. */
    if ((code = minidbx_open(&db, argv[1], NULL)) != MINIDBX_OK) {
        status = report(argv[1], code);
        goto out;
    }
    if ((code = minidbx_put(db, message, strlen(message), &id)) != MINIDBX_OK) {
        status = report("put", code);
        goto out;
    }
    /* The id is the SHA-256 of the bytes: anyone can compute it. */
    minidbx_id_of(&expected, message, strlen(message));
    minidbx_id_format(&id, hex);
    if (!minidbx_id_equal(&id, &expected)) {
        fprintf(stderr, "roundtrip: put returned an unexpected id %s\n", hex);
        goto out;
    }
    if ((code = minidbx_get(db, &id, &data, &size)) != MINIDBX_OK) {
        status = report(hex, code);
        goto out;
    }
    if (size != strlen(message) || memcmp(data, message, size) != 0) {
        fprintf(stderr, "roundtrip: %s: got other bytes back\n", hex);
        goto out;
    }
    printf("%s %zu bytes: %.*s\n", hex, size, (int)size, (const char *)data);
    status = 0;
out:
    minidbx_free(data); /* memory from minidbx_get; NULL is fine */
    minidbx_close(db);  /* NULL is fine too */
    return status;
}
