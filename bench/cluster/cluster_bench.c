/* cluster_bench.c - the client side of bench/cluster/run.sh: put latency
 * and get throughput through the library, against any location (a single
 * http:// node, or a cluster: of them), so that both run the same code.
 *
 *   cluster_bench put LOCATION SIZE COUNT
 *       COUNT sequential puts of SIZE new random bytes; prints
 *       "put SIZE: median_us p90_us p99_us".
 *   cluster_bench compare SIZE COUNT SINGLE CLUSTER SINGLE2
 *       COUNT rounds, each of three puts of SIZE new random bytes, in an
 *       order that turns each round: one to SINGLE; one to CLUSTER; and
 *       one to SINGLE while another thread puts to SINGLE2 at the same
 *       moment, timed until both are stored (two copies on one machine
 *       without the cluster's code).
 *       Taken put by put, all three see the same load on a shared
 *       machine; prints "compare SIZE: single_us N cluster_us N
 *       2singles_us N", the medians.
 *   cluster_bench get LOCATION SIZE OBJECTS THREADS SECONDS [PID]
 *       puts OBJECTS objects of SIZE, then THREADS threads get random ones
 *       for SECONDS; prints gets/s per second and in all. With PID, kills
 *       it (SIGKILL) after SECONDS and goes on for 1 + SECONDS more, and
 *       prints the rate after the first second that follows the kill. */
#include <minidbx.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill(unsigned char *buf, size_t size)
{
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = rng_next();
        memcpy(buf + i, &v, size - i < 8 ? size - i : 8);
    }
}

