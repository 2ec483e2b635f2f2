/*
 * results.c - one row per (metric, peer), one figure per run, and the
 * table of medians with the ratios minidbx / peer.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 96

typedef struct {
    const char *workload;
    const char *metric;
    const char *peer;
    const char *unit;
    const char *skipped;   /* reason, when the row was not measured */
    double values[BENCH_MAX_RUNS];
    int count;
} row;

struct bench_results {
    row rows[MAX_ROWS];
    int count;
};

bench_results *results_new(void)
{
    return calloc(1, sizeof(bench_results));
}

void results_free(bench_results *r)
{
    free(r);
}

static row *find_row(const bench_results *r, const char *metric, const char *peer)
{
    for (int i = 0; i < r->count; i++) {
        const row *w = &r->rows[i];
        if (strcmp(w->metric, metric) == 0 && strcmp(w->peer, peer) == 0)
            return (row *)w;
    }
    return NULL;
}

/* The names are string literals (bench.h), so rows keep the pointers. */
static row *get_row(bench_results *r, const char *workload, const char *metric,
                    const char *peer)
{
    row *w = find_row(r, metric, peer);

    if (w)
        return w;
    if (r->count == MAX_ROWS) {
        fail("results", "more than %d rows", MAX_ROWS);
        return NULL;
    }
    w = &r->rows[r->count++];
    memset(w, 0, sizeof(*w));
    w->workload = workload;
    w->metric = metric;
    w->peer = peer;
    return w;
}

int results_record(bench_results *r, const char *workload, const char *metric,
                   const char *peer, const char *unit, double value)
{
    row *w = get_row(r, workload, metric, peer);

    if (!w)
        return -1;
    if (w->count == BENCH_MAX_RUNS)
        return fail("results", "%s / %s: too many runs", metric, peer);
    w->unit = unit;
    w->values[w->count++] = value;
    return 0;
}

int results_skip(bench_results *r, const char *workload, const char *metric,
                 const char *peer, const char *reason)
{
    row *w = get_row(r, workload, metric, peer);

    if (!w)
        return -1;
    w->skipped = reason;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double row_median(const row *w)
{
    double v[BENCH_MAX_RUNS];

    memcpy(v, w->values, (size_t)w->count * sizeof(v[0]));
    qsort(v, (size_t)w->count, sizeof(v[0]), cmp_double);
    if (w->count % 2)
        return v[w->count / 2];
    return (v[w->count / 2 - 1] + v[w->count / 2]) / 2.0;
}

int results_median(const bench_results *r, const char *metric, const char *peer, double *out)
{
    const row *w = find_row(r, metric, peer);

    if (!w || w->count == 0)
        return -1;
    *out = row_median(w);
    return 0;
}

/* 1234567.8 -> "1,234,568"; small figures keep two decimals. */
static void format_figure(double v, char *out, size_t cap)
{
    char digits[32];
    size_t len, o = 0;

    if (v < 100.0) {
        snprintf(out, cap, "%.2f", v);
        return;
    }
    snprintf(digits, sizeof(digits), "%.0f", v);
    len = strlen(digits);
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static int is_minidbx(const row *w)
{
    return strncmp(w->peer, P_MINIDBX, strlen(P_MINIDBX)) == 0;
}

/* The first two minidbx rows of a metric: the default open, then the
 * no-verify one (where the metric has it). */
static void minidbx_refs(const bench_results *r, const char *metric, const row *refs[2])
{
    int n = 0;

    refs[0] = refs[1] = NULL;
    for (int i = 0; i < r->count && n < 2; i++) {
        const row *w = &r->rows[i];
        if (strcmp(w->metric, metric) == 0 && is_minidbx(w) && w->count > 0)
            refs[n++] = w;
    }
}

static void format_ratio(const row *ref, const row *w, char *out, size_t cap)
{
    double peer = row_median(w);

    if (!ref || is_minidbx(w) || w->count == 0 || peer <= 0.0 || strcmp(w->unit, U_MIB) == 0)
        snprintf(out, cap, "%s", "");
    else
        snprintf(out, cap, "%.2fx", row_median(ref) / peer);
}

static void print_row(const bench_results *r, const row *w, const char *prev_metric, FILE *f)
{
    const row *refs[2];
    char fig[32], r1[16], r2[16];
    const char *metric = (prev_metric && strcmp(prev_metric, w->metric) == 0) ? "" : w->metric;

    if (w->skipped) {
        fprintf(f, "%-8s %-26s %-24s %s\n", "", metric, w->peer, w->skipped);
        return;
    }
    minidbx_refs(r, w->metric, refs);
    format_figure(row_median(w), fig, sizeof(fig));
    format_ratio(refs[0], w, r1, sizeof(r1));
    format_ratio(refs[1], w, r2, sizeof(r2));
    fprintf(f, "%-8s %-26s %-24s %14s %-6s %12s %12s\n", "", metric, w->peer, fig,
            w->unit, r1, r2);
}

/* 1 if an earlier row than index i has the same value in that field. */
static int seen_before(const bench_results *r, int i, int by_metric)
{
    for (int j = 0; j < i; j++) {
        const char *a = by_metric ? r->rows[j].metric : r->rows[j].workload;
        const char *b = by_metric ? r->rows[i].metric : r->rows[i].workload;
        if (strcmp(a, b) == 0)
            return 1;
    }
    return 0;
}

/* Rows are recorded peer by peer; print them grouped by workload, then by
 * metric, each in the order it first appeared. */
static void print_metric(const bench_results *r, const char *metric, FILE *f)
{
    const char *prev = NULL;

    for (int i = 0; i < r->count; i++) {
        if (strcmp(r->rows[i].metric, metric) == 0) {
            print_row(r, &r->rows[i], prev, f);
            prev = metric;
        }
    }
}

void results_print(const bench_results *r, FILE *f)
{
    fprintf(f, "%-8s %-26s %-24s %14s %-6s %12s %12s\n", "workload", "metric", "peer",
            "median", "unit", "minidbx/peer", "no-verify/p");
    for (int w = 0; w < r->count; w++) {
        if (seen_before(r, w, 0))
            continue;
        fprintf(f, "%s\n", r->rows[w].workload);
        for (int m = w; m < r->count; m++) {
            if (strcmp(r->rows[m].workload, r->rows[w].workload) == 0 && !seen_before(r, m, 1))
                print_metric(r, r->rows[m].metric, f);
        }
    }
}
