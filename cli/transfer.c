/* transfer.c - moving object bytes in and out in bounded memory: the
 * chunk loops of put and get, the progress line, signals, and output files
 * that appear whole or not at all. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One buffer of this size is all the memory a transfer takes here. */
#define CHUNK_BYTES ((size_t)1 << 20)
/* Smaller transfers are over before a progress line would help. */
#define PROGRESS_MIN_BYTES ((uint64_t)8 << 20)
#define PROGRESS_INTERVAL_S 0.25

volatile sig_atomic_t cli_interrupted;

static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int sig)
{
    cli_interrupted = sig;
}

void cli_signals_catch(void)
{
    struct sigaction action, old;

    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    /* No SA_RESTART: a read blocked on a pipe must return EINTR so that
     * the loop sees the flag. */
    for (size_t i = 0; i < sizeof caught_signals / sizeof caught_signals[0]; i++) {
        /* A signal ignored by our parent (nohup, `cmd &`) stays ignored. */
        if (sigaction(caught_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(caught_signals[i], &action, NULL);
    }
}

void cli_reraise(void)
{
    int sig = cli_interrupted;

    if (!sig)
        return;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- progress ------------------------------------------------------------ */

struct progress {
    const char *verb;
    const char *label;
    uint64_t total_bytes; /* 0: unknown */
    uint64_t done_bytes;
    double start_s;
    double last_s;
    int enabled;
    int shown;
    char short_label[16];
};

double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_format_bytes(double bytes, char out[16])
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    size_t unit = 0;

    while (bytes >= 1024.0 && unit + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024.0;
        unit++;
    }
    snprintf(out, 16, unit ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
}

static void progress_start(struct progress *p, const struct cli *cli, const char *verb,
                           const char *label, uint64_t total_bytes)
{
    memset(p, 0, sizeof *p);
    p->verb = verb;
    p->label = label;
    /* An id as label would fill the line: its first 12 digits will do. */
    if (strlen(label) == MINIDBX_ID_HEX_SIZE - 1) {
        snprintf(p->short_label, sizeof p->short_label, "%.12s...", label);
        p->label = p->short_label;
    }
    p->total_bytes = total_bytes;
    p->start_s = cli_now_s();
    p->enabled = !cli->quiet && isatty(STDERR_FILENO) &&
                 (total_bytes == 0 || total_bytes > PROGRESS_MIN_BYTES);
}

static void progress_draw(struct progress *p, double now)
{
    char done[16], total[16], rate[16];
    double elapsed = now - p->start_s > 1e-3 ? now - p->start_s : 1e-3;
    double bytes_per_s = (double)p->done_bytes / elapsed;

    cli_format_bytes((double)p->done_bytes, done);
    cli_format_bytes(bytes_per_s, rate);
    if (p->total_bytes && p->done_bytes <= p->total_bytes) {
        unsigned eta_s = (unsigned)((double)(p->total_bytes - p->done_bytes) / bytes_per_s);
        cli_format_bytes((double)p->total_bytes, total);
        fprintf(stderr, "\r%s %s: %s / %s (%u%%), %s/s, ETA %u:%02u\033[K", p->verb, p->label,
                done, total, (unsigned)(100 * p->done_bytes / p->total_bytes), rate,
                eta_s / 60, eta_s % 60);
    } else {
        fprintf(stderr, "\r%s %s: %s, %s/s\033[K", p->verb, p->label, done, rate);
    }
    p->shown = 1;
    p->last_s = now;
}

static void progress_update(struct progress *p, size_t bytes)
{
    double now;

    p->done_bytes += bytes;
    if (!p->enabled || p->done_bytes < PROGRESS_MIN_BYTES)
        return;
    now = cli_now_s();
    if (!p->shown || now - p->last_s >= PROGRESS_INTERVAL_S)
        progress_draw(p, now);
}

/* Clear the line, so that what follows starts at column 0. */
static void progress_end(struct progress *p)
{
    if (p->shown)
        fputs("\r\033[K", stderr);
    p->shown = 0;
}

/* ---- put --------------------------------------------------------------- */

static int report_interrupted(struct cli *cli, const char *label, const char *what)
{
    cli->stop = 1;
    if (!cli->quiet)
        fprintf(stderr, "mdbx: %s %s: interrupted; %s\n", cli->command_name, label, what);
    return CLI_EXIT_INTERRUPTED;
}

/* Feed fd to the writer. Returns a MINIDBX code, or 0 with *err set to an
 * errno value when reading failed, or 0 with nothing set. */
static int write_chunks(minidbx_writer *w, int fd, char *buf, struct progress *p, int *err)
{
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK_BYTES);
        int code;

        if (cli_interrupted)
            return MINIDBX_OK;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            return MINIDBX_OK;
        }
        if (n == 0)
            return MINIDBX_OK;
        code = minidbx_writer_write(w, buf, (size_t)n);
        if (code != MINIDBX_OK)
            return code;
        progress_update(p, (size_t)n);
    }
}