static minidbx *open_store(const char *location)
{
    minidbx *db = NULL;
    if (minidbx_open(&db, location, NULL) != 0) {
        fprintf(stderr, "open %s: %s\n", location, minidbx_errmsg(NULL));
        exit(1);
    }
    return db;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_put(const char *location, size_t size, unsigned count)
{
    minidbx *db = open_store(location);
    unsigned char *buf = malloc(size);
    double *us = malloc(count * sizeof *us);

    for (unsigned i = 0; i < count; i++) {
        fill(buf, size);
        double start = now_s();
        if (minidbx_put(db, buf, size, NULL) != 0) {
            fprintf(stderr, "put: %s\n", minidbx_errmsg(NULL));
            return 1;
        }
        us[i] = (now_s() - start) * 1e6;
    }
    qsort(us, count, sizeof *us, cmp_double);
    printf("put %zu: median_us %.0f p90_us %.0f p99_us %.0f\n", size, us[count / 2], us[count * 9 / 10],
           us[count * 99 / 100]);
    free(us);
    free(buf);
    minidbx_close(db);
    return 0;
}

/* --- compare: put by put, the same moment ------------------------------------- */

struct second_put {
    minidbx *db;
    unsigned char *buf;
    size_t size;
    pthread_barrier_t start, done;
    bool quit;
    int rc;
};

static int put_or_fail(minidbx *db, const void *buf, size_t size)
{
    int rc = minidbx_put(db, buf, size, NULL);
    if (rc != 0)
        fprintf(stderr, "put: %s\n", minidbx_errmsg(NULL));
    return rc;
}

static void *second_main(void *arg)
{
    struct second_put *p = arg;
    for (;;) {
        pthread_barrier_wait(&p->start);
        if (p->quit)
            return NULL;
        if (put_or_fail(p->db, p->buf, p->size) != 0)
            p->rc = 1;
        pthread_barrier_wait(&p->done);
    }
}

static double median_of(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

static int bench_compare(size_t size, unsigned count, const char *single, const char *cluster,
                         const char *single2)
{
    minidbx *dbs[2] = { open_store(single), open_store(cluster) };
    struct second_put second = { .db = open_store(single2), .buf = malloc(size), .size = size };
    unsigned char *buf = malloc(size);
    double *us[3];
    pthread_t thread;
    int rc = 0;

    for (unsigned k = 0; k < 3; k++)
        us[k] = malloc(count * sizeof *us[k]);
    pthread_barrier_init(&second.start, NULL, 2);
    pthread_barrier_init(&second.done, NULL, 2);
    pthread_create(&thread, NULL, second_main, &second);
    for (unsigned i = 0; i < count && rc == 0 && second.rc == 0; i++) {
        for (unsigned j = 0; j < 3 && rc == 0; j++) {
            unsigned k = (i + j) % 3; /* 0: single, 1: cluster, 2: two singles at once */
            fill(buf, size);
            if (k == 2)
                fill(second.buf, size);
            double start = now_s();
            if (k == 2)
                pthread_barrier_wait(&second.start);
            rc = put_or_fail(dbs[k == 1], buf, size);
            if (k == 2) /* until both are stored, as a cluster's put waits for its copies */
                pthread_barrier_wait(&second.done);
            us[k][i] = (now_s() - start) * 1e6;
        }
    }
    second.quit = true;
    pthread_barrier_wait(&second.start);
    pthread_join(thread, NULL);
    if (rc == 0 && second.rc == 0)
        printf("compare %zu: single_us %.0f cluster_us %.0f 2singles_us %.0f\n", size, median_of(us[0], count),
               median_of(us[1], count), median_of(us[2], count));
    for (unsigned k = 0; k < 3; k++)
        free(us[k]);
    pthread_barrier_destroy(&second.start);
    pthread_barrier_destroy(&second.done);
    free(second.buf);
    free(buf);
    minidbx_close(second.db);
    minidbx_close(dbs[0]);
    minidbx_close(dbs[1]);
    return rc || second.rc;
}

struct getter {
    minidbx *db;
    const minidbx_id *ids;
    unsigned count;
    uint64_t seed;
};

static atomic_bool stop;
static atomic_uint_fast64_t done, failed;

static void *get_main(void *arg)
{
    struct getter *g = arg;
    uint64_t x = g->seed;
    while (!atomic_load(&stop)) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        void *data;
        size_t size;
        if (minidbx_get(g->db, &g->ids[(x >> 33) % g->count], &data, &size) == 0) {
            minidbx_free(data);
            atomic_fetch_add(&done, 1);
        } else {
            atomic_fetch_add(&failed, 1);
        }
    }
    return NULL;
}

/* Gets per second for seconds, one line per second; the total rate. */
static double measure(unsigned seconds, const char *phase)
{
    uint64_t before = atomic_load(&done), last = before;
    double start = now_s();
    for (unsigned s = 1; s <= seconds; s++) {
        while (now_s() < start + s)
            usleep(2000);
        uint64_t now = atomic_load(&done);
        printf("  %s second %u: %" PRIu64 " gets/s\n", phase, s, now - last);
        last = now;
    }
    return (double)(last - before) / (now_s() - start);
}

static int bench_get(const char *location, size_t size, unsigned objects, unsigned threads, unsigned seconds,
                     pid_t victim)
{
    minidbx *db = open_store(location);
    minidbx_id *ids = malloc(objects * sizeof *ids);
    unsigned char *buf = malloc(size);
    pthread_t tids[64];
    struct getter getters[64];

    for (unsigned i = 0; i < objects; i++) {
        fill(buf, size);
        if (minidbx_put(db, buf, size, &ids[i]) != 0) {
            fprintf(stderr, "put: %s\n", minidbx_errmsg(NULL));
            return 1;
        }
    }
    for (unsigned t = 0; t < threads; t++) {
        getters[t] = (struct getter){ db, ids, objects, 1000 + t };
        pthread_create(&tids[t], NULL, get_main, &getters[t]);
    }
    double healthy = measure(seconds, "healthy");
    printf("get %zu x%u: %.0f gets/s\n", size, threads, healthy);
    if (victim > 0) {
        kill(victim, SIGKILL);
        double first = measure(1, "killed");
        double after = measure(seconds, "killed");
        printf("get %zu x%u, a node killed: %.0f gets/s in the first second, %.0f after (%.2fx healthy)\n",
               size, threads, first, after, after / healthy);
    }
    atomic_store(&stop, true);
    for (unsigned t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    printf("get failures: %" PRIu64 "\n", atomic_load(&failed));
    free(buf);
    free(ids);
    minidbx_close(db);
    return atomic_load(&failed) ? 1 : 0;
}

int main(int argc, char **argv)
{
    rng_state ^= (uint64_t)getpid() << 32 ^ (uint64_t)(now_s() * 1e9); /* new bytes every run */
    if (argc == 5 && strcmp(argv[1], "put") == 0)
        return bench_put(argv[2], strtoull(argv[3], NULL, 10), (unsigned)strtoul(argv[4], NULL, 10));
    if (argc == 7 && strcmp(argv[1], "compare") == 0)
        return bench_compare(strtoull(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10), argv[4], argv[5],
                             argv[6]);
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "get") == 0) {
        unsigned threads = (unsigned)strtoul(argv[5], NULL, 10);
        return bench_get(argv[2], strtoull(argv[3], NULL, 10), (unsigned)strtoul(argv[4], NULL, 10),
                         threads > 64 ? 64 : threads, (unsigned)strtoul(argv[6], NULL, 10),
                         argc == 8 ? (pid_t)strtol(argv[7], NULL, 10) : 0);
    }
    fprintf(stderr, "usage: cluster_bench put LOCATION SIZE COUNT\n"
                    "       cluster_bench compare SIZE COUNT SINGLE CLUSTER SINGLE2\n"
                    "       cluster_bench get LOCATION SIZE OBJECTS THREADS SECONDS [PID]\n");
    return 2;
}
