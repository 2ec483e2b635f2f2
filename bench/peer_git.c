/*
 * peer_git.c - git's object store through its batch commands, in a fresh
 * `git init --bare` repository:
 *   put:    objects written to files first (untimed), then one
 *           `git hash-object -w --no-filters --stdin-paths` for all of them;
 *   get:    one `git cat-file --batch`, ids in random order;
 *   exists: one `git cat-file --batch-check`.
 * Requests go to git's stdin from a feeder thread while this thread reads
 * the answers, so neither side blocks on a full pipe. git ids are SHA-1 of
 * a header and the bytes, not our keys: the put pass saves them in
 * <dir>/oids, in data-set order, for the read passes.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OID_MAX 64  /* hex digits of a SHA-256 repository; SHA-1 has 40 */

typedef struct {
    char dir[PATH_MAX];
    char git_dir_arg[PATH_MAX + 16];   /* "--git-dir=<dir>/repo.git" */
    char (*oids)[OID_MAX + 1];         /* per data-set index */
    size_t count;
    int have_oids;                     /* filled by a put pass: save at close */
    char *request;                     /* stdin of the next command */
    size_t request_len;
    unsigned char *buf;                /* one object's bytes */
    size_t cap;
} git_state;

/* Buffered reader over git's stdout. */
typedef struct {
    int fd;
    size_t pos, len;
    char data[1 << 16];
} pipe_reader;

static int rd_fill(pipe_reader *r)
{
    ssize_t n;

    do
        n = read(r->fd, r->data, sizeof(r->data));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return fail("git", n == 0 ? "output ended early" : "read: %s", strerror(errno));
    r->pos = 0;
    r->len = (size_t)n;
    return 0;
}

/* One line without its LF, NUL-terminated. */
static int rd_line(pipe_reader *r, char *line, size_t cap)
{
    size_t n = 0;

    for (;;) {
        if (r->pos == r->len && rd_fill(r) != 0)
            return -1;
        char c = r->data[r->pos++];
        if (c == '\n')
            break;
        if (n + 1 >= cap)
            return fail("git", "output line too long");
        line[n++] = c;
    }
    line[n] = '\0';
    return 0;
}

static int rd_bytes(pipe_reader *r, void *dst, size_t len)
{
    unsigned char *p = dst;

    while (len > 0) {
        if (r->pos == r->len && rd_fill(r) != 0)
            return -1;
        size_t n = r->len - r->pos < len ? r->len - r->pos : len;
        memcpy(p, r->data + r->pos, n);
        p += n;
        r->pos += n;
        len -= n;
    }
    return 0;
}

typedef struct {
    int fd;
    const char *buf;
    size_t len;
    int err;
} feeder;

static void *feed(void *arg)
{
    feeder *f = arg;

    f->err = write_all(f->fd, f->buf, f->len) != 0 ? errno : 0;
    close(f->fd);
    return NULL;
}

typedef int (*consume_fn)(git_state *s, pipe_reader *r, const bench_dataset *ds,
                          const size_t *order, int full_check);

/* Run `git --git-dir=... <args>` with s->request on stdin; consume reads
 * its output. */
static int run_git(git_state *s, const char *const args[], consume_fn consume,
                   const bench_dataset *ds, const size_t *order, int full_check)
{
    char *argv[12] = { "git", s->git_dir_arg };
    feeder f = { -1, s->request, s->request_len, 0 };
    pthread_t thread;
    pipe_reader *r = malloc(sizeof(*r));
    pid_t pid;
    int rc = -1, fed = 0, i;

    for (i = 0; i < 9 && args[i]; i++)
        argv[2 + i] = (char *)args[i];
    argv[2 + i] = NULL;
    if (!r)
        return fail("git", "out of memory");
    if (spawn(argv, &f.fd, &r->fd, &pid) != 0)
        goto out_free;
    r->pos = r->len = 0;
    if (pthread_create(&thread, NULL, feed, &f) != 0)
        close(f.fd);
    else
        fed = 1;
    rc = fed ? consume(s, r, ds, order, full_check) : fail("git", "pthread_create failed");
    close(r->fd); /* before join: a git stuck writing to us gets EPIPE */
    if (fed)
        pthread_join(thread, NULL);
    if (wait_child(pid, args[0]) != 0 || (rc == 0 && f.err != 0))
        rc = fail("git", "%s failed%s%s", args[0], f.err ? ": " : "", f.err ? strerror(f.err) : "");
out_free:
    free(r);
    return rc;
}

