/* error.c - error codes, their names, and the thread-local detail message. */
#include "internal.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One message per thread: a handle may be shared by threads, so a
 * per-handle buffer would race. 512 bytes hold a path and a reason. */
static _Thread_local char last_message[512];

void dbx_error_clear(void)
{
    last_message[0] = '\0';
}

void dbx_error_save(dbx_error_saved *out)
{
    memcpy(out->text, last_message, sizeof out->text);
}

void dbx_error_restore(const dbx_error_saved *saved)
{
    memcpy(last_message, saved->text, sizeof last_message);
}

static void vset(const char *fmt, va_list ap, const char *reason)
{
    int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
    if (reason && n >= 0 && (size_t)n < sizeof last_message)
        snprintf(last_message + n, sizeof last_message - (size_t)n, ": %s", reason);
}

int minidbx_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap, NULL);
    va_end(ap);
    return code;
}

static int code_for_errno(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return MINIDBX_ENOSPC;
    case ENOMEM:
        return MINIDBX_ENOMEM;
    case EACCES:
    case EPERM:
        return MINIDBX_EPERM;
    case EROFS:
        return MINIDBX_EREADONLY;
    case ENOENT:
        return MINIDBX_ENOTFOUND;
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
        return MINIDBX_EINVAL;
    default:
        return MINIDBX_EIO;
    }
}

int dbx_error_errno(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap, strerror(err));
    va_end(ap);
    errno = err;
    return code_for_errno(err);
}

int dbx_error_io(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap, strerror(err));
    va_end(ap);
    errno = err;
    if (err == ENOSPC || err == EDQUOT || err == EFBIG)
        return MINIDBX_ENOSPC;
    return err == ENOMEM ? MINIDBX_ENOMEM : MINIDBX_EIO;
}

int dbx_error_lmdb(int rc, const char *fmt, ...)
{
    int code;
    if (rc > 0)
        code = code_for_errno(rc);
    else if (rc == MDB_NOTFOUND)
        code = MINIDBX_ENOTFOUND;
    else if (rc == MDB_MAP_FULL)
        code = MINIDBX_ENOSPC;
    else if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
             rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE)
        code = MINIDBX_ECORRUPT;
    else
        code = MINIDBX_EIO;
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap, mdb_strerror(rc));
    va_end(ap);
    return code;
}

const char *minidbx_errmsg(const minidbx *db)
{
    (void)db;
    return last_message;
}

const char *minidbx_strerror(int code)
{
    switch (code) {
    case MINIDBX_OK: return "success";
    case MINIDBX_ENOTFOUND: return "not found";
    case MINIDBX_EEXISTS: return "already exists";
    case MINIDBX_EINVAL: return "invalid argument";
    case MINIDBX_ECORRUPT: return "data is corrupt";
    case MINIDBX_ENOSPC: return "no space left";
    case MINIDBX_EIO: return "input/output error";
    case MINIDBX_ETOOBIG: return "object too large";
    case MINIDBX_EREFERENCED: return "object is referenced by a name";
    case MINIDBX_EREADONLY: return "store is read-only";
    case MINIDBX_ENOMEM: return "out of memory";
    case MINIDBX_EUNSUPPORTED: return "operation not supported by this store";
    case MINIDBX_EPERM: return "permission denied";
    case MINIDBX_ESTATE: return "operation not valid in this state";
    default: return "unknown error";
    }
}

const char *minidbx_version(void)
{
    return MINIDBX_VERSION_STRING;
}
