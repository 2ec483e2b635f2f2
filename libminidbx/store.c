/*
 * store.c - the public API. Every call checks its arguments, refuses writes
 * on a read-only handle, computes ids and verifies bytes read back, then
 * dispatches to the backend table, so that no backend repeats that work.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct minidbx {
    minidbx_backend *be;
    minidbx_options opts;
    bool verify;   /* hash bytes on read */
    bool readonly;
};

struct minidbx_writer {
    minidbx *db;
    minidbx_backend_writer *bw;
    dbx_hasher *hasher;
    uint64_t written;
    int error; /* sticky: after a failed write only abort is useful */
};

struct minidbx_reader {
    minidbx *db;
    minidbx_backend_reader *br;
    dbx_hasher *hasher; /* NULL when the handle does not verify */
    minidbx_id id;
    uint64_t size;      /* what reader_open said */
    uint64_t delivered; /* bytes handed to the caller so far */
    bool verified;      /* all size bytes hashed and found right */
    bool at_end;
};

/* Streams move data in chunks this size: big enough for full-speed I/O,
 * small enough that 1 GiB goes through in a few MiB of memory. */
#define CHUNK_BYTES (1u << 20)

/* --- argument checks shared by every call -------------------------------- */

#define CHECK_DB(db)                                                          \
    do {                                                                      \
        dbx_error_clear();                                                    \
        if (!(db))                                                            \
            return minidbx_error_set(MINIDBX_EINVAL, "NULL store handle");    \
    } while (0)

#define NEED_METHOD(db, method, what)                                         \
    do {                                                                      \
        if (!(db)->be->method)                                                \
            return minidbx_error_set(MINIDBX_EUNSUPPORTED,                    \
                                     "%s: not supported by the %s store",     \
                                     what, (db)->be->name);                   \
    } while (0)

static int check_writable(const minidbx *db, const char *what)
{
    if (db->readonly)
        return minidbx_error_set(MINIDBX_EREADONLY, "%s: store opened read-only", what);
    return 0;
}

static int check_id(const minidbx_id *id)
{
    return id ? 0 : minidbx_error_set(MINIDBX_EINVAL, "NULL id");
}

static int check_size(const minidbx *db, uint64_t size)
{
    uint64_t max = db->opts.max_object_size;
    if (max && size > max)
        return minidbx_error_set(MINIDBX_ETOOBIG, "object of %llu bytes is over the limit of %llu",
                                 (unsigned long long)size, (unsigned long long)max);
    return 0;
}

/* --- names ----------------------------------------------------------------- */

/* Length of the UTF-8 sequence starting at s, or 0 if it is not valid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || s[0] == 0xc0 || s[0] == 0xc1 || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

static bool segment_ok(const char *seg, size_t len)
{
    if (len == 0)
        return false;
    if (len == 1 && seg[0] == '.')
        return false;
    if (len == 2 && seg[0] == '.' && seg[1] == '.')
        return false;
    return true;
}

int minidbx_name_valid(const char *name)
{
    if (!name || name[0] == '\0' || name[0] == '/')
        return 0;
    size_t len = strnlen(name, MINIDBX_NAME_MAX + 1);
    if (len > MINIDBX_NAME_MAX)
        return 0;
    const char *seg = name;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        size_t n = utf8_sequence((const unsigned char *)name + i);
        if (n == 0 || i + n > len)
            return 0;
        if (c == '/') {
            if (!segment_ok(seg, (size_t)(name + i - seg)))
                return 0;
            seg = name + i + 1;
        }
        i += n;
    }
    return segment_ok(seg, (size_t)(name + len - seg));
}

static int check_name(const char *name)
{
    if (!minidbx_name_valid(name))
        return minidbx_error_set(MINIDBX_EINVAL,
                                 "invalid name: names are 1..%d bytes of UTF-8, relative, "
                                 "without empty, '.' or '..' segments or control characters",
                                 MINIDBX_NAME_MAX);
    return 0;
}

/* --- schemes ---------------------------------------------------------------- */

#define MAX_SCHEMES 16
#define SCHEME_MAX 31

