/* serve_torture.c - SIGKILL a loaded `mdbx serve`, many times. Each round
 * starts the node on one store (reused, so it grows across rounds), lets
 * CLIENTS threads upload random objects (PUT /v1/objects/ID, libcurl) as
 * fast as they can, kills the node with SIGKILL at a random moment (0-150
 * ms in), and then checks the store with the library:
 *
 *   - every upload the node acknowledged (a 2xx with the id) in this round
 *     reads back with its bytes, plus a sample of those of earlier rounds;
 *   - no response other than 2xx came back (transport errors after the
 *     kill are expected: nothing was acknowledged to those clients);
 *   - every VERIFY_EVERY rounds and at the end, verify finds nothing but
 *     orphan blobs and temp files; at the end every acknowledged object
 *     of every round reads back.
 *
 * usage: serve_torture MDBX ROUNDS
 * Prints the numbers: rounds, uploads acknowledged, objects checked, lost. */
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS 8
#define MAX_KILL_DELAY_MS 150
#define SAMPLE_PER_ROUND 64  /* earlier acknowledged objects re-read each round */
#define VERIFY_EVERY 250
#define MAX_OBJECT (96u * 1024u)
#define MAX_REPORTED 20

typedef struct {
    minidbx_id id;
    uint64_t seed; /* the bytes are regenerated from it */
    uint32_t size;
} acked_object;

static const char *mdbx_path;
static char store_dir[PATH_MAX - 32];
static char url[256];

static pthread_mutex_t acked_lock = PTHREAD_MUTEX_INITIALIZER;
static acked_object *acked;
static size_t acked_count, acked_capacity;
static atomic_int stop_clients;
static atomic_ulong uploads_tried, unexpected_statuses;
static unsigned long checked, lost, failures;

static void failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failure(const char *fmt, ...)
{
    if (++failures > MAX_REPORTED)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* Mostly small (inline) objects, some files. */
static uint32_t random_size(test_rng *rng)
{
    return rng_below(rng, 10) < 7 ? (uint32_t)rng_below(rng, 4096) + 1 : (uint32_t)rng_below(rng, MAX_OBJECT) + 1;
}

static void object_bytes(uint64_t seed, uint32_t size, unsigned char *out, minidbx_id *id)
{
    test_rng rng;
    rng_seed(&rng, seed);
    rng_fill(&rng, out, size);
    EVP_Digest(out, size, id->bytes, NULL, EVP_sha256(), NULL);
}

static void acked_add(const acked_object *o)
{
    pthread_mutex_lock(&acked_lock);
    if (acked_count == acked_capacity) {
        acked_capacity = acked_capacity ? acked_capacity * 2 : 4096;
        acked = realloc(acked, acked_capacity * sizeof *acked);
        if (acked == NULL)
            abort();
    }
    acked[acked_count++] = *o;
    pthread_mutex_unlock(&acked_lock);
}

static size_t discard_body(char *data, size_t size, size_t count, void *ctx)
{
    (void)data;
    char *body = ctx;
    size_t have = strlen(body), n = size * count, room = 255 - have;
    memcpy(body + have, data, n < room ? n : room);
    body[have + (n < room ? n : room)] = '\0';
    return n;
}

/* One client: upload until told to stop; a 2xx that names the id is an
 * acknowledgement. */
static void *client(void *arg)
{
    test_rng rng;
    rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    unsigned char *data = malloc(MAX_OBJECT);
    CURL *curl = curl_easy_init();
    if (data == NULL || curl == NULL)
        abort();
    while (!atomic_load(&stop_clients)) {
        acked_object o = { .seed = rng_next(&rng), .size = random_size(&rng) };
        char hex[MINIDBX_ID_HEX_SIZE], target[512], body[256] = "";
        object_bytes(o.seed, o.size, data, &o.id);
        minidbx_id_format(&o.id, hex);
        snprintf(target, sizeof target, "%s/v1/objects/%s", url, hex);
        curl_easy_setopt(curl, CURLOPT_URL, target);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o.size);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
        atomic_fetch_add(&uploads_tried, 1);
        if (curl_easy_perform(curl) != CURLE_OK)
            break; /* the node died under it: nothing was acknowledged */
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300 && strstr(body, hex) != NULL) {
            acked_add(&o);
        } else {
            atomic_fetch_add(&unexpected_statuses, 1);
            failure("upload of %.12s: HTTP %ld %s", hex, status, body);
        }
    }
    curl_easy_cleanup(curl);
    free(data);
    return NULL;
}

