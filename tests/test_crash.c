/* test_crash.c - crash safety. Runs crash_writer against one store, kills
 * it with SIGKILL at a random moment (0-30 ms after start, or just after it
 * acknowledged a random number of ids), then opens the store and checks:
 * every acknowledged id is there and its bytes verify; verify finds no
 * record whose bytes are missing or wrong (orphan blobs are allowed); the
 * temp area holds nothing of the dead writer. The store is reused, so it
 * grows across rounds. Every other round (odd seeds) the writer runs 4
 * threads on one handle, so that kills land inside grouped commits.
 *
 * With POWERCUT_SHIM (tests/fault/powercut_shim.c) each kill is a power
 * cut: the writer runs under the shim, which keeps beside the store only
 * what was flushed (file bytes at fsync/fdatasync or O_DSYNC writes,
 * directory entries at the directory's fsync); after the kill the store is
 * rebuilt from that alone, into a new directory, and every id acknowledged
 * in any round must be there and intact. The next round writes into the
 * rebuilt store, as after a reboot. Of the writes no flush covered, a
 * random half is written into the rebuilt files (in order), as the
 * kernel's writeback may have done before the cut. Only every
 * POWERCUT_EVERY-th kill cuts the power: after the others the next writer
 * goes on with what the dead one left in the page cache (flushed or not),
 * as after a process crash, so that a change one process left unflushed
 * and the next relied on is lost at the next cut.
 *
 * With RACE_WORKER too, one more power-cut case: a process that made a
 * shard directory dies before it fsyncs the parent, and another puts into
 * that directory (see shard_dir_of_a_dead_writer).
 *
 * usage: test_crash CRASH_WRITER ITERATIONS [POWERCUT_SHIM [RACE_WORKER]] */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *writer_path;
static long iterations = 200;
static const char *powercut_shim; /* NULL: kills only */
static const char *race_worker;
#define POWERCUT_EVERY 3

typedef struct {
    minidbx_id *ids;
    size_t count, capacity;
} id_list;

static void id_list_add(id_list *list, const minidbx_id *id)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 256;
        list->ids = realloc(list->ids, list->capacity * sizeof *list->ids);
        ck_assert_ptr_nonnull(list->ids);
    }
    list->ids[list->count++] = *id;
}

/* Output of one writer: bytes read so far from its stdout. */
typedef struct {
    char *text;
    size_t len, capacity;
    size_t lines; /* complete lines seen */
} writer_output;

/* Read what is there (waiting up to timeout_ms). 0 at EOF, else 1. */
static int read_some(int fd, writer_output *out, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready <= 0)
        return 1;
    if (out->capacity - out->len < 4096) {
        out->capacity = out->capacity ? out->capacity * 2 : 65536;
        out->text = realloc(out->text, out->capacity);
        ck_assert_ptr_nonnull(out->text);
    }
    ssize_t n = read(fd, out->text + out->len, out->capacity - out->len);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        out->lines += out->text[out->len + (size_t)i] == '\n';
    out->len += (size_t)n;
    return 1;
}

/* Every other round has this many writer threads in one process, so that
 * grouped commits are killed too. */
#define CONCURRENT_WRITERS 4

