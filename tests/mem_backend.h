/*
 * mem_backend.h - a tiny in-memory backend for the tests, written only
 * against minidbx/sys/backend.h, as a user of the library would write one.
 *
 * Register it with minidbx_register_scheme("mem", mem_backend_open). The
 * part of the location after "mem://" chooses its behaviour:
 *   mem://liar...     get and readers hand out bytes with one byte flipped
 *   mem://minimal...  put, get and missing are NULL (the library falls back
 *                     to the writer, the reader and exists)
 *   mem://writesfirst... a plain store that sets MINIDBX_BACKEND_PUT_WRITES_FIRST
 *   anything else     a plain store
 * Names, batches, verify and gc are always NULL: those calls must give
 * MINIDBX_EUNSUPPORTED. Each open starts empty.
 */
#ifndef MINIDBX_TEST_MEM_BACKEND_H
#define MINIDBX_TEST_MEM_BACKEND_H

#include <minidbx/sys/backend.h>

int mem_backend_open(minidbx_backend **out, const char *location, const minidbx_options *opts);

/* How many times each method was called on the last backend opened. */
typedef struct {
    unsigned put, get, exists, writer_open, reader_open, freed;
} mem_backend_calls;

const mem_backend_calls *mem_backend_last_calls(void);

#endif /* MINIDBX_TEST_MEM_BACKEND_H */