static int git_close(void *st)
{
    git_state *s = st;
    char path[PATH_MAX];
    FILE *f = NULL;
    int rc = 0;

    if (!s)
        return 0;
    if (s->have_oids) {
        rc = -1;
        if (path_join(path, s->dir, "oids") != 0 || !(f = fopen(path, "w")))
            goto out;
        for (size_t i = 0; i < s->count; i++)
            fprintf(f, "%s\n", s->oids[i]);
        rc = fclose(f) == 0 ? 0 : fail("git", "writing %s failed", path);
    }
out:
    free(s->oids);
    free(s->request);
    free(s->buf);
    free(s);
    return rc;
}

static int is_oid(const char *hex)
{
    size_t n = strspn(hex, "0123456789abcdef");

    return hex[n] == '\0' && (n == 40 || n == 64);
}

static int load_oids(git_state *s)
{
    char path[PATH_MAX], line[OID_MAX + 8];
    size_t cap = 0;
    FILE *f;
    int rc = 0;

    if (path_join(path, s->dir, "oids") != 0)
        return -1;
    if (!(f = fopen(path, "r")))
        return fail("git", "%s: %s", path, strerror(errno));
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        if (s->count == cap) {
            size_t more = cap ? 2 * cap : 1024;
            void *bigger = realloc(s->oids, more * sizeof(*s->oids));
            if (!bigger) {
                rc = fail("git", "out of memory");
                break;
            }
            s->oids = bigger;
            cap = more;
        }
        line[strcspn(line, "\n")] = '\0';
        if (!is_oid(line))
            rc = fail("git", "%s: bad id '%s'", path, line);
        else
            memcpy(s->oids[s->count++], line, strlen(line) + 1);
    }
    fclose(f);
    return rc;
}

static int git_init_repo(const char *git_dir)
{
    char *argv[] = { "git", "-c", "init.defaultBranch=main", "init", "-q", "--bare",
                     (char *)git_dir, NULL };
    pid_t pid;

    if (spawn(argv, NULL, NULL, &pid) != 0)
        return -1;
    return wait_child(pid, "git init");
}

static int git_setup(git_state *s, const char *dir, unsigned flags)
{
    char git_dir[PATH_MAX], in_dir[PATH_MAX];

    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    if (path_join(git_dir, dir, "repo.git") != 0 || path_join(in_dir, dir, "in") != 0)
        return -1;
    snprintf(s->git_dir_arg, sizeof(s->git_dir_arg), "--git-dir=%s", git_dir);
    if (flags & KV_READ)
        return load_oids(s);
    if (make_dir(dir) != 0 || make_dir(in_dir) != 0)
        return -1;
    return git_init_repo(git_dir);
}