static pid_t start_writer(const char *store, const char *shadow, uint64_t seed, int *out_fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char seed_text[32], threads_text[16];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    snprintf(threads_text, sizeof threads_text, "%d", seed % 2 ? CONCURRENT_WRITERS : 1);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char real[PATH_MAX];
        if (shadow && (!realpath(store, real) || setenv("LD_PRELOAD", powercut_shim, 1) != 0 ||
                       setenv("MINIDBX_POWERCUT_STORE", real, 1) != 0 ||
                       setenv("MINIDBX_POWERCUT_SHADOW", shadow, 1) != 0))
            _exit(126);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execl(writer_path, writer_path, store, seed_text, threads_text, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Let the writer run until a random moment, kill it, collect its output. */
static void run_and_kill(const char *store, const char *shadow, test_rng *rng, uint64_t seed,
                         writer_output *out)
{
    int fd;
    double start = now_ms();
    pid_t pid = start_writer(store, shadow, seed, &fd);
    if (rng_below(rng, 2) == 0) {
        double deadline = start + (double)rng_below(rng, 31);
        while (now_ms() < deadline && read_some(fd, out, 1))
            ;
    } else {
        size_t want = 1 + (size_t)rng_below(rng, 12);
        while (out->lines < want && now_ms() < start + 3000 && read_some(fd, out, 10))
            ;
        usleep((useconds_t)rng_below(rng, 4000));
    }
    kill(pid, SIGKILL);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    while (read_some(fd, out, 1000))
        ;
    close(fd);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "crash_writer (seed %llu) ended by itself with status %d",
                  (unsigned long long)seed, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Parse every complete line into acked; a partial last line was not acked. */
static size_t parse_acked(const writer_output *out, id_list *acked)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < out->len; i++) {
        if (out->text[i] != '\n')
            continue;
        char hex[MINIDBX_ID_HEX_SIZE] = "";
        size_t len = i - start;
        ck_assert_msg(len == 64, "writer printed a %zu-byte line", len);
        memcpy(hex, out->text + start, 64);
        hex[64] = '\0';
        minidbx_id id;
        ck_assert_ok(minidbx_id_parse(&id, hex));
        id_list_add(acked, &id);
        n++;
        start = i + 1;
    }
    return n;
}

static void expect_object_intact(minidbx *db, const minidbx_id *id, uint64_t seed)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    void *data = NULL;
    size_t size = 0;
    int rc = minidbx_get(db, id, &data, &size);
    ck_assert_msg(rc == 0, "acknowledged %s (seed %llu): get %d (%s): %s", hex,
                  (unsigned long long)seed, rc, minidbx_strerror(rc), minidbx_errmsg(db));
    minidbx_id actual;
    sha256_raw(data, size, &actual);
    ck_assert_msg(minidbx_id_equal(&actual, id), "get %s returned other bytes", hex);
    minidbx_free(data);
}

static void expect_store_consistent(minidbx *db, uint64_t seed)
{
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_msg(log.count[MINIDBX_PROBLEM_CORRUPT] == 0 && log.count[MINIDBX_PROBLEM_MISSING] == 0 &&
                      log.count[MINIDBX_PROBLEM_DANGLING] == 0 && log.count[MINIDBX_PROBLEM_BADREF] == 0,
                  "after kill (seed %llu): %u corrupt, %u missing, %u dangling, %u bad refs",
                  (unsigned long long)seed, log.count[MINIDBX_PROBLEM_CORRUPT],
                  log.count[MINIDBX_PROBLEM_MISSING], log.count[MINIDBX_PROBLEM_DANGLING],
                  log.count[MINIDBX_PROBLEM_BADREF]);
    ck_assert_msg(log.count[MINIDBX_PROBLEM_TEMP] == 0, "verify after open found %u temp files",
                  log.count[MINIDBX_PROBLEM_TEMP]);
}

/* --- power cuts: what the shim keeps, and the store rebuilt from it --- */

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_msg(in >= 0 && out >= 0, "copy %s -> %s: %s", from, to, strerror(errno));
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(n, 0);
    close(in);
    close(out);
}

/* The shim's record of dir as it is now (all of it counts as flushed: a
 * clean state between rounds): d<ino> listings and i<ino> contents. */
