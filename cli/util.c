/* util.c - what every command uses: option parsing, exit statuses, error
 * messages, output to stdout (text and JSON). */
#include "cli.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The first error met while writing to stdout (0: none). */
static int stdout_errno;

enum { OPT_JSON = 0x100 };

static const struct option global_longopts[] = {
    { "store", required_argument, NULL, 's' },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
};

#define GLOBAL_LONGOPT_COUNT (sizeof global_longopts / sizeof global_longopts[0])

/* The command's options followed by the global ones, NULL-terminated. */
static struct option *merge_longopts(const struct option *longopts)
{
    size_t count = 0;
    struct option *merged;

    while (longopts && longopts[count].name)
        count++;
    merged = calloc(count + GLOBAL_LONGOPT_COUNT + 1, sizeof *merged);
    if (!merged)
        return NULL;
    if (count)
        memcpy(merged, longopts, count * sizeof *merged);
    memcpy(merged + count, global_longopts, sizeof global_longopts);
    return merged;
}

/* Name the option getopt stopped at: the long form when it was used. */
static const char *bad_option_text(char **argv, char buf[8])
{
    const char *last = argv[optind - 1];
    if (strncmp(last, "--", 2) == 0 || optopt == 0)
        return last;
    snprintf(buf, 8, "-%c", optopt);
    return buf;
}

/* Returns CLI_PARSE_CONTINUE to go on, or the exit status to end with. */
static int handle_option(struct cli *cli, int opt, char **argv, cli_option_fn fn, void *ctx)
{
    char buf[8];
    int status;

    switch (opt) {
    case 's': cli->store_arg = optarg; return CLI_PARSE_CONTINUE;
    case OPT_JSON: cli->json = 1; return CLI_PARSE_CONTINUE;
    case 'q': cli->quiet = 1; return CLI_PARSE_CONTINUE;
    case 'h': return cli_print_command_help(cli->command);
    case ':':
        return cli_usage_error(cli, "option '%s' needs an argument", bad_option_text(argv, buf));
    case '?':
        return cli_usage_error(cli, "unknown option '%s'", bad_option_text(argv, buf));
    default:
        status = fn(ctx, opt, optarg);
        return status ? status : CLI_PARSE_CONTINUE;
    }
}

