/* cmd_admin.c - commands on the store as a whole: init, verify, gc, info,
 * version. */
#include "cli.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef MDBX_VERSION
#define MDBX_VERSION MINIDBX_VERSION_STRING
#endif

enum { OPT_REPAIR = 0x300 };

static int repair_option(void *ctx, int opt, const char *arg)
{
    (void)arg;
    if (opt != OPT_REPAIR)
        return CLI_EXIT_USAGE;
    *(unsigned *)ctx |= MINIDBX_VERIFY_REPAIR;
    return 0;
}

/* Commands without options or operands. */
static int parse_no_arguments(struct cli *cli, int argc, char **argv)
{
    int first;
    int rc = cli_parse_options(cli, argc, argv, NULL, NULL, NULL, NULL, &first);

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first != argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[first]);
    return CLI_PARSE_CONTINUE;
}

/* ---- init --------------------------------------------------------------- */

int cmd_init(struct cli *cli, int argc, char **argv)
{
    int rc = parse_no_arguments(cli, argc, argv);

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    rc = cli_open_store(cli, CLI_OPEN_CREATE);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "location", cli->location);
        cJSON_AddBoolToObject(obj, "created", cli->store_created);
        cli_print_json(cli, obj);
    } else if (!cli->quiet) {
        cli_printf(cli, cli->store_created ? "created a store at %s\n"
                                           : "a store already exists at %s\n",
                   cli->location);
    }
    return CLI_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------- */

struct verify_run {
    struct cli *cli;
    minidbx_verify_report total;
    uint64_t names_removed; /* MINIDBX_PROBLEM_NAME_REMOVED: not in total */
};

static void print_problem(void *ctx, minidbx_problem kind, const minidbx_id *id,
                          const char *detail, int repaired)
{
    struct verify_run *run = ctx;
    char hex[MINIDBX_ID_HEX_SIZE] = "-";

    if (kind == MINIDBX_PROBLEM_NAME_REMOVED)
        run->names_removed++;
    if (run->cli->json) {
        cli_print_json(run->cli, dbx_json_problem(kind, id, detail, repaired));
        return;
    }
    if (id)
        minidbx_id_format(id, hex);
    if (kind == MINIDBX_PROBLEM_NAME_REMOVED)
        cli_printf(run->cli, "name removed  %s  (pointed at %s)\n", detail ? detail : "", hex);
    else
        cli_printf(run->cli, "%s %s: %s%s\n", dbx_wire_problem_name(kind), hex, detail ? detail : "",
                   repaired ? " (repaired)" : "");
}

static void add_report(minidbx_verify_report *total, const minidbx_verify_report *one)
{
    total->objects_checked += one->objects_checked;
    total->bytes_checked += one->bytes_checked;
    total->problems += one->problems;
    total->repaired += one->repaired;
}

static int verify_one(struct verify_run *run, const char *arg, unsigned flags)
{
    minidbx_verify_report report = { 0 };
    minidbx_id id;
    int rc = arg ? cli_resolve(run->cli, arg, &id, NULL, 0) : CLI_EXIT_OK;
    int code;

    if (rc != CLI_EXIT_OK)
        return rc;
    code = minidbx_verify(run->cli->db, arg ? &id : NULL, flags, &report, print_problem, run);
    if (code != MINIDBX_OK)
        return cli_fail(run->cli, arg, code, NULL);
    add_report(&run->total, &report);
    return CLI_EXIT_OK;
}

/* The names removed are counted apart: not problems of their own. */
static void print_verify_summary(const struct verify_run *run)
{
    struct cli *cli = run->cli;
    const minidbx_verify_report *r = &run->total;

    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        dbx_json_add_u64(obj, "objects_checked", r->objects_checked);
        dbx_json_add_u64(obj, "bytes_checked", r->bytes_checked);
        dbx_json_add_u64(obj, "problems", r->problems);
        dbx_json_add_u64(obj, "repaired", r->repaired);
        dbx_json_add_u64(obj, "names_removed", run->names_removed);
        cli_print_json(cli, obj);
        return;
    }
    cli_printf(cli, "checked %" PRIu64 " objects (%" PRIu64 " bytes): %" PRIu64
                    " problems, %" PRIu64 " repaired, %" PRIu64 " names removed\n",
               r->objects_checked, r->bytes_checked, r->problems, r->repaired, run->names_removed);
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "repair", no_argument, NULL, OPT_REPAIR },
        { NULL, 0, NULL, 0 },
    };
    struct verify_run run = { cli, { 0, 0, 0, 0 }, 0 };
    unsigned flags = 0;
    int first, rc;

    rc = cli_parse_options(cli, argc, argv, NULL, longopts, repair_option, &flags, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    rc = cli_open_store(cli, flags & MINIDBX_VERIFY_REPAIR ? CLI_OPEN_WRITE : CLI_OPEN_READ);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (first == argc)
        rc = verify_one(&run, NULL, flags);
    for (int i = first; i < argc && !cli->stop; i++)
        rc = cli_merge_status(rc, verify_one(&run, argv[i], flags));
    if (!cli->stop)
        print_verify_summary(&run);
    if (run.total.problems > run.total.repaired)
        rc = cli_merge_status(rc, CLI_EXIT_CORRUPT);
    return rc;
}

