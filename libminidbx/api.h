/*
 * api.h - what the files of the public calls share: the handle and the
 * argument checks every call makes before it reaches the backend table.
 * Not installed.
 *
 * The public calls are split by concern: open.c (open, close, schemes,
 * options), objects.c (put, get, exists, missing, delete, stat, list),
 * stream.c (writers, readers, put_fd, get_fd), batch.c, names.c and
 * admin.c (verify, gc, info). Each checks its arguments, refuses writes on a
 * read-only handle, computes ids and verifies bytes read back, then
 * dispatches to the backend table, so that no backend repeats that work.
 */
#ifndef MINIDBX_API_H
#define MINIDBX_API_H

#include "internal.h"

struct minidbx {
    minidbx_backend *be;
    minidbx_options opts;
    bool verify;   /* hash bytes on read */
    bool readonly;
};

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

static inline int check_writable(const minidbx *db, const char *what)
{
    if (db->readonly)
        return minidbx_error_set(MINIDBX_EREADONLY, "%s: store opened read-only", what);
    return 0;
}

static inline int check_id(const minidbx_id *id)
{
    return id ? 0 : minidbx_error_set(MINIDBX_EINVAL, "NULL id");
}

static inline int check_size(const minidbx *db, uint64_t size)
{
    uint64_t max = db->opts.max_object_size;
    if (max && size > max)
        return minidbx_error_set(MINIDBX_ETOOBIG, "object of %llu bytes is over the limit of %llu",
                                 (unsigned long long)size, (unsigned long long)max);
    return 0;
}

/* EINVAL with the rules unless minidbx_name_valid(name) (names.c). */
int dbx_check_name(const char *name);
/* minidbx_name_set_ex's set after its checks (names.c): flags 0 or
 * MINIDBX_NAME_KEEP, on db's backend as is. */
int dbx_name_set_flags(minidbx *db, const char *name, const minidbx_id *id, unsigned flags);

#endif
