/*
 * stream.c - stream a file into the store with a writer and back out with
 * a reader, in bounded memory whatever the file's size.
 *
 *   usage: stream STORE INPUT OUTPUT
 *
 * Prints the id and the number of bytes read back. (minidbx_put_fd and
 * minidbx_get_fd do the same in one call each when you have an fd.)
 */
#include <minidbx.h>

#include <stdint.h>
#include <stdio.h>

#define CHUNK_BYTES (64 * 1024)

static char buffer[CHUNK_BYTES];

static int report(const char *what, int code)
{
    fprintf(stderr, "stream: %s: %s (%s)\n", what, minidbx_strerror(code), minidbx_errmsg(NULL));
    return 1;
}

/* Write everything from in into a new object; its id goes to *id. */
static int stream_in(minidbx *db, FILE *in, minidbx_id *id)
{
    minidbx_writer *writer = NULL;
    size_t n;
    int code = minidbx_writer_open(db, &writer);

    if (code != MINIDBX_OK)
        return report("writer_open", code);
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if ((code = minidbx_writer_write(writer, buffer, n)) != MINIDBX_OK) {
            minidbx_writer_abort(writer); /* nothing of it is stored */
            return report("writer_write", code);
        }
    }
    if (ferror(in)) {
        minidbx_writer_abort(writer);
        fprintf(stderr, "stream: reading the input failed\n");
        return 1;
    }
    /* commit frees the writer whatever it returns */
    if ((code = minidbx_writer_commit(writer, id)) != MINIDBX_OK)
        return report("writer_commit", code);
    return 0;
}

/* Copy the object to out. The reader hashes the bytes as they pass: only
 * a read that ends with 0 bytes and no error proves they were right. */
static int stream_out(minidbx *db, const minidbx_id *id, FILE *out, uint64_t *copied)
{
    minidbx_reader *reader = NULL;
    uint64_t size = 0;
    size_t n = 0;
    int code = minidbx_reader_open(db, id, &reader, &size);

    if (code != MINIDBX_OK)
        return report("reader_open", code);
    *copied = 0;
    while ((code = minidbx_reader_read(reader, buffer, sizeof buffer, &n)) == MINIDBX_OK && n > 0) {
        if (fwrite(buffer, 1, n, out) != n)
            break;
        *copied += n;
    }
    minidbx_reader_close(reader);
    if (code != MINIDBX_OK)
        return report("reader_read", code);
    if (n > 0 || *copied != size) {
        fprintf(stderr, "stream: writing the output failed\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    minidbx *db = NULL;
    minidbx_id id;
    char hex[MINIDBX_ID_HEX_SIZE];
    uint64_t copied = 0;
    FILE *in = NULL, *out = NULL;
    int code, status = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: stream STORE INPUT OUTPUT\n");
        return 2;
    }
    if ((code = minidbx_open(&db, argv[1], NULL)) != MINIDBX_OK) {
        status = report(argv[1], code);
        goto out;
    }
    if (!(in = fopen(argv[2], "rb")) || !(out = fopen(argv[3], "wb"))) {
        perror(in ? argv[3] : argv[2]);
        goto out;
    }
    if (stream_in(db, in, &id) != 0 || stream_out(db, &id, out, &copied) != 0)
        goto out;
    if (fclose(out) != 0) {
        out = NULL;
        perror(argv[3]);
        goto out;
    }
    out = NULL;
    minidbx_id_format(&id, hex);
    printf("%s %llu bytes\n", hex, (unsigned long long)copied);
    status = 0;
out:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    minidbx_close(db);
    return status;
}
