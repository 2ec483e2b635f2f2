/* test_races.c - verify (and --repair), gc, delete and put+name from several
 * processes on one store, each held at the dangerous instant by the
 * library's test-only pause points (MINIDBX_TEST_PAUSE, see testhook.c):
 *   - an object deleted and put again (named) while verify scans: neither
 *     verify nor repair reports it, repair does not remove it or its name;
 *   - a put between its rename and its commit while verify scans: no
 *     orphan is reported or removed;
 *   - gc while a put+name is between the put and the name, and a put+name
 *     while gc is between its scan and its delete: the name and its object
 *     survive; with put and name_set as two calls gc wins (the control
 *     that shows the pause sits where the window is);
 *   - gc with its grace period and a put of an old unnamed object: a put
 *     that commits first makes it young (gc keeps it), one that waits for
 *     gc stores it again; either way it is there when the put returns;
 *   - a put+name of an object whose delete is between its commit and its
 *     unlink: the put waits, its blob is not unlinked after its commit;
 *   - a bounded random mix of all of them from several processes: no
 *     acknowledged name is lost and verify never reports a problem.
 * The worker processes are race_worker (argv[1]). */
#include "util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THRESHOLD MINIDBX_DEFAULT_INLINE_THRESHOLD
#define FILE_SIZE (THRESHOLD * 3)
#define INLINE_SIZE 700
#define WAIT_MAX_MS 10000
#define STRESS_WORKERS 4
#define STRESS_ITERATIONS 40

static const char *worker_path;

/* ---- workers ---- */

typedef struct {
    pid_t pid;
    char out[PATH_MAX];
} worker;

static unsigned worker_serial;

/* Start race_worker on fx_dir with args (NULL-terminated) and, if pause is
 * not NULL, MINIDBX_TEST_PAUSE=pause:<fx_dir>/pause in its environment. */
