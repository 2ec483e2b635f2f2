/* cmd_sync.c - push, pull and sync: minidbx_copy between two stores, with
 * its events printed (text or --json), a progress line on a terminal and a
 * summary. The copying itself is the library's (libminidbx/copy.c). */
#include "cli.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_INTERVAL_S 0.25
/* What the copy callback returns to stop the copy after a signal. */
#define STOPPED_BY_SIGNAL 1

enum { OPT_DRY_RUN = 'n', OPT_JOBS = 'j', OPT_VERBOSE = 'v' };

struct copy_cli {
    struct cli *cli;
    unsigned jobs;
    int dry_run;
    int verbose;
    double start_s;
    double drawn_s;      /* when the progress line was last drawn */
    int progress;        /* stderr is a terminal and not -q */
    int progress_shown;  /* a progress line is on the screen */
};

static int copy_option(void *ctx, int opt, const char *arg)
{
    struct copy_cli *run = ctx;
    char *end;
    unsigned long jobs;

    switch (opt) {
    case OPT_DRY_RUN: run->dry_run = 1; return 0;
    case OPT_VERBOSE: run->verbose = 1; return 0;
    case OPT_JOBS:
        errno = 0;
        jobs = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || jobs < 1 || jobs > 64)
            return cli_usage_error(run->cli, "-j takes a number from 1 to 64, not '%s'", arg);
        run->jobs = (unsigned)jobs;
        return 0;
    default: return CLI_EXIT_USAGE;
    }
}

/* ---- output ---------------------------------------------------------------- */

static void progress_clear(struct copy_cli *run)
{
    if (run->progress_shown)
        fputs("\r\033[K", stderr);
    run->progress_shown = 0;
}

/* "objects 12/40, 3.1 MiB / 9.0 MiB, 12.0 MiB/s, ETA 0:01"; the totals and
 * the ETA once the source has been looked up in full. */
static void progress_draw(struct copy_cli *run, const minidbx_copy_report *r, double now)
{
    char sent[16], total[16], rate[16];
    double elapsed = now - run->start_s > 1e-3 ? now - run->start_s : 1e-3;
    double bytes_per_s = (double)r->bytes_sent / elapsed;
    uint64_t left = r->bytes_missing > r->bytes_sent ? r->bytes_missing - r->bytes_sent : 0;

    cli_format_bytes((double)r->bytes_sent, sent);
    cli_format_bytes((double)r->bytes_missing, total);
    cli_format_bytes(bytes_per_s, rate);
    fprintf(stderr, "\r%s: objects %" PRIu64 "/%" PRIu64 "%s, %s / %s%s, %s/s", run->cli->command_name,
            r->objects_copied + r->objects_failed, r->objects_missing, r->listing_done ? "" : "+",
            sent, total, r->listing_done ? "" : "+", rate);
    if (r->listing_done && bytes_per_s > 0) {
        unsigned eta_s = (unsigned)((double)left / bytes_per_s);
        fprintf(stderr, ", ETA %u:%02u:%02u", eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
    }
    fputs("\033[K", stderr);
    run->progress_shown = 1;
    run->drawn_s = now;
}

static void print_object(struct copy_cli *run, const minidbx_copy_event *e)
{
    char hex[MINIDBX_ID_HEX_SIZE];

    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "event", "object");
        dbx_json_add_id(obj, "id", e->id);
        dbx_json_add_u64(obj, "size", e->size);
        cJSON_AddBoolToObject(obj, "dry_run", run->dry_run);
        cli_print_json(run->cli, obj);
        return;
    }
    minidbx_id_format(e->id, hex);
    cli_printf(run->cli, "%s %s %" PRIu64 "\n", run->dry_run ? "would copy" : "copied", hex, e->size);
}

static void print_name(struct copy_cli *run, const minidbx_copy_event *e)
{
    char hex[MINIDBX_ID_HEX_SIZE], previous[MINIDBX_ID_HEX_SIZE];

    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "event", "name");
        cJSON_AddStringToObject(obj, "name", e->name);
        dbx_json_add_id(obj, "id", e->id);
        dbx_json_add_id(obj, "previous", e->previous);
        cJSON_AddBoolToObject(obj, "dry_run", run->dry_run);
        cli_print_json(run->cli, obj);
        return;
    }
    minidbx_id_format(e->id, hex);
    if (e->previous)
        minidbx_id_format(e->previous, previous);
    cli_printf(run->cli, "%s %s %s%s%s%s\n", run->dry_run ? "would name" : "named", e->name, hex,
               e->previous ? " (was " : "", e->previous ? previous : "", e->previous ? ")" : "");
}

