/*
 * main.c - minidbx-bench: options, the run loop, the table and the goals.
 *
 *   minidbx-bench [--quick] [--dir DIR] [--runs N] [--only LIST] [--many N] [--keep]
 *
 * Every run gets a fresh directory under one new mkdtemp directory (in DIR,
 * default /var/tmp) and every peer a fresh store in it. Stores are removed
 * only at the very end (after all timing; --keep keeps them), because
 * creating files soon after deleting many is much slower on ext4.
 * Exit status: 0 if every call and every read-back succeeded (a MISSed
 * goal is informational), 1 if anything failed, 2 on a usage error.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(bench_ctx *c);
    /* Run (all runs of it) before any other workload: big forks children
     * whose peak RSS must be their own, and a fork copies what this
     * process holds, including heap the data sets of earlier workloads
     * left resident. */
    int first;
} workload;

static const workload workloads[] = {
    { WL_BIG, workload_big, 1 },
    { WL_SMALL, workload_small, 0 },
    { WL_DURABLE, workload_durable, 0 },
    { WL_MANY, workload_many, 0 },
    { WL_LATENCY, workload_latency, 0 },
};
#define WORKLOAD_COUNT (sizeof(workloads) / sizeof(workloads[0]))

typedef struct {
    int quick;
    int runs;
    int keep;
    size_t many;     /* --many: objects in the many workload (0: the default) */
    const char *dir;
    unsigned only;   /* bit i: workloads[i] selected */
} options;

static const bench_sizes full_sizes = {
    .small_count = 100000, .small_bytes = 4096, .durable_count = 2000,
    .big_bytes = (uint64_t)1 << 30, .chunk_bytes = 1 << 20,
    .many_count = 1000000, .many_bytes = 256, .many_window = 100000, .batch = 1000,
    .latency_small = 1000, .latency_big = 100,
};

static const bench_sizes quick_sizes = {
    .small_count = 2000, .small_bytes = 4096, .durable_count = 200,
    .big_bytes = (uint64_t)16 << 20, .chunk_bytes = 1 << 20,
    .many_count = 20000, .many_bytes = 256, .many_window = 2000, .batch = 1000,
    .latency_small = 50, .latency_big = 5,
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: minidbx-bench [--quick] [--dir DIR] [--runs N] [--only LIST] [--many N] [--keep]\n"
            "  --quick      scaled-down sizes (seconds), for the test suite\n"
            "  --dir DIR    make the run's directory in DIR (default /var/tmp)\n"
            "  --runs N     runs per figure, median printed (default 3; 1 with --quick)\n"
            "  --only LIST  comma-separated workloads: big,small,durable,many,latency\n"
            "  --many N     objects in the many workload (default 1000000; e.g. 10000000)\n"
            "  --keep       keep the stores instead of removing them at the end\n");
}

static int parse_only(const char *list, unsigned *mask)
{
    char copy[256], *save = NULL;

    snprintf(copy, sizeof(copy), "%s", list);
    *mask = 0;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < WORKLOAD_COUNT && strcmp(workloads[i].name, name) != 0; i++)
            ;
        if (i == WORKLOAD_COUNT)
            return fail("--only", "unknown workload '%s'", name);
        *mask |= 1u << i;
    }
    return *mask ? 0 : fail("--only", "no workload named");
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        { "quick", no_argument, NULL, 'q' }, { "dir", required_argument, NULL, 'd' },
        { "runs", required_argument, NULL, 'r' }, { "only", required_argument, NULL, 'o' },
        { "keep", no_argument, NULL, 'k' }, { "help", no_argument, NULL, 'h' },
        { "many", required_argument, NULL, 'm' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int ch;

    *o = (options){ .runs = 0, .dir = "/var/tmp", .only = (1u << WORKLOAD_COUNT) - 1 };
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'q': o->quick = 1; break;
        case 'd': o->dir = optarg; break;
        case 'k': o->keep = 1; break;
        case 'o': if (parse_only(optarg, &o->only) != 0) return -1; break;
        case 'r':
            o->runs = (int)strtol(optarg, &end, 10);
            if (*end || o->runs < 1 || o->runs > BENCH_MAX_RUNS)
                return fail("--runs", "want 1..%d, got '%s'", BENCH_MAX_RUNS, optarg);
            break;
        case 'm':
            o->many = (size_t)strtoull(optarg, &end, 10);
            if (*end || o->many < 1000 || o->many > 100000000)
                return fail("--many", "want 1000..100000000, got '%s'", optarg);
            break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc)
        return fail("arguments", "unexpected '%s'", argv[optind]);
    if (o->runs == 0)
        o->runs = o->quick ? 1 : 3;
    return 0;
}

