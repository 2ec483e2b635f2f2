/*
 * grow.c - the one growable-array helper of the library: capacity doubles,
 * so n appends cost O(n) copies; callers keep their own count.
 */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>

int dbx_grow(void *items, size_t *capacity, size_t need, size_t item_size, size_t first)
{
    void **array = items;
    if (need <= *capacity)
        return 0;
    size_t cap = *capacity ? *capacity : first;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        cap *= 2;
    }
    if (cap > SIZE_MAX / item_size)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    void *grown = realloc(*array, cap * item_size);
    if (!grown)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    *array = grown;
    *capacity = cap;
    return 0;
}
