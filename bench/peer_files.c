/*
 * peer_files.c - one file per object, named by its hex id.
 *
 * "files ab/cd/hex": sharded two levels deep like git's fan-out; each put
 * writes a temp file in the target directory and renames it into place,
 * without fsync when batched (a batch has nothing to group for plain
 * files), with fsync of the file and of its directory when durable.
 * "limit: fsync loop": the same code on one flat directory, always
 * durable: create + write + fsync + rename + fsync(dir), the floor under
 * any durable one-object put on this disk.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { LAYOUT_SHARDED = 0, LAYOUT_FLAT = 1 };

typedef struct {
    char root[PATH_MAX];
    int flat;
    int durable;
    unsigned char *buf;
    size_t cap;
    char dir[PATH_MAX];    /* directory of the object last named */
    char path[PATH_MAX];   /* its final name */
} files_state;

static int files_open(void **out, const char *dir, int variant, unsigned flags)
{
    files_state *s = calloc(1, sizeof(*s));

    if (!s)
        return fail("files", "out of memory");
    s->flat = variant == LAYOUT_FLAT;
    s->durable = (flags & KV_DURABLE) != 0;
    snprintf(s->root, sizeof(s->root), "%s", dir);
    if (!(flags & KV_READ) && make_dir(dir) != 0) {
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int files_close(void *st)
{
    files_state *s = st;

    if (!s)
        return 0;
    free(s->buf);
    free(s);
    return 0;
}

/* Fill s->dir and s->path for key: root/ab/cd/<hex> or root/<hex>. */
static int name_object(files_state *s, const minidbx_id *key)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    int n;

    hex_of(key->bytes, MINIDBX_ID_SIZE, hex);
    if (s->flat)
        n = snprintf(s->dir, sizeof(s->dir), "%s", s->root);
    else
        n = snprintf(s->dir, sizeof(s->dir), "%s/%.2s/%.2s", s->root, hex, hex + 2);
    if (n < 0 || (size_t)n >= sizeof(s->dir))
        return fail("files", "path too long under %s", s->root);
    return path_join(s->path, s->dir, hex);
}

/* Create root/ab and root/ab/cd; when durable, the new entries are made
 * durable too (fsync of each parent), or the object could vanish. */
static int make_shard_dirs(files_state *s)
{
    char parent[PATH_MAX];
    size_t len = strlen(s->dir) - 3; /* strip "/cd" */

    memcpy(parent, s->dir, len);
    parent[len] = '\0';
    if (make_dir(parent) != 0 || make_dir(s->dir) != 0)
        return -1;
    if (s->durable && (fsync_dir(s->root) != 0 || fsync_dir(parent) != 0))
        return -1;
    return 0;
}

static int open_temp(files_state *s, char tmp[PATH_MAX])
{
    int fd;

    if (path_join(tmp, s->dir, ".tmp") != 0)
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && !s->flat) {
        if (make_shard_dirs(s) != 0)
            return -1;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        return fail("open", "%s: %s", tmp, strerror(errno));
    return fd;
}

static int files_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    files_state *s = st;
    char tmp[PATH_MAX];
    int fd, rc = -1;

    if (name_object(s, key) != 0 || (fd = open_temp(s, tmp)) < 0)
        return -1;
    if (write_all(fd, data, size) != 0) {
        fail("write", "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (s->durable && fsync(fd) != 0) {
        fail("fsync", "%s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (close(fd) != 0 && rc == 0)
        rc = fail("close", "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, s->path) != 0)
        rc = fail("rename", "%s: %s", s->path, strerror(errno));
    if (rc == 0 && s->durable)
        rc = fsync_dir(s->dir);
    return rc;
}

static int grow(files_state *s, size_t n)
{
    unsigned char *bigger;

    if (n <= s->cap)
        return 0;
    bigger = realloc(s->buf, n);
    if (!bigger)
        return fail("files", "out of memory");
    s->buf = bigger;
    s->cap = n;
    return 0;
}

static int files_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    files_state *s = st;
    struct stat sb;
    size_t got = 0;
    int fd, rc = -1;

    if (name_object(s, key) != 0)
        return -1;
    fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("open", "%s: %s", s->path, strerror(errno));
    if (fstat(fd, &sb) != 0 || grow(s, (size_t)sb.st_size + 1) != 0)
        goto out;
    if (read_full(fd, s->buf, (size_t)sb.st_size, &got) != 0 || got != (size_t)sb.st_size) {
        fail("read", "%s: short read", s->path);
        goto out;
    }
    *data = s->buf;
    *size = got;
    rc = 0;
out:
    close(fd);
    return rc;
}

static int files_exists(void *st, const minidbx_id *key)
{
    files_state *s = st;

    if (name_object(s, key) != 0)
        return -1;
    if (access(s->path, F_OK) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    return fail("access", "%s: %s", s->path, strerror(errno));
}

const kv_peer peer_files = {
    .name = P_FILES,
    .variant = LAYOUT_SHARDED,
    .open = files_open,
    .close = files_close,
    .put = files_put,
    .get = files_get,
    .exists = files_exists,
};

const kv_peer peer_fsync_loop = {
    .name = P_LIMIT_FSYNC,
    .variant = LAYOUT_FLAT,
    .open = files_open,
    .close = files_close,
    .put = files_put,
    .get = files_get,
    .exists = files_exists,
};
