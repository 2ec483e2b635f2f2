/*
 * wire.h - the HTTP wire format that the http:// client (libminidbx/backend/http.c)
 * and the node (`mdbx serve`) share, so that they cannot disagree.
 *
 * Errors: a reply that is not a success carries
 *   - the HTTP status of the code (the table in wire.c),
 *   - the header  X-Minidbx-Error: NAME  with the exact MINIDBX_E* code by
 *     name (ENOTFOUND, EREADONLY, ...), since one status stands for
 *     several codes (409: EREFERENCED, EEXISTS, ESTATE; 403: EPERM,
 *     EREADONLY),
 *   - a JSON body {"error": "what went wrong", "code": NAME} (not on HEAD).
 * A client reads the header and falls back on the status when it is absent
 * (another server, a proxy, a reply from before the header existed).
 *
 * Integers: sizes, counts, times (created_ns, mtime_ns) and other 64-bit
 * values are exact JSON integer literals, never rounded through a double:
 * the node prints them from the integer, the client reads them with json-c
 * (a ns time is about 2^61, far past the 2^53 a double holds exactly).
 *
 * Compiled into the library (hidden, like every dbx_ symbol) and into mdbx.
 */
#ifndef MINIDBX_WIRE_H
#define MINIDBX_WIRE_H

#include <minidbx.h>

#include <stddef.h>

#define DBX_WIRE_ERROR_HEADER "X-Minidbx-Error"

/* The name that an MD5 alias is kept under ("_go/md5/" and 32 lower-case
 * hex digits, pointing at the object): `mdbx serve` sets it on /upload and
 * reads it for the Go system's endpoints, `mdbx import-go` sets it. */
#define DBX_GO_MD5_ALIAS_PREFIX "_go/md5/"

/* The HTTP status for a MINIDBX_E* code (500 for one it does not know). */
unsigned dbx_wire_status_for(int code);

/* The name of a code without its MINIDBX_ prefix ("ENOTFOUND"), or NULL. */
const char *dbx_wire_error_name(int code);

/* The code named by the len bytes at name (an X-Minidbx-Error value), or 0
 * when it names none. */
int dbx_wire_error_code(const char *name, size_t len);

/* The code for an error status that came without the header: the first
 * code the table gives that status, MINIDBX_EPERM for 401, else EIO. */
int dbx_wire_code_for_status(long status);

/* Verify problems go by name ("corrupt", "missing", "orphan", "temp",
 * "dangling", "badref", "misplaced", "stale", "name_removed"), in /v1/verify and in `mdbx --json verify` alike.
 * The name of kind ("unknown" for none of them), and the kind a name
 * stands for (0 for none). */
const char *dbx_wire_problem_name(minidbx_problem kind);
minidbx_problem dbx_wire_problem_kind(const char *name);

#endif /* MINIDBX_WIRE_H */