static worker spawn(const char *pause, const char *const *args)
{
    worker w;
    snprintf(w.out, sizeof w.out, "%s/worker-%u.out", fx_dir, worker_serial++);
    const char *argv[12] = { worker_path, fx_dir };
    int argc = 2;
    for (; args[argc - 2] && argc < 11; argc++)
        argv[argc] = args[argc - 2];
    argv[argc] = NULL;
    fflush(NULL);
    w.pid = fork();
    ck_assert_int_ge(w.pid, 0);
    if (w.pid == 0) {
        char env[PATH_MAX + 128];
        int fd = open(w.out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
            _exit(3);
        if (pause) {
            snprintf(env, sizeof env, "%s:%s/pause", pause, fx_dir);
            setenv("MINIDBX_TEST_PAUSE", env, 1);
        } else {
            unsetenv("MINIDBX_TEST_PAUSE");
        }
        execv(worker_path, (char *const *)argv);
        _exit(4);
    }
    return w;
}

/* Wait for the worker; return its output (malloc'd) after checking that it
 * ran and printed "rc <want_rc>" last. */
static char *finish(const worker *w, int want_rc)
{
    int status;
    ck_assert_int_eq(waitpid(w->pid, &status, 0), w->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "race_worker %d failed (status %d)",
                  (int)w->pid, status);
    size_t size;
    char *out = (char *)file_read_all(w->out, &size);
    ck_assert_ptr_nonnull(out);
    char *copy = realloc(out, size + 1);
    ck_assert_ptr_nonnull(copy);
    copy[size] = '\0';
    char want[32];
    snprintf(want, sizeof want, "rc %d\n", want_rc);
    ck_assert_msg(size >= strlen(want) && strcmp(copy + size - strlen(want), want) == 0,
                  "race_worker printed:\n%s\nexpected it to end with %s", copy, want);
    return copy;
}

static void finish_ok(const worker *w)
{
    free(finish(w, 0));
}

/* ---- pause points ---- */

static void marker_path(const char *point, char *out)
{
    snprintf(out, PATH_MAX, "%s/pause.%s", fx_dir, point);
}

/* Poll (1 ms, bounded) until the paused process has created its marker. */
static void wait_paused(const char *point)
{
    char path[PATH_MAX];
    struct timespec poll = { 0, 1000000L };
    marker_path(point, path);
    int ms = 0;
    while (!path_exists(path) && ms++ < WAIT_MAX_MS)
        nanosleep(&poll, NULL);
    ck_assert_msg(path_exists(path), "no process reached the pause point %s", point);
}

static void release(const char *point)
{
    char path[PATH_MAX];
    marker_path(point, path);
    ck_assert_int_eq(unlink(path), 0);
}

/* Until pid waits for a flock (the store lock): /proc/locks lists it as
 * "-> FLOCK ... pid". This is how a test knows a gc or verify is queued
 * behind a paused writer, not merely started. */
static void wait_blocked_on_lock(pid_t pid)
{
    struct timespec poll = { 0, 1000000L };
    for (int ms = 0; ms < WAIT_MAX_MS; ms++) {
        FILE *f = fopen("/proc/locks", "r");
        ck_assert_ptr_nonnull(f);
        char line[256];
        int blocked = 0;
        while (!blocked && fgets(line, sizeof line, f)) {
            long who;
            if (strstr(line, "-> FLOCK") && sscanf(strstr(line, "-> FLOCK") + 8, " %*s %*s %ld", &who) == 1)
                blocked = who == (long)pid;
        }
        fclose(f);
        if (blocked)
            return;
        nanosleep(&poll, NULL);
    }
    ck_abort_msg("process %d never waited for the store lock", (int)pid);
}

/* ---- expected bytes ---- */

static minidbx_id seeded_id(size_t size, uint64_t seed)
{
    test_rng rng;
    minidbx_id id;
    rng_seed(&rng, seed);
    unsigned char *data = rng_alloc(&rng, size);
    sha256_raw(data, size, &id);
    free(data);
    return id;
}

static void expect_named(const char *name, const minidbx_id *id)
{
    minidbx_name_info info;
    ck_assert_ok(minidbx_name_get(fx_db, name, &info));
    ck_assert(minidbx_id_equal(&info.id, id));
    void *data = NULL;
    size_t size = 0;
    ck_assert_ok(minidbx_get(fx_db, id, &data, &size));
    minidbx_free(data);
}

static void expect_clean_store(void)
{
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
}

static void expect_no_problem(const char *output)
{
    ck_assert_msg(!strstr(output, "problem "), "verify reported a problem on a healthy store:\n%s", output);
}

static void put_in_worker(size_t size, uint64_t seed, const char *name)
{
    char size_text[32], seed_text[32];
    snprintf(size_text, sizeof size_text, "%zu", size);
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    const char *args[] = { "put", size_text, seed_text, name, NULL };
    worker w = spawn(NULL, args);
    finish_ok(&w);
}

/* ---- verify while an object is deleted and put again ---- */

static void deleted_and_put_again(const char *mode)
{
    minidbx_id x = seeded_id(FILE_SIZE, 1);
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&x, hex);
    put_in_worker(FILE_SIZE, 1, "keep/x");
    put_in_worker(INLINE_SIZE, 2, "keep/small");

    const char *verify_args[] = { mode, NULL };
    worker v = spawn("verify-object,verify-scanned", verify_args);
    wait_paused("verify-object"); /* it has read x's record, not opened its file */
    const char *rm_args[] = { "rm", hex, NULL };
    worker rm = spawn(NULL, rm_args);
    finish_ok(&rm);
    release("verify-object");
    wait_paused("verify-scanned"); /* it saw x missing */
    put_in_worker(FILE_SIZE, 1, "keep/x");
    release("verify-scanned");
    char *out = finish(&v, 0);
    expect_no_problem(out);
    free(out);
    expect_named("keep/x", &x);
    minidbx_id small = seeded_id(INLINE_SIZE, 2);
    expect_named("keep/small", &small);
}

START_TEST(verify_object_deleted_and_put_again)
{
    deleted_and_put_again("verify");
}
END_TEST

START_TEST(repair_object_deleted_and_put_again)
{
    deleted_and_put_again("repair");
}
END_TEST

/* ---- verify while a put is between rename and commit ---- */

