/*
 * bench.h - shared declarations of minidbx-bench.
 *
 * The benchmark is split by responsibility:
 *   main.c        options, the run loop, the goal lines
 *   results.c     figures per run, medians, the table
 *   util.c        clock, PRNG, data sets, paths, child processes
 *   kv.c          one driver for every key/value peer (put/get/exists)
 *   workloads.c   small, durable and many-object workloads
 *   big.c         the 1 GiB stream workload and the hardware limits
 *   latency.c     one put at a time, 4 KiB and 1 MiB, durable and not
 *   peer_*.c      one file per peer, all behind struct kv_peer
 */
#ifndef MINIDBX_BENCH_H
#define MINIDBX_BENCH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "minidbx.h"

#define BENCH_MAX_RUNS 15
#define BENCH_MIB (1024.0 * 1024.0)

/* ------------------------------------------------------------------------ */
/* Sizes and context                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    size_t small_count;     /* objects in the small workload */
    size_t small_bytes;     /* size of each (4 KiB) */
    size_t durable_count;   /* one durable put per commit */
    uint64_t big_bytes;     /* the one big object */
    size_t chunk_bytes;     /* writer/reader chunk */
    size_t many_count;      /* objects in the many workload */
    size_t many_bytes;      /* size of each (256 B) */
    size_t many_window;     /* first/last puts compared */
    size_t batch;           /* puts per commit when batched */
    size_t latency_small;   /* single puts of 4 KiB timed one by one */
    size_t latency_big;     /* single puts of 1 MiB */
} bench_sizes;

typedef struct bench_results bench_results;

typedef struct {
    bench_sizes sz;
    int run;                    /* 0-based index of the current run */
    char run_dir[PATH_MAX];     /* fresh directory of the current run */
    bench_results *res;
    int have_git;
} bench_ctx;

/* ------------------------------------------------------------------------ */
/* Names used in the table and looked up by the goals                       */
/* ------------------------------------------------------------------------ */

#define WL_SMALL   "small"
#define WL_DURABLE "durable"
#define WL_BIG     "big"
#define WL_MANY    "many"
#define WL_LATENCY "latency"

#define M_SMALL_PUT     "put 4 KiB, batched"
#define M_SMALL_GET     "get 4 KiB, random order"
#define M_SMALL_EXISTS  "exists, random order"
#define M_SMALL_MISSING "missing, 1,000 ids/call"
#define M_DURABLE_PUT   "put 4 KiB, 1 per commit"
#define M_DURABLE_W     "written per put"
#define M_BIG_PUT       "put big, 1 MiB chunks"
#define M_BIG_GET       "get big, 1 MiB chunks"
#define M_BIG_RSS_PUT   "peak RSS of put (child)"
#define M_BIG_RSS_GET   "peak RSS of get (child)"
#define M_MANY_FIRST    "put 256 B, first window"
#define M_MANY_LAST     "put 256 B, last window"
#define M_MANY_ALL      "put 256 B, all"
#define M_MANY_RATIO    "last window / first"
#define M_MANY_DISK     "disk used after the puts"
#define M_MANY_W_FIRST  "written per put, first"
#define M_MANY_W_LAST   "written per put, last"
#define M_LAT_SMALL     "put 4 KiB, durable"
#define M_LAT_SMALL_NS  "put 4 KiB, sync off"
#define M_LAT_BIG       "put 1 MiB, durable"
#define M_LAT_BIG_NS    "put 1 MiB, sync off"

#define P_MINIDBX       "minidbx"
#define P_MINIDBX_NV    "minidbx no-verify"
#define P_LMDB          "raw LMDB"
#define P_SQLITE_NR     "SQLite WITHOUT ROWID"
#define P_SQLITE_ROWID  "SQLite rowid"
#define P_FILES         "files ab/cd/hex"
#define P_GIT           "git"
#define P_FILES_STREAM  "file + SHA-256 + fsync"
#define P_CHILD_START   "(child RSS at start)"
#define P_LIMIT_SHA     "limit: SHA-256 1 core"
#define P_LIMIT_WRITE   "limit: write+fdatasync"
#define P_LIMIT_FSYNC   "limit: fsync loop"
#define P_LIMIT_LOG     "limit: log+fdatasync"
#define P_LIMIT_FLUSH   "limit: 1 flush"
#define P_LIMIT_FLUSH2  "limit: 2 flushes at once"
#define P_SKETCH_LOG    "sketch: log + LMDB"
#define P_DATA          "(data: key + bytes)"