static struct {
    char scheme[SCHEME_MAX + 1];
    minidbx_backend_open_fn open_fn;
} schemes[MAX_SCHEMES];
static pthread_mutex_t schemes_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t scheme_length(const char *location);

int minidbx_register_scheme(const char *scheme, minidbx_backend_open_fn open_fn)
{
    char with_colon[SCHEME_MAX + 2];

    dbx_error_clear();
    if (!scheme || !open_fn || !scheme[0] || strlen(scheme) > SCHEME_MAX ||
        (snprintf(with_colon, sizeof with_colon, "%s:", scheme),
         scheme_length(with_colon) != strlen(scheme)))
        return minidbx_error_set(MINIDBX_EINVAL, "register_scheme: bad scheme or NULL function "
                                 "(a scheme is a letter and 1..%d letters, digits, '+', '.' or '-')",
                                 SCHEME_MAX - 1);
    int rc = minidbx_error_set(MINIDBX_ENOMEM, "register_scheme: table of %d schemes is full",
                               MAX_SCHEMES);
    pthread_mutex_lock(&schemes_lock);
    for (int i = 0; i < MAX_SCHEMES; i++) {
        if (schemes[i].open_fn && strcmp(schemes[i].scheme, scheme) != 0)
            continue;
        strcpy(schemes[i].scheme, scheme);
        schemes[i].open_fn = open_fn;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&schemes_lock);
    if (rc == 0)
        dbx_error_clear();
    return rc;
}

static minidbx_backend_open_fn find_scheme(const char *scheme, size_t len)
{
    minidbx_backend_open_fn fn = NULL;
    pthread_mutex_lock(&schemes_lock);
    for (int i = 0; i < MAX_SCHEMES && schemes[i].open_fn; i++)
        if (strlen(schemes[i].scheme) == len && strncasecmp(schemes[i].scheme, scheme, len) == 0)
            fn = schemes[i].open_fn;
    pthread_mutex_unlock(&schemes_lock);
    return fn;
}

/* --- open / close ------------------------------------------------------------ */

static int normalize_options(minidbx_options *out, const minidbx_options *in)
{
    static const minidbx_options defaults = MINIDBX_OPTIONS_INIT;
    *out = defaults;
    if (!in)
        return 0;
    if (in->version != MINIDBX_OPTIONS_VERSION)
        return minidbx_error_set(MINIDBX_EINVAL, "options: unknown version %u (use MINIDBX_OPTIONS_INIT)",
                                 in->version);
    *out = *in;
    if (out->durability != MINIDBX_SYNC_FULL && out->durability != MINIDBX_SYNC_NONE)
        return minidbx_error_set(MINIDBX_EINVAL, "options: unknown durability %d", (int)out->durability);
    return 0;
}

/* The location grammar (see minidbx_open in the header). A location "looks
 * like a URL" when it starts with a scheme and a colon: a letter, then at
 * least one more letter, digit, '+', '.' or '-' (RFC 3986; two characters
 * at least, so "C:" is no scheme). Such a location is never a directory. */
static size_t scheme_length(const char *location)
{
    const char *p = location;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '.' || *p == '-')
        p++;
    size_t len = (size_t)(p - location);
    return *p == ':' && len >= 2 ? len : 0;
}

static int open_file_url(minidbx_backend **out, const char *location, const minidbx_options *opts)
{
    return dbx_local_open(out, location + strlen("file://"), opts);
}

/* Schemes the library knows. open NULL: known, not in this build. A
 * scheme marked with_slashes is only written "scheme://...". */
static const struct {
    const char *scheme;
    minidbx_backend_open_fn open;
    bool with_slashes;
    const char *missing; /* why a known scheme is not there */
} builtin_schemes[] = {
    { "file", open_file_url, true, NULL },
#if MINIDBX_HAVE_HTTP_CLIENT
    { "http", dbx_http_open, true, NULL },
    { "https", dbx_http_open, true, NULL },
#else
    { "http", NULL, true, "this build has no http:// client (libcurl was not found)" },
    { "https", NULL, true, "this build has no http:// client (libcurl was not found)" },
#endif
    { "s3", NULL, true, "s3:// stores are not in this version" },
    { "cluster", NULL, false, "cluster: stores are not in this version" },
};