/* On stderr always; with --json also as a line of the output. */
static void print_failure(struct copy_cli *run, const minidbx_copy_event *e)
{
    char hex[MINIDBX_ID_HEX_SIZE] = "";
    const char *what = e->name;

    if (e->id)
        minidbx_id_format(e->id, hex);
    if (!what)
        what = hex;
    fprintf(stderr, "mdbx: %s %s: %s (%s%s)\n", run->cli->command_name, what,
            e->kind == MINIDBX_COPY_NAME_FAILED ? "name not copied" : "object not copied",
            e->from_source ? "source: " : "destination: ", e->message);
    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        const char *code = dbx_wire_error_name(e->error);
        cJSON_AddStringToObject(obj, "event", "error");
        dbx_json_add_id(obj, "id", e->id);
        if (e->name)
            cJSON_AddStringToObject(obj, "name", e->name);
        else
            cJSON_AddNullToObject(obj, "name");
        cJSON_AddStringToObject(obj, "error", code ? code : "EIO");
        cJSON_AddStringToObject(obj, "side", e->from_source ? "source" : "destination");
        cJSON_AddStringToObject(obj, "message", e->message);
        cli_print_json(run->cli, obj);
    }
}

/* The copy's callback: called one event at a time (the library's lock). */
static int on_event(void *ctx, const minidbx_copy_event *e, const minidbx_copy_report *r)
{
    struct copy_cli *run = ctx;
    int quiet_event = e->kind == MINIDBX_COPY_BYTES ||
                      (e->kind == MINIDBX_COPY_OBJECT && !run->verbose && !run->dry_run) ||
                      (e->kind == MINIDBX_COPY_NAME && run->cli->quiet && !run->cli->json);
    double now;

    if (!quiet_event)
        progress_clear(run);
    switch (e->kind) {
    case MINIDBX_COPY_OBJECT:
        if (run->verbose || run->dry_run)
            print_object(run, e);
        break;
    case MINIDBX_COPY_NAME:
        if (!run->cli->quiet || run->cli->json)
            print_name(run, e);
        break;
    case MINIDBX_COPY_OBJECT_FAILED:
    case MINIDBX_COPY_NAME_FAILED: print_failure(run, e); break;
    case MINIDBX_COPY_BYTES: break;
    }
    if (run->progress && ((now = cli_now_s()) - run->drawn_s >= PROGRESS_INTERVAL_S || !quiet_event))
        progress_draw(run, r, now);
    return cli_interrupted || run->cli->stop ? STOPPED_BY_SIGNAL : 0;
}

static void print_summary(struct copy_cli *run, const minidbx_copy_report *r)
{
    double seconds = cli_now_s() - run->start_s;
    uint64_t errors = r->objects_failed + r->names_failed;
    char bytes[16];

    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "event", "summary");
        cJSON_AddBoolToObject(obj, "dry_run", run->dry_run);
        dbx_json_add_u64(obj, "objects", r->objects_copied);
        dbx_json_add_u64(obj, "bytes", r->bytes_copied);
        dbx_json_add_u64(obj, "skipped", r->objects_present);
        dbx_json_add_u64(obj, "names_set", r->names_set);
        dbx_json_add_u64(obj, "names_unchanged", r->names_unchanged);
        dbx_json_add_u64(obj, "errors", errors);
        cJSON_AddNumberToObject(obj, "seconds", seconds);
        cli_print_json(run->cli, obj);
        return;
    }
    if (run->cli->quiet)
        return;
    cli_format_bytes((double)r->bytes_copied, bytes);
    cli_printf(run->cli,
               "%s %" PRIu64 " objects (%s), %" PRIu64 " already there; %s %" PRIu64
               " names, %" PRIu64 " unchanged; %" PRIu64 " errors; %.2f s\n",
               run->dry_run ? "would copy" : "copied", r->objects_copied, bytes,
               r->objects_present, run->dry_run ? "would set" : "set", r->names_set,
               r->names_unchanged, errors, seconds);
}

/* ---- running a copy -------------------------------------------------------- */

/* IDs and NAMEs from the command line, as the options of minidbx_copy. */
static int parse_selection(struct cli *cli, int count, char **args, minidbx_copy_options *opts,
                           minidbx_id **ids)
{
    const char **names = calloc((size_t)count + 1, sizeof *names);

    *ids = calloc((size_t)count + 1, sizeof **ids);
    if (!names || !*ids) {
        free(names);
        return cli_fail_errno(cli, "arguments", ENOMEM);
    }
    for (int i = 0; i < count; i++) {
        if (minidbx_id_parse(&(*ids)[opts->id_count], args[i]) == MINIDBX_OK) {
            opts->id_count++;
        } else if (minidbx_name_valid(args[i])) {
            names[opts->name_count++] = args[i];
        } else {
            free(names);
            return cli_usage_error(cli, "'%s' is not an id (64 hex digits) or a valid name", args[i]);
        }
    }
    opts->ids = *ids;
    opts->names = names;
    return CLI_EXIT_OK;
}