#define U_OPS "ops/s"
#define U_MBS "MB/s"
#define U_MIB "MiB"
#define U_MS  "ms"
#define U_X   "x"
#define U_B   "B"

/* ------------------------------------------------------------------------ */
/* Results (results.c)                                                      */
/* ------------------------------------------------------------------------ */

bench_results *results_new(void);
void results_free(bench_results *r);
/** Add one run's figure. Returns 0, or -1 if the table is full. */
int results_record(bench_results *r, const char *workload, const char *metric,
                   const char *peer, const char *unit, double value);
/** Mark a row as not measured, with the reason shown instead of a figure. */
int results_skip(bench_results *r, const char *workload, const char *metric,
                 const char *peer, const char *reason);
/** Median over the runs of one row. Returns 0, or -1 if there is none. */
int results_median(const bench_results *r, const char *metric, const char *peer,
                   double *out);
void results_print(const bench_results *r, FILE *out);

/* ------------------------------------------------------------------------ */
/* Utilities (util.c)                                                       */
/* ------------------------------------------------------------------------ */

double now_s(void);
/** Print "what: detail" to stderr; returns -1 so callers can `return fail(...)`. */
int fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** The same for a failed minidbx call: code, its name and minidbx_errmsg. */
int fail_mdx(const char *call, int rc);

uint64_t rng_next(uint64_t *state);
void rng_fill(void *buf, size_t len, uint64_t *state);

/** count objects of item_bytes random bytes each, keyed by their SHA-256. */
typedef struct {
    size_t count;
    size_t item_bytes;
    unsigned char *data;    /* count * item_bytes */
    minidbx_id *keys;       /* SHA-256 of each object */
} bench_dataset;

int dataset_make(bench_dataset *ds, size_t count, size_t item_bytes, uint64_t seed);
void dataset_free(bench_dataset *ds);
static inline const unsigned char *dataset_item(const bench_dataset *ds, size_t i)
{
    return ds->data + i * ds->item_bytes;
}
/** A random permutation of 0..count-1 (free with free()). */
size_t *random_order(size_t count, uint64_t seed);

int sha256(const void *data, size_t len, minidbx_id *out);
void hex_of(const unsigned char *bytes, size_t len, char *out);

int path_join(char out[PATH_MAX], const char *dir, const char *name);
int make_dir(const char *path);
int remove_tree(const char *path);
int write_all(int fd, const void *buf, size_t len);
int read_full(int fd, void *buf, size_t len, size_t *got);
int fsync_dir(const char *path);
/** Bytes allocated on disk under path (st_blocks), or -1. */
double disk_bytes(const char *path);
/** Bytes this process has passed to write calls so far (/proc/self/io
 *  wchar: page writes of LMDB, WAL and checkpoint writes of SQLite), or 0. */
double bytes_written(void);

/** Peak RSS of the calling process in MiB (getrusage ru_maxrss). */
double peak_rss_mib(void);

/** What a child started by run_in_child sends back. */
typedef struct {
    double value;
    double peak_rss_mib;
    double start_rss_mib;
    minidbx_id id;
} child_result;
/** Run fn(arg, out) in a forked child so that its peak RSS is its own.
 *  Returns 0 if the child exited 0 and sent a result. */
int run_in_child(int (*fn)(void *arg, child_result *out), void *arg, child_result *out);

/** Start argv[0] (searched in PATH) with pipes on its stdin and stdout
 *  (either pointer may be NULL: /dev/null then). */