static int open_url(minidbx_backend **be, const char *location, size_t len,
                    const minidbx_options *opts)
{
    bool slashes = strncmp(location + len, "://", 3) == 0;
    minidbx_backend_open_fn fn = NULL;
    size_t i = 0, count = sizeof builtin_schemes / sizeof builtin_schemes[0];

    while (i < count && (strlen(builtin_schemes[i].scheme) != len ||
                         strncasecmp(builtin_schemes[i].scheme, location, len) != 0))
        i++;
    /* built in first (http and file cannot be replaced), then registered */
    if (i < count && builtin_schemes[i].open) {
        if (builtin_schemes[i].with_slashes && !slashes)
            return minidbx_error_set(MINIDBX_EINVAL, "%s: write %s://...", location,
                                     builtin_schemes[i].scheme);
        fn = builtin_schemes[i].open;
    } else if (!(fn = find_scheme(location, len))) {
        if (i < count)
            return minidbx_error_set(MINIDBX_EUNSUPPORTED, "%s: %s", location,
                                     builtin_schemes[i].missing);
        if (slashes)
            return minidbx_error_set(MINIDBX_EUNSUPPORTED, "%.*s://: no such store type in this build",
                                     (int)len, location);
        return minidbx_error_set(MINIDBX_EINVAL,
                                 "%s: unknown scheme '%.*s:' (a directory whose name has a colon "
                                 "is written ./%s)", location, (int)len, location, location);
    }
    *be = NULL;
    int rc = fn(be, location, opts);
    if (rc == 0 && (!*be || (*be)->version < 1))
        rc = minidbx_error_set(MINIDBX_EINVAL, "%.*s: backend returned no valid table",
                               (int)len, location);
    return rc;
}

static int open_location(minidbx_backend **be, const char *location, const minidbx_options *opts)
{
    size_t len = scheme_length(location);
    return len ? open_url(be, location, len, opts) : dbx_local_open(be, location, opts);
}

static int wrap_backend(minidbx **out, minidbx_backend *be, const minidbx_options *opts)
{
    minidbx *db = calloc(1, sizeof *db);
    if (!db) {
        be->free(be);
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    }
    dbx_test_pause_init();
    db->be = be;
    db->opts = *opts;
    db->verify = !(opts->flags & MINIDBX_OPEN_NO_VERIFY);
    db->readonly = (opts->flags & MINIDBX_OPEN_READONLY) != 0;
    *out = db;
    return 0;
}

int minidbx_open(minidbx **out, const char *location, const minidbx_options *opts)
{
    minidbx_options o;
    minidbx_backend *be = NULL;
    int rc;

    dbx_error_clear();
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "open: NULL out");
    *out = NULL;
    if (!location || !location[0])
        return minidbx_error_set(MINIDBX_EINVAL, "open: empty location");
    if ((rc = normalize_options(&o, opts)) < 0 || (rc = dbx_hash_init()) < 0)
        return rc;
    if ((rc = open_location(&be, location, &o)) < 0)
        return rc;
    return wrap_backend(out, be, &o);
}

int minidbx_open_backend(minidbx **out, minidbx_backend *be, const minidbx_options *opts)
{
    minidbx_options o;
    int rc;

    dbx_error_clear();
    if (!out || !be)
        return minidbx_error_set(MINIDBX_EINVAL, "open_backend: NULL argument");
    *out = NULL;
    if (be->version < 1 || !be->free) {
        if (be->free)
            be->free(be);
        return minidbx_error_set(MINIDBX_EINVAL, "open_backend: bad table (version or free missing)");
    }
    if ((rc = normalize_options(&o, opts)) < 0) {
        be->free(be);
        return rc;
    }
    return wrap_backend(out, be, &o);
}

void minidbx_close(minidbx *db)
{
    if (!db)
        return;
    db->be->free(db->be);
    free(db);
}