static void print_header(const options *o, const bench_ctx *c, const char *root)
{
    const bench_sizes *s = &c->sz;

    printf("minidbx-bench: libminidbx %s, %s mode; every figure is the median of %d run%s\n",
           minidbx_version(), o->quick ? "quick" : "full", o->runs, o->runs > 1 ? "s" : "");
    printf("directory: %s (fresh per run; removed %s)\n", root,
           o->keep ? "never: --keep" : "after all timing");
    printf("small: %zu x %zu B, %zu puts/commit | durable: %zu x %zu B, 1 put/commit\n",
           s->small_count, s->small_bytes, s->batch, s->durable_count, s->small_bytes);
    printf("big: %.0f MiB in %.0f KiB chunks | many: %zu x %zu B, %zu puts/commit, "
           "first/last window %zu puts\n",
           (double)s->big_bytes / BENCH_MIB, (double)s->chunk_bytes / 1024.0, s->many_count,
           s->many_bytes, s->batch, s->many_window);
    printf("latency: %zu x 4 KiB and %zu x 1 MiB single puts, one at a time, median per put\n",
           s->latency_small, s->latency_big);
    printf("ops/s and MB/s (10^6 B/s): higher is better; ratios are minidbx / peer "
           "(no-verify/p: the MINIDBX_OPEN_NO_VERIFY open / peer)\n\n");
    fflush(stdout);
}

/* Run the selected workloads whose `first` matches, every run. */
static int run_pass(const options *o, bench_ctx *c, const char *root, int first)
{
    char name[32];

    for (c->run = 0; c->run < o->runs; c->run++) {
        snprintf(name, sizeof(name), "run%d", c->run + 1);
        if (path_join(c->run_dir, root, name) != 0 || make_dir(c->run_dir) != 0)
            return -1;
        for (size_t i = 0; i < WORKLOAD_COUNT; i++) {
            if (!(o->only & (1u << i)) || workloads[i].first != first)
                continue;
            fprintf(stderr, "minidbx-bench: run %d/%d: %s\n", c->run + 1, o->runs,
                    workloads[i].name);
            if (workloads[i].run(c) != 0)
                return fail(workloads[i].name, "workload failed in run %d", c->run + 1);
        }
    }
    return 0;
}

static int run_all(const options *o, bench_ctx *c, const char *root)
{
    if (run_pass(o, c, root, 1) != 0)
        return -1;
    return run_pass(o, c, root, 0);
}

static void print_notes(void)
{
    printf("\nnotes: durable rows: SQLite synchronous=FULL (NORMAL elsewhere), files fsync the file\n"
           "  and its directory; batched rows: minidbx and LMDB fsync at each commit, SQLite WAL\n"
           "  and files do not. git puts include starting git, not writing its input files.\n"
           "  log+fdatasync appends each put to one file + fdatasync: one flush per put, the floor\n"
           "  of a write-ahead-log design. latency: lower is better; 1 flush = append as many\n"
           "  bytes + fdatasync; 2 flushes at once = two threads do that to two files at the\n"
           "  same moment (a log flushed beside LMDB). many: last window / first is each\n"
           "  peer's own flatness.\n"
           "  fsync on this disk may be far cheaper than on a real one: see bench/README.md.\n");
}

/* ---- goals --------------------------------------------------------------- */

static double med(const bench_results *r, const char *metric, const char *peer)
{
    double v;

    return results_median(r, metric, peer, &v) == 0 ? v : NAN;
}

static double ratio(double a, double b)
{
    return (isnan(a) || isnan(b) || b <= 0.0) ? NAN : a / b;
}

static double larger(double a, double b)
{
    return isnan(a) ? b : (isnan(b) || a >= b) ? a : b;
}

static double smaller(double a, double b)
{
    return isnan(a) ? b : (isnan(b) || a <= b) ? a : b;
}

static void goal(const char *label, double value, double bound, int at_most, const char *unit)
{
    int pass = at_most ? value <= bound : value >= bound;

    if (isnan(value)) {
        printf("GOAL %-46s %10s      not measured\n", label, "n/a");
        return;
    }
    printf("GOAL %-46s %10.2f%-4s %s %6.2f%-4s %s\n", label, value, unit, at_most ? "<=" : ">=",
           bound, unit, pass ? "PASS" : "MISS");
}

