/* fuzz_http_client.c - what the http:// backend makes of a node's replies.
 *
 * A fake node (fake_node.c) on 127.0.0.1 answers every request with the
 * input as the raw response: "HTTP/1.1 STATUS X" and a line end, then the
 * input after its first byte (headers, body, more responses: anything).
 * One library call per input goes to it, on a handle opened for it.
 *
 * Input: byte 0: the low 4 bits pick STATUS from statuses[], the high 4
 * bits the call (see run_call). The status line is ours, whole, so that
 * the client never takes an input for a dead node: it retries those after
 * a pause, and a fuzzer must not wait.
 *
 * Properties (the promises of minidbx.h): bytes that get and a reader hand
 * out hash to the id asked for; a call returns 0 or a documented code;
 * what a listing or a name lookup fills in stays within its buffers and
 * is terminated; missing answers only ids it was asked about. Where
 * AddressSanitizer's allocator is there (the libFuzzer build, the ASan
 * replay), also: no allocation during a call is over ALLOC_MAX, whatever
 * size a reply claims (an input is at most 4 KiB: a larger buffer is a
 * reservation on a node's word). */
#include "fake_node.h"
#include "fuzz.h"

#include <minidbx.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_CAPACITY 8

static const unsigned statuses[16] = { 200, 200, 201, 204, 206, 304, 400, 401,
                                       404, 409, 413, 422, 500, 501, 507, 302 };

/* curl's buffers (256 KiB for an object's body), the client's reservation
 * of a reply's body (at most 1 MiB on its Content-Length), room to spare */
#define ALLOC_MAX (4u << 20)

static char url[64];
static minidbx *db; /* opened afresh for each input */

static minidbx_options client_options(void)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.timeout_ms = 5000;
    opts.token = "fuzz-token";
    return opts;
}

/* ---- the largest allocation of a call -------------------------------------------- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ALLOC_HOOKS 1
#endif
#endif
#ifdef __SANITIZE_ADDRESS__ /* gcc */
#define FUZZ_ALLOC_HOOKS 1
#endif

static atomic_bool watching;
static atomic_size_t largest; /* of the allocations while watching */

#ifdef FUZZ_ALLOC_HOOKS
/* of <sanitizer/allocator_interface.h>, which gcc does not ship */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