void minidbx_free(void *p)
{
    free(p);
}

/* --- whole-buffer object calls ---------------------------------------------- */

static int verify_bytes(const minidbx_id *id, const void *data, size_t size)
{
    minidbx_id got;
    int rc = minidbx_id_of(&got, data, size);
    if (rc < 0)
        return rc;
    if (!minidbx_id_equal(&got, id)) {
        char want_hex[16], got_hex[16];
        dbx_id_short(id, want_hex);
        dbx_id_short(&got, got_hex);
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s failed verification: got %s",
                                 want_hex, got_hex);
    }
    return 0;
}

static int put_via_writer(minidbx *db, const void *data, size_t size, minidbx_id *id)
{
    minidbx_writer *w;
    int rc = minidbx_writer_open(db, &w);
    if (rc < 0)
        return rc;
    if ((rc = minidbx_writer_write(w, data, size)) < 0) {
        minidbx_writer_abort(w);
        return rc;
    }
    return minidbx_writer_commit(w, id);
}

int minidbx_put(minidbx *db, const void *data, size_t size, minidbx_id *out_id)
{
    minidbx_id id;
    int rc;

    CHECK_DB(db);
    if (!data && size)
        return minidbx_error_set(MINIDBX_EINVAL, "put: NULL data");
    if ((rc = check_writable(db, "put")) < 0 || (rc = check_size(db, size)) < 0)
        return rc;
    if (!db->be->put)
        rc = put_via_writer(db, data, size, &id);
    else if ((rc = minidbx_id_of(&id, data, size)) == 0)
        rc = db->be->put(db->be, &id, data, size);
    if (rc == 0 && out_id)
        *out_id = id;
    return rc;
}

static int get_via_reader(minidbx *db, const minidbx_id *id, void **out_data, size_t *out_size)
{
    minidbx_backend_reader *r;
    uint64_t size;
    int rc = db->be->reader_open(db->be, id, &r, &size);
    if (rc < 0)
        return rc;
    char *buf = size < SIZE_MAX ? malloc(size ? (size_t)size : 1) : NULL;
    size_t done = 0, n = 1;
    if (!buf)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "get: cannot allocate %llu bytes", (unsigned long long)size);
    while (rc == 0 && n > 0 && done < size)
        if ((rc = r->read(r, buf + done, (size_t)size - done, &n)) == 0)
            done += n;
    if (rc == 0 && done != size)
        rc = minidbx_error_set(MINIDBX_ECORRUPT, "get: object is shorter than its recorded size");
    r->close(r);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out_data = buf;
    *out_size = done;
    return 0;
}

int minidbx_get(minidbx *db, const minidbx_id *id, void **out_data, size_t *out_size)
{
    void *data = NULL;
    size_t size = 0;
    int rc;

    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out_data || !out_size)
        return minidbx_error_set(MINIDBX_EINVAL, "get: NULL output");
    if (db->be->get)
        rc = db->be->get(db->be, id, &data, &size);
    else if (db->be->reader_open)
        rc = get_via_reader(db, id, &data, &size);
    else
        NEED_METHOD(db, get, "get");
    if (rc == 0 && db->verify)
        rc = verify_bytes(id, data, size);
    if (rc < 0) {
        free(data);
        return rc;
    }
    *out_data = data;
    *out_size = size;
    return 0;
}

int minidbx_exists(minidbx *db, const minidbx_id *id)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    NEED_METHOD(db, exists, "exists");
    return db->be->exists(db->be, id);
}

int minidbx_missing(minidbx *db, const minidbx_id *ids, size_t count, minidbx_id *out_missing,
                    size_t *out_count)
{
    CHECK_DB(db);
    if ((count && (!ids || !out_missing)) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "missing: NULL argument");
    if (db->be->missing)
        return db->be->missing(db->be, ids, count, out_missing, out_count);
    NEED_METHOD(db, exists, "missing");
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        minidbx_id id = ids[i]; /* out_missing may alias ids */
        int rc = db->be->exists(db->be, &id);
        if (rc < 0)
            return rc;
        if (rc == 0)
            out_missing[n++] = id;
    }
    *out_count = n;
    return 0;
}

