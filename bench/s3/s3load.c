/*
 * s3load.c - the minidbx side of bench/s3/run.sh: timed puts and gets of
 * many objects through the library, on THREADS threads sharing one handle.
 *
 *   s3load gen DIR SIZE COUNT                 write COUNT files of SIZE random
 *                                             bytes: DIR/o0, DIR/o1, ...
 *   s3load put LOCATION DIR COUNT THREADS     minidbx_put each file's bytes (read
 *                                             into memory first, untimed); ids to
 *                                             DIR/ids
 *   s3load get LOCATION DIR COUNT THREADS     minidbx_get each id of DIR/ids
 *
 * With S3LOAD_NO_VERIFY=1 in the environment the store is opened with
 * MINIDBX_OPEN_NO_VERIFY (gets are not hashed): the share of verification.
 *
 * put and get print "SECONDS CPU P50 P90" (wall time of the timed part, the
 * CPU time, user + sys of every thread, spent in it, and the median and
 * 90th percentile of one call's time, in ms: what a few stalls of a loaded
 * machine do not move) on stdout and fail (exit 1) if any call fails or a
 * get returns other bytes than put.
 */
#include <minidbx.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct job {
    minidbx *db;
    unsigned char **data;
    size_t *sizes;
    minidbx_id *ids;
    double *call_ms; /* each call's time */
    size_t count;
    size_t next;
    pthread_mutex_t lock;
    int failed;
    int get;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "s3load: %s: %s\n", what, errno ? strerror(errno) : minidbx_errmsg(NULL));
    return 1;
}

/* CPU time of the process (every thread), user + sys. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *worker(void *cls)
{
    struct job *j = cls;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->count || j->failed)
            return NULL;
        double start = now_s();
        if (!j->get) {
            int rc = minidbx_put(j->db, j->data[i], j->sizes[i], &j->ids[i]);
            j->call_ms[i] = 1000 * (now_s() - start);
            if (rc != 0) {
                fprintf(stderr, "s3load: put: %s\n", minidbx_errmsg(NULL));
                j->failed = 1;
            }
            continue;
        }
        void *got = NULL;
        size_t size = 0;
        int rc = minidbx_get(j->db, &j->ids[i], &got, &size);
        j->call_ms[i] = 1000 * (now_s() - start);
        if (rc != 0 || size != j->sizes[i] || memcmp(got, j->data[i], size) != 0) {
            fprintf(stderr, "s3load: get: %s\n", minidbx_errmsg(NULL));
            j->failed = 1;
        }
        minidbx_free(got);
    }
}

static int gen(const char *dir, size_t size, size_t count)
{
    unsigned char *buf = malloc(size ? size : 1);
    int rnd = open("/dev/urandom", O_RDONLY);
    char path[4096];

    for (size_t i = 0; buf && rnd >= 0 && i < count; i++) {
        snprintf(path, sizeof path, "%s/o%zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || read(rnd, buf, size) != (ssize_t)size || fwrite(buf, 1, size, f) != size || fclose(f))
            return die(path);
    }
    free(buf);
    return rnd >= 0 ? 0 : die("/dev/urandom");
}

/* Every file's bytes, and (for get) the ids put wrote. */
static int load(struct job *j, const char *dir, int with_ids)
{
    char path[4096];
    j->data = calloc(j->count, sizeof *j->data);
    j->sizes = calloc(j->count, sizeof *j->sizes);
    j->ids = calloc(j->count, sizeof *j->ids);
    j->call_ms = calloc(j->count, sizeof *j->call_ms);
    if (!j->data || !j->sizes || !j->ids || !j->call_ms)
        return die("calloc");
    for (size_t i = 0; i < j->count; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/o%zu", dir, i);
        FILE *f = fopen(path, "rb");
        if (!f || fstat(fileno(f), &st) != 0 || !(j->data[i] = malloc((size_t)st.st_size + 1)) ||
            fread(j->data[i], 1, (size_t)st.st_size, f) != (size_t)st.st_size)
            return die(path);
        j->sizes[i] = (size_t)st.st_size;
        fclose(f);
    }
    if (with_ids) {
        snprintf(path, sizeof path, "%s/ids", dir);
        FILE *f = fopen(path, "r");
        char hex[80];
        for (size_t i = 0; i < j->count; i++)
            if (!f || !fgets(hex, sizeof hex, f) || (hex[64] = '\0', minidbx_id_parse(&j->ids[i], hex)) != 0)
                return die(path);
        fclose(f);
    }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
    if (argc != 6 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
        fprintf(stderr, "usage: s3load gen DIR SIZE COUNT | put|get LOCATION DIR COUNT THREADS\n");
        return 2;
    }
    struct job j = { .count = strtoul(argv[4], NULL, 10), .get = strcmp(argv[1], "get") == 0 };
    unsigned threads = (unsigned)strtoul(argv[5], NULL, 10);
    pthread_t tids[64];
    char path[4096];

    if (threads < 1 || threads > 64 || load(&j, argv[3], j.get) != 0)
        return 2;
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    if (getenv("S3LOAD_NO_VERIFY"))
        opts.flags |= MINIDBX_OPEN_NO_VERIFY;
    if (minidbx_open(&j.db, argv[2], &opts) != 0)
        return die(argv[2]);
    pthread_mutex_init(&j.lock, NULL);
    double start = now_s(), cpu_start = cpu_s();
    for (unsigned t = 0; t < threads; t++)
        if (pthread_create(&tids[t], NULL, worker, &j) != 0)
            return die("pthread_create");
    for (unsigned t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    double seconds = now_s() - start, cpu = cpu_s() - cpu_start;
    if (j.failed)
        return 1;
    qsort(j.call_ms, j.count, sizeof *j.call_ms, by_value);
    printf("%.4f %.4f %.3f %.3f\n", seconds, cpu, j.count ? j.call_ms[(j.count - 1) / 2] : 0.0,
           j.count ? j.call_ms[(j.count * 9) / 10 - (j.count >= 10)] : 0.0);
    if (!j.get) {
        snprintf(path, sizeof path, "%s/ids", argv[3]);
        FILE *f = fopen(path, "w");
        for (size_t i = 0; f && i < j.count; i++) {
            char hex[MINIDBX_ID_HEX_SIZE];
            minidbx_id_format(&j.ids[i], hex);
            fprintf(f, "%s\n", hex);
        }
        if (!f || fclose(f) != 0)
            return die(path);
    }
    minidbx_close(j.db);
    for (size_t i = 0; i < j.count; i++)
        free(j.data[i]);
    free(j.data);
    free(j.sizes);
    free(j.ids);
    free(j.call_ms);
    return 0;
}