/* ---- repair --------------------------------------------------------------- */

enum { OPT_DRY_RUN = 0x301 };

/* What a repair did, counted from the problems it reports. */
struct repair_run {
    struct verify_run verify;
    uint64_t done[MINIDBX_PROBLEM_STALE + 1]; /* repaired, by kind */
    int progress;                             /* a status line on stderr (a TTY) */
    double last_draw_s;
};

static double clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void draw_repair_progress(struct repair_run *run)
{
    fprintf(stderr, "\rrepair: %" PRIu64 " problems: copied %" PRIu64 ", replaced %" PRIu64
                    ", names set %" PRIu64 ", removed %" PRIu64 "\033[K",
            run->verify.total.problems, run->done[MINIDBX_PROBLEM_MISSING],
            run->done[MINIDBX_PROBLEM_CORRUPT], run->done[MINIDBX_PROBLEM_STALE],
            run->done[MINIDBX_PROBLEM_MISPLACED]);
    run->last_draw_s = clock_s();
}

static void repair_problem(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                           int repaired)
{
    struct repair_run *run = ctx;

    if (repaired && kind >= 1 && kind <= MINIDBX_PROBLEM_STALE)
        run->done[kind]++;
    run->verify.total.problems += kind != MINIDBX_PROBLEM_NAME_REMOVED;
    if (run->progress)
        fputs("\r\033[K", stderr);
    print_problem(&run->verify, kind, id, detail, repaired);
    if (run->progress && clock_s() - run->last_draw_s > 0.2)
        draw_repair_progress(run);
}

static int dry_run_option(void *ctx, int opt, const char *arg)
{
    (void)arg;
    if (opt != OPT_DRY_RUN)
        return CLI_EXIT_USAGE;
    *(unsigned *)ctx &= ~MINIDBX_VERIFY_REPAIR;
    return 0;
}

/* A store made of nodes: say which are down (their copies cannot count). */
static void warn_down_nodes(struct cli *cli)
{
    minidbx_node_info nodes[64];
    size_t count = 0;

    if (minidbx_nodes(cli->db, NULL, nodes, 64, &count) < 0)
        return;
    for (size_t i = 0; i < count; i++)
        if (!nodes[i].up && !cli->quiet)
            fprintf(stderr, "mdbx: repair: node %s is down (%s): what it holds is not counted\n",
                    nodes[i].location, nodes[i].last_error);
}

int cmd_repair(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "dry-run", no_argument, NULL, OPT_DRY_RUN },
        { NULL, 0, NULL, 0 },
    };
    struct repair_run run;
    minidbx_verify_report report = { 0, 0, 0, 0 };
    unsigned flags = MINIDBX_VERIFY_REPAIR;
    int first, rc, code;

    memset(&run, 0, sizeof run);
    run.verify.cli = cli;
    rc = cli_parse_options(cli, argc, argv, NULL, longopts, dry_run_option, &flags, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first != argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[first]);
    rc = cli_open_store(cli, flags ? CLI_OPEN_WRITE : CLI_OPEN_READ);
    if (rc != CLI_EXIT_OK)
        return rc;
    warn_down_nodes(cli);
    run.progress = !cli->quiet && !cli->json && isatty(STDERR_FILENO);
    code = minidbx_verify(cli->db, NULL, flags, &report, repair_problem, &run);
    if (run.progress)
        fputs("\r\033[K", stderr);
    if (code != MINIDBX_OK)
        return cli_fail(cli, NULL, code, NULL);
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddBoolToObject(obj, "dry_run", flags == 0);
        dbx_json_add_u64(obj, "objects_checked", report.objects_checked);
        dbx_json_add_u64(obj, "bytes_checked", report.bytes_checked);
        dbx_json_add_u64(obj, "problems", report.problems);
        dbx_json_add_u64(obj, "repaired", report.repaired);
        dbx_json_add_u64(obj, "copied", run.done[MINIDBX_PROBLEM_MISSING]);
        dbx_json_add_u64(obj, "replaced", run.done[MINIDBX_PROBLEM_CORRUPT]);
        dbx_json_add_u64(obj, "names_set", run.done[MINIDBX_PROBLEM_STALE]);
        dbx_json_add_u64(obj, "removed", run.done[MINIDBX_PROBLEM_MISPLACED]);
        cli_print_json(cli, obj);
    } else {
        char left[64] = "";
        if (flags && report.problems > report.repaired)
            snprintf(left, sizeof left, "; %" PRIu64 " not repaired", report.problems - report.repaired);
        cli_printf(cli, "%schecked %" PRIu64 " objects (%" PRIu64 " bytes): %" PRIu64 " problems; copied %"
                        PRIu64 ", replaced %" PRIu64 ", names set %" PRIu64 ", removed %" PRIu64 "%s\n",
                   flags ? "" : "dry run: ", report.objects_checked, report.bytes_checked, report.problems,
                   run.done[MINIDBX_PROBLEM_MISSING], run.done[MINIDBX_PROBLEM_CORRUPT],
                   run.done[MINIDBX_PROBLEM_STALE], run.done[MINIDBX_PROBLEM_MISPLACED], left);
    }
    return flags && report.problems > report.repaired ? CLI_EXIT_CORRUPT : CLI_EXIT_OK;
}