int minidbx_delete_ex(minidbx *db, const minidbx_id *id, unsigned flags)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0 || (rc = check_writable(db, "delete")) < 0)
        return rc;
    if (flags & ~MINIDBX_DELETE_CASCADE)
        return minidbx_error_set(MINIDBX_EINVAL, "delete: unknown flags 0x%x", flags);
    NEED_METHOD(db, del, "delete");
    return db->be->del(db->be, id, flags);
}

int minidbx_delete(minidbx *db, const minidbx_id *id)
{
    return minidbx_delete_ex(db, id, 0);
}

int minidbx_stat(minidbx *db, const minidbx_id *id, minidbx_object_info *out)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "stat: NULL output");
    NEED_METHOD(db, stat, "stat");
    return db->be->stat(db->be, id, out);
}

int minidbx_list(minidbx *db, const minidbx_id *after, minidbx_object_info *out, size_t capacity,
                 size_t *out_count)
{
    CHECK_DB(db);
    if ((capacity && !out) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "list: NULL output");
    NEED_METHOD(db, list, "list");
    return db->be->list(db->be, after, out, capacity, out_count);
}

/* --- writers ------------------------------------------------------------------ */

int minidbx_writer_open(minidbx *db, minidbx_writer **out)
{
    int rc;
    CHECK_DB(db);
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_open: NULL out");
    *out = NULL;
    if ((rc = check_writable(db, "put")) < 0)
        return rc;
    NEED_METHOD(db, writer_open, "writer");
    minidbx_writer *w = calloc(1, sizeof *w);
    if (!w)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->db = db;
    if ((rc = dbx_hasher_new(&w->hasher)) < 0 || (rc = db->be->writer_open(db->be, &w->bw)) < 0) {
        dbx_hasher_free(w->hasher);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int minidbx_writer_write(minidbx_writer *w, const void *data, size_t size)
{
    dbx_error_clear();
    if (!w || (!data && size))
        return minidbx_error_set(MINIDBX_EINVAL, "writer_write: NULL argument");
    if (w->error)
        return minidbx_error_set(w->error, "writer_write: the writer failed earlier (%s)",
                                 minidbx_strerror(w->error));
    int rc = check_size(w->db, w->written + size);
    if (rc == 0)
        rc = dbx_hasher_update(w->hasher, data, size);
    if (rc == 0)
        rc = w->bw->write(w->bw, data, size);
    if (rc < 0)
        w->error = rc;
    else
        w->written += size;
    return rc;
}

static void writer_free(minidbx_writer *w)
{
    dbx_hasher_free(w->hasher);
    free(w);
}

/* The backend's commit, with "created" when it can tell (table version 2). */
static int backend_commit(minidbx_writer *w, const minidbx_id *id, int *created)
{
    minidbx_backend_writer *bw = w->bw;
    *created = -1;
    if (w->db->be->version >= 2 && bw->commit_created)
        return bw->commit_created(bw, id, created);
    return bw->commit(bw, id);
}

/* Commit w's object and point name at it with nothing in between: on a
 * backend with batches both go in one batch, which on the local store is
 * one metadata transaction, so a gc or delete sees the object named or not
 * at all. Inside the caller's own batch (ESTATE) they simply join it. If
 * the name cannot be set, the batch is aborted and the put undone. */
static int commit_and_name(minidbx_writer *w, const minidbx_id *id, const char *name, int *created)
{
    minidbx_backend *be = w->db->be;
    int batch = be->batch_begin && be->batch_commit && be->batch_abort ? be->batch_begin(be)
                                                                        : MINIDBX_EUNSUPPORTED;
    if (batch < 0 && batch != MINIDBX_ESTATE && batch != MINIDBX_EUNSUPPORTED) {
        w->bw->abort(w->bw);
        return batch;
    }
    dbx_error_clear();
    int rc = backend_commit(w, id, created);
    if (rc == 0) {
        DBX_TEST_PAUSE("put-before-name");
        rc = be->name_set(be, name, id);
    }
    if (batch == 0 && rc == 0)
        rc = be->batch_commit(be);
    else if (batch == 0)
        be->batch_abort(be);
    return rc;
}

static int id_mismatch(const char *what, const minidbx_id *want, const minidbx_id *got)
{
    char want_hex[16], got_hex[16];
    dbx_id_short(want, want_hex);
    dbx_id_short(got, got_hex);
    return minidbx_error_set(MINIDBX_ECORRUPT, "%s %s failed verification: got %s", what,
                             want_hex, got_hex);
}

/* Every commit ends here: check what can be checked, then commit (and
 * name, if name is not NULL); frees the writer. */
static int writer_finish(minidbx_writer *w, const minidbx_id *expect, const char *name,
                         minidbx_id *out_id, int *out_created)
{
    minidbx_id id;
    int rc, created = -1;

    if (w->error) {
        rc = minidbx_error_set(w->error, "writer_commit: the writer failed earlier (%s)",
                               minidbx_strerror(w->error));
        w->bw->abort(w->bw);
    } else if ((rc = dbx_hasher_final(w->hasher, &id)) < 0) {
        w->bw->abort(w->bw);
    } else if (expect && !minidbx_id_equal(expect, &id)) {
        rc = id_mismatch("object", expect, &id);
        w->bw->abort(w->bw);
    } else if (name) {
        rc = commit_and_name(w, &id, name, &created);
    } else {
        rc = backend_commit(w, &id, &created);
    }
    writer_free(w);
    if (rc == 0 && out_id)
        *out_id = id;
    if (rc == 0 && out_created)
        *out_created = created;
    return rc;
}

int minidbx_writer_commit_ex(minidbx_writer *w, const minidbx_id *expect, minidbx_id *out_id,
                             int *out_created)
{
    dbx_error_clear();
    if (!w)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_commit: NULL writer");
    return writer_finish(w, expect, NULL, out_id, out_created);
}

int minidbx_writer_commit(minidbx_writer *w, minidbx_id *out_id)
{
    return minidbx_writer_commit_ex(w, NULL, out_id, NULL);
}

int minidbx_writer_commit_named(minidbx_writer *w, const char *name, minidbx_id *out_id)
{
    int rc;
    dbx_error_clear();
    if (!w)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_commit_named: NULL writer");
    if ((rc = check_name(name)) < 0 || (!w->db->be->name_set &&
        (rc = minidbx_error_set(MINIDBX_EUNSUPPORTED, "name set: not supported by the %s store",
                                w->db->be->name)) < 0)) {
        minidbx_writer_abort(w);
        return rc;
    }
    return writer_finish(w, NULL, name, out_id, NULL);
}

void minidbx_writer_abort(minidbx_writer *w)
{
    if (!w)
        return;
    w->bw->abort(w->bw);
    writer_free(w);
}

/* --- readers ------------------------------------------------------------------ */

static int reader_check_end(minidbx_reader *r)
{
    minidbx_id got;
    int rc;
    if (!r->hasher)
        return 0;
    if ((rc = dbx_hasher_final(r->hasher, &got)) < 0)
        return rc;
    if (!minidbx_id_equal(&got, &r->id)) {
        char want_hex[16], got_hex[16];
        dbx_id_short(&r->id, want_hex);
        dbx_id_short(&got, got_hex);
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s failed verification: got %s",
                                 want_hex, got_hex);
    }
    return 0;
}

int minidbx_reader_open(minidbx *db, const minidbx_id *id, minidbx_reader **out, uint64_t *out_size)
{
    uint64_t size = 0;
    int rc;

    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "reader_open: NULL out");
    *out = NULL;
    NEED_METHOD(db, reader_open, "reader");
    minidbx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->db = db;
    r->id = *id;
    if ((db->verify && (rc = dbx_hasher_new(&r->hasher)) < 0) ||
        (rc = db->be->reader_open(db->be, id, &r->br, &size)) < 0) {
        dbx_hasher_free(r->hasher);
        free(r);
        return rc;
    }
    r->size = size;
    /* An empty object has no last byte to check at: check it now. */
    if (size == 0 && r->hasher && (rc = reader_check_end(r)) < 0) {
        minidbx_reader_close(r);
        return rc;
    }
    r->verified = size == 0;
    if (out_size)
        *out_size = size;
    *out = r;
    return 0;
}

