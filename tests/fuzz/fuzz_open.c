/* fuzz_open.c - store locations: minidbx_open with MINIDBX_OPEN_NO_CREATE.
 *
 * The input's first byte picks the other open flags and the durability,
 * the rest is the location. The process works in a temp directory that
 * holds a store, an empty directory, a file, a directory that is not a
 * store, one whose meta.lmdb is garbage, and a registered "fuzz://"
 * scheme. Locations that could leave that directory (absolute paths, ".."
 * segments) are not tried. (The process works there only during an
 * open: libFuzzer reads and writes its files relative to where it began.)
 *
 * Built with FUZZ_OPEN_HTTP (the target open_http), the location is
 * "http://" and the rest of the input, and only those are tried (https://
 * takes the same path in minidbx; in libcurl each try would load the CA
 * store, a tenth of a second under ASan): the proxy variables of
 * libcurl point at a fake node in this process (fake_node.c, which answers
 * every request as a healthy node's /health), so no request leaves it and
 * no name is resolved. They are a target of their own because every try
 * costs two requests, where a local one costs a few system calls.
 *
 * Properties: nothing is created (the directory's entries stay the same);
 * open either succeeds on the one local store there or an http(s) URL, or
 * fails with a documented code and a NULL handle; an opened local store
 * answers minidbx_info, an opened remote one makes a stat request (its URL
 * built from the location) and gets a documented code. */
#include "fake_node.h"
#include "fuzz.h"

#ifndef FUZZ_OPEN_HTTP
#define FUZZ_OPEN_HTTP 0
#endif

#include <dirent.h>
#include <fcntl.h>
#include <minidbx.h>
#include <minidbx/sys/backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const fixture_entries[] = { "badmeta", "empty", "file.txt", "notastore", "store" };
#define FIXTURE_ENTRIES (sizeof fixture_entries / sizeof fixture_entries[0])

static int scheme_calls;
/* The temp dir, where relative locations are opened, and where we were
 * (libFuzzer opens its files relative to that). */
static int dir_fd = -1, home_fd = -1;