/* ---- gc ----------------------------------------------------------------- */

enum { OPT_OLDER_THAN = 0x302, OPT_GC_DRY_RUN = 0x303 };

/* "0", "90" (seconds), "30s", "10m", "2h", "14d", "2w" -> ns; -1 if not. */
static int64_t parse_duration(const char *text)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 } };
    char *end;
    int64_t scale = 1;

    if (!text || text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    for (size_t i = 0; *end && i < sizeof units / sizeof units[0]; i++) {
        if (end[0] == units[i].unit && end[1] == '\0') {
            scale = units[i].seconds;
            end++;
        }
    }
    /* at most 100 years: far from overflowing ns */
    if (errno || *end || n > 3153600000ULL / (unsigned long long)scale)
        return -1;
    return (int64_t)n * scale * 1000000000;
}

/* "14d", "2h", "90s", "0": the largest unit that divides it. */
static void format_duration(int64_t ns, char out[32])
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 } };
    int64_t s = ns / 1000000000;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (s && s % units[i].seconds == 0) {
            snprintf(out, 32, "%lld%c", (long long)(s / units[i].seconds), units[i].unit);
            return;
        }
    snprintf(out, 32, "%llds", (long long)s);
}

struct gc_run {
    struct cli *cli;
    minidbx_gc_options opts;
    uint64_t listed;
};

static int gc_option(void *ctx, int opt, const char *arg)
{
    struct gc_run *run = ctx;
    if (opt == OPT_GC_DRY_RUN) {
        run->opts.flags |= MINIDBX_GC_DRY_RUN;
        return 0;
    }
    if (opt != OPT_OLDER_THAN)
        return CLI_EXIT_USAGE;
    if ((run->opts.older_than_ns = parse_duration(arg)) < 0)
        return cli_usage_error(run->cli, "--older-than '%s': a duration such as 0, 30s, 10m, 2h or 14d", arg);
    return 0;
}

/* One line (or JSON record) per object removed, or that would be. */
static void gc_removed(void *ctx, const minidbx_id *id, uint64_t size)
{
    struct gc_run *run = ctx;
    bool dry = run->opts.flags & MINIDBX_GC_DRY_RUN;
    char hex[MINIDBX_ID_HEX_SIZE];

    run->listed++;
    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        dbx_json_add_id(obj, "id", id);
        dbx_json_add_u64(obj, "size", size);
        cJSON_AddBoolToObject(obj, "dry_run", dry);
        cli_print_json(run->cli, obj);
    } else if (!run->cli->quiet) {
        minidbx_id_format(id, hex);
        cli_printf(run->cli, "%s %s %" PRIu64 "\n", dry ? "would remove" : "removed", hex, size);
    }
}