int minidbx_reader_read(minidbx_reader *r, void *buf, size_t capacity, size_t *out_read)
{
    size_t n = 0;
    int rc;

    dbx_error_clear();
    if (!r || !out_read || (!buf && capacity))
        return minidbx_error_set(MINIDBX_EINVAL, "reader_read: NULL argument");
    *out_read = 0;
    if (r->at_end)
        return 0;
    if (capacity == 0)
        return 0;
    if ((rc = r->br->read(r->br, buf, capacity, &n)) < 0)
        return rc;
    if (n == 0) {
        /* The end before size bytes: the hash says whether that is right. */
        if (r->hasher && !r->verified && (rc = reader_check_end(r)) < 0)
            return rc;
        r->at_end = true;
        return 0;
    }
    if (r->hasher && r->verified) {
        memset(buf, 0, n);
        return minidbx_error_set(MINIDBX_ECORRUPT, "reader: the object goes on past its size of %llu bytes",
                                 (unsigned long long)r->size);
    }
    if (r->hasher && (rc = dbx_hasher_update(r->hasher, buf, n)) < 0)
        return rc;
    r->delivered += n;
    /* The read that would deliver the last byte checks the hash first, so a
     * caller that reads exactly size bytes and stops is never handed a
     * corrupt object: it gets ECORRUPT instead of the final chunk. */
    if (r->hasher && r->delivered >= r->size) {
        if ((rc = reader_check_end(r)) < 0) {
            memset(buf, 0, n);
            return rc;
        }
        r->verified = true;
    }
    *out_read = n;
    return 0;
}