/* 1 if the object reads back with its bytes. */
static int object_ok(minidbx *db, const acked_object *o, unsigned char *scratch)
{
    minidbx_id id;
    object_bytes(o->seed, o->size, scratch, &id);
    void *data = NULL;
    size_t size = 0;
    int rc = minidbx_get(db, &o->id, &data, &size);
    int same = rc == 0 && size == o->size && memcmp(data, scratch, size) == 0;
    minidbx_free(data);
    checked++;
    if (!same) {
        char hex[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(&o->id, hex);
        lost++;
        failure("acknowledged object %s (%u bytes) is lost: %s (%s)", hex, o->size, minidbx_strerror(rc),
                minidbx_errmsg(db));
    }
    return same;
}

/* Nothing but orphans and temp files; repair clears those. */
static void verify_store(minidbx *db)
{
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    int rc = minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log);
    unsigned harmless = log.count[MINIDBX_PROBLEM_ORPHAN] + log.count[MINIDBX_PROBLEM_TEMP];
    if (rc != 0 || report.problems != harmless)
        failure("verify: rc %d, %llu problems (corrupt %u, missing %u, dangling %u, badref %u)", rc,
                (unsigned long long)report.problems, log.count[MINIDBX_PROBLEM_CORRUPT],
                log.count[MINIDBX_PROBLEM_MISSING], log.count[MINIDBX_PROBLEM_DANGLING],
                log.count[MINIDBX_PROBLEM_BADREF]);
    else
        printf("verify: %llu objects, %u orphan blobs and %u temp files left by kills\n",
               (unsigned long long)report.objects_checked, log.count[MINIDBX_PROBLEM_ORPHAN],
               log.count[MINIDBX_PROBLEM_TEMP]);
}

static int round_run(long round, test_rng *rng, unsigned char *scratch)
{
    pid_t pid;
    static const char *const extra[] = { "--threads", "4", NULL };
    if (serve_start(mdbx_path, store_dir, extra, &pid, url, sizeof url) != 0) {
        failure("round %ld: mdbx serve did not start on the store", round);
        return -1;
    }
    size_t before = acked_count;
    atomic_store(&stop_clients, 0);
    pthread_t threads[CLIENTS];
    for (uintptr_t i = 0; i < CLIENTS; i++)
        pthread_create(&threads[i], NULL, client, (void *)(rng_next(rng) | 1));
    /* the random moment to kill at: not a synchronisation */
    struct timespec delay = { 0, (long)rng_below(rng, MAX_KILL_DELAY_MS * 1000) * 1000 };
    nanosleep(&delay, NULL);
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    atomic_store(&stop_clients, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);

    minidbx *db = NULL;
    int rc = minidbx_open(&db, store_dir, NULL);
    if (rc != 0) {
        failure("round %ld: the store does not open after the kill: %s (%s)", round, minidbx_strerror(rc),
                minidbx_errmsg(NULL));
        return -1;
    }
    for (size_t i = before; i < acked_count; i++)
        object_ok(db, &acked[i], scratch);
    for (int i = 0; i < SAMPLE_PER_ROUND && before > 0; i++)
        object_ok(db, &acked[rng_below(rng, before)], scratch);
    if (round % VERIFY_EVERY == 0)
        verify_store(db);
    minidbx_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: serve_torture MDBX ROUNDS\n");
        return 2;
    }
    mdbx_path = argv[1];
    long rounds = atol(argv[2]);
    const char *tmp = getenv("TMPDIR");
    snprintf(store_dir, sizeof store_dir, "%s/minidbx-serve-torture-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(store_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_rng rng;
    uint64_t seed = seed_from_clock();
    rng_seed(&rng, seed);
    printf("seed %llu, %ld rounds, %d clients, store %s\n", (unsigned long long)seed, rounds, CLIENTS, store_dir);
    fflush(stdout);
    unsigned char *scratch = malloc(MAX_OBJECT);
    double start = now_ms();
    long round;
    for (round = 1; round <= rounds && failures == 0; round++) {
        if (round_run(round, &rng, scratch) != 0)
            break;
        if (round % 100 == 0) {
            printf("round %ld: %zu acknowledged, %lu checked, %lu lost, %.0f s\n", round, acked_count, checked,
                   lost, (now_ms() - start) / 1000);
            fflush(stdout);
        }
    }
    /* the end: every acknowledged object of every round, and verify */
    minidbx *db = NULL;
    if (minidbx_open(&db, store_dir, NULL) == 0) {
        for (size_t i = 0; i < acked_count; i++)
            object_ok(db, &acked[i], scratch);
        verify_store(db);
        minidbx_close(db);
    } else {
        failure("the store does not open at the end");
    }
    printf("%ld rounds (SIGKILLs of a loaded mdbx serve), %lu uploads tried, %zu acknowledged, "
           "%lu checks of acknowledged objects, %lu lost, %lu unexpected statuses, %.0f s\n",
           round - 1, atomic_load(&uploads_tried), acked_count, checked, lost, atomic_load(&unexpected_statuses),
           (now_ms() - start) / 1000);
    curl_global_cleanup();
    if (failures == 0)
        rm_rf(store_dir);
    else
        printf("store kept for a post-mortem: %s\n", store_dir);
    free(scratch);
    free(acked);
    return failures ? 1 : 0;
}