static void shadow_baseline(const char *dir, const char *shadow)
{
    char listing[PATH_MAX], path[PATH_MAX], copy[PATH_MAX];
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    snprintf(listing, sizeof listing, "%s/d%llu", shadow, (unsigned long long)st.st_ino);
    FILE *out = fopen(listing, "w");
    DIR *d = opendir(dir);
    ck_assert(out && d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_int_eq(lstat(path, &st), 0);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        fprintf(out, "%c %llu %s\n", S_ISDIR(st.st_mode) ? 'd' : 'f', (unsigned long long)st.st_ino,
                e->d_name);
        if (S_ISDIR(st.st_mode)) {
            shadow_baseline(path, shadow);
        } else {
            snprintf(copy, sizeof copy, "%s/i%llu", shadow, (unsigned long long)st.st_ino);
            copy_file(path, copy);
        }
    }
    closedir(d);
    ck_assert_int_eq(fclose(out), 0);
}

/* Where rebuild put each file, by the inode it had: for the writeback. */
static struct rebuilt_file {
    unsigned long long ino;
    char *path;
} *rebuilt;
static size_t rebuilt_count;

static void rebuilt_forget(void)
{
    for (size_t i = 0; i < rebuilt_count; i++)
        free(rebuilt[i].path);
    free(rebuilt);
    rebuilt = NULL;
    rebuilt_count = 0;
}

static const char *rebuilt_path(unsigned long long ino)
{
    for (size_t i = 0; i < rebuilt_count; i++)
        if (rebuilt[i].ino == ino)
            return rebuilt[i].path;
    return NULL;
}

/* Make dir from the shim's record of directory ino: entries as last
 * flushed (none if it never was), files as last flushed (empty if never). */
static void rebuild(const char *shadow, unsigned long long ino, const char *dir)
{
    char listing[PATH_MAX], line[PATH_MAX + 64], path[2 * PATH_MAX], from[PATH_MAX];
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(listing, sizeof listing, "%s/d%llu", shadow, ino);
    FILE *in = fopen(listing, "r");
    if (!in)
        return;
    while (fgets(line, sizeof line, in)) {
        char kind, name[256];
        unsigned long long child;
        ck_assert_int_eq(sscanf(line, "%c %llu %255[^\n]", &kind, &child, name), 3);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        snprintf(from, sizeof from, "%s/i%llu", shadow, child);
        if (kind != 'd') {
            rebuilt = realloc(rebuilt, (rebuilt_count + 1) * sizeof *rebuilt);
            ck_assert_ptr_nonnull(rebuilt);
            rebuilt[rebuilt_count++] = (struct rebuilt_file){ child, strdup(path) };
        }
        if (kind == 'd')
            rebuild(shadow, child, path);
        else if (access(from, F_OK) == 0)
            copy_file(from, path);
        else
            close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    }
    fclose(in);
}

/* The kernel writes dirty pages back whenever it likes: of the writes
 * that no flush covered (the shim's pending log), put a random half into
 * the rebuilt files, in the order they were made. */
static int is_pending(const struct dirent *e)
{
    return strncmp(e->d_name, "pending.", 8) == 0;
}

/* The records of every pending.N file, oldest process first, each file cut
 * at a record its process was killed in the middle of. */
static unsigned char *read_pending(const char *shadow, size_t *out_len)
{
    struct dirent **names;
    int n = scandir(shadow, &names, is_pending, alphasort);
    ck_assert_int_ge(n, 0);
    unsigned char *all = NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 256];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", shadow, names[i]->d_name);
        free(names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        all = realloc(all, len + (size_t)st.st_size + 1);
        ck_assert_ptr_nonnull(all);
        ck_assert_int_eq(read(fd, all + len, (size_t)st.st_size), st.st_size);
        close(fd);
        size_t at = 0, end = (size_t)st.st_size;
        while (at + 24 <= end) {
            int64_t head[3];
            memcpy(head, all + len + at, sizeof head);
            size_t size = head[1] >= 0 ? (size_t)head[2] : 0;
            if (size > end - at - 24)
                break;
            at += 24 + size;
        }
        len += at;
    }
    free(names);
    *out_len = len;
    return all;
}

