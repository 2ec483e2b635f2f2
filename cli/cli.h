/*
 * cli.h - what the files of the mdbx command share.
 *
 * The command line is a thin layer over <minidbx.h>: it parses arguments,
 * calls the public API and prints. Everything here is internal to the
 * mdbx binary; nothing is exported.
 */
#ifndef MDBX_CLI_H
#define MDBX_CLI_H

#include <minidbx.h>

#include "wire_json.h" /* --json: the wire format's JSON shapes */

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>

/* Exit statuses, documented in mdbx(1). Never renumber them. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_NOTFOUND = 1,   /* an object, name or store is missing */
    CLI_EXIT_USAGE = 2,      /* bad command line, bad id or name */
    CLI_EXIT_CORRUPT = 3,    /* bytes do not match their id */
    CLI_EXIT_FAILURE = 4,    /* anything else */
    CLI_EXIT_INTERRUPTED = 130
};

/* cli_parse_options returns this when the command should go on. */
#define CLI_PARSE_CONTINUE (-1)

/* How a command needs the store. */
enum cli_open_mode {
    CLI_OPEN_READ,    /* must exist; opened read-only */
    CLI_OPEN_WRITE,   /* must exist */
    CLI_OPEN_CREATE   /* created when missing */
};

struct cli_command;

/* The state of one run of mdbx. */
struct cli {
    const char *store_arg;             /* --store, or NULL */
    char *location;                    /* resolved store location (owned) */
    int location_is_default;           /* from the XDG default */
    int store_created;                 /* CLI_OPEN_CREATE made it */
    int json;                          /* --json: one JSON object per line */
    int quiet;                         /* -q: no progress, no chatter */
    const struct cli_command *command; /* the running command */
    const char *command_name;          /* as typed (an alias, maybe) */
    minidbx *db;                       /* open store, or NULL */
    uint64_t max_object_size;          /* for cli_open_store: 0 = no limit */
    int stop;                          /* stdout is gone or we were interrupted */
    unsigned open_flags;               /* MINIDBX_OPEN_* added by cli_open_store */
    minidbx_durability durability;     /* for cli_open_store: MINIDBX_SYNC_FULL (0) by default */
};

typedef int (*cli_run_fn)(struct cli *cli, int argc, char **argv);

struct cli_command {
    const char *name;
    const char *alias;    /* another name for it, or NULL */
    cli_run_fn run;
    const char *usage;    /* arguments, after "mdbx NAME " */
    const char *summary;  /* one line for `mdbx help` */
    const char *details;  /* options and notes for `mdbx help NAME` */
};

/* Set from a signal handler while a transfer runs (see transfer.c). */
extern volatile sig_atomic_t cli_interrupted;

/* ---- main.c ------------------------------------------------------------ */

