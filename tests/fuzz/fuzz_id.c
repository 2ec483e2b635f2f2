/* fuzz_id.c - minidbx_id_parse, the gate of every id from outside.
 *
 * Properties: an id parses only from exactly 64 hex digits and the end of
 * the string; a parsed id formats back to the same digits, lowercased; a
 * failed parse leaves the output untouched. */
#include "fuzz.h"

#include <ctype.h>
#include <minidbx.h>
#include <stdlib.h>
#include <string.h>

static int is_id_text(const char *text)
{
    if (strlen(text) != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)text[i]))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    minidbx_id id, untouched;
    char hex[MINIDBX_ID_HEX_SIZE];

    memset(&id, 0xa5, sizeof id);
    untouched = id;
    int rc = minidbx_id_parse(&id, text);
    if (rc != 0 && rc != MINIDBX_EINVAL)
        fuzz_fail("id_parse returned %d", rc);
    if ((rc == 0) != is_id_text(text))
        fuzz_fail("id_parse(\"%s\") = %d", text, rc);
    if (rc != 0 && !minidbx_id_equal(&id, &untouched))
        fuzz_fail("a failed id_parse changed its output");
    if (rc == 0) {
        minidbx_id_format(&id, hex);
        for (size_t i = 0; i < 64; i++)
            if (hex[i] != tolower((unsigned char)text[i]))
                fuzz_fail("id \"%s\" formats back as \"%s\"", text, hex);
    }
    free(text);
    return 0;
}