/* The kernel writes dirty pages back whenever it likes: of the writes
 * that no flush covered (the shim's pending logs), put a random half into
 * the rebuilt files, in the order they were made. */
static size_t written_back; /* over the run, for its summary */

static void write_back_some(const char *shadow, test_rng *rng)
{
    size_t size;
    unsigned char *log = read_pending(shadow, &size);
    for (size_t at = 0; at + 24 <= size;) {
        int64_t head[3];
        memcpy(head, log + at, sizeof head);
        size_t next = at + 24 + (head[1] >= 0 ? (size_t)head[2] : 0);
        bool flushed_later = head[1] < 0;
        for (size_t later = next; !flushed_later && later + 24 <= size;) {
            int64_t h2[3];
            memcpy(h2, log + later, sizeof h2);
            flushed_later = h2[1] < 0 && h2[0] == head[0];
            later += 24 + (h2[1] >= 0 ? (size_t)h2[2] : 0);
        }
        const char *file = rebuilt_path((unsigned long long)head[0]);
        if (!flushed_later && file && rng_below(rng, 2)) {
            int out = open(file, O_WRONLY | O_CLOEXEC);
            ck_assert_int_ge(out, 0);
            ck_assert_int_eq(pwrite(out, log + at + 24, (size_t)head[2], (off_t)head[1]), head[2]);
            close(out);
            written_back++;
        }
        at = next;
    }
    free(log);
}

/* After the writer under the shim was killed: the store as a power cut
 * at that instant would leave it, in a new directory; the old one goes.
 * With rng, a random half of the unflushed writes reached the disk. */
static char *power_cut(char *store, const char *shadow, unsigned long long root_ino, long round,
                       test_rng *rng)
{
    char *next = malloc(PATH_MAX);
    ck_assert_ptr_nonnull(next);
    snprintf(next, PATH_MAX, "%s.%ld", store, round);
    char *dot = strrchr(store, '.');
    if (round > 0 && dot) /* store.N -> store.N+1, not store.N.N+1 */
        snprintf(next, PATH_MAX, "%.*s.%ld", (int)(dot - store), store, round);
    rebuild(shadow, root_ino, next);
    if (rng)
        write_back_some(shadow, rng);
    rebuilt_forget();
    rm_rf(store);
    free(store);
    return next;
}