int minidbx_reader_fd(minidbx_reader *r, int *out_fd, uint64_t *out_offset)
{
    dbx_error_clear();
    if (!r || !out_fd || !out_offset)
        return minidbx_error_set(MINIDBX_EINVAL, "reader_fd: NULL argument");
    if (!r->br->fd)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "reader_fd: this object has no file");
    return r->br->fd(r->br, out_fd, out_offset);
}

void minidbx_reader_close(minidbx_reader *r)
{
    if (!r)
        return;
    r->br->close(r->br);
    dbx_hasher_free(r->hasher);
    free(r);
}

/* --- file descriptors --------------------------------------------------------- */

int minidbx_put_fd(minidbx *db, int fd, minidbx_id *out_id)
{
    minidbx_writer *w = NULL;
    char *buf = NULL;
    int rc;

    CHECK_DB(db);
    if (fd < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "put_fd: bad file descriptor");
    if (!(buf = malloc(CHUNK_BYTES)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if ((rc = minidbx_writer_open(db, &w)) < 0)
        goto out;
    for (;;) {
        ssize_t n = dbx_read_full(fd, buf, CHUNK_BYTES);
        if (n < 0) {
            rc = dbx_error_errno((int)-n, "put_fd: read");
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = minidbx_writer_write(w, buf, (size_t)n)) < 0)
            goto out;
    }
    rc = minidbx_writer_commit(w, out_id);
    w = NULL;
out:
    minidbx_writer_abort(w);
    free(buf);
    return rc;
}

int minidbx_get_fd(minidbx *db, const minidbx_id *id, int fd)
{
    minidbx_reader *r = NULL;
    char *buf = NULL;
    int rc;

    CHECK_DB(db);
    if (fd < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "get_fd: bad file descriptor");
    if ((rc = minidbx_reader_open(db, id, &r, NULL)) < 0)
        return rc;
    if (!(buf = malloc(CHUNK_BYTES))) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n;
        if ((rc = minidbx_reader_read(r, buf, CHUNK_BYTES, &n)) < 0 || n == 0)
            break;
        int err = dbx_write_all(fd, buf, n);
        if (err < 0) {
            rc = dbx_error_errno(-err, "get_fd: write");
            break;
        }
    }
out:
    minidbx_reader_close(r);
    free(buf);
    return rc;
}