int spawn(char *const argv[], int *to_child, int *from_child, pid_t *pid);
/** Wait for a spawned child; 0 if it exited 0. */
int wait_child(pid_t pid, const char *what);
int program_in_path(const char *name);

/* ------------------------------------------------------------------------ */
/* Key/value peers (kv.c, peer_*.c)                                         */
/* ------------------------------------------------------------------------ */

#define KV_READ      0x1u  /* open an existing store for reading only */
#define KV_NO_VERIFY 0x2u  /* minidbx: MINIDBX_OPEN_NO_VERIFY */
#define KV_DURABLE   0x4u  /* each commit reaches stable storage */

/*
 * One peer. put/get/exists are per object; begin/commit group puts (a put
 * outside them commits by itself). A peer driven through a pipe (git)
 * fills the *_all calls instead, which do a whole pass; prepare (optional)
 * does untimed work before a put pass, such as writing input files.
 */
typedef struct kv_peer {
    const char *name;
    /** Label of a second read pass with KV_NO_VERIFY, or NULL. */
    const char *no_verify_name;
    int variant;
    int (*open)(void **out, const char *dir, int variant, unsigned flags);
    /** Finish with the store (and free st); -1 if what it had to save failed. */
    int (*close)(void *st);
    int (*begin)(void *st);
    int (*commit)(void *st);
    int (*put)(void *st, const minidbx_id *key, const void *data, size_t size);
    /** *data stays valid until the next call on st. */
    int (*get)(void *st, const minidbx_id *key, const void **data, size_t *size);
    /** 1 present, 0 absent, -1 error. */
    int (*exists)(void *st, const minidbx_id *key);
    /** How many of count keys are missing, in one call (NULL: no such call). */
    int (*missing)(void *st, const minidbx_id *keys, size_t count, size_t *out_missing);
    int (*prepare)(void *st, const bench_dataset *ds);
    int (*put_all)(void *st, const bench_dataset *ds);
    int (*get_all)(void *st, const bench_dataset *ds, const size_t *order, int full_check);
    int (*exists_all)(void *st, const bench_dataset *ds, const size_t *order);
} kv_peer;

extern const kv_peer peer_minidbx;
extern const kv_peer peer_lmdb;
#ifdef BENCH_HAVE_SQLITE
extern const kv_peer peer_sqlite_without_rowid;
extern const kv_peer peer_sqlite_rowid;
#endif
extern const kv_peer peer_files;
extern const kv_peer peer_fsync_loop;
extern const kv_peer peer_git;
extern const kv_peer peer_log;
extern const kv_peer peer_logindex_durable;
extern const kv_peer peer_logindex_many;

/** 0 if object i came back right. full_check compares every byte; else
 *  size, the first and the last 8 bytes (random content: a wrong object
 *  cannot pass) so that the check costs the same for every peer. */
int kv_check_item(const bench_dataset *ds, size_t i, const void *data, size_t size,
                  int full_check);

/** What kv_put_all notes at the end of each commit: seconds since the
 *  start, and bytes this process has written (wchar) since the start. */
typedef struct {
    double *seconds;
    double *written;
} batch_marks;

/** Put every object of ds, batch per commit (1: each put commits alone).
 *  If marks is not NULL it gets the time and bytes written at each commit. */
int kv_put_all(const kv_peer *p, void *st, const bench_dataset *ds, size_t batch,
               const batch_marks *marks, double *elapsed_s);
int kv_get_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
               int full_check, double *elapsed_s);
int kv_exists_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
                  double *elapsed_s);
int kv_missing_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
                   size_t batch, double *elapsed_s);

/* ------------------------------------------------------------------------ */
/* Workloads (workloads.c, big.c)                                           */
/* ------------------------------------------------------------------------ */

int workload_small(bench_ctx *c);
int workload_durable(bench_ctx *c);
int workload_many(bench_ctx *c);
int workload_big(bench_ctx *c);
int workload_latency(bench_ctx *c);

#endif /* MINIDBX_BENCH_H */