static void verify_during_put(const char *mode)
{
    const char *put_args[] = { "put", "49152", "3", "fresh", NULL };
    worker p = spawn("put-renamed", put_args);
    wait_paused("put-renamed"); /* its blob is in place, its record not yet */
    const char *verify_args[] = { mode, NULL };
    worker v = spawn("verify-scanned", verify_args);
    wait_paused("verify-scanned"); /* its scan saw the blob without a record */
    release("verify-scanned");
    wait_blocked_on_lock(v.pid); /* the re-check waits for the put */
    release("put-renamed");
    finish_ok(&p);
    char *out = finish(&v, 0);
    expect_no_problem(out);
    free(out);
    minidbx_id id = seeded_id(49152, 3);
    expect_named("fresh", &id);
}

START_TEST(verify_during_put_sees_no_orphan)
{
    verify_during_put("verify");
}
END_TEST

START_TEST(repair_during_put_keeps_it)
{
    verify_during_put("repair");
}
END_TEST

/* ---- gc against put+name ---- */

static void gc_during_put_named(size_t size)
{
    char size_text[32];
    snprintf(size_text, sizeof size_text, "%zu", size);
    const char *put_args[] = { "put", size_text, "4", "named/by/put", NULL };
    worker p = spawn("put-before-name", put_args);
    wait_paused("put-before-name");
    const char *gc_args[] = { "gc", NULL };
    worker g = spawn(NULL, gc_args);
    wait_blocked_on_lock(g.pid);
    release("put-before-name");
    finish_ok(&p);
    finish_ok(&g);
    minidbx_id id = seeded_id(size, 4);
    expect_named("named/by/put", &id);
}

START_TEST(gc_waits_for_put_named)
{
    gc_during_put_named(INLINE_SIZE);
    gc_during_put_named(FILE_SIZE);
}
END_TEST

/* The control: as two calls, a gc between put and name_set wins. */
START_TEST(gc_between_separate_put_and_name)
{
    char marker[PATH_MAX];
    marker_path("between", marker);
    const char *put_args[] = { "put-then-name", "700", "5", "too/late", marker, NULL };
    worker p = spawn(NULL, put_args);
    wait_paused("between");
    const char *gc_args[] = { "gc", NULL };
    worker g = spawn(NULL, gc_args);
    char *out = finish(&g, 0);
    ck_assert_msg(strstr(out, "removed 1\n"), "gc output:\n%s", out);
    free(out);
    release("between");
    free(finish(&p, MINIDBX_ENOTFOUND));
}
END_TEST

static void put_named_during_gc(size_t size)
{
    char size_text[32];
    snprintf(size_text, sizeof size_text, "%zu", size);
    put_in_worker(size, 6, NULL); /* unnamed: gc's to remove */
    const char *gc_args[] = { "gc", NULL };
    worker g = spawn("gc-scanned", gc_args);
    wait_paused("gc-scanned");
    const char *put_args[] = { "put", size_text, "6", "named/late", NULL };
    worker p = spawn(NULL, put_args);
    wait_blocked_on_lock(p.pid);
    release("gc-scanned");
    finish_ok(&g);
    finish_ok(&p);
    minidbx_id id = seeded_id(size, 6);
    expect_named("named/late", &id);
}

START_TEST(put_named_waits_for_gc)
{
    put_named_during_gc(INLINE_SIZE);
    put_named_during_gc(FILE_SIZE);
}
END_TEST

/* ---- gc with a grace period against a put of an old unnamed object ---- */

/* A worker that puts the seeded object, unnamed (held at pause, if any). */
static worker spawn_put(const char *pause, size_t size, uint64_t seed)
{
    char size_text[32], seed_text[32];
    snprintf(size_text, sizeof size_text, "%zu", size);
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    const char *args[] = { "put", size_text, seed_text, NULL };
    return spawn(pause, args);
}

/* An unnamed object put 15 days ago (the test clock, in the worker). */
static void put_old_in_worker(size_t size, uint64_t seed)
{
    setenv("MINIDBX_TEST_CLOCK_SHIFT", "-1300000", 1);
    put_in_worker(size, seed, NULL);
    unsetenv("MINIDBX_TEST_CLOCK_SHIFT");
}