int cmd_gc(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "older-than", required_argument, NULL, OPT_OLDER_THAN },
        { "dry-run", no_argument, NULL, OPT_GC_DRY_RUN },
        { NULL, 0, NULL, 0 },
    };
    struct gc_run run = { cli, MINIDBX_GC_OPTIONS_INIT, 0 };
    minidbx_gc_report report = { 0, 0 };
    char grace[32];
    int first, code;
    int rc = cli_parse_options(cli, argc, argv, NULL, longopts, gc_option, &run, &first);

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first != argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[first]);
    bool dry = run.opts.flags & MINIDBX_GC_DRY_RUN;
    rc = cli_open_store(cli, dry ? CLI_OPEN_READ : CLI_OPEN_WRITE);
    if (rc != CLI_EXIT_OK)
        return rc;
    run.opts.removed = gc_removed;
    run.opts.ctx = &run;
    code = minidbx_gc_ex(cli->db, &run.opts, &report);
    if (code != MINIDBX_OK)
        return cli_fail(cli, NULL, code, NULL);
    format_duration(run.opts.older_than_ns, grace);
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        dbx_json_add_u64(obj, "objects_removed", report.objects_removed);
        dbx_json_add_u64(obj, "bytes_removed", report.bytes_removed);
        dbx_json_add_u64(obj, "objects_listed", run.listed);
        dbx_json_add_u64(obj, "older_than_s", (uint64_t)(run.opts.older_than_ns / 1000000000));
        cJSON_AddBoolToObject(obj, "dry_run", dry);
        cli_print_json(cli, obj);
        return CLI_EXIT_OK;
    }
    cli_printf(cli, "%s%" PRIu64 " objects (%" PRIu64 " bytes)", dry ? "dry run: would remove " : "removed ",
               report.objects_removed, report.bytes_removed);
    if (run.listed < report.objects_removed)
        cli_printf(cli, ", %" PRIu64 " of them listed", run.listed);
    if (run.opts.older_than_ns)
        cli_printf(cli, "; kept unnamed objects put in the last %s\n", grace);
    else
        cli_printf(cli, "; no grace period: every unnamed object\n");
    return CLI_EXIT_OK;
}

/* ---- info --------------------------------------------------------------- */

static void print_info_json(struct cli *cli, const minidbx_store_info *info)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "location", info->location);
    cJSON_AddStringToObject(obj, "backend", info->backend);
    dbx_json_add_u64(obj, "objects", info->objects);
    dbx_json_add_u64(obj, "bytes", info->bytes);
    dbx_json_add_u64(obj, "inline_objects", info->inline_objects);
    dbx_json_add_u64(obj, "file_objects", info->file_objects);
    dbx_json_add_u64(obj, "names", info->names);
    dbx_json_add_u64(obj, "inline_threshold", info->inline_threshold);
    cJSON_AddStringToObject(obj, "version", minidbx_version());
    dbx_json_add_nodes(obj, cli->db);
    cli_print_json(cli, obj);
}

/* A store made of nodes: one line each. */
static void print_nodes(struct cli *cli)
{
    minidbx_node_info nodes[64];
    size_t count = 0;

    if (minidbx_nodes(cli->db, NULL, nodes, 64, &count) < 0)
        return;
    for (size_t i = 0; i < count; i++)
        cli_printf(cli, "node:             %s %s, %" PRIu64 " requests, %" PRIu64 " failed, %" PRIu64
                        " us mean%s%s\n",
                   nodes[i].location, nodes[i].up ? "up" : "DOWN", nodes[i].requests, nodes[i].failures,
                   nodes[i].latency_us_avg, nodes[i].last_error[0] ? "; last error: " : "",
                   nodes[i].last_error);
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
    minidbx_store_info info;
    int rc = parse_no_arguments(cli, argc, argv);
    int code;

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    rc = cli_open_store(cli, CLI_OPEN_READ);
    if (rc != CLI_EXIT_OK)
        return rc;
    memset(&info, 0, sizeof info);
    code = minidbx_info(cli->db, &info);
    if (code != MINIDBX_OK)
        return cli_fail(cli, NULL, code, NULL);
    if (cli->json) {
        print_info_json(cli, &info);
        return CLI_EXIT_OK;
    }
    cli_printf(cli,
               "location:         %s\nbackend:          %s\nobjects:          %" PRIu64
               "\nbytes:            %" PRIu64 "\ninline objects:   %" PRIu64
               "\nfile objects:     %" PRIu64 "\nnames:            %" PRIu64
               "\ninline threshold: %" PRIu64 "\nversion:          %s\n",
               info.location, info.backend, info.objects, info.bytes, info.inline_objects,
               info.file_objects, info.names, info.inline_threshold, minidbx_version());
    print_nodes(cli);
    return CLI_EXIT_OK;
}

/* ---- version ------------------------------------------------------------ */

int cmd_version(struct cli *cli, int argc, char **argv)
{
    int rc = parse_no_arguments(cli, argc, argv);

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "mdbx", MDBX_VERSION);
        cJSON_AddStringToObject(obj, "libminidbx", minidbx_version());
        cli_print_json(cli, obj);
    } else {
        cli_printf(cli, "mdbx %s\nlibminidbx %s\n", MDBX_VERSION, minidbx_version());
    }
    return CLI_EXIT_OK;
}