static void run_rounds(bool powercut)
{
    char *store = tmpdir_make(powercut ? "powercut" : "crash");
    char tmp[PATH_MAX], shadow[PATH_MAX];
    uint64_t base_seed = seed_from_clock();
    printf("%s: %ld rounds, base seed %llu, store %s\n", powercut ? "powercut" : "crash", iterations,
           (unsigned long long)base_seed, store);
    fflush(stdout);
    test_rng rng;
    rng_seed(&rng, base_seed);
    id_list acked = {0};
    /* a full verify re-hashes the whole (growing) store: every round for
     * the normal run, every tenth in a torture run to keep it linear-ish */
    long verify_every = iterations > 1000 ? 10 : 1;
    double start = now_ms();

    unsigned long long root_ino = 0;
    bool have_shadow = false;
    for (long round = 0; round < iterations; round++) {
        uint64_t seed = base_seed + (uint64_t)round;
        writer_output out = {0};
        bool cut = powercut && (round % POWERCUT_EVERY == POWERCUT_EVERY - 1 || round == iterations - 1);
        if (powercut && !have_shadow) {
            struct stat st;
            snprintf(shadow, sizeof shadow, "%s.shadow", store);
            ck_assert_int_eq(mkdir(shadow, 0755), 0);
            ck_assert_int_eq(stat(store, &st), 0);
            root_ino = (unsigned long long)st.st_ino;
            shadow_baseline(store, shadow);
            have_shadow = true;
        }
        run_and_kill(store, powercut ? shadow : NULL, &rng, seed, &out);
        size_t first_new = powercut ? 0 : acked.count; /* a power cut may lose any round's */
        parse_acked(&out, &acked);
        free(out.text);
        if (powercut && !cut)
            continue; /* a kill alone: the page cache stays, and so does the shim's record */
        if (cut) {
            store = power_cut(store, shadow, root_ino, round, &rng);
            rm_rf(shadow);
            have_shadow = false;
        }
        store_path(store, "tmp", tmp);

        minidbx *db = store_open(store, 0);
        long left = dir_count_entries(tmp);
        ck_assert_msg(left <= 0, "round %ld (seed %llu): %ld files left in tmp/ after open", round,
                      (unsigned long long)seed, left);
        for (size_t i = first_new; i < acked.count; i++)
            expect_object_intact(db, &acked.ids[i], seed);
        minidbx_id *missing = malloc((acked.count + 1) * sizeof *missing);
        size_t missing_count = 0;
        ck_assert_ok(minidbx_missing(db, acked.ids, acked.count, missing, &missing_count));
        ck_assert_msg(missing_count == 0, "round %ld: %zu acknowledged ids missing", round, missing_count);
        free(missing);
        if (round % verify_every == 0 || round == iterations - 1)
            expect_store_consistent(db, seed);
        minidbx_close(db);
    }

    minidbx *db = store_open(store, 0);
    uint64_t objects = store_object_count(db);
    ck_assert_uint_ge(objects, 1);
    minidbx_close(db);
    printf("%s: %ld rounds in %.1f s, %zu acknowledged puts, %llu objects in the store, "
           "%zu unflushed writes written back at the cuts\n",
           powercut ? "powercut" : "crash", iterations, (now_ms() - start) / 1000.0, acked.count,
           (unsigned long long)objects, written_back);
    free(acked.ids);
    rm_rf(store);
    free(store);
}

/* Start race_worker (argv: NULL-terminated, argv[0] the program) under the
 * shim watching the directory watched, with MINIDBX_TEST_PAUSE=pause if
 * not NULL; *out_fd reads what it prints. */