/* Run gc with the default grace to its end; it must print want. */
static void expect_gc_removed(const worker *g, const char *want)
{
    char *out = finish(g, 0);
    ck_assert_msg(strstr(out, want), "gc output:\n%s\nexpected %s", out, want);
    free(out);
}

static const char *const gc_grace_args[] = { "gc-grace", NULL };

/* The put is held between its rename and its commit (it holds the store
 * lock), gc queues behind it: the put's commit makes the object young and
 * gc, deciding after, keeps it. */
START_TEST(reput_before_gc_keeps_old_object)
{
    put_old_in_worker(FILE_SIZE, 8);
    worker p = spawn_put("put-renamed", FILE_SIZE, 8);
    wait_paused("put-renamed");
    worker g = spawn(NULL, gc_grace_args);
    wait_blocked_on_lock(g.pid);
    release("put-renamed");
    finish_ok(&p);
    expect_gc_removed(&g, "removed 0\n");
    minidbx_id id = seeded_id(FILE_SIZE, 8);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 1);
    expect_clean_store();
}
END_TEST

/* gc is held between its scan (which found the object old) and its delete;
 * the put waits for it and then stores the object again, young. */
static void reput_during_gc(size_t size, uint64_t seed)
{
    put_old_in_worker(size, seed);
    worker g = spawn("gc-scanned", gc_grace_args);
    wait_paused("gc-scanned");
    worker p = spawn_put(NULL, size, seed);
    wait_blocked_on_lock(p.pid);
    release("gc-scanned");
    expect_gc_removed(&g, "removed 1\n");
    finish_ok(&p);
    minidbx_id id = seeded_id(size, seed);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 1);
    worker again = spawn(NULL, gc_grace_args);
    expect_gc_removed(&again, "removed 0\n");
}

/* A file put: it waits for the store lock, which /proc/locks shows (an
 * inline put waits for LMDB's writer lock instead, which it does not). */
START_TEST(reput_waits_for_gc_and_stores_again)
{
    reput_during_gc(FILE_SIZE, 10);
    expect_clean_store();
}
END_TEST

/* ---- put+name while a delete is between its commit and its unlink ---- */

START_TEST(put_named_waits_for_delete)
{
    minidbx_id x = seeded_id(FILE_SIZE, 7);
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&x, hex);
    put_in_worker(FILE_SIZE, 7, "old/name");
    const char *rm_args[] = { "rm", hex, NULL };
    worker rm = spawn("delete-committed", rm_args);
    wait_paused("delete-committed"); /* the record is gone, the blob not yet */
    char size_text[32];
    snprintf(size_text, sizeof size_text, "%u", (unsigned)FILE_SIZE);
    const char *put_args[] = { "put", size_text, "7", "new/name", NULL };
    worker p = spawn(NULL, put_args);
    wait_blocked_on_lock(p.pid); /* it must not rename its blob before the unlink */
    release("delete-committed");
    finish_ok(&rm);
    finish_ok(&p);
    expect_named("new/name", &x);
    minidbx_name_info info;
    ck_assert_rc(minidbx_name_get(fx_db, "old/name", &info), MINIDBX_ENOTFOUND);
    expect_clean_store();
}
END_TEST

/* ---- everything at once, bounded ---- */

typedef struct {
    char name[64];
    minidbx_id id;
} acknowledged_name;

/* Replay a stress worker's output: "named" adds, "unnamed" removes. */
static size_t replay(char *out, acknowledged_name *names, size_t count, size_t capacity)
{
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64], hex[MINIDBX_ID_HEX_SIZE];
        if (sscanf(line, "named %63s %64s", name, hex) == 2) {
            ck_assert_uint_lt(count, capacity);
            snprintf(names[count].name, sizeof names[count].name, "%s", name);
            ck_assert_ok(minidbx_id_parse(&names[count].id, hex));
            count++;
        } else if (sscanf(line, "unnamed %63s", name) == 1) {
            for (size_t i = 0; i < count; i++)
                if (strcmp(names[i].name, name) == 0)
                    names[i--] = names[--count];
        }
    }
    return count;
}

/* ---- a reader killed inside its read transaction ---- */