/* any thread (curl's, the reader's, the fake node's) */
static void on_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (!atomic_load_explicit(&watching, memory_order_relaxed))
        return;
    size_t seen = atomic_load_explicit(&largest, memory_order_relaxed);
    while (size > seen &&
           !atomic_compare_exchange_weak_explicit(&largest, &seen, size, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static void on_free(const volatile void *ptr)
{
    (void)ptr;
}
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
#ifdef FUZZ_ALLOC_HOOKS
    fuzz_check_setup(__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0,
                     "install malloc hooks");
#endif
    snprintf(url, sizeof url, "http://127.0.0.1:%u", fake_node_start());
    return 0;
}

/* ---- the calls ----------------------------------------------------------------- */

static void check_code(int rc, const char *call)
{
    if (rc > 0 || (rc < 0 && (rc < MINIDBX_ESTATE || rc > MINIDBX_ENOTFOUND)))
        fuzz_fail("%s returned %d, not a documented code", call, rc);
}

static void check_bytes(const minidbx_id *want, const void *data, size_t size, const char *call)
{
    minidbx_id got;
    fuzz_check_setup(minidbx_id_of(&got, data, size) == 0, "id_of");
    if (!minidbx_id_equal(&got, want))
        fuzz_fail("%s handed out %zu bytes that do not hash to the id asked for", call, size);
}

static void count_problem(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                          int repaired)
{
    (void)kind, (void)id, (void)repaired;
    if (!detail)
        fuzz_fail("verify gave a problem without detail");
    (*(size_t *)ctx)++;
}

/* gc's removed callback: ctx counts the calls. */
static void count_removed(void *ctx, const minidbx_id *id, uint64_t size)
{
    (void)size;
    if (!id)
        fuzz_fail("gc reported a removed object without its id");
    (*(size_t *)ctx)++;
}

static void check_name_info(const minidbx_name_info *info, const char *call)
{
    if (strnlen(info->name, sizeof info->name) == sizeof info->name)
        fuzz_fail("%s filled a name without its terminating NUL", call);
}

static void run_call(unsigned which, const minidbx_id *id, const minidbx_id *other)
{
    minidbx_object_info objects[LIST_CAPACITY];
    minidbx_name_info names[LIST_CAPACITY];
    minidbx_name_info name;
    minidbx_store_info info;
    minidbx_verify_report report;
    minidbx_gc_report gc;
    minidbx_id ids[3] = { *id, *other, *id }, missing[3];
    size_t count = SIZE_MAX;
    void *data = NULL;
    size_t size = 0;
    int rc;

    switch (which) {
    case 0: { /* open: the /health check */
        minidbx *opened = NULL;
        minidbx_options opts = client_options();
        check_code(rc = minidbx_open(&opened, url, &opts), "open");
        minidbx_close(opened);
        break;
    }
    case 1:
        check_code(rc = minidbx_get(db, id, &data, &size), "get");
        if (rc == 0)
            check_bytes(id, data, size, "get");
        minidbx_free(data);
        break;
    case 2:
        check_code(rc = minidbx_stat(db, id, &objects[0]), "stat");
        if (rc == 0 && !minidbx_id_equal(&objects[0].id, id))
            fuzz_fail("stat filled in another id");
        break;
    case 3:
        rc = minidbx_exists(db, id);
        if (rc != 1)
            check_code(rc, "exists");
        break;
    case 4:
        check_code(rc = minidbx_name_get(db, "docs/hello.txt", &name), "name_get");
        if (rc == 0)
            check_name_info(&name, "name_get");
        break;
    case 5:
        check_code(rc = minidbx_list(db, NULL, objects, LIST_CAPACITY, &count), "list");
        if (rc == 0 && count > LIST_CAPACITY)
            fuzz_fail("list filled %zu entries into room for %d", count, LIST_CAPACITY);
        break;
    case 6:
        check_code(rc = minidbx_name_list(db, "docs/", NULL, names, LIST_CAPACITY, &count), "name_list");
        if (rc == 0 && count > LIST_CAPACITY)
            fuzz_fail("name_list filled %zu entries into room for %d", count, LIST_CAPACITY);
        for (size_t i = 0; rc == 0 && i < count; i++)
            check_name_info(&names[i], "name_list");
        break;
    case 7:
        check_code(rc = minidbx_missing(db, ids, 3, missing, &count), "missing");
        if (rc == 0 && count > 3)
            fuzz_fail("missing answered %zu of 3 ids", count);
        for (size_t i = 0; rc == 0 && i < count; i++)
            if (!minidbx_id_equal(&missing[i], id) && !minidbx_id_equal(&missing[i], other))
                fuzz_fail("missing answered an id it was not asked about");
        break;
    case 8: {
        size_t problems = 0;
        check_code(rc = minidbx_verify(db, NULL, 0, &report, count_problem, &problems), "verify");
        if (problems > 10000)
            fuzz_fail("verify reported %zu problems, over the documented 10,000", problems);
        break;
    }
    case 9:
        check_code(rc = minidbx_info(db, &info), "info");
        if (rc == 0 && (strnlen(info.backend, sizeof info.backend) == sizeof info.backend ||
                        strnlen(info.location, sizeof info.location) == sizeof info.location))
            fuzz_fail("info filled a string without its terminating NUL");
        break;
    case 10: {
        minidbx_reader *reader = NULL;
        uint64_t object_size = 0;
        check_code(rc = minidbx_reader_open(db, id, &reader, &object_size), "reader_open");
        if (rc == 0) {
            char chunk[4096];
            size_t got = 0, total = 0;
            unsigned char *all = NULL;
            /* bounded: the response is at most -max_len bytes */
            while ((rc = minidbx_reader_read(reader, chunk, sizeof chunk, &got)) == 0 && got > 0) {
                all = realloc(all, total + got);
                fuzz_check_setup(all != NULL, "realloc");
                memcpy(all + total, chunk, got);
                total += got;
            }
            check_code(rc, "reader_read");
            if (rc == 0)
                check_bytes(id, all, total, "a reader");
            free(all);
        }
        minidbx_reader_close(reader);
        break;
    }
    case 11:
        check_code(minidbx_put(db, "hello world\n", 12, NULL), "put");
        break;
    case 12:
        check_code(minidbx_delete(db, id), "delete");
        break;
    case 13: { /* the default grace (asks /v1/info first), then a dry run listing */
        size_t removed = 0;
        minidbx_gc_options dry = MINIDBX_GC_OPTIONS_INIT;
        dry.flags = MINIDBX_GC_DRY_RUN;
        dry.removed = count_removed;
        dry.ctx = &removed;
        check_code(minidbx_gc(db, &gc), "gc");
        check_code(rc = minidbx_gc_ex(db, &dry, &gc), "gc dry run");
        if (rc == 0 && removed > 10000)
            fuzz_fail("gc listed %zu objects, over the documented 10,000", removed);
        break;
    }
    case 14:
        check_code(minidbx_name_set(db, "docs/hello.txt", id), "name_set");
        break;
    default:
        check_code(minidbx_name_delete(db, "docs/hello.txt"), "name_delete");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char small[] = "hello world\n";
    static const char health[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
    minidbx_options opts = client_options();
    minidbx_id id, other;
    char status_line[32];

    if (size < 1)
        return 0;
    fuzz_check_setup(minidbx_id_of(&id, small, sizeof small - 1) == 0, "id_of");
    memset(other.bytes, 0xab, sizeof other.bytes);

    /* a new handle, so that nothing of the last input's transfers (the
     * share of curl connections) plays a part in this one */
    fake_node_set_response(health, sizeof health - 1);
    fuzz_check_setup(minidbx_open(&db, url, &opts) == 0, "open the http:// store");

    int n = snprintf(status_line, sizeof status_line, "HTTP/1.1 %u X\r\n", statuses[data[0] & 15]);
    char *raw = malloc((size_t)n + size);
    fuzz_check_setup(raw != NULL, "malloc");
    memcpy(raw, status_line, (size_t)n);
    memcpy(raw + n, data + 1, size - 1);
    fake_node_set_response(raw, (size_t)n + size - 1);
    free(raw);

    atomic_store(&largest, 0);
    atomic_store(&watching, true);
    run_call(data[0] >> 4, &id, &other);
    atomic_store(&watching, false);
    if (atomic_load(&largest) > ALLOC_MAX)
        fuzz_fail("one allocation of %zu bytes for a reply of %zu", atomic_load(&largest), size - 1);
    minidbx_close(db);
    db = NULL;
    return 0;
}