static int fuzz_scheme_open(minidbx_backend **out, const char *location, const minidbx_options *opts)
{
    (void)out, (void)location, (void)opts;
    scheme_calls++;
    return MINIDBX_EUNSUPPORTED;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_temp_dir("open");
    minidbx *db = NULL;
    (void)argc, (void)argv;

    fuzz_check_setup((home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0 &&
                         (dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0,
                     "open the directories");
    fuzz_check_setup(fchdir(dir_fd) == 0, "chdir");
    fuzz_check_setup(minidbx_open(&db, "store", NULL) == 0, "create the store");
    fuzz_check_setup(minidbx_put(db, "x", 1, NULL) == 0, "put");
    minidbx_close(db);
    fuzz_check_setup(mkdir("empty", 0700) == 0 && mkdir("notastore", 0700) == 0 &&
                         mkdir("badmeta", 0700) == 0, "mkdir");
    fuzz_check_setup(fuzz_write_file("file.txt", "text\n", 5) == 0 &&
                         fuzz_write_file("notastore/a", "a", 1) == 0 &&
                         fuzz_write_file("badmeta/meta.lmdb", "not lmdb at all", 15) == 0,
                     "write files");
    fuzz_check_setup(fchdir(home_fd) == 0, "chdir back");
    fuzz_check_setup(minidbx_register_scheme("fuzz", fuzz_scheme_open) == 0, "register_scheme");
#if FUZZ_OPEN_HTTP
    static const char health[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", fake_node_start());
    fake_node_set_response(health, sizeof health - 1);
    fuzz_check_setup(setenv("http_proxy", proxy, 1) == 0 && setenv("HTTPS_PROXY", proxy, 1) == 0 &&
                         setenv("ALL_PROXY", proxy, 1) == 0 && unsetenv("NO_PROXY") == 0 &&
                         unsetenv("no_proxy") == 0,
                     "proxy variables");
#endif
    return 0;
}

/* Could opening path touch anything outside the temp dir? */
static int path_escapes(const char *path)
{
    if (path[0] == '/')
        return 1;
    for (const char *seg = path; seg; seg = strchr(seg, '/')) {
        if (*seg == '/')
            seg++;
        if (strncmp(seg, "..", 2) == 0 && (seg[2] == '/' || seg[2] == '\0'))
            return 1;
    }
    return 0;
}

/* Schemes are case-insensitive (open.c): "HTTP://name" would resolve
 * name outside the fake node's proxy (and wait for the answer: that was
 * most of this target's time), "FILE://.." leave the dir. The stores
 * that reach over the network (s3:, cluster: as they come) are not tried
 * here either. */
static int location_allowed(const char *location)
{
    static const char *const remote[] = { "s3:", "cluster:" };
    const char *sep = strstr(location, "://");
    if (strncasecmp(location, "http://", 7) == 0 || strncasecmp(location, "https://", 8) == 0)
        return FUZZ_OPEN_HTTP && location[4] == ':';
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
        if (strncasecmp(location, remote[i], strlen(remote[i])) == 0)
            return 0;
    if (!sep)
        return !path_escapes(location);
    if (strncasecmp(location, "file://", 7) == 0)
        return !path_escapes(location + 7);
    return 1;
}

static void check_entries(void)
{
    DIR *dir = opendir(".");
    struct dirent *e;
    size_t count = 0;

    fuzz_check_setup(dir != NULL, "opendir");
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int known = 0;
        for (size_t i = 0; i < FIXTURE_ENTRIES; i++)
            known |= strcmp(e->d_name, fixture_entries[i]) == 0;
        if (!known)
            fuzz_fail("open with NO_CREATE created '%s'", e->d_name);
        count++;
    }
    closedir(dir);
    if (count != FIXTURE_ENTRIES)
        fuzz_fail("open with NO_CREATE removed a directory entry");
    if (access("empty/meta.lmdb", F_OK) == 0)
        fuzz_fail("open with NO_CREATE made a store in an empty directory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx_store_info info;
    minidbx *db = (minidbx *)&opts; /* must come back NULL on failure */

    if (size < 1)
        return 0;
    opts.flags = MINIDBX_OPEN_NO_CREATE | (data[0] & (MINIDBX_OPEN_READONLY | MINIDBX_OPEN_NO_VERIFY));
    opts.durability = data[0] & 0x80 ? MINIDBX_SYNC_FULL : MINIDBX_SYNC_NONE;
#if FUZZ_OPEN_HTTP
    char *location = malloc(sizeof "http://" + size);
    fuzz_check_setup(location != NULL, "malloc");
    strcpy(location, "http://");
    char *rest = fuzz_strndup(data + 1, size - 1);
    strcat(location, rest);
    free(rest);
#else
    char *location = fuzz_strndup(data + 1, size - 1);
#endif
    if (!location_allowed(location)) {
        free(location);
        return 0;
    }
    fuzz_check_setup(fchdir(dir_fd) == 0, "chdir");
    int rc = minidbx_open(&db, location, &opts);
    if (getenv("FUZZ_VERBOSE")) /* to see what the seeds reach */
        fprintf(stderr, "%s -> %d %s\n", location, rc, rc ? minidbx_errmsg(NULL) : "");
    switch (rc) {
    case 0:
        if (strncmp(location, "http", 4) == 0) {
            minidbx_object_info object;
            minidbx_id id;
            memset(id.bytes, 0x5a, sizeof id.bytes);
            int stat_rc = minidbx_stat(db, &id, &object);
            if (stat_rc != 0 && (stat_rc < MINIDBX_ESTATE || stat_rc > MINIDBX_ENOTFOUND))
                fuzz_fail("stat on an http store returned %d", stat_rc);
        } else if (minidbx_info(db, &info) != 0 || strcmp(info.backend, "local") != 0) {
            fuzz_fail("an opened store does not answer info");
        }
        minidbx_close(db);
        break;
    case MINIDBX_EINVAL: case MINIDBX_ENOTFOUND: case MINIDBX_EPERM: case MINIDBX_EIO:
    case MINIDBX_ENOMEM: case MINIDBX_ECORRUPT: case MINIDBX_EUNSUPPORTED:
        if (db != NULL)
            fuzz_fail("a failed open left *out set");
        break;
    default:
        fuzz_fail("open returned %d, not a documented code", rc);
    }
    free(location);
    check_entries();
    fuzz_check_setup(fchdir(home_fd) == 0, "chdir back");
    return 0;
}
