/* fuzz_name.c - minidbx_name_valid, and what a store does with the names
 * it lets through.
 *
 * Properties: name_valid agrees with an independent reading of the rules
 * in minidbx.h (1..MINIDBX_NAME_MAX bytes of UTF-8 without overlong forms,
 * surrogates or code points past U+10FFFF; relative; no empty, "." or ".."
 * segment; no ASCII control character); every valid name can be set, read
 * back unchanged and deleted on a local store, and every invalid one is
 * refused with MINIDBX_EINVAL. */
#include "fuzz.h"

#include <minidbx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static minidbx *db;
static minidbx_id object_id;

static void close_store(void)
{
    minidbx_close(db);
    db = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    char path[4200];
    (void)argc, (void)argv;

    opts.durability = MINIDBX_SYNC_NONE;
    snprintf(path, sizeof path, "%s/store", fuzz_temp_dir("name"));
    fuzz_check_setup(minidbx_open(&db, path, &opts) == 0, "open the store");
    fuzz_check_setup(minidbx_put(db, "named", 5, &object_id) == 0, "put");
    atexit(close_store);
    return 0;
}

/* The length of the UTF-8 sequence at s (of left bytes) by decoding it, or
 * 0 when it is not a valid scalar value in its shortest form. */
static size_t model_utf8(const unsigned char *s, size_t left)
{
    static const unsigned long min_for_len[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len;
    unsigned long cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc0 && s[0] < 0xe0)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] < 0xf0)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] < 0xf8)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > left)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int model_name_valid(const char *name)
{
    size_t len = strlen(name), seg_start = 0;

    if (len == 0 || len > MINIDBX_NAME_MAX || name[0] == '/')
        return 0;
    for (size_t i = 0; i <= len;) {
        if (i == len || name[i] == '/') {
            size_t seg_len = i - seg_start;
            const char *seg = name + seg_start;
            if (seg_len == 0 || (seg_len == 1 && seg[0] == '.') ||
                (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
                return 0;
            seg_start = i + 1;
            i++;
            continue;
        }
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        size_t n = model_utf8((const unsigned char *)name + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = fuzz_strndup(data, size);
    minidbx_name_info info;
    int valid = minidbx_name_valid(name);

    if (valid != model_name_valid(name))
        fuzz_fail("name_valid says %d for a name the rules call %s (%zu bytes)", valid,
                  valid ? "invalid" : "valid", strlen(name));
    int rc = minidbx_name_set(db, name, &object_id);
    if (!valid) {
        if (rc != MINIDBX_EINVAL)
            fuzz_fail("name_set of an invalid name returned %d", rc);
        if (minidbx_name_get(db, name, &info) != MINIDBX_EINVAL)
            fuzz_fail("name_get of an invalid name did not say EINVAL");
        free(name);
        return 0;
    }
    if (rc != 0)
        fuzz_fail("name_set of a valid name failed: %s", minidbx_errmsg(db));
    if ((rc = minidbx_name_get(db, name, &info)) != 0)
        fuzz_fail("name_get after name_set failed: %s", minidbx_errmsg(db));
    if (strcmp(info.name, name) != 0 || !minidbx_id_equal(&info.id, &object_id) || info.size != 5)
        fuzz_fail("name_get gave back another name or object");
    size_t count = 0;
    if (minidbx_name_list(db, name, NULL, &info, 1, &count) != 0 || count != 1 ||
        strcmp(info.name, name) != 0)
        fuzz_fail("name_list with the name as prefix did not find it first");
    if (minidbx_name_delete(db, name) != 0 || minidbx_name_get(db, name, &info) != MINIDBX_ENOTFOUND)
        fuzz_fail("the name did not go away");
    free(name);
    return 0;
}