static pid_t spawn_under_shim(const char *watched, const char *shadow, const char *pause, const char *const *argv,
                              int *out_fd)
{
    char real[PATH_MAX];
    int p[2];
    ck_assert_ptr_nonnull(realpath(watched, real));
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setenv("LD_PRELOAD", powercut_shim, 1) != 0 || setenv("MINIDBX_POWERCUT_STORE", real, 1) != 0 ||
            setenv("MINIDBX_POWERCUT_SHADOW", shadow, 1) != 0 || (pause && setenv("MINIDBX_TEST_PAUSE", pause, 1) != 0))
            _exit(126);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(race_worker, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Everything left to read on fd (which is closed), as a string. */
static char *read_rest(int fd)
{
    writer_output out = {0};
    while (read_some(fd, &out, 1000))
        ;
    close(fd);
    out.text = realloc(out.text, out.len + 1);
    out.text[out.len] = '\0';
    return out.text;
}

/* Run race_worker put SIZE SEED on store under the shim, which watches
 * the directory watched; with pause_file, it waits at "shard-made" and is
 * killed there. Returns what it printed. */
static char *worker_put(const char *watched, const char *store, const char *shadow, const char *pause_file)
{
    char pause[PATH_MAX + 32], marker[PATH_MAX + 32];
    const char *argv[] = { race_worker, store, "put", "70000", "4242", NULL };
    int fd;
    snprintf(pause, sizeof pause, "shard-made:%s", pause_file ? pause_file : "");
    pid_t pid = spawn_under_shim(watched, shadow, pause_file ? pause : NULL, argv, &fd);
    if (pause_file) {
        snprintf(marker, sizeof marker, "%s.shard-made", pause_file);
        double deadline = now_ms() + 10000;
        while (access(marker, F_OK) != 0 && now_ms() < deadline)
            usleep(1000);
        ck_assert_msg(access(marker, F_OK) == 0, "the put never made a shard directory");
        kill(pid, SIGKILL);
    }
    char *text = read_rest(fd);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(pause_file ? WIFSIGNALED(status) : WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return text;
}

/* worker_put without a pause, which must succeed: the id it was given. */
static minidbx_id worker_put_id(const char *watched, const char *store, const char *shadow)
{
    char *printed = worker_put(watched, store, shadow, NULL);
    char *line = strstr(printed, "id ");
    ck_assert_msg(line && strstr(printed, "rc 0"), "put: %s", printed);
    minidbx_id id;
    line[3 + 64] = '\0';
    ck_assert_ok(minidbx_id_parse(&id, line + 3));
    free(printed);
    return id;
}

/* A store made by the put that stores its first object: the directory's
 * entry in its parent (and the parents made with it) must be durable when
 * the put returns. The shim watches the parent. */
START_TEST(new_store_survives)
{
    char *parent = tmpdir_make("powercut-new");
    char shadow[PATH_MAX], store[PATH_MAX + 16];
    struct stat st;
    snprintf(shadow, sizeof shadow, "%s.shadow", parent);
    snprintf(store, sizeof store, "%s/a/store", parent);
    ck_assert_int_eq(mkdir(shadow, 0755), 0);
    ck_assert_int_eq(stat(parent, &st), 0);
    shadow_baseline(parent, shadow);
    minidbx_id id = worker_put_id(parent, store, shadow);
    parent = power_cut(parent, shadow, (unsigned long long)st.st_ino, 0, NULL);
    rm_rf(shadow);
    snprintf(store, sizeof store, "%s/a/store", parent);
    minidbx *db = store_open(store, MINIDBX_OPEN_NO_CREATE);
    expect_object_intact(db, &id, 4242);
    minidbx_close(db);
    rm_rf(parent);
    free(parent);
}
END_TEST

/* test_crash --pwrite FILE OFFSET TEXT [sync]: the process the shim
 * watches in flush_covers_an_earlier_process (exec'ed, so that
 * LD_PRELOAD applies). */
static int pwrite_main(char **argv)
{
    int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
    size_t len = strlen(argv[4]);
    if (fd < 0 || pwrite(fd, argv[4], len, (off_t)strtol(argv[3], NULL, 10)) != (ssize_t)len ||
        (argv[5] && fdatasync(fd) != 0))
        return 1;
    return close(fd) == 0 ? 0 : 1;
}

static const char *self_path;

/* Run test_crash --pwrite ... under the shim watching dir; it must exit 0. */
static void pwrite_under_shim(const char *dir, const char *shadow, const char *offset, const char *text,
                              const char *sync)
{
    char real[PATH_MAX], file[PATH_MAX + 8];
    ck_assert_ptr_nonnull(realpath(dir, real));
    snprintf(file, sizeof file, "%s/f", real);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setenv("LD_PRELOAD", powercut_shim, 1) != 0 || setenv("MINIDBX_POWERCUT_STORE", real, 1) != 0 ||
            setenv("MINIDBX_POWERCUT_SHADOW", shadow, 1) != 0)
            _exit(126);
        execl(self_path, self_path, "--pwrite", file, offset, text, sync, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pwrite %s at %s: status %d", text, offset,
                  status);
}

/* A flush covers every dirty page of its file, whoever wrote it: one
 * process writes the first half of a file and dies; the next writes the
 * second half and fdatasyncs. After a power cut (no writeback) both halves
 * are there. (LMDB's shape: a process that created meta.lmdb wrote its
 * header and died; the next one's commit flushed it. Without this the
 * shim lost the header, and the store "was not a minidbx store".) */
START_TEST(flush_covers_an_earlier_process)
{
    char *dir = tmpdir_make("powercut-flush");
    char shadow[PATH_MAX], file[PATH_MAX + 8], got[16] = "";
    struct stat st;
    snprintf(file, sizeof file, "%s/f", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs("........", f), 0);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(shadow, sizeof shadow, "%s.shadow", dir);
    ck_assert_int_eq(mkdir(shadow, 0755), 0);
    ck_assert_int_eq(stat(dir, &st), 0);
    shadow_baseline(dir, shadow);
    pwrite_under_shim(dir, shadow, "0", "AAAA", NULL);
    pwrite_under_shim(dir, shadow, "4", "BBBB", "sync");
    dir = power_cut(dir, shadow, (unsigned long long)st.st_ino, 0, NULL);
    rm_rf(shadow);
    snprintf(file, sizeof file, "%s/f", dir);
    f = fopen(file, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(got, sizeof got, f));
    fclose(f);
    ck_assert_str_eq(got, "AAAABBBB");
    rm_rf(dir);
    free(dir);
}
END_TEST

/* A put that created blobs/ab and blobs/ab/cd dies before it fsyncs their
 * parents; the next put of an object there finds them and must still not
 * rely on their entries being durable: after a power cut it must be
 * there. */
/* A new store in a temp directory, the shim's record of it begun in
 * shadow; *ino: the store directory's inode, for power_cut. */
static char *watched_store(const char *tag, char shadow[PATH_MAX], unsigned long long *ino)
{
    char *store = tmpdir_make(tag);
    struct stat st;
    minidbx_close(store_open(store, 0));
    snprintf(shadow, PATH_MAX, "%s.shadow", store);
    ck_assert_int_eq(mkdir(shadow, 0755), 0);
    ck_assert_int_eq(stat(store, &st), 0);
    *ino = (unsigned long long)st.st_ino;
    shadow_baseline(store, shadow);
    return store;
}

/* Cut the power on a watched_store, then id (race_worker's put of 70000
 * bytes, seed 4242) must read back intact; the store is removed. */
static void cut_power_and_expect(char *store, const char *shadow, unsigned long long ino, const minidbx_id *id)
{
    store = power_cut(store, shadow, ino, 0, NULL);
    rm_rf(shadow);
    minidbx *db = store_open(store, 0);
    expect_object_intact(db, id, 4242);
    minidbx_close(db);
    rm_rf(store);
    free(store);
}

START_TEST(shard_dir_of_a_dead_writer)
{
    char shadow[PATH_MAX], pause[PATH_MAX];
    unsigned long long ino;
    char *store = watched_store("powercut-shard", shadow, &ino);
    snprintf(pause, sizeof pause, "%s.pause", store);
    free(worker_put(store, store, shadow, pause));
    minidbx_id id = worker_put_id(store, store, shadow);
    cut_power_and_expect(store, shadow, ino, &id);
}
END_TEST

/* A durable put of bytes that a writer with durability none stored a
 * moment before (a bulk load, then normal use) holds across a power cut:
 * the blob was there, but neither its directory entry nor (in a batch,
 * which keeps it) its bytes need be on disk. */
static void reput_after_sync_none(bool batch)
{
    char shadow[PATH_MAX];
    unsigned long long ino;
    char *store = watched_store("powercut-reput", shadow, &ino);
    ck_assert_int_eq(setenv("RACE_WORKER_SYNC", "none", 1), 0);
    minidbx_id first = worker_put_id(store, store, shadow);
    ck_assert_int_eq(unsetenv("RACE_WORKER_SYNC"), 0);
    ck_assert_int_eq(setenv("RACE_WORKER_BATCH", batch ? "1" : "0", 1), 0);
    minidbx_id id = worker_put_id(store, store, shadow);
    ck_assert_int_eq(unsetenv("RACE_WORKER_BATCH"), 0);
    ck_assert(minidbx_id_equal(&first, &id));
    cut_power_and_expect(store, shadow, ino, &id);
}

/* Run race_worker STORE ARGS... under the shim watching the directory
 * watched; it must exit 0 and end with "rc 0". Returns what it printed. */
static char *worker_run(const char *watched, const char *store, const char *shadow, const char *const *args)
{
    const char *argv[8] = { race_worker, store };
    int argc = 2, fd, status;
    for (; args[argc - 2] && argc < 7; argc++)
        argv[argc] = args[argc - 2];
    argv[argc] = NULL;
    pid_t pid = spawn_under_shim(watched, shadow, NULL, argv, &fd);
    char *text = read_rest(fd);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(text, "rc 0"), "race_worker: %s", text);
    return text;
}

