/* wire.c - the error <-> HTTP status table, both ways, and the names of
 * verify problems (see wire.h). */
#include "wire.h"

#include <string.h>

/* One row per code. Where codes share a status, the first row with that
 * status is what a reply without the header is read as. */
static const struct {
    int code;
    const char *name;
    unsigned status;
} errors[] = {
    { MINIDBX_ENOTFOUND, "ENOTFOUND", 404 },
    { MINIDBX_EINVAL, "EINVAL", 400 },
    { MINIDBX_EPERM, "EPERM", 403 },
    { MINIDBX_EREADONLY, "EREADONLY", 403 },
    { MINIDBX_EREFERENCED, "EREFERENCED", 409 },
    { MINIDBX_EEXISTS, "EEXISTS", 409 },
    { MINIDBX_ESTATE, "ESTATE", 409 },
    { MINIDBX_ETOOBIG, "ETOOBIG", 413 },
    { MINIDBX_ECORRUPT, "ECORRUPT", 422 },
    { MINIDBX_EIO, "EIO", 500 },
    { MINIDBX_EUNSUPPORTED, "EUNSUPPORTED", 501 },
    { MINIDBX_ENOMEM, "ENOMEM", 503 },
    { MINIDBX_ENOSPC, "ENOSPC", 507 },
};

#define ERROR_ROWS (sizeof errors / sizeof errors[0])

unsigned dbx_wire_status_for(int code)
{
    for (size_t i = 0; i < ERROR_ROWS; i++)
        if (errors[i].code == code)
            return errors[i].status;
    return 500;
}

const char *dbx_wire_error_name(int code)
{
    for (size_t i = 0; i < ERROR_ROWS; i++)
        if (errors[i].code == code)
            return errors[i].name;
    return NULL;
}

int dbx_wire_error_code(const char *name, size_t len)
{
    for (size_t i = 0; i < ERROR_ROWS; i++)
        if (strlen(errors[i].name) == len && memcmp(errors[i].name, name, len) == 0)
            return errors[i].code;
    return 0;
}

int dbx_wire_code_for_status(long status)
{
    if (status == 401)
        return MINIDBX_EPERM; /* a token is needed */
    for (size_t i = 0; i < ERROR_ROWS; i++)
        if ((long)errors[i].status == status)
            return errors[i].code;
    return MINIDBX_EIO;
}

static const struct {
    minidbx_problem kind;
    const char *name;
} problems[] = {
    { MINIDBX_PROBLEM_CORRUPT, "corrupt" },   { MINIDBX_PROBLEM_MISSING, "missing" },
    { MINIDBX_PROBLEM_ORPHAN, "orphan" },     { MINIDBX_PROBLEM_TEMP, "temp" },
    { MINIDBX_PROBLEM_DANGLING, "dangling" }, { MINIDBX_PROBLEM_BADREF, "badref" },
    { MINIDBX_PROBLEM_MISPLACED, "misplaced" }, { MINIDBX_PROBLEM_STALE, "stale" },
    { MINIDBX_PROBLEM_NAME_REMOVED, "name_removed" },
};

#define PROBLEM_ROWS (sizeof problems / sizeof problems[0])

const char *dbx_wire_problem_name(minidbx_problem kind)
{
    for (size_t i = 0; i < PROBLEM_ROWS; i++)
        if (problems[i].kind == kind)
            return problems[i].name;
    return "unknown";
}

minidbx_problem dbx_wire_problem_kind(const char *name)
{
    for (size_t i = 0; name && i < PROBLEM_ROWS; i++)
        if (strcmp(problems[i].name, name) == 0)
            return problems[i].kind;
    return (minidbx_problem)0;
}