int cli_parse_options(struct cli *cli, int argc, char **argv, const char *shortopts,
                      const struct option *longopts, cli_option_fn fn, void *ctx,
                      int *first_arg)
{
    char merged_short[64];
    struct option *merged_long = merge_longopts(longopts);
    int opt, rc = CLI_PARSE_CONTINUE;

    if (!merged_long) {
        fprintf(stderr, "mdbx: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    snprintf(merged_short, sizeof merged_short, ":%ss:qh", shortopts ? shortopts : "");
    optind = 0; /* glibc: start again, from argv[1] */
    opterr = 0;
    while (rc == CLI_PARSE_CONTINUE &&
           (opt = getopt_long(argc, argv, merged_short, merged_long, NULL)) != -1)
        rc = handle_option(cli, opt, argv, fn, ctx);
    *first_arg = optind;
    free(merged_long);
    return rc;
}

int cli_exit_status(int code)
{
    switch (code) {
    case MINIDBX_OK: return CLI_EXIT_OK;
    case MINIDBX_ENOTFOUND: return CLI_EXIT_NOTFOUND;
    case MINIDBX_EINVAL: return CLI_EXIT_USAGE; /* every argument came from the user */
    case MINIDBX_ECORRUPT: return CLI_EXIT_CORRUPT;
    default: return CLI_EXIT_FAILURE;
    }
}

static const char *command_name(const struct cli *cli)
{
    return cli->command_name ? cli->command_name : "";
}

/* With --json, a failure is a record too, in its place among the others:
 * {"arg": what, "error": message, "code": "ENAME"}, so that a script
 * matches every argument with its record. */
static void json_failure(struct cli *cli, const char *what, int code, const char *message)
{
    cJSON *obj;

    if (!cli->json || !(obj = cJSON_CreateObject()))
        return;
    if (what)
        cJSON_AddStringToObject(obj, "arg", what);
    cJSON_AddStringToObject(obj, "error", message);
    cJSON_AddStringToObject(obj, "code", dbx_wire_error_name(code));
    cli_print_json(cli, obj);
}

int cli_fail(struct cli *cli, const char *what, int code, const char *reason)
{
    char detail[512];

    /* Copy first: the message is only valid until the next library call. */
    snprintf(detail, sizeof detail, "%s", minidbx_errmsg(cli->db));
    minidbx_id id;
    if (!reason && code == MINIDBX_ENOTFOUND && what && minidbx_id_parse(&id, what) == 0)
        reason = "object not found";
    /* The library's detail often starts with the path the message names
     * already: say it once. A bad argument's detail says all there is, so
     * it stands alone, not inside "invalid argument (...)". */
    size_t what_len = what ? strlen(what) : 0;
    if (what && strncmp(detail, what, what_len) == 0 && detail[what_len] == ':' && detail[what_len + 1] == ' ')
        memmove(detail, detail + what_len + 2, strlen(detail + what_len + 2) + 1);
    if (!reason && code == MINIDBX_EINVAL && detail[0])
        reason = detail;
    if (!reason)
        reason = minidbx_strerror(code);
    fprintf(stderr, "mdbx: %s%s%s: %s", command_name(cli), what ? " " : "", what ? what : "",
            reason);
    if (detail[0] && strcmp(detail, reason) != 0)
        fprintf(stderr, " (%s)", detail);
    fputc('\n', stderr);
    json_failure(cli, what, code, detail[0] ? detail : reason);
    return cli_exit_status(code);
}

int cli_refuse(struct cli *cli, const char *what, int code, const char *message)
{
    fprintf(stderr, "mdbx: %s%s%s: %s\n", command_name(cli), what ? " " : "", what ? what : "",
            message);
    json_failure(cli, what, code, message);
    return cli_exit_status(code);
}

int cli_fail_errno(struct cli *cli, const char *what, int err)
{
    fprintf(stderr, "mdbx: %s %s: %s\n", command_name(cli), what, strerror(err));
    json_failure(cli, what, err == ENOENT ? MINIDBX_ENOTFOUND : err == EACCES || err == EPERM ? MINIDBX_EPERM : MINIDBX_EIO,
                 strerror(err));
    return CLI_EXIT_FAILURE;
}

void cli_warn(struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    if (cli->quiet)
        return;
    fprintf(stderr, "mdbx: %s: ", command_name(cli));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_merge_status(int status, int next)
{
    return status != CLI_EXIT_OK ? status : next;
}

void cli_stdout_error(struct cli *cli, int err)
{
    if (!stdout_errno)
        stdout_errno = err ? err : EIO;
    cli->stop = 1;
}

int cli_printf(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (stdout_errno) {
        cli->stop = 1;
        return -1;
    }
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    if (n < 0) {
        cli_stdout_error(cli, errno);
        return -1;
    }
    return 0;
}

int cli_print_json(struct cli *cli, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    int rc;

    cJSON_Delete(obj);
    if (!text) {
        fprintf(stderr, "mdbx: %s: out of memory\n", command_name(cli));
        cli->stop = 1;
        return -1;
    }
    rc = cli_printf(cli, "%s\n", text);
    cJSON_free(text);
    return rc;
}

int cli_finish_stdout(struct cli *cli)
{
    (void)cli;
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && !stdout_errno)
        stdout_errno = errno ? errno : EIO;
    if (stdout_errno == 0 || stdout_errno == EPIPE)
        return CLI_EXIT_OK;
    fprintf(stderr, "mdbx: stdout: %s\n", strerror(stdout_errno));
    return CLI_EXIT_FAILURE;
}

int cli_write_all(int fd, const void *data, size_t size)
{
    const char *p = data;

    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR && !cli_interrupted)
                continue;
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

char *cli_join_path(const char *dir, const char *leaf)
{
    size_t dir_len = strlen(dir);
    size_t len = dir_len + strlen(leaf) + 2;
    char *path = malloc(len);

    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--; /* `put -r photos/` gives photos/a, not photos//a */
    if (path)
        snprintf(path, len, "%.*s/%s", (int)dir_len, dir, leaf);
    return path;
}

void cli_format_time(int64_t ns, char out[40])
{
    int64_t nsec = ns % 1000000000;
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    size_t len;

    if (nsec < 0) {
        nsec += 1000000000;
        sec--;
    }
    if (!gmtime_r(&sec, &tm)) {
        snprintf(out, 40, "%" PRId64, ns);
        return;
    }
    len = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, 40 - len, ".%09" PRId64 "Z", nsec);
}