const struct cli_command *cli_find_command(const char *name);
int cli_print_command_help(const struct cli_command *cmd);
int cli_usage_error(struct cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- util.c: options, errors, output, JSON ---------------------------- */

/* Called for each option of a command that is not a global one. optarg is
 * the option's argument (or NULL). Returns 0, or an exit status to stop. */
typedef int (*cli_option_fn)(void *ctx, int opt, const char *optarg);

/* Parse the options of a command (argv[0] is its name), accepting the
 * global ones (-s, --json, -q, -h) anywhere too. On CLI_PARSE_CONTINUE,
 * *first_arg is the index of the first operand. Otherwise returns the exit
 * status the command should end with (0 after --help, 2 on a bad option). */
int cli_parse_options(struct cli *cli, int argc, char **argv, const char *shortopts,
                      const struct option *longopts, cli_option_fn fn, void *ctx,
                      int *first_arg);

/* The exit status for a MINIDBX_E* code. */
int cli_exit_status(int code);

/* Print "mdbx: CMD WHAT: reason (detail)" for a failed library call and
 * return its exit status. Call it right after the failure: the detail is
 * the thread's minidbx_errmsg. reason NULL means minidbx_strerror(code). */
int cli_fail(struct cli *cli, const char *what, int code, const char *reason);

/* The same for what mdbx itself refuses to do (no library call failed):
 * "mdbx: CMD WHAT: message", and code only picks the exit status and the
 * --json record's code. */
int cli_refuse(struct cli *cli, const char *what, int code, const char *message);

/* The same for a failed system call (errno value err); status 4. */
int cli_fail_errno(struct cli *cli, const char *what, int err);

/* Print a warning ("mdbx: CMD: ...") unless -q. */
void cli_warn(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* First non-zero status wins. */
int cli_merge_status(int status, int next);

/* printf to stdout. On failure returns -1, sets cli->stop (the command
 * should end) and records the error for cli_finish_stdout. */
int cli_printf(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print obj as one line of JSON and free it. -1 as for cli_printf. */
int cli_print_json(struct cli *cli, cJSON *obj);

/* Record that writing to stdout failed with errno value err, and stop. */
void cli_stdout_error(struct cli *cli, int err);

/* Flush stdout. The exit status of the output: 0 when it all went out or
 * the reader went away (EPIPE, as with `| head`: a quiet end), else 4
 * after a message. */
int cli_finish_stdout(struct cli *cli);

/* Write all of size bytes to fd, retrying short writes and EINTR.
 * Returns 0 or -1 with errno set. */
int cli_write_all(int fd, const void *data, size_t size);

/* "DIR/LEAF" in new memory (free it), without doubling a trailing '/'. */
char *cli_join_path(const char *dir, const char *leaf);


/* Format ns since the epoch as an RFC 3339 UTC time. */
void cli_format_time(int64_t ns, char out[40]);

/* ---- location.c: the store location, opening it, ids and names -------- */

/* Resolve the store location and open it; on failure print why (and how
 * to create a missing store) and return the exit status. */
int cli_open_store(struct cli *cli, enum cli_open_mode mode);

/* Resolve an argument that is an id (64 hex digits) or a name. Fills *id
 * and, when the argument was a name and name_out is not NULL, *name_out
 * (else name_out->name[0] is '\0'). Returns 0 or an exit status after
 * printing the reason, unless quiet_missing (then a missing name returns
 * CLI_EXIT_NOTFOUND silently). */
int cli_resolve(struct cli *cli, const char *arg, minidbx_id *id, minidbx_name_info *name_out,
                int quiet_missing);

/* Names are not moved by surprise: whether NAME may be pointed at id.
 * Yes (0) when force, when NAME is free, or when it already points at id;
 * id NULL means "not known" (then only a free NAME may be set). Otherwise
 * prints "NAME points at OTHER; not moved (use --force to move it)" for
 * `CMD what` (a --json failure record, code EEXISTS) and returns 4. */
int cli_check_name_move(struct cli *cli, const char *what, const char *name, const minidbx_id *id,
                        int force);

/* Up to max names that point at id, written to out as "a, b, c" (and
 * ", ..." when there are more), by a walk over every name of the store.
 * "" when none does or the walk failed. */
void cli_names_of(struct cli *cli, const minidbx_id *id, char *out, size_t size, int max);

/* ---- transfer.c: streams, progress, signals, safe output files --------- */

/* From now on, catch SIGINT/SIGTERM/SIGHUP (unless ignored) so that a
 * transfer stops cleanly between chunks: cli_interrupted is set and the
 * loops end. main calls cli_reraise after cleaning up, so that the shell
 * still sees death by the signal. */
void cli_signals_catch(void);
void cli_reraise(void);

/* Store everything read from fd and, if name is not NULL, point name at it
 * in the same step (minidbx_writer_commit_named_ex: a concurrent gc cannot
 * remove it in between; unless move_name, a name that points elsewhere is
 * not moved, checked in that step, as cli_check_name_move says). label
 * names the input in messages and in the progress line; size_hint is its
 * size if known (else 0). *out_size gets the number of bytes stored.
 * Returns 0 or an exit status. */
int cli_put_stream(struct cli *cli, int fd, const char *label, const char *name, int move_name,
                   uint64_t size_hint, minidbx_id *out_id, uint64_t *out_size);

/* Seconds on the monotonic clock. */
double cli_now_s(void);

/* "12.3 MiB": bytes in the largest unit that keeps it >= 1. */
void cli_format_bytes(double bytes, char out[16]);

/* Write an object's bytes to stdout. label names the object. Unless force,
 * binary bytes (a NUL in the first chunk) are not written to a terminal:
 * "use -o FILE, redirect, or --force" (exit 2), as curl does. */
int cli_get_to_stdout(struct cli *cli, const minidbx_id *id, const char *label, int force);

/* Write an object's bytes to path through a temp file in the same
 * directory, fsync'ed and renamed into place only when complete. */
int cli_get_to_file(struct cli *cli, const minidbx_id *id, const char *label, const char *path,
                    uint64_t *out_size);

/* ---- the commands ------------------------------------------------------ */

int cmd_put(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_exists(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_stat(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_names(struct cli *cli, int argc, char **argv);
int cmd_name(struct cli *cli, int argc, char **argv);
int cmd_init(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_gc(struct cli *cli, int argc, char **argv);
int cmd_repair(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_help(struct cli *cli, int argc, char **argv);
int cmd_push(struct cli *cli, int argc, char **argv);
int cmd_pull(struct cli *cli, int argc, char **argv);
int cmd_sync(struct cli *cli, int argc, char **argv);
int cmd_import_go(struct cli *cli, int argc, char **argv);

/* ---- cmd_serve.c: the HTTP node (server/), when built with it ---------- */

#if MDBX_HAVE_SERVER
#include "server.h" /* its usage and help */

int cmd_serve(struct cli *cli, int argc, char **argv);

#define SERVE_COMMAND_ENTRY                                                      \
    { "serve", NULL, cmd_serve, MINIDBX_SERVER_USAGE, "serve the store over HTTP", \
      MINIDBX_SERVER_HELP },
#else
#define SERVE_COMMAND_ENTRY
#endif

#endif /* MDBX_CLI_H */