static void print_goals(const bench_results *r)
{
    double put = med(r, M_SMALL_PUT, P_MINIDBX);
    double sqlite = larger(med(r, M_SMALL_PUT, P_SQLITE_NR), med(r, M_SMALL_PUT, P_SQLITE_ROWID));
    double limit = smaller(med(r, M_BIG_PUT, P_LIMIT_SHA), med(r, M_BIG_PUT, P_LIMIT_WRITE));

    printf("\ngoals (informational: a MISS does not fail the run)\n");
    goal("small put vs raw LMDB", ratio(put, med(r, M_SMALL_PUT, P_LMDB)), 0.8, 0, "x");
    goal("small put vs best SQLite", ratio(put, sqlite), 1.0, 0, "x");
    goal("small put vs git", ratio(put, med(r, M_SMALL_PUT, P_GIT)), 5.0, 0, "x");
    goal("small get (no-verify) vs raw LMDB",
         ratio(med(r, M_SMALL_GET, P_MINIDBX_NV), med(r, M_SMALL_GET, P_LMDB)), 0.8, 0, "x");
    goal("small exists (no-verify) vs raw LMDB",
         ratio(med(r, M_SMALL_EXISTS, P_MINIDBX_NV), med(r, M_SMALL_EXISTS, P_LMDB)), 0.8, 0, "x");
    goal("big put vs min(SHA-256, write+fdatasync)", ratio(med(r, M_BIG_PUT, P_MINIDBX), limit),
         0.8, 0, "x");
    goal("big put peak RSS", med(r, M_BIG_RSS_PUT, P_MINIDBX), 32.0, 1, " MiB");
    goal("big get peak RSS", med(r, M_BIG_RSS_GET, P_MINIDBX), 32.0, 1, " MiB");
    goal("durable put vs fsync loop",
         ratio(med(r, M_DURABLE_PUT, P_MINIDBX), med(r, M_DURABLE_PUT, P_LIMIT_FSYNC)), 0.9, 0, "x");
    goal("durable put vs best SQLite (synchronous=FULL)",
         ratio(med(r, M_DURABLE_PUT, P_MINIDBX),
               larger(med(r, M_DURABLE_PUT, P_SQLITE_NR), med(r, M_DURABLE_PUT, P_SQLITE_ROWID))),
         1.0, 0, "x");
    goal("many: last window vs first window", med(r, M_MANY_RATIO, P_MINIDBX), 0.8, 0, "x");
    goal("many: disk used vs the data",
         ratio(med(r, M_MANY_DISK, P_MINIDBX), med(r, M_MANY_DISK, P_DATA)), 1.5, 1, "x");
    /* "durable <= 2 flushes + 0.3 ms"; sync off <= 0.5x the Go system's
     * upload (which never fsyncs): 1.0-1.8 ms (4 KiB), 17-19 ms (1 MiB),
     * against the low end. */
    goal("latency 4 KiB durable vs 2 flushes + 0.3 ms", med(r, M_LAT_SMALL, P_MINIDBX),
         2.0 * med(r, M_LAT_SMALL, P_LIMIT_FLUSH) + 0.3, 1, " ms");
    goal("latency 1 MiB durable vs 2 flushes + 0.3 ms", med(r, M_LAT_BIG, P_MINIDBX),
         2.0 * med(r, M_LAT_BIG, P_LIMIT_FLUSH) + 0.3, 1, " ms");
    goal("latency 4 KiB sync off vs 0.5x Go (1.0 ms)", med(r, M_LAT_SMALL_NS, P_MINIDBX), 0.5, 1,
         " ms");
    goal("latency 1 MiB sync off vs 0.5x Go (17 ms)", med(r, M_LAT_BIG_NS, P_MINIDBX), 8.5, 1,
         " ms");
}

/* ---- main ------------------------------------------------------------------ */

static int make_root(const char *base, char root[PATH_MAX])
{
    if (path_join(root, base, "minidbx-bench.XXXXXX") != 0)
        return -1;
    if (!mkdtemp(root))
        return fail("mkdtemp", "%s: %s", root, strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    bench_ctx c;
    char root[PATH_MAX];
    int rc;

    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    /* A peer that dies (git) must give EPIPE, not kill the benchmark. */
    signal(SIGPIPE, SIG_IGN);
    memset(&c, 0, sizeof(c));
    c.sz = o.quick ? quick_sizes : full_sizes;
    if (o.many)
        c.sz.many_count = o.many;
    c.have_git = program_in_path("git");
    if (!(c.res = results_new()) || make_root(o.dir, root) != 0)
        return 1;
    print_header(&o, &c, root);
    rc = run_all(&o, &c, root);
    results_print(c.res, stdout);
    print_notes();
    print_goals(c.res);
    if (!o.keep && remove_tree(root) != 0)
        rc = -1;
    results_free(c.res);
    if (rc != 0)
        fprintf(stderr, "minidbx-bench: FAILED (see the messages above)\n");
    return rc == 0 ? 0 : 1;
}
