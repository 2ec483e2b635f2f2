/* known_findings.c - step around findings that are saved in crashes/ but
 * whose fix belongs to another area, so that a long run can go past them.
 *
 * Only with MINIDBX_FUZZ_SKIP_KNOWN=1 in the environment; without it (the
 * default, and every meson test) nothing changes and the findings still
 * show. Linked into the server's fuzzers with -Wl,--wrap (meson.build).
 * Remove a guard once its finding is fixed.
 *
 * serve_request-multipart-part-without-name (and
 * serve_multipart-unquoted-name): a multipart part whose
 * Content-Disposition has no (quoted) name reaches serve.c's on_post_field
 * with a NULL key, which it passes to strcmp. The guard drops such parts
 * before they reach the server's iterator. The other findings have
 * predicates that the targets use to skip their inputs. */
#include "known_findings.h"

#include "fuzz.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct MHD_PostProcessor *__real_MHD_create_post_processor(struct MHD_Connection *connection,
                                                           size_t buffer_size,
                                                           MHD_PostDataIterator iter, void *iter_cls);
enum MHD_Result __real_MHD_destroy_post_processor(struct MHD_PostProcessor *pp);
struct MHD_PostProcessor *__wrap_MHD_create_post_processor(struct MHD_Connection *connection,
                                                           size_t buffer_size,
                                                           MHD_PostDataIterator iter, void *iter_cls);
enum MHD_Result __wrap_MHD_destroy_post_processor(struct MHD_PostProcessor *pp);

struct guarded {
    struct MHD_PostProcessor *pp;
    MHD_PostDataIterator iter;
    void *iter_cls;
    struct guarded *next;
};

static struct guarded *guards;
static pthread_mutex_t guards_lock = PTHREAD_MUTEX_INITIALIZER;

static enum MHD_Result named_parts_only(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *filename, const char *content_type,
                                        const char *transfer_encoding, const char *data,
                                        uint64_t off, size_t size)
{
    struct guarded *g = cls;
    if (!key)
        return MHD_YES;
    return g->iter(g->iter_cls, kind, key, filename, content_type, transfer_encoding, data, off, size);
}

struct MHD_PostProcessor *__wrap_MHD_create_post_processor(struct MHD_Connection *connection,
                                                           size_t buffer_size,
                                                           MHD_PostDataIterator iter, void *iter_cls)
{
    if (!fuzz_skip_known())
        return __real_MHD_create_post_processor(connection, buffer_size, iter, iter_cls);
    struct guarded *g = calloc(1, sizeof *g);
    fuzz_check_setup(g != NULL, "calloc");
    g->iter = iter;
    g->iter_cls = iter_cls;
    g->pp = __real_MHD_create_post_processor(connection, buffer_size, named_parts_only, g);
    if (!g->pp) {
        free(g);
        return NULL;
    }
    pthread_mutex_lock(&guards_lock);
    g->next = guards;
    guards = g;
    pthread_mutex_unlock(&guards_lock);
    return g->pp;
}

enum MHD_Result __wrap_MHD_destroy_post_processor(struct MHD_PostProcessor *pp)
{
    /* it may still call the iterator: unhook the guard only afterwards */
    enum MHD_Result result = __real_MHD_destroy_post_processor(pp);
    struct guarded *found = NULL;

    pthread_mutex_lock(&guards_lock);
    for (struct guarded **at = &guards; *at; at = &(*at)->next) {
        if ((*at)->pp == pp) {
            found = *at;
            *at = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&guards_lock);
    free(found);
    return result;
}

/* serve_headers-suffix-range-of-empty-object: "Range: bytes=-N" on an
 * empty object gets 206 with "Content-Range: bytes 0-18446744073709551615/0"
 * (serve_reply.c parse_range/serve_send_object), not 416. */
bool fuzz_known_empty_suffix_range(size_t object_size, const char *range)
{
    return object_size == 0 && range && strncmp(range + strspn(range, " \t"), "bytes=-", 7) == 0;
}

/* serve_json-register-size-past-uint64: POST /register with a "size" of
 * 2^64 or more converts the double to uint64_t (serve_go.c parse_record):
 * undefined behaviour. */
bool fuzz_known_register_size_overflow(const char *body)
{
    cJSON *json = cJSON_Parse(body);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(json, "size");
    bool hit = cJSON_IsNumber(size) && !(size->valuedouble < 18446744073709551616.0);
    cJSON_Delete(json);
    return hit;
}