static int run_copy(struct copy_cli *run, minidbx *src, minidbx *dst, int count, char **args)
{
    struct cli *cli = run->cli;
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    minidbx_copy_report report;
    minidbx_id *ids = NULL;
    int rc = parse_selection(cli, count, args, &opts, &ids);
    int code;

    if (rc != CLI_EXIT_OK)
        goto out;
    opts.threads = run->jobs;
    opts.flags = run->dry_run ? MINIDBX_COPY_DRY_RUN : 0;
    run->progress = !cli->quiet && isatty(STDERR_FILENO);
    run->start_s = cli_now_s();
    cli_signals_catch();
    code = minidbx_copy(src, dst, &opts, &report, on_event, run);
    progress_clear(run);
    if (code == STOPPED_BY_SIGNAL && cli_interrupted) {
        fprintf(stderr, "mdbx: %s: interrupted; %" PRIu64 " objects were copied\n",
                cli->command_name, report.objects_copied);
        rc = CLI_EXIT_INTERRUPTED;
    } else if (code == STOPPED_BY_SIGNAL) {
        rc = CLI_EXIT_FAILURE; /* stdout went away */
    } else if (code != MINIDBX_OK) {
        rc = cli_fail(cli, NULL, code, NULL);
    }
    if (code != STOPPED_BY_SIGNAL)
        print_summary(run, &report);
out:
    free(ids);
    free((void *)opts.names);
    return rc;
}

/* A copy verifies what it stores (the writer expects the id): reading the
 * source need not hash the bytes a second time. */
#define SOURCE_FLAGS (MINIDBX_OPEN_NO_CREATE | MINIDBX_OPEN_READONLY | MINIDBX_OPEN_NO_VERIFY)
/* A dry run changes nothing, not even by creating the destination. */
#define DRY_RUN_DESTINATION_FLAGS (MINIDBX_OPEN_NO_CREATE | MINIDBX_OPEN_READONLY)

/* Open the store that is not -s: the source, or the destination (created
 * when missing, as put creates the store). */
static int open_other(struct cli *cli, const char *location, unsigned flags, minidbx **out)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    int code;

    opts.flags = flags;
    code = minidbx_open(out, location, &opts);
    if (code == MINIDBX_ENOTFOUND && (flags & MINIDBX_OPEN_NO_CREATE)) {
        fprintf(stderr, "mdbx: %s: no store at %s\n", cli->command_name, location);
        return CLI_EXIT_NOTFOUND;
    }
    if (code != MINIDBX_OK)
        return cli_fail(cli, location, code, NULL);
    return CLI_EXIT_OK;
}

enum copy_direction { COPY_PUSH, COPY_PULL, COPY_SYNC };

static int copy_command(struct cli *cli, int argc, char **argv, enum copy_direction direction)
{
    static const struct option longopts[] = {
        { "jobs", required_argument, NULL, OPT_JOBS },
        { "dry-run", no_argument, NULL, OPT_DRY_RUN },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { NULL, 0, NULL, 0 },
    };
    struct copy_cli run = { .cli = cli };
    minidbx *other = NULL;
    int first, rc, operands;

    rc = cli_parse_options(cli, argc, argv, "j:nv", longopts, copy_option, &run, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    operands = argc - first;
    if (direction == COPY_SYNC && operands != 2)
        return cli_usage_error(cli, "sync takes SRC and DEST");
    if (operands < 1)
        return cli_usage_error(cli, "%s takes a store first", cli->command->name);
    if (direction == COPY_SYNC && strcmp(argv[first], argv[first + 1]) == 0)
        return cli_usage_error(cli, "SRC and DEST are the same store");
    if (direction == COPY_SYNC)
        cli->store_arg = argv[first]; /* -s does not take part */
    /* the local side (-s): the source of push and sync, the destination of pull */
    cli->open_flags = direction == COPY_PULL ? 0 : MINIDBX_OPEN_NO_VERIFY;
    rc = cli_open_store(cli, direction != COPY_PULL ? CLI_OPEN_READ
                             : run.dry_run          ? CLI_OPEN_READ
                                                    : CLI_OPEN_CREATE);
    if (rc == CLI_EXIT_OK)
        rc = open_other(cli, argv[first + (direction == COPY_SYNC)],
                        direction == COPY_PULL ? SOURCE_FLAGS
                        : run.dry_run          ? DRY_RUN_DESTINATION_FLAGS
                                               : 0,
                        &other);
    if (rc == CLI_EXIT_OK && direction == COPY_PULL)
        rc = run_copy(&run, other, cli->db, operands - 1, argv + first + 1);
    else if (rc == CLI_EXIT_OK)
        rc = run_copy(&run, cli->db, other, direction == COPY_PUSH ? operands - 1 : 0,
                      argv + first + 1);
    minidbx_close(other);
    return rc;
}

int cmd_push(struct cli *cli, int argc, char **argv)
{
    return copy_command(cli, argc, argv, COPY_PUSH);
}

int cmd_pull(struct cli *cli, int argc, char **argv)
{
    return copy_command(cli, argc, argv, COPY_PULL);
}

int cmd_sync(struct cli *cli, int argc, char **argv)
{
    return copy_command(cli, argc, argv, COPY_SYNC);
}