/* A durable name set that finds the name already there (MINIDBX_NAME_KEEP)
 * changes nothing, so its commit flushes nothing: it must still flush what
 * a writer with durability none put a moment before, the name included. */
START_TEST(durable_name_keep_of_a_sync_none_name)
{
    char shadow[PATH_MAX], hex[MINIDBX_ID_HEX_SIZE];
    unsigned long long ino;
    char *store = watched_store("powercut-name", shadow, &ino);
    ck_assert_int_eq(setenv("RACE_WORKER_SYNC", "none", 1), 0);
    const char *put_args[] = { "put", "300", "4242", "docs/a", NULL };
    char *printed = worker_run(store, store, shadow, put_args);
    ck_assert_int_eq(unsetenv("RACE_WORKER_SYNC"), 0);
    char *line = strstr(printed, "id ");
    ck_assert_ptr_nonnull(line);
    snprintf(hex, sizeof hex, "%.64s", line + 3);
    free(printed);
    const char *keep_args[] = { "name-keep", "docs/a", hex, NULL };
    free(worker_run(store, store, shadow, keep_args));
    store = power_cut(store, shadow, ino, 0, NULL);
    rm_rf(shadow);
    minidbx *db = store_open(store, 0);
    minidbx_name_info info;
    ck_assert_msg(minidbx_name_get(db, "docs/a", &info) == 0, "the name acknowledged durably is gone");
    char got[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&info.id, got);
    ck_assert_str_eq(got, hex);
    minidbx_close(db);
    rm_rf(store);
    free(store);
}
END_TEST

