/* known_findings.h - findings saved in crashes/ whose fix belongs to
 * another area, and how a long run steps around them (see
 * known_findings.c). Everything here is off unless
 * MINIDBX_FUZZ_SKIP_KNOWN=1. */
#ifndef MINIDBX_KNOWN_FINDINGS_H
#define MINIDBX_KNOWN_FINDINGS_H

#include "fuzz.h"

#include <stdbool.h>
#include <stddef.h>

/* Would these inputs run into a known finding? */
bool fuzz_known_empty_suffix_range(size_t object_size, const char *range);
bool fuzz_known_register_size_overflow(const char *body);

#endif /* MINIDBX_KNOWN_FINDINGS_H */