static long long meta_bytes(void)
{
    char path[PATH_MAX];
    struct stat st;
    store_path(fx_dir, "meta.lmdb", path);
    ck_assert_int_eq(stat(path, &st), 0);
    return (long long)st.st_size;
}

/* A verify killed -9 at a pause inside its read transaction leaves its
 * LMDB reader slot behind, and that old snapshot keeps LMDB from reusing
 * any page freed since: the store's writers must clear such slots now and
 * then (not only at open), or meta.lmdb grows with every commit. Before,
 * 2,000 name sets after the kill grew it by tens of MB. */
START_TEST(a_killed_reader_pins_nothing)
{
    test_rng rng;
    rng_seed(&rng, 61);
    minidbx_id a = store_put_random(fx_db, &rng, FILE_SIZE), b = store_put_random(fx_db, &rng, FILE_SIZE);
    const char *verify_args[] = { "verify", NULL };
    worker v = spawn("verify-object", verify_args);
    wait_paused("verify-object"); /* inside its scan: its read transaction is open */
    ck_assert_int_eq(kill(v.pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(v.pid, &status, 0), v.pid);
    release("verify-object");
    /* The writers look for dead readers at most once a second (the puts
     * above may just have): wait past that, then write. */
    struct timespec past_a_second = { 1, 100000000L };
    nanosleep(&past_a_second, NULL);
    long long before = meta_bytes();
    for (unsigned i = 0; i < 2000; i++)
        ck_assert_ok(minidbx_name_set(fx_db, "churn", i % 2 ? &a : &b));
    long long grown = meta_bytes() - before;
    ck_assert_msg(grown < (1 << 20), "meta.lmdb grew by %lld bytes in 2,000 name sets", grown);
}
END_TEST

START_TEST(stress_mix_loses_nothing)
{
    enum { CAPACITY = STRESS_WORKERS * STRESS_ITERATIONS };
    static acknowledged_name names[CAPACITY];
    worker w[STRESS_WORKERS];
    char worker_text[STRESS_WORKERS][16], iterations[16];
    snprintf(iterations, sizeof iterations, "%d", STRESS_ITERATIONS);
    for (int i = 0; i < STRESS_WORKERS; i++) {
        snprintf(worker_text[i], sizeof worker_text[i], "%d", i);
        const char *args[] = { "stress", worker_text[i], iterations, NULL };
        w[i] = spawn(NULL, args);
    }
    size_t count = 0;
    for (int i = 0; i < STRESS_WORKERS; i++) {
        char *out = finish(&w[i], 0);
        expect_no_problem(out);
        count = replay(out, names, count, CAPACITY);
        free(out);
    }
    ck_assert_uint_gt(count, 0);
    for (size_t i = 0; i < count; i++)
        expect_named(names[i].name, &names[i].id);
    size_t listed = 0;
    static minidbx_name_info infos[CAPACITY + 1];
    ck_assert_ok(minidbx_name_list(fx_db, NULL, NULL, infos, CAPACITY + 1, &listed));
    ck_assert_uint_eq(listed, count);
    expect_clean_store();
}
END_TEST

static Suite *races_suite(void)
{
    Suite *s = suite_create("races");
    TCase *tc = tcase_with_store("races", TEST_TIMEOUT_S);
    tcase_add_test(tc, verify_object_deleted_and_put_again);
    tcase_add_test(tc, repair_object_deleted_and_put_again);
    tcase_add_test(tc, verify_during_put_sees_no_orphan);
    tcase_add_test(tc, repair_during_put_keeps_it);
    tcase_add_test(tc, gc_waits_for_put_named);
    tcase_add_test(tc, gc_between_separate_put_and_name);
    tcase_add_test(tc, put_named_waits_for_gc);
    tcase_add_test(tc, reput_before_gc_keeps_old_object);
    tcase_add_test(tc, reput_waits_for_gc_and_stores_again);
    tcase_add_test(tc, put_named_waits_for_delete);
    tcase_add_test(tc, stress_mix_loses_nothing);
    tcase_add_test(tc, a_killed_reader_pins_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_races RACE_WORKER\n");
        return 2;
    }
    worker_path = argv[1];
    return run_suite(races_suite());
}