static int git_open(void **out, const char *dir, int variant, unsigned flags)
{
    git_state *s = calloc(1, sizeof(*s));

    (void)variant;
    if (!s)
        return fail("git", "out of memory");
    if (git_setup(s, dir, flags) != 0) {
        git_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int append_request(git_state *s, size_t *cap, const char *text)
{
    size_t n = strlen(text);

    if (s->request_len + n + 1 > *cap) {
        size_t more = (*cap ? 2 * *cap : 1 << 20) + n + 1;
        char *bigger = realloc(s->request, more);
        if (!bigger)
            return fail("git", "out of memory");
        s->request = bigger;
        *cap = more;
    }
    memcpy(s->request + s->request_len, text, n);
    s->request_len += n;
    s->request[s->request_len++] = '\n';
    return 0;
}

static int write_input_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;

    if (fd < 0)
        return fail("open", "%s: %s", path, strerror(errno));
    if (write_all(fd, data, size) != 0)
        rc = fail("write", "%s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = fail("close", "%s: %s", path, strerror(errno));
    return rc;
}

/* Untimed: hash-object reads objects from files, so write them first
 * (they stay in the page cache) and list their paths for its stdin. */
static int git_prepare(void *st, const bench_dataset *ds)
{
    git_state *s = st;
    char path[PATH_MAX];
    size_t cap = 0;

    s->request_len = 0;
    free(s->oids);
    s->count = 0;
    s->oids = calloc(ds->count ? ds->count : 1, sizeof(*s->oids));
    if (!s->oids)
        return fail("git", "out of memory");
    s->count = ds->count;
    for (size_t i = 0; i < ds->count; i++) {
        if (snprintf(path, sizeof(path), "%s/in/%zu", s->dir, i) >= (int)sizeof(path) ||
            write_input_file(path, dataset_item(ds, i), ds->item_bytes) != 0 ||
            append_request(s, &cap, path) != 0)
            return -1;
    }
    return 0;
}

static int consume_hashes(git_state *s, pipe_reader *r, const bench_dataset *ds,
                          const size_t *order, int full_check)
{
    (void)order;
    (void)full_check;
    for (size_t i = 0; i < ds->count; i++) {
        if (rd_line(r, s->oids[i], OID_MAX + 1) != 0)
            return -1;
        if (!is_oid(s->oids[i]))
            return fail("git hash-object", "unexpected output '%s'", s->oids[i]);
    }
    s->have_oids = 1;
    return 0;
}

static int git_put_all(void *st, const bench_dataset *ds)
{
    static const char *const args[] = { "hash-object", "-w", "--no-filters", "--stdin-paths", NULL };

    return run_git(st, args, consume_hashes, ds, NULL, 0);
}

/* The ids of a read pass, in the order asked for. */
static int build_id_request(git_state *s, const bench_dataset *ds, const size_t *order)
{
    size_t cap = 0;

    if (s->count != ds->count)
        return fail("git", "%zu ids saved for %zu objects", s->count, ds->count);
    s->request_len = 0;
    for (size_t k = 0; k < ds->count; k++) {
        if (append_request(s, &cap, s->oids[order[k]]) != 0)
            return -1;
    }
    return 0;
}

/* Parse "<oid> <type> <size>" and check it names the object expected. */
static int parse_header(const char *line, const char *oid, size_t *size)
{
    size_t n = strlen(oid);
    char *end;
    unsigned long long v;

    if (strncmp(line, oid, n) != 0 || strncmp(line + n, " blob ", 6) != 0)
        return fail("git cat-file", "asked for %s, got '%s'", oid, line);
    errno = 0;
    v = strtoull(line + n + 6, &end, 10);
    if (errno || *end != '\0')
        return fail("git cat-file", "bad header '%s'", line);
    *size = (size_t)v;
    return 0;
}

static int consume_objects(git_state *s, pipe_reader *r, const bench_dataset *ds,
                           const size_t *order, int full_check)
{
    char line[256], lf;
    size_t size;

    for (size_t k = 0; k < ds->count; k++) {
        size_t i = order[k];
        if (rd_line(r, line, sizeof(line)) != 0 || parse_header(line, s->oids[i], &size) != 0)
            return -1;
        if (size > s->cap) {
            unsigned char *bigger = realloc(s->buf, size);
            if (!bigger)
                return fail("git", "out of memory");
            s->buf = bigger;
            s->cap = size;
        }
        if (rd_bytes(r, s->buf, size) != 0 || rd_bytes(r, &lf, 1) != 0 || lf != '\n' ||
            kv_check_item(ds, i, s->buf, size, full_check) != 0)
            return -1;
    }
    return 0;
}

static int consume_checks(git_state *s, pipe_reader *r, const bench_dataset *ds,
                          const size_t *order, int full_check)
{
    char line[256];
    size_t size;

    (void)full_check;
    for (size_t k = 0; k < ds->count; k++) {
        if (rd_line(r, line, sizeof(line)) != 0 || parse_header(line, s->oids[order[k]], &size) != 0)
            return -1;
    }
    return 0;
}

static int git_get_all(void *st, const bench_dataset *ds, const size_t *order, int full_check)
{
    static const char *const args[] = { "cat-file", "--batch", NULL };

    if (build_id_request(st, ds, order) != 0)
        return -1;
    return run_git(st, args, consume_objects, ds, order, full_check);
}

static int git_exists_all(void *st, const bench_dataset *ds, const size_t *order)
{
    static const char *const args[] = { "cat-file", "--batch-check", NULL };

    if (build_id_request(st, ds, order) != 0)
        return -1;
    return run_git(st, args, consume_checks, ds, order, 0);
}

const kv_peer peer_git = {
    .name = P_GIT,
    .open = git_open,
    .close = git_close,
    .prepare = git_prepare,
    .put_all = git_put_all,
    .get_all = git_get_all,
    .exists_all = git_exists_all,
};
