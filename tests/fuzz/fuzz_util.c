/* fuzz_util.c - helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool fuzz_skip_known(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("MINIDBX_FUZZ_SKIP_KNOWN");
        on = v && v[0] == '1';
    }
    return on;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    fuzz_check_setup(text != NULL, "malloc");
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

/* Where sanitizer reports go: still there when libFuzzer runs with
 * -close_fd_mask=2 (stderr closed), unlike stderr. Absent without them. */
__attribute__((weak)) void __sanitizer_report_error_summary(const char *error_summary);

/* Say why we abort, on stderr and where sanitizer reports go. */
static void report(const char *what, const char *message)
{
    char line[1200];

    snprintf(line, sizeof line, "%s: %s", what, message);
    fprintf(stderr, "%s\n", line);
    if (__sanitizer_report_error_summary)
        __sanitizer_report_error_summary(line);
}

void fuzz_fail(const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    report("FUZZ FINDING", message);
    abort();
}

void fuzz_check_setup(int ok, const char *what)
{
    if (ok)
        return;
    report("fuzz setup failed (not a finding)", what);
    abort();
}

/* ---- temp dirs ------------------------------------------------------------ */

#define TEMP_DIRS_MAX 4
static char *temp_dirs[TEMP_DIRS_MAX];
static int temp_dir_count;
static pid_t temp_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_temp_dirs(void)
{
    if (getpid() != temp_owner)
        return; /* a forked child (none expected) leaves them to its parent */
    for (int i = 0; i < temp_dir_count; i++) {
        nftw(temp_dirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(temp_dirs[i]);
    }
    temp_dir_count = 0;
}

/* $TMPDIR, else /dev/shm (memory: the stores the targets write to take
 * millions of small fsync'ed commits, which cost nothing there), else /tmp. */
static const char *temp_base(void)
{
    const char *base = getenv("TMPDIR");
    if (base && base[0])
        return base;
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

const char *fuzz_temp_dir(const char *tag)
{
    char path[4096];

    fuzz_check_setup(temp_dir_count < TEMP_DIRS_MAX, "too many temp dirs");
    snprintf(path, sizeof path, "%s/minidbx-fuzz-%s-XXXXXX", temp_base(), tag);
    fuzz_check_setup(mkdtemp(path) != NULL, "mkdtemp");
    if (temp_dir_count == 0) {
        temp_owner = getpid();
        atexit(remove_temp_dirs);
    }
    temp_dirs[temp_dir_count] = strdup(path);
    fuzz_check_setup(temp_dirs[temp_dir_count] != NULL, "strdup");
    return temp_dirs[temp_dir_count++];
}

int fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t written = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && written == size ? 0 : -1;
}
