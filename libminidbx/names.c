/*
 * names.c - the public name calls: what a valid name is, and set, get,
 * delete and list (see api.h for what every call checks first).
 */
#include "api.h"

#include <string.h>

/* --- what a valid name is ------------------------------------------------- */

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

int dbx_check_name(const char *name)
{
    if (!minidbx_name_valid(name))
        return minidbx_error_set(MINIDBX_EINVAL,
                                 "invalid name: names are 1..%d bytes of UTF-8, relative, "
                                 "without empty, '.' or '..' segments or control characters",
                                 MINIDBX_NAME_MAX);
    return 0;
}

/* --- the calls --------------------------------------------------------------- */

int minidbx_name_set(minidbx *db, const char *name, const minidbx_id *id)
{
    int rc;
    CHECK_DB(db);
    if ((rc = dbx_check_name(name)) < 0 || (rc = check_id(id)) < 0 ||
        (rc = check_writable(db, "name set")) < 0)
        return rc;
    NEED_METHOD(db, name_set, "name set");
    return db->be->name_set(db->be, name, id);
}

int minidbx_name_set_ex(minidbx *db, const char *name, const minidbx_id *id, unsigned flags)
{
    int rc;

    CHECK_DB(db);
    if (flags & ~MINIDBX_NAME_KEEP)
        return minidbx_error_set(MINIDBX_EINVAL, "name set: unknown flags 0x%x", flags);
    if (!(flags & MINIDBX_NAME_KEEP))
        return minidbx_name_set(db, name, id);
    if ((rc = dbx_check_name(name)) < 0 || (rc = check_id(id)) < 0 ||
        (rc = check_writable(db, "name set")) < 0)
        return rc;
    return dbx_name_set_flags(db, name, id, flags);
}

int dbx_name_set_flags(minidbx *db, const char *name, const minidbx_id *id, unsigned flags)
{
    minidbx_name_info current;
    int rc;

    if (!(flags & MINIDBX_NAME_KEEP)) {
        NEED_METHOD(db, name_set, "name set");
        return db->be->name_set(db->be, name, id);
    }
    if (db->be->version >= 5 && db->be->name_set_keep)
        return db->be->name_set_keep(db->be, name, id);
    /* a read before the write: not atomic with it (see minidbx.h) */
    rc = minidbx_name_get(db, name, &current);
    if (rc == 0)
        return minidbx_id_equal(&current.id, id)
                   ? 0 : minidbx_error_set(MINIDBX_EEXISTS, "name set %s: it points at another object", name);
    if (rc != MINIDBX_ENOTFOUND)
        return rc;
    NEED_METHOD(db, name_set, "name set");
    return db->be->name_set(db->be, name, id);
}

int minidbx_name_set_at(minidbx *db, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    int rc;
    CHECK_DB(db);
    if ((rc = dbx_check_name(name)) < 0 || (rc = check_id(id)) < 0 ||
        (rc = check_writable(db, "name set")) < 0)
        return rc;
    if (mtime_ns < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "name set: negative mtime");
    if (db->be->version < 3)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "name set at a time: not supported by the %s store",
                                 db->be->name);
    NEED_METHOD(db, name_set_at, "name set at a time");
    return db->be->name_set_at(db->be, name, id, mtime_ns);
}

int minidbx_name_get(minidbx *db, const char *name, minidbx_name_info *out)
{
    int rc;
    CHECK_DB(db);
    if ((rc = dbx_check_name(name)) < 0)
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
    if ((rc = dbx_check_name(name)) < 0 || (rc = check_writable(db, "name delete")) < 0)
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