START_TEST(durable_reput_of_a_sync_none_put)
{
    reput_after_sync_none(false);
}
END_TEST

START_TEST(durable_batch_reput_of_a_sync_none_put)
{
    reput_after_sync_none(true);
}
END_TEST

START_TEST(kill_writer_repeatedly)
{
    run_rounds(false);
}
END_TEST

START_TEST(cut_power_repeatedly)
{
    run_rounds(true);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--pwrite") == 0)
        return pwrite_main(argv);
    self_path = argv[0];
    if (argc < 2) {
        fprintf(stderr, "usage: %s CRASH_WRITER [ITERATIONS [POWERCUT_SHIM]]\n", argv[0]);
        return 2;
    }
    writer_path = argv[1];
    if (argc > 2)
        iterations = strtol(argv[2], NULL, 10);
    if (argc > 3)
        powercut_shim = argv[3];
    if (argc > 4)
        race_worker = argv[4];
    if (iterations < 1)
        iterations = 1;
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("sigkill");
    /* 5000 rounds of a torture run take far longer than the normal 200 */
    tcase_set_timeout(tc, iterations > 1000 ? 7200 : TEST_TIMEOUT_LONG_S);
    tcase_add_test(tc, powercut_shim ? cut_power_repeatedly : kill_writer_repeatedly);
    if (powercut_shim && race_worker) {
        tcase_add_test(tc, shard_dir_of_a_dead_writer);
        tcase_add_test(tc, new_store_survives);
        tcase_add_test(tc, flush_covers_an_earlier_process);
        tcase_add_test(tc, durable_reput_of_a_sync_none_put);
        tcase_add_test(tc, durable_batch_reput_of_a_sync_none_put);
        tcase_add_test(tc, durable_name_keep_of_a_sync_none_name);
    }
    suite_add_tcase(s, tc);
    return run_suite(s);
}