int cli_put_stream(struct cli *cli, int fd, const char *label, const char *name, int move_name,
                   uint64_t size_hint, minidbx_id *out_id, uint64_t *out_size)
{
    minidbx_writer *writer = NULL;
    struct progress progress;
    char *buf = malloc(CHUNK_BYTES);
    int code = MINIDBX_OK, err = 0, committed = 0, rc;

    progress_start(&progress, cli, "put", label, size_hint);
    if (!buf) {
        err = ENOMEM;
        goto out;
    }
    code = minidbx_writer_open(cli->db, &writer);
    if (code == MINIDBX_OK)
        code = write_chunks(writer, fd, buf, &progress, &err);
    if (code == MINIDBX_OK && !err && !cli_interrupted) {
        /* both free the writer */
        code = name ? minidbx_writer_commit_named_ex(writer, name, move_name ? 0 : MINIDBX_NAME_KEEP, out_id)
                    : minidbx_writer_commit(writer, out_id);
        writer = NULL;
        committed = code == MINIDBX_OK;
        *out_size = progress.done_bytes;
    }
out:
    progress_end(&progress);
    minidbx_writer_abort(writer);
    free(buf);
    if (committed) {
        cli->stop = cli->stop || cli_interrupted; /* stored: report it, then stop */
        return CLI_EXIT_OK;
    }
    /* After a signal, errors (EINTR from below) are its consequence. */
    if (cli_interrupted)
        return report_interrupted(cli, label, "nothing was stored");
    if (err)
        return cli_fail_errno(cli, label, err);
    /* another writer set the name since it was checked: say where it points */
    if (code == MINIDBX_EEXISTS && name && (rc = cli_check_name_move(cli, label, name, NULL, 0)) != CLI_EXIT_OK)
        return rc;
    return code == MINIDBX_OK ? CLI_EXIT_OK : cli_fail(cli, label, code, NULL);
}

/* ---- get --------------------------------------------------------------- */

/* Copy the reader to fd. Returns a MINIDBX code, or 0 with *err set to the
 * errno value of a failed write. With *binary set (a terminal), the first
 * chunk is looked at: *binary stays 1 and nothing is written when it holds
 * a NUL byte (curl's test for bytes that are not text), else it is 0. */
static int read_chunks(minidbx_reader *r, int fd, char *buf, struct progress *p, int *err,
                       int *binary)
{
    for (;;) {
        size_t n;
        int code = minidbx_reader_read(r, buf, CHUNK_BYTES, &n);

        if (code != MINIDBX_OK || n == 0 || cli_interrupted)
            return code;
        if (*binary && memchr(buf, '\0', n))
            return MINIDBX_OK;
        *binary = 0;
        if (cli_write_all(fd, buf, n) != 0) {
            *err = errno;
            return MINIDBX_OK;
        }
        progress_update(p, n);
    }
}

/* Write the object to fd; out_path names fd in messages (NULL: stdout).
 * check_binary: refuse binary bytes (see read_chunks). */
