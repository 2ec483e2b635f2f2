/*
 * open.c - opening and closing a store: options, the location grammar,
 * the built-in schemes and the ones a program registers.
 */
#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
#if MINIDBX_HAVE_S3
    { "s3", dbx_s3_open, true, NULL },
#else
    { "s3", NULL, true, "this build has no s3:// client (libcurl or libxml2 was not found)" },
#endif
#if MINIDBX_HAVE_CLUSTER
    { "cluster", dbx_cluster_open, false, NULL },
#else
    { "cluster", NULL, false, "this build has no cluster: stores (json-c was not found)" },
#endif
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
    /* a backend that checks what it reads (cluster:) is not hashed twice */
    db->verify = !(opts->flags & MINIDBX_OPEN_NO_VERIFY) &&
                 !(be->version >= 3 && (be->flags & MINIDBX_BACKEND_VERIFIED_READS));
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
