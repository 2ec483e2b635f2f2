/*
 * names.c - point names at objects, then list them page by page.
 *
 *   usage: names STORE
 *
 * Names are path-like keys ("docs/a.txt") pointing at object ids, like
 * git refs or S3 keys. Listing is by prefix and resumable: pass the last
 * name of a page as `after` to get the next one.
 */
#include <minidbx.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PAGE 2 /* tiny, to show how pages resume */

static int report(const char *what, int code)
{
    fprintf(stderr, "names: %s: %s (%s)\n", what, minidbx_strerror(code), minidbx_errmsg(NULL));
    return 1;
}

static int add(minidbx *db, const char *name, const char *text)
{
    minidbx_id id;
    int code = minidbx_put(db, text, strlen(text), &id);

    if (code == MINIDBX_OK)
        code = minidbx_name_set(db, name, &id);
    return code == MINIDBX_OK ? 0 : report(name, code);
}

/* Print every name under prefix; returns how many, or -1. */
static int list(minidbx *db, const char *prefix)
{
    minidbx_name_info page[PAGE];
    char after[MINIDBX_NAME_MAX + 1] = "";
    char hex[MINIDBX_ID_HEX_SIZE];
    size_t count;
    int total = 0;

    do {
        int code = minidbx_name_list(db, prefix, after[0] ? after : NULL, page, PAGE, &count);
        if (code != MINIDBX_OK)
            return -report("name_list", code);
        for (size_t i = 0; i < count; i++) {
            minidbx_id_format(&page[i].id, hex);
            printf("%-12s %.12s %" PRIu64 " bytes\n", page[i].name, hex, page[i].size);
        }
        if (count > 0)
            strcpy(after, page[count - 1].name);
        total += (int)count;
    } while (count == PAGE); /* a short page is the last one */
    return total;
}

int main(int argc, char **argv)
{
    minidbx *db = NULL;
    minidbx_name_info info;
    int code, status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: names STORE\n");
        return 2;
    }
    if ((code = minidbx_open(&db, argv[1], NULL)) != MINIDBX_OK) {
        status = report(argv[1], code);
        goto out;
    }
    if (add(db, "docs/a.txt", "alpha") || add(db, "docs/b.txt", "beta") ||
        add(db, "docs/c.txt", "gamma") || add(db, "img/d.png", "delta"))
        goto out;
    printf("under docs/:\n");
    if (list(db, "docs/") != 3)
        goto out;
    /* Removing a name leaves the object; gc would remove it later. */
    if ((code = minidbx_name_delete(db, "docs/b.txt")) != MINIDBX_OK) {
        status = report("name_delete", code);
        goto out;
    }
    code = minidbx_name_get(db, "docs/b.txt", &info);
    if (code != MINIDBX_ENOTFOUND) {
        fprintf(stderr, "names: docs/b.txt is still there\n");
        goto out;
    }
    printf("all, after removing docs/b.txt:\n");
    if (list(db, NULL) != 3)
        goto out;
    status = 0;
out:
    minidbx_close(db);
    return status;
}