/* --- batches --------------------------------------------------------------------- */

int minidbx_batch_begin(minidbx *db)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_writable(db, "batch")) < 0)
        return rc;
    NEED_METHOD(db, batch_begin, "batch");
    return db->be->batch_begin(db->be);
}

int minidbx_batch_commit(minidbx *db)
{
    CHECK_DB(db);
    NEED_METHOD(db, batch_commit, "batch");
    return db->be->batch_commit(db->be);
}

int minidbx_batch_abort(minidbx *db)
{
    CHECK_DB(db);
    NEED_METHOD(db, batch_abort, "batch");
    return db->be->batch_abort(db->be);
}

/* --- names ------------------------------------------------------------------------ */

int minidbx_name_set(minidbx *db, const char *name, const minidbx_id *id)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_name(name)) < 0 || (rc = check_id(id)) < 0 ||
        (rc = check_writable(db, "name set")) < 0)
        return rc;
    NEED_METHOD(db, name_set, "name set");
    return db->be->name_set(db->be, name, id);
}

int minidbx_name_get(minidbx *db, const char *name, minidbx_name_info *out)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_name(name)) < 0)
        return rc;
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "name get: NULL output");
    NEED_METHOD(db, name_get, "name get");
    return db->be->name_get(db->be, name, out);
}

int minidbx_name_delete(minidbx *db, const char *name)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_name(name)) < 0 || (rc = check_writable(db, "name delete")) < 0)
        return rc;
    NEED_METHOD(db, name_delete, "name delete");
    return db->be->name_delete(db->be, name);
}

int minidbx_name_list(minidbx *db, const char *prefix, const char *after, minidbx_name_info *out,
                      size_t capacity, size_t *out_count)
{
    CHECK_DB(db);
    if ((capacity && !out) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "name list: NULL output");
    if ((prefix && strlen(prefix) > MINIDBX_NAME_MAX) || (after && strlen(after) > MINIDBX_NAME_MAX))
        return minidbx_error_set(MINIDBX_EINVAL, "name list: prefix or cursor longer than %d bytes",
                                 MINIDBX_NAME_MAX);
    NEED_METHOD(db, name_list, "name list");
    return db->be->name_list(db->be, prefix ? prefix : "", after, out, capacity, out_count);
}

/* --- verify, gc, info ------------------------------------------------------------- */

int minidbx_verify(minidbx *db, const minidbx_id *id, unsigned flags, minidbx_verify_report *report,
                   minidbx_problem_cb cb, void *ctx)
{
    minidbx_verify_report local_report;
    int rc;

    CHECK_DB(db);
    if (flags & ~MINIDBX_VERIFY_REPAIR)
        return minidbx_error_set(MINIDBX_EINVAL, "verify: unknown flags 0x%x", flags);
    if ((flags & MINIDBX_VERIFY_REPAIR) && (rc = check_writable(db, "verify --repair")) < 0)
        return rc;
    NEED_METHOD(db, verify, "verify");
    memset(&local_report, 0, sizeof local_report);
    rc = db->be->verify(db->be, id, flags, &local_report, cb, ctx);
    if (report)
        *report = local_report;
    return rc;
}

int minidbx_gc(minidbx *db, minidbx_gc_report *report)
{
    minidbx_gc_report local_report;
    int rc;

    CHECK_DB(db);
    if ((rc = check_writable(db, "gc")) < 0)
        return rc;
    NEED_METHOD(db, gc, "gc");
    memset(&local_report, 0, sizeof local_report);
    rc = db->be->gc(db->be, &local_report);
    if (report)
        *report = local_report;
    return rc;
}

int minidbx_info(minidbx *db, minidbx_store_info *out)
{
    CHECK_DB(db);
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "info: NULL output");
    memset(out, 0, sizeof *out);
    snprintf(out->backend, sizeof out->backend, "%s", db->be->name ? db->be->name : "?");
    NEED_METHOD(db, info, "info");
    return db->be->info(db->be, out);
}
