/*
 * peer_log.c - "limit: log append+fdatasync": every put appends one record
 * (32-byte key, 8-byte length, the bytes) to a single log file, and when
 * durable fdatasyncs it: one flush per put, the floor under any design that
 * makes a put durable with a write-ahead log (SQLite's WAL does this plus
 * its page bookkeeping). Reads scan the log once at open into a sorted
 * index; nothing here is a store a user would keep (no checksums, no
 * recovery), it only says what one flush costs on this disk.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    minidbx_id key;
    uint64_t offset, size;
} log_entry;

typedef struct {
    int fd;
    int durable;
    uint64_t end;
    log_entry *index;    /* sorted by key, after a read open */
    size_t count;
    unsigned char *buf;
    size_t cap;
} log_state;

static int log_close(void *st)
{
    log_state *s = st;

    if (!s)
        return 0;
    if (s->fd >= 0)
        close(s->fd);
    free(s->index);
    free(s->buf);
    free(s);
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return memcmp(((const log_entry *)a)->key.bytes, ((const log_entry *)b)->key.bytes,
                  MINIDBX_ID_SIZE);
}

/* Read every record header into the index, then sort it. */
static int log_load(log_state *s)
{
    unsigned char head[MINIDBX_ID_SIZE + 8];
    size_t cap = 0, got;
    uint64_t off = 0;

    for (;;) {
        if (lseek(s->fd, (off_t)off, SEEK_SET) < 0 || read_full(s->fd, head, sizeof(head), &got) != 0)
            return fail("log", "read: %s", strerror(errno));
        if (got == 0)
            break;
        if (got != sizeof(head))
            return fail("log", "torn record at %llu", (unsigned long long)off);
        if (s->count == cap) {
            log_entry *more = realloc(s->index, (cap = cap ? cap * 2 : 1024) * sizeof(*more));
            if (!more)
                return fail("log", "out of memory");
            s->index = more;
        }
        log_entry *e = &s->index[s->count++];
        memcpy(e->key.bytes, head, MINIDBX_ID_SIZE);
        memcpy(&e->size, head + MINIDBX_ID_SIZE, 8);
        e->offset = off + sizeof(head);
        off = e->offset + e->size;
    }
    qsort(s->index, s->count, sizeof(*s->index), cmp_entry);
    return 0;
}

static int log_open(void **out, const char *dir, int variant, unsigned flags)
{
    log_state *s = calloc(1, sizeof(*s));
    char path[PATH_MAX];

    (void)variant;
    if (!s)
        return fail("log", "out of memory");
    s->durable = (flags & KV_DURABLE) != 0;
    s->fd = -1;
    if ((!(flags & KV_READ) && make_dir(dir) != 0) || path_join(path, dir, "log") != 0)
        goto fail;
    s->fd = open(path, (flags & KV_READ) ? O_RDONLY | O_CLOEXEC
                                         : O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        fail("log", "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((flags & KV_READ) && log_load(s) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    log_close(s);
    return -1;
}

static int log_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    log_state *s = st;
    unsigned char head[MINIDBX_ID_SIZE + 8];
    uint64_t n = size;

    memcpy(head, key->bytes, MINIDBX_ID_SIZE);
    memcpy(head + MINIDBX_ID_SIZE, &n, 8);
    if (size + sizeof(head) > s->cap) {
        unsigned char *bigger = realloc(s->buf, size + sizeof(head));
        if (!bigger)
            return fail("log", "out of memory");
        s->buf = bigger;
        s->cap = size + sizeof(head);
    }
    memcpy(s->buf, head, sizeof(head));
    memcpy(s->buf + sizeof(head), data, size);
    if (write_all(s->fd, s->buf, size + sizeof(head)) != 0)
        return fail("log", "write: %s", strerror(errno));
    if (s->durable && fdatasync(s->fd) != 0)
        return fail("log", "fdatasync: %s", strerror(errno));
    return 0;
}

static const log_entry *log_find(const log_state *s, const minidbx_id *key)
{
    log_entry want;

    want.key = *key;
    return bsearch(&want, s->index, s->count, sizeof(*s->index), cmp_entry);
}

static int log_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    log_state *s = st;
    const log_entry *e = log_find(s, key);

    if (!e)
        return fail("log get", "key not found");
    if (e->size > s->cap) {
        unsigned char *bigger = realloc(s->buf, e->size);
        if (!bigger)
            return fail("log", "out of memory");
        s->buf = bigger;
        s->cap = e->size;
    }
    if (pread(s->fd, s->buf, e->size, (off_t)e->offset) != (ssize_t)e->size)
        return fail("log", "short read");
    *data = s->buf;
    *size = e->size;
    return 0;
}

static int log_exists(void *st, const minidbx_id *key)
{
    return log_find(st, key) != NULL;
}

const kv_peer peer_log = {
    .name = P_LIMIT_LOG,
    .open = log_open,
    .close = log_close,
    .put = log_put,
    .get = log_get,
    .exists = log_exists,
};