static int copy_object(struct cli *cli, const minidbx_id *id, const char *label, int fd,
                       const char *out_path, uint64_t *out_size, int check_binary)
{
    minidbx_reader *reader = NULL;
    struct progress progress;
    uint64_t size = 0;
    char *buf = malloc(CHUNK_BYTES);
    int code = MINIDBX_ENOMEM, err = 0, binary = check_binary;

    if (buf)
        code = minidbx_reader_open(cli->db, id, &reader, &size);
    progress_start(&progress, cli, "get", label, size);
    if (code == MINIDBX_OK)
        code = read_chunks(reader, fd, buf, &progress, &err, &binary);
    progress_end(&progress);
    minidbx_reader_close(reader);
    free(buf);
    if (out_size)
        *out_size = progress.done_bytes;
    if (code == MINIDBX_OK && binary && !cli_interrupted && progress.done_bytes == 0 && size > 0)
        return cli_refuse(cli, label, MINIDBX_EINVAL,
                          "binary output can mess up your terminal: use -o FILE, redirect it, "
                          "or --force");
    if (cli_interrupted)
        return report_interrupted(cli, label, out_path ? "no file was written" : "output is cut");
    if (code != MINIDBX_OK)
        return cli_fail(cli, label, code, NULL);
    if (err && out_path)
        return cli_fail_errno(cli, out_path, err);
    if (err)
        cli_stdout_error(cli, err); /* reported once, at exit; EPIPE quietly */
    return CLI_EXIT_OK;
}

int cli_get_to_stdout(struct cli *cli, const minidbx_id *id, const char *label, int force)
{
    if (fflush(stdout) != 0) {
        cli_stdout_error(cli, errno);
        return CLI_EXIT_OK;
    }
    return copy_object(cli, id, label, STDOUT_FILENO, NULL, NULL, !force && isatty(STDOUT_FILENO));
}

/* "DIR/.BASE.mdbx-XXXXXX" for mkstemp: same directory, so rename is atomic. */
static char *temp_path_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    const char *base = slash ? slash + 1 : path;
    size_t len = (size_t)dir_len + strlen(base) + 32;
    char *tmp = malloc(len);

    if (tmp)
        snprintf(tmp, len, "%.*s/.%s.mdbx-XXXXXX", dir_len, dir, base);
    return tmp;
}

/* The rename is only durable once the directory that holds it is synced. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    int fd, rc;

    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write into an open temp file, make it durable and rename it to path. */
static int finish_temp_file(struct cli *cli, const minidbx_id *id, const char *label,
                            const char *path, const char *tmp, int fd, uint64_t *out_size)
{
    mode_t mask = umask(0);
    int rc;

    umask(mask);
    /* mkstemp makes 0600; give the file the mode a new file would get. */
    if (fchmod(fd, 0666 & ~mask) != 0)
        return cli_fail_errno(cli, path, errno);
    rc = copy_object(cli, id, label, fd, path, out_size, 0);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (fsync(fd) != 0)
        return cli_fail_errno(cli, path, errno);
    if (rename(tmp, path) != 0)
        return cli_fail_errno(cli, path, errno);
    if (sync_parent_dir(path) != 0)
        return cli_fail_errno(cli, path, errno);
    return CLI_EXIT_OK;
}

/* Devices and fifos (-o /dev/null) cannot be replaced by a rename and
 * have nothing to leave half-written: write to them directly. */
static int get_to_special_file(struct cli *cli, const minidbx_id *id, const char *label,
                               const char *path, uint64_t *out_size)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    int rc;

    if (fd < 0)
        return cli_fail_errno(cli, path, errno);
    rc = copy_object(cli, id, label, fd, path, out_size, 0);
    if (close(fd) != 0 && rc == CLI_EXIT_OK)
        rc = cli_fail_errno(cli, path, errno);
    return rc;
}

int cli_get_to_file(struct cli *cli, const minidbx_id *id, const char *label, const char *path,
                    uint64_t *out_size)
{
    struct stat st;
    char *real = NULL, *tmp = NULL;
    int fd = -1, rc;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return get_to_special_file(cli, id, label, path, out_size);
    /* Through a symlink, replace the file it points at, not the link. */
    if (stat(path, &st) == 0 && (real = realpath(path, NULL)) != NULL)
        path = real;
    tmp = temp_path_for(path);
    if (!tmp) {
        rc = cli_fail_errno(cli, path, ENOMEM);
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = cli_fail_errno(cli, path, errno);
        goto out;
    }
    rc = finish_temp_file(cli, id, label, path, tmp, fd, out_size);
    if (close(fd) != 0 && rc == CLI_EXIT_OK)
        rc = cli_fail_errno(cli, path, errno);
    if (rc != CLI_EXIT_OK)
        unlink(tmp); /* never leave a half file, whatever went wrong */
out:
    free(tmp);
    free(real);
    return rc;
}
