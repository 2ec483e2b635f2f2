/* test_cluster.c - the cluster: backend over local-directory nodes: the
 * cluster file's grammar (a bad field is EINVAL naming it), placement by
 * rendezvous hashing (R copies on the best nodes; adding or removing one
 * of N nodes moves about 1/N of the objects), reads that fall back on a
 * corrupt copy, names resolved by last writer wins, minidbx_nodes, and
 * repair bringing objects and names back to their homes. */
#include "util.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NODES 3

static char *dir;
static char file[PATH_MAX];
static char node_dir[8][PATH_MAX];

/* dir/cluster.json naming nodes n0..n(count-1) with the extra fields. */
static void write_cluster(unsigned count, const char *fields)
{
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text, "{%s%s\"nodes\": [", fields, fields[0] ? ", " : "");
    for (unsigned i = 0; i < count; i++) {
        snprintf(node_dir[i], sizeof node_dir[i], "%s/n%u", dir, i);
        len += (size_t)snprintf(text + len, sizeof text - len, "%s\"n%u\"", i ? ", " : "", i);
    }
    snprintf(text + len, sizeof text - len, "]}");
    ck_assert_int_eq(file_write_all(file, text, strlen(text)), 0);
}

/* Nodes open with the cluster's options: no fsync, for speed. */
static minidbx *open_cluster(void)
{
    char location[PATH_MAX + 16];
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.durability = MINIDBX_SYNC_NONE;
    snprintf(location, sizeof location, "cluster:%s", file);
    return store_open_opts(location, &opts);
}

/* One node's store, opened directly beside the cluster (in the same
 * process, with the same durability: a second open shares the store and
 * may not ask for more). */
static minidbx *node_open(const char *node)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.durability = MINIDBX_SYNC_NONE;
    return store_open_opts(node, &opts);
}

static void setup(void)
{
    dir = tmpdir_make("cluster");
    snprintf(file, sizeof file, "%s/cluster.json", dir);
}

static void teardown(void)
{
    rm_rf(dir);
    free(dir);
}

/* fn(arg) in a child process: its result (>= 0, or a MINIDBX_E* code;
 * EIO when the child died). For whatever opens the nodes again while this
 * process has them open through a cluster handle: a second open of a
 * local store in a process that has it open breaks LMDB's locks (it takes
 * the lock file as if alone and resets the shared lock table: a writer of
 * the first handle no longer excludes one of the second, and a commit
 * racing the open may be dropped by the next write). minidbx.h promises a
 * store opened by several processes at once, not twice in one. No check
 * asserts here: also called off the test's thread. */
static int in_child(int (*fn)(const void *arg), const void *arg)
{
    int fds[2], status, out = MINIDBX_EIO;
    pid_t pid;

    if (pipe(fds) != 0)
        return MINIDBX_EIO;
    if ((pid = fork()) == 0) {
        /* not the descriptors this process had open: a store lock held
         * through one (flock: shared with the child) would be the child's
         * too, until it exits */
        if ((fds[1] > 3 && close_range(3, (unsigned)fds[1] - 1, 0) != 0) ||
            close_range((unsigned)fds[1] + 1, ~0u, 0) != 0)
            for (int fd = 3; fd < 4096; fd++) /* a kernel before close_range */
                if (fd != fds[1])
                    close(fd);
        int rc = fn(arg);
        _exit(write(fds[1], &rc, sizeof rc) == (ssize_t)sizeof rc ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = pid > 0 ? read(fds[0], &out, sizeof out) : -1;
    close(fds[0]);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != (ssize_t)sizeof out)
        return MINIDBX_EIO;
    return out;
}

struct holders_of {
    unsigned count;
    const minidbx_id *id;
};

static int holders_in_child(const void *arg)
{
    const struct holders_of *h = arg;
    int mask = 0;
    for (unsigned i = 0; i < h->count && mask >= 0; i++) {
        minidbx *node = NULL;
        int rc = minidbx_open(&node, node_dir[i], NULL);
        if (rc == 0 && (rc = minidbx_exists(node, h->id)) >= 0)
            mask |= rc << i;
        else
            mask = rc;
        minidbx_close(node);
    }
    return mask;
}

/* Which of the nodes n0..n(count-1) hold id (a bit each), each opened
 * directly, in a child process (in_child). Opened in this one, with the
 * cluster's writers running, a put's copy was really lost: 2 holders of
 * 3, once in about 40 runs of puts_reuse_their_copy_threads under load. */
static unsigned holders(unsigned count, const minidbx_id *id)
{
    struct holders_of h = { count, id };
    int mask = in_child(holders_in_child, &h);
    ck_assert_msg(mask >= 0, "a node could not be opened or asked: %s", minidbx_strerror(mask));
    return (unsigned)mask;
}

static unsigned bits(unsigned mask)
{
    return (unsigned)__builtin_popcount(mask);
}

/* Hold the library at point (MINIDBX_TEST_PAUSE, read at the first open of
 * this process): marker (PATH_MAX + 64 bytes) is the file that says it is
 * held; removing it lets it go on. */
static void pause_at(const char *point, char *marker)
{
    char spec[PATH_MAX + 64];
    snprintf(spec, sizeof spec, "%s:%s/pause", point, dir);
    snprintf(marker, PATH_MAX + 64, "%s/pause.%s", dir, point);
    setenv("MINIDBX_TEST_PAUSE", spec, 1);
}

/* --- the cluster file ---------------------------------------------------------- */

static void expect_bad(const char *text, const char *field)
{
    char location[PATH_MAX + 16];
    minidbx *db = NULL;

    ck_assert_int_eq(file_write_all(file, text, strlen(text)), 0);
    snprintf(location, sizeof location, "cluster:%s", file);
    ck_assert_rc(minidbx_open(&db, location, NULL), MINIDBX_EINVAL);
    ck_assert_ptr_null(db);
    ck_assert_msg(strstr(minidbx_errmsg(NULL), field) != NULL, "%s: the message does not name %s: %s", text,
                  field, minidbx_errmsg(NULL));
}

START_TEST(bad_files_name_the_field)
{
    expect_bad("", "not a JSON object");
    expect_bad("[1]", "not a JSON object");
    expect_bad("{\"replicas\": 2}", "\"nodes\"");
    expect_bad("{\"nodes\": []}", "\"nodes\"");
    expect_bad("{\"nodes\": \"a\"}", "\"nodes\"");
    expect_bad("{\"nodes\": [1]}", "\"nodes[0]\"");
    expect_bad("{\"nodes\": [\"a\", \"\"]}", "\"nodes[1]\"");
    expect_bad("{\"nodes\": [\"a\", \"a\"]}", "\"nodes[1]\"");
    expect_bad("{\"nodes\": [\"cluster:x.json\"]}", "\"nodes[0]\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"replicas\": 3}", "\"replicas\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"replicas\": 0}", "\"replicas\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"replicas\": \"2\"}", "\"replicas\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"replicas\": 1.5}", "\"replicas\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"replicas\": 1, \"write_quorum\": 2}", "\"write_quorum\"");
    expect_bad("{\"nodes\": [\"a\", \"b\"], \"write_quorum\": 0}", "\"write_quorum\"");
    expect_bad("{\"nodes\": [\"a\"], \"timeout_ms\": 0}", "\"timeout_ms\"");
    expect_bad("{\"nodes\": [\"a\"], \"timeout_ms\": -5}", "\"timeout_ms\"");
    expect_bad("{\"nodes\": [\"a\"], \"replica\": 1}", "\"replica\"");
    expect_bad("{\"nodes\": [\"a\"], \"cache_objects\": -1}", "\"cache_objects\"");
    expect_bad("{\"nodes\": [\"nosuch:x\"]}", "nodes[0]");
    /* one directory twice would be one store counted as two copies */
    expect_bad("{\"nodes\": [\"a\", \"b\", \"./a\"]}", "\"nodes[2]\" names the directory of nodes[0]");
    char text[2 * PATH_MAX], dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    *strrchr(dir, '/') = '\0';
    snprintf(text, sizeof text, "{\"nodes\": [\"a\", \"file://%s/a\"]}", dir);
    expect_bad(text, "\"nodes[1]\" names the directory of nodes[0]");
}
END_TEST

START_TEST(defaults_and_info)
{
    write_cluster(NODES, "");
    minidbx *db = open_cluster();
    minidbx_store_info info;
    minidbx_node_info nodes[4];
    size_t count;
    minidbx_id id;

    ck_assert_ok(minidbx_put(db, "hello", 5, &id));
    ck_assert_uint_eq(bits(holders(NODES, &id)), 2); /* R = 2 by default */
    ck_assert_ok(minidbx_info(db, &info));
    ck_assert_str_eq(info.backend, "cluster");
    ck_assert_uint_eq(info.objects, 1); /* once, not once per copy */
    ck_assert_uint_eq(info.bytes, 5);
    ck_assert_ok(minidbx_nodes(db, NULL, nodes, 4, &count));
    ck_assert_uint_eq(count, NODES);
    for (unsigned i = 0; i < NODES; i++) {
        ck_assert_str_eq(nodes[i].location, node_dir[i]);
        ck_assert_int_eq(nodes[i].up, 1);
    }
    ck_assert_ok(minidbx_nodes(db, &id, nodes, 4, &count));
    ck_assert_uint_eq(count, 2);
    ck_assert_int_eq(nodes[0].home + nodes[1].home, 2);
    minidbx_close(db);

    /* a store of one node has no nodes to tell */
    minidbx *single = node_open(node_dir[0]);
    ck_assert_rc(minidbx_nodes(single, NULL, nodes, 4, &count), MINIDBX_EUNSUPPORTED);
    minidbx_close(single);
}
END_TEST

/* --- objects ---------------------------------------------------------------------- */

START_TEST(put_get_exists_on_r_nodes)
{
    write_cluster(NODES, "\"replicas\": 2, \"write_quorum\": 2");
    minidbx *db = open_cluster();
    test_rng rng;
    minidbx_id ids[60];
    unsigned on_node[NODES] = { 0 };

    rng_seed(&rng, 11);
    for (unsigned i = 0; i < 60; i++) {
        size_t size = i % 10 == 0 ? 200000 + i : 100 + i; /* some are files */
        unsigned char *data = rng_alloc(&rng, size);
        ck_assert_ok(minidbx_put(db, data, size, &ids[i]));
        store_expect_bytes(db, &ids[i], data, size);
        ck_assert_int_eq(minidbx_exists(db, &ids[i]), 1);
        unsigned mask = holders(NODES, &ids[i]);
        ck_assert_uint_eq(bits(mask), 2);
        for (unsigned n = 0; n < NODES; n++)
            on_node[n] += (mask >> n) & 1;
        free(data);
    }
    for (unsigned n = 0; n < NODES; n++) /* spread: 40 each on average */
        ck_assert_msg(on_node[n] > 20, "node %u holds only %u of 60", n, on_node[n]);

    /* missing and list merge the nodes' answers, each id once */
    minidbx_id ask[3] = { ids[0], { { 1 } }, ids[1] }, missing[3];
    size_t count;
    ck_assert_ok(minidbx_missing(db, ask, 3, missing, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert(minidbx_id_equal(&missing[0], &ask[1]));
    minidbx_object_info page[7];
    unsigned listed = 0;
    const minidbx_id *after = NULL;
    minidbx_id last;
    do {
        ck_assert_ok(minidbx_list(db, after, page, 7, &count));
        for (size_t i = 0; i < count; i++) {
            if (listed + i > 0)
                ck_assert_int_lt(memcmp(last.bytes, page[i].id.bytes, 32), 0);
            last = page[i].id;
        }
        listed += (unsigned)count;
        after = &last;
    } while (count == 7);
    ck_assert_uint_eq(listed, 60);

    /* a writer given nothing (NULL, 0) stores the empty object */
    minidbx_writer *w;
    minidbx_id empty, empty_want;
    ck_assert_ok(minidbx_writer_open(db, &w));
    ck_assert_ok(minidbx_writer_write(w, NULL, 0));
    ck_assert_ok(minidbx_writer_commit(w, &empty));
    sha256_raw("", 0, &empty_want);
    ck_assert(minidbx_id_equal(&empty, &empty_want));
    ck_assert_int_eq(minidbx_exists(db, &empty), 1);

    /* delete removes every copy */
    ck_assert_ok(minidbx_delete(db, &ids[0]));
    ck_assert_uint_eq(holders(NODES, &ids[0]), 0);
    ck_assert_rc(minidbx_delete(db, &ids[0]), MINIDBX_ENOTFOUND);
    minidbx_close(db);
}
END_TEST

/* --- the threads that write copies ------------------------------------------------ */

#define TIDS_MAX 256

/* The ids of this process's threads (/proc/self/task), sorted; how many. */
static size_t thread_ids(long out[TIDS_MAX])
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && n < TIDS_MAX)
            out[n++] = strtol(e->d_name, NULL, 10);
    closedir(d);
    for (size_t i = 1; i < n; i++) /* few: insertion sort */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            long t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

struct putter {
    minidbx *db;
    uint64_t seed;
    minidbx_id ids[25];
    int rc;
};

static void *putter_main(void *arg)
{
    struct putter *p = arg;
    test_rng rng;
    rng_seed(&rng, p->seed);
    for (unsigned i = 0; i < 25 && p->rc == 0; i++) {
        size_t size = 100 + i * 37;
        unsigned char *data = rng_alloc(&rng, size);
        p->rc = minidbx_put(p->db, data, size, &p->ids[i]);
        free(data);
    }
    return NULL;
}

/* A put hands its other copies to threads that stay with the handle: after
 * the first put, more puts start and end no thread (before, each put
 * started and joined one per copy). Several threads putting at once get
 * every copy written, and close stops the workers. */
START_TEST(puts_reuse_their_copy_threads)
{
    enum { PUTTERS = 4 };
    long before[TIDS_MAX], first[TIDS_MAX], after[TIDS_MAX];
    struct putter putters[PUTTERS];
    pthread_t threads[PUTTERS];
    test_rng rng;
    minidbx_id id;

    write_cluster(4, "\"replicas\": 3");
    minidbx *db = open_cluster();
    rng_seed(&rng, 5);
    size_t n_before = thread_ids(before);
    unsigned char *data = rng_alloc(&rng, 5000);
    ck_assert_ok(minidbx_put(db, data, 5000, &id));
    free(data);
    size_t n_first = thread_ids(first);
    ck_assert_msg(n_first == n_before + 2, "after one put of 3 copies: %zu threads, %zu before", n_first,
                  n_before);
    for (unsigned i = 0; i < 50; i++) {
        data = rng_alloc(&rng, 100 + i);
        ck_assert_ok(minidbx_put(db, data, 100 + i, &id));
        free(data);
        ck_assert_uint_eq(bits(holders(4, &id)), 3);
    }
    ck_assert_uint_eq(thread_ids(after), n_first);
    ck_assert_msg(memcmp(first, after, n_first * sizeof *first) == 0, "a put started or ended a thread");

    for (unsigned t = 0; t < PUTTERS; t++) {
        putters[t] = (struct putter){ .db = db, .seed = 100 + t };
        ck_assert_int_eq(pthread_create(&threads[t], NULL, putter_main, &putters[t]), 0);
    }
    for (unsigned t = 0; t < PUTTERS; t++) {
        pthread_join(threads[t], NULL);
        ck_assert_ok(putters[t].rc);
        for (unsigned i = 0; i < 25; i++)
            ck_assert_uint_eq(bits(holders(4, &putters[t].ids[i])), 3);
    }
    minidbx_close(db);
    ck_assert_uint_eq(thread_ids(after), n_before - 1); /* and the prober is gone too */
}
END_TEST

/* A delete removes copy after copy, with no tombstone (minidbx.h, at
 * "cluster:"); a put of the same bytes between two of them is
 * acknowledged with R copies and keeps the one the delete had already
 * passed: the object stays, readable, on fewer than R homes. That is a
 * put and a delete that raced, not a loss: verify calls it MISSING, and
 * repair copies it home again. The delete is held (MINIDBX_TEST_PAUSE)
 * after its first copy is gone while the put runs. (concurrency-cluster's
 * put_and_delete_same_objects met this state under load.) */
struct held_delete {
    minidbx *db;
    minidbx_id id;
    int rc;
};

static void *delete_main(void *arg)
{
    struct held_delete *d = arg;
    d->rc = minidbx_delete(d->db, &d->id);
    return NULL;
}

START_TEST(a_put_racing_a_delete_is_repaired_to_r_copies)
{
    struct held_delete d;
    char marker[PATH_MAX + 64];
    unsigned char bytes[3 * MINIDBX_DEFAULT_INLINE_THRESHOLD];
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    test_rng rng;
    pthread_t deleter;

    pause_at("cluster-delete-copies", marker);
    write_cluster(NODES, "\"replicas\": 2");
    minidbx *db = open_cluster();
    rng_seed(&rng, 31);
    rng_fill(&rng, bytes, sizeof bytes);
    d = (struct held_delete){ .db = db };
    ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, &d.id));
    ck_assert_uint_eq(bits(holders(NODES, &d.id)), 2);

    ck_assert_int_eq(pthread_create(&deleter, NULL, delete_main, &d), 0);
    for (unsigned ms = 0; ms < 5000 && !path_exists(marker); ms++)
        usleep(1000); /* polls for the held delete */
    ck_assert_msg(path_exists(marker), "the delete never held between its copies");
    ck_assert_uint_eq(bits(holders(NODES, &d.id)), 1);
    ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, NULL)); /* both homes: one new, one still there */
    ck_assert_uint_eq(bits(holders(NODES, &d.id)), 2);
    ck_assert_int_eq(unlink(marker), 0);
    pthread_join(deleter, NULL);
    ck_assert_ok(d.rc);

    /* one copy left: readable, reported, and repaired */
    ck_assert_uint_eq(bits(holders(NODES, &d.id)), 1);
    store_expect_bytes(db, &d.id, bytes, sizeof bytes);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_msg(report.problems == 1 && log.count[MINIDBX_PROBLEM_MISSING] == 1, "%llu problems, %u missing",
                  (unsigned long long)report.problems, log.count[MINIDBX_PROBLEM_MISSING]);
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.repaired, 1);
    ck_assert_uint_eq(bits(holders(NODES, &d.id)), 2);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    minidbx_close(db);
}
END_TEST

/* One bad copy: get, readers and stat still answer from the other. */
START_TEST(get_falls_back_on_a_corrupt_copy)
{
    write_cluster(NODES, "\"replicas\": 2");
    minidbx *db = open_cluster();
    test_rng rng;
    rng_seed(&rng, 12);
    size_t sizes[3] = { 1000, 300000, 3u << 20 }; /* inline, a blob read whole, one hashed first */

    for (unsigned k = 0; k < 3; k++) {
        unsigned char *data = rng_alloc(&rng, sizes[k]);
        minidbx_id id;
        minidbx_node_info held[NODES];
        size_t count;
        ck_assert_ok(minidbx_put(db, data, sizes[k], &id));
        ck_assert_ok(minidbx_nodes(db, &id, held, NODES, &count));
        ck_assert_uint_eq(count, 2);
        /* spoil the copy on the node a read tries first */
        if (sizes[k] > MINIDBX_DEFAULT_INLINE_THRESHOLD) {
            char blob[PATH_MAX];
            store_blob_path(held[0].location, &id, blob);
            ck_assert_int_eq(file_flip_byte(blob, 100), 0);
        } else {
            /* an inline copy: delete it from that node, put other bytes is
             * impossible under its id, so remove it: a missing copy */
            minidbx *node = node_open(held[0].location);
            ck_assert_ok(minidbx_delete(node, &id));
            minidbx_close(node);
        }
        store_expect_bytes(db, &id, data, sizes[k]);
        minidbx_reader *r;
        uint64_t size;
        ck_assert_ok(minidbx_reader_open(db, &id, &r, &size));
        unsigned char *back = malloc(sizes[k] + 1);
        size_t got = 0, n = 1;
        while (n > 0) {
            ck_assert_ok(minidbx_reader_read(r, back + got, sizes[k] - got + 1, &n));
            got += n;
        }
        minidbx_reader_close(r);
        ck_assert_uint_eq(got, sizes[k]);
        ck_assert_int_eq(memcmp(back, data, got), 0);
        free(back);
        free(data);
    }
    minidbx_close(db);
}
END_TEST

/* --- placement ---------------------------------------------------------------------- */

/* The node (0..count-1) that is best for id among count nodes, through the
 * cluster's own placement: a put on a cluster of R = 1. */
START_TEST(adding_or_removing_a_node_moves_about_1_in_n)
{
    enum { IDS = 10000, N = 5 };
    /* placement only depends on ids and node locations: put 0-byte-ish
     * objects on R = 1 clusters of N and N+1 nodes and compare homes, via
     * minidbx_nodes(holding) which asks the nodes */
    static unsigned home_n[IDS], home_n1[IDS];
    minidbx_node_info held[N + 1];
    size_t count;
    minidbx_id ids[IDS];

    for (unsigned round = 0; round < 2; round++) {
        unsigned nodes = round == 0 ? N : N + 1;
        write_cluster(nodes, "\"replicas\": 1");
        minidbx *db = open_cluster();
        ck_assert_ok(minidbx_batch_begin(db));
        for (unsigned i = 0; i < IDS; i++) {
            char text[32];
            int len = snprintf(text, sizeof text, "object %u", i);
            ck_assert_ok(minidbx_put(db, text, (size_t)len, &ids[i]));
        }
        ck_assert_ok(minidbx_batch_commit(db));
        for (unsigned i = 0; i < IDS; i++) {
            ck_assert_ok(minidbx_nodes(db, &ids[i], held, N + 1, &count));
            ck_assert_uint_eq(count, 1);
            unsigned n = (unsigned)(strrchr(held[0].location, 'n')[1] - '0');
            (round == 0 ? home_n : home_n1)[i] = n;
        }
        minidbx_close(db);
        for (unsigned i = 0; i < nodes; i++)
            rm_rf(node_dir[i]);
    }
    /* adding node N moves exactly the ids it wins, about 1/(N+1); none
     * moves between the old nodes. Removing it moves them back. */
    unsigned moved = 0;
    for (unsigned i = 0; i < IDS; i++) {
        if (home_n[i] != home_n1[i]) {
            ck_assert_uint_eq(home_n1[i], N);
            moved++;
        }
    }
    double expect = IDS / (double)(N + 1);
    printf("adding a 6th node moved %u of %u ids (ideal %.0f)\n", moved, IDS, expect);
    ck_assert_msg(moved > expect * 0.85 && moved < expect * 1.15, "moved %u, expected about %.0f", moved,
                  expect);
}
END_TEST

/* --- names --------------------------------------------------------------------------- */

START_TEST(names_last_writer_wins)
{
    write_cluster(NODES, "");
    minidbx *db = open_cluster();
    minidbx_id a, b;
    minidbx_name_info info;

    ck_assert_ok(minidbx_put(db, "aaaa", 4, &a));
    ck_assert_ok(minidbx_put(db, "bbbb", 4, &b));
    ck_assert_ok(minidbx_name_set_at(db, "doc", &a, 2000));
    ck_assert_ok(minidbx_name_get(db, "doc", &info));
    ck_assert(minidbx_id_equal(&info.id, &a));
    ck_assert_int_eq(info.mtime_ns, 2000);

    /* one copy differs (a writer that reached only one node): the merged
     * list takes the later mtime, whichever node has it; repair sets it on
     * every home, so that a get returns it too */
    unsigned changed = 0;
    for (unsigned i = 0; i < NODES && !changed; i++) {
        minidbx *node = node_open(node_dir[i]);
        if (minidbx_name_get(node, "doc", &info) == 0) {
            if (minidbx_exists(node, &b) != 1)
                ck_assert_ok(minidbx_put(node, "bbbb", 4, NULL));
            ck_assert_ok(minidbx_name_set_at(node, "doc", &b, 3000));
            changed = 1;
        }
        minidbx_close(node);
    }
    ck_assert_uint_eq(changed, 1);
    minidbx_name_info listed[4];
    size_t count;
    ck_assert_ok(minidbx_name_list(db, NULL, NULL, listed, 4, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert(minidbx_id_equal(&listed[0].id, &b));
    ck_assert_int_eq(listed[0].mtime_ns, 3000);
    problem_log log = { .quiet = 1 };
    minidbx_verify_report fixed;
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &fixed, problem_log_cb, &log));
    ck_assert_uint_gt(log.repaired[MINIDBX_PROBLEM_STALE], 0);
    ck_assert_ok(minidbx_name_get(db, "doc", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_int_eq(info.mtime_ns, 3000);
    for (unsigned i = 0; i < NODES; i++) { /* every copy agrees */
        minidbx *node = node_open(node_dir[i]);
        if (minidbx_name_get(node, "doc", &info) == 0)
            ck_assert(minidbx_id_equal(&info.id, &b) && info.mtime_ns == 3000);
        minidbx_close(node);
    }

    /* the same mtime: the larger id wins */
    const minidbx_id *larger = memcmp(a.bytes, b.bytes, 32) > 0 ? &a : &b;
    ck_assert_ok(minidbx_name_set_at(db, "tie", &a, 5000));
    ck_assert_ok(minidbx_name_set_at(db, "tie", &b, 5000));
    ck_assert_ok(minidbx_name_set_at(db, "tie", larger == &a ? &b : &a, 5000));
    ck_assert_ok(minidbx_name_get(db, "tie", &info));
    ck_assert(minidbx_id_equal(&info.id, larger)); /* whatever the order of the sets */

    /* a name's nodes hold its object too, so no node has a dangling name */
    minidbx_verify_report report;
    for (unsigned i = 0; i < NODES; i++) {
        minidbx *node = node_open(node_dir[i]);
        ck_assert_ok(minidbx_verify(node, NULL, 0, &report, NULL, NULL));
        ck_assert_uint_eq(report.problems, 0);
        minidbx_close(node);
    }
    ck_assert_ok(minidbx_name_delete(db, "doc"));
    ck_assert_rc(minidbx_name_get(db, "doc", &info), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_set(db, "x", &(minidbx_id){ { 7 } }), MINIDBX_ENOTFOUND);
    minidbx_close(db);
}
END_TEST

/* A name moved to another object leaves no pin on the old one's homes:
 * the old object's refs go to 0 (with R = 1, most of 20 names have the
 * old object's home outside the new copies' nodes). */
START_TEST(replacing_a_name_unpins_the_old_object)
{
    write_cluster(NODES, "\"replicas\": 1");
    minidbx *db = open_cluster();
    minidbx_id a, b;
    minidbx_object_info info;

    ck_assert_ok(minidbx_put(db, "old bytes", 9, &a));
    ck_assert_ok(minidbx_put(db, "new bytes", 9, &b));
    for (unsigned i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%u", i);
        ck_assert_ok(minidbx_name_set(db, name, &a));
        ck_assert_ok(minidbx_name_set(db, name, &b));
    }
    ck_assert_ok(minidbx_stat(db, &a, &info));
    ck_assert_uint_eq(info.refs, 0);
    ck_assert_ok(minidbx_stat(db, &b, &info));
    ck_assert_uint_eq(info.refs, 20);
    ck_assert_ok(minidbx_delete(db, &a)); /* nothing points at it any more */
    minidbx_close(db);
}
END_TEST

/* --- repair ---------------------------------------------------------------------------- */

static void fill(minidbx *db, unsigned objects, minidbx_id *ids, unsigned named)
{
    test_rng rng;
    rng_seed(&rng, 21);
    for (unsigned i = 0; i < objects; i++) {
        size_t size = i % 7 == 0 ? 40000 + i : 50 + i;
        unsigned char *data = rng_alloc(&rng, size);
        ck_assert_ok(minidbx_put(db, data, size, &ids[i]));
        free(data);
        if (i < named) {
            char name[32];
            snprintf(name, sizeof name, "dir/name-%u", i);
            ck_assert_ok(minidbx_name_set(db, name, &ids[i]));
        }
    }
}

/* Every object has a copy on each of its R homes (minidbx_nodes marks
 * them), and the unnamed ones nowhere else. */
static void expect_at_home(minidbx *db, unsigned nodes, const minidbx_id *ids, unsigned objects,
                           unsigned named)
{
    minidbx_node_info held[8];
    size_t count;
    for (unsigned i = 0; i < objects; i++) {
        ck_assert_ok(minidbx_nodes(db, &ids[i], held, 8, &count));
        unsigned homes = 0;
        for (size_t k = 0; k < count; k++)
            homes += (unsigned)held[k].home;
        ck_assert_msg(homes == 2, "object %u: %u home copies", i, homes);
        if (i >= named)
            ck_assert_msg(count == 2 && bits(holders(nodes, &ids[i])) == 2, "object %u: %zu copies", i,
                          count);
    }
}

static minidbx_verify_report verify_cluster(minidbx *db, unsigned flags, problem_log *log)
{
    minidbx_verify_report report;
    memset(log, 0, sizeof *log);
    log->quiet = 1;
    ck_assert_ok(minidbx_verify(db, NULL, flags, &report, problem_log_cb, log));
    return report;
}

START_TEST(repair_after_a_node_is_replaced_or_added)
{
    enum { OBJECTS = 80, NAMED = 30 };
    minidbx_id ids[OBJECTS];
    problem_log log;
    minidbx_verify_report report;
    minidbx_name_info info;

    write_cluster(NODES, "");
    minidbx *db = open_cluster();
    fill(db, OBJECTS, ids, NAMED);
    report = verify_cluster(db, 0, &log);
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_uint_eq(report.objects_checked, OBJECTS);
    minidbx_close(db);

    /* n1 is replaced by an empty node */
    ck_assert_int_eq(rm_rf(node_dir[1]), 0);
    db = open_cluster();
    report = verify_cluster(db, 0, &log); /* a dry run: reports, changes nothing */
    ck_assert_uint_gt(log.count[MINIDBX_PROBLEM_MISSING], OBJECTS / 3);
    ck_assert_uint_gt(log.count[MINIDBX_PROBLEM_STALE], 0); /* names that lived on n1 */
    ck_assert_uint_eq(report.repaired, 0);
    ck_assert_uint_eq(verify_cluster(db, 0, &log).problems, report.problems);
    report = verify_cluster(db, MINIDBX_VERIFY_REPAIR, &log);
    ck_assert_uint_eq(report.repaired, report.problems);
    ck_assert_uint_eq(verify_cluster(db, 0, &log).problems, 0);
    expect_at_home(db, NODES, ids, OBJECTS, NAMED);
    for (unsigned i = 0; i < NAMED; i++) {
        char name[32];
        snprintf(name, sizeof name, "dir/name-%u", i);
        ck_assert_ok(minidbx_name_get(db, name, &info));
        ck_assert(minidbx_id_equal(&info.id, &ids[i]));
    }
    minidbx_close(db);

    /* a fourth node: what it now wins moves to it, the old copies go */
    write_cluster(NODES + 1, "");
    db = open_cluster();
    report = verify_cluster(db, MINIDBX_VERIFY_REPAIR, &log);
    ck_assert_uint_gt(log.count[MINIDBX_PROBLEM_MISSING], 0);
    ck_assert_uint_gt(log.repaired[MINIDBX_PROBLEM_MISPLACED], 0);
    ck_assert_uint_eq(report.repaired, report.problems);
    ck_assert_uint_eq(verify_cluster(db, 0, &log).problems, 0);
    expect_at_home(db, NODES + 1, ids, OBJECTS, NAMED);
    minidbx_close(db);
}
END_TEST

START_TEST(repair_replaces_a_corrupt_copy)
{
    minidbx_id id;
    minidbx_node_info held[NODES];
    size_t count;
    problem_log log;
    test_rng rng;
    rng_seed(&rng, 31);
    unsigned char *data = rng_alloc(&rng, 200000);
    char blob[PATH_MAX];

    write_cluster(NODES, "");
    minidbx *db = open_cluster();
    ck_assert_ok(minidbx_put(db, data, 200000, &id));
    ck_assert_ok(minidbx_nodes(db, &id, held, NODES, &count));
    store_blob_path(held[1].location, &id, blob);
    ck_assert_int_eq(file_flip_byte(blob, 5), 0);
    store_expect_bytes(db, &id, data, 200000);
    minidbx_verify_report report = verify_cluster(db, MINIDBX_VERIFY_REPAIR, &log);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT], 1);
    ck_assert_uint_eq(log.repaired[MINIDBX_PROBLEM_CORRUPT], 1);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &id));
    ck_assert_uint_eq(report.problems, 1);
    /* the node's own copy is sound again */
    minidbx *node = node_open(held[1].location);
    store_expect_bytes(node, &id, data, 200000);
    minidbx_close(node);
    ck_assert_uint_eq(verify_cluster(db, 0, &log).problems, 0);
    /* one id */
    ck_assert_ok(minidbx_verify(db, &id, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_rc(minidbx_verify(db, &(minidbx_id){ { 9 } }, 0, &report, NULL, NULL), MINIDBX_ENOTFOUND);
    minidbx_close(db);
    free(data);
}
END_TEST

/* Every copy bad: repair has nothing to replace them with, so it deletes
 * none of them (a "bad" verdict may be one failed read: the last copies
 * stay for whoever can recover them) and says so. */
START_TEST(repair_keeps_copies_it_cannot_replace)
{
    minidbx_id id;
    minidbx_node_info held[NODES];
    size_t count;
    problem_log log;
    test_rng rng;
    rng_seed(&rng, 37);
    unsigned char *data = rng_alloc(&rng, 200000);
    char blob[2][PATH_MAX];

    write_cluster(NODES, "");
    minidbx *db = open_cluster();
    ck_assert_ok(minidbx_put(db, data, 200000, &id));
    ck_assert_ok(minidbx_nodes(db, &id, held, NODES, &count));
    ck_assert_uint_eq(count, 2);
    for (int i = 0; i < 2; i++) {
        store_blob_path(held[i].location, &id, blob[i]);
        ck_assert_int_eq(file_flip_byte(blob[i], 5), 0);
    }
    verify_cluster(db, MINIDBX_VERIFY_REPAIR, &log);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT], 2);
    ck_assert_uint_eq(log.repaired[MINIDBX_PROBLEM_CORRUPT], 0);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(path_exists(blob[i]), "repair deleted the copy on %s, with no sound copy anywhere",
                      held[i].location);
    minidbx_close(db);
    free(data);
}
END_TEST

/* --- repair against a concurrent set -------------------------------------------- */

/* Which of nodes n0..n(count-1) hold a copy of name (a bit each), and
 * their copies. */
static unsigned name_holders(unsigned count, const char *name, minidbx_name_info *copies)
{
    unsigned mask = 0;
    for (unsigned i = 0; i < count; i++) {
        minidbx *node = node_open(node_dir[i]);
        if (minidbx_name_get(node, name, &copies[i]) == 0)
            mask |= 1u << i;
        minidbx_close(node);
    }
    return mask;
}

static void *repair_main(void *arg)
{
    minidbx_verify_report report;
    problem_log *log = arg;
    minidbx *db = open_cluster();
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, log));
    minidbx_close(db);
    return NULL;
}

/* Repair removes a name's copy outside its homes (surplus) only if that
 * copy is still the one it listed: a set made meanwhile may have made the
 * node a home of the name's new object, and the copy its pin there. Before,
 * repair deleted that pin (and the node's gc could then take the new
 * object's copy). Repair is held (MINIDBX_TEST_PAUSE) after it listed the
 * names, before it removes surplus copies. */
START_TEST(repair_keeps_a_surplus_copy_set_since)
{
    enum { N = 4 };
    char marker[PATH_MAX + 64], name[32];
    minidbx_name_info copies[N], info;
    unsigned char bytes[64];
    minidbx_id x, y;
    unsigned surplus = N, mask = 0, tries = 0;
    problem_log log = { .quiet = 1 };
    test_rng rng;
    pthread_t repair;

    pause_at("cluster-repair-surplus", marker);
    write_cluster(N, "\"replicas\": 2");
    minidbx *db = open_cluster();
    rng_seed(&rng, 21);
    rng_fill(&rng, bytes, sizeof bytes);
    ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, &x));
    /* a name whose homes and whose object's homes leave a node out */
    for (unsigned k = 0; k < 100 && surplus == N; k++) {
        snprintf(name, sizeof name, "n%u", k);
        ck_assert_ok(minidbx_name_set(db, name, &x));
        mask = name_holders(N, name, copies);
        for (unsigned i = 0; i < N && surplus == N; i++)
            if (!(mask & (1u << i)))
                surplus = i;
        if (surplus == N)
            ck_assert_ok(minidbx_name_delete(db, name));
    }
    ck_assert_uint_lt(surplus, N);
    /* an object at home on the surplus node, for the set to come */
    do {
        rng_fill(&rng, bytes, sizeof bytes);
        ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, &y));
    } while (!(holders(N, &y) & (1u << surplus)) && ++tries < 100);
    ck_assert_uint_lt(tries, 100);
    /* a surplus copy of the name (and its object), as a node that was
     * down during a delete might keep */
    unsigned some = (unsigned)__builtin_ctz(mask);
    minidbx *from = node_open(node_dir[some]), *node = node_open(node_dir[surplus]);
    void *data;
    size_t size;
    ck_assert_ok(minidbx_get(from, &x, &data, &size));
    ck_assert_ok(minidbx_put(node, data, size, NULL));
    minidbx_free(data);
    ck_assert_ok(minidbx_name_set_at(node, name, &x, copies[some].mtime_ns));
    minidbx_close(from);
    minidbx_close(node);

    ck_assert_int_eq(pthread_create(&repair, NULL, repair_main, &log), 0);
    for (unsigned ms = 0; ms < 10000 && !path_exists(marker); ms++)
        usleep(1000); /* polls for the marker of the paused repair */
    ck_assert_msg(path_exists(marker), "repair did not reach its pause");
    ck_assert_ok(minidbx_name_set(db, name, &y)); /* newer: pinned on y's homes, the surplus node too */
    unlink(marker);
    pthread_join(repair, NULL);
    ck_assert_uint_ge(log.count[MINIDBX_PROBLEM_MISPLACED], 1);

    node = node_open(node_dir[surplus]);
    ck_assert_msg(minidbx_name_get(node, name, &info) == 0, "repair removed the pin a set made since");
    ck_assert(minidbx_id_equal(&info.id, &y));
    minidbx_close(node);
    minidbx_close(db);
}
END_TEST

/* A name set copies its object onto the name's homes (and pins it on the
 * object's) while a gc with no grace runs on every node. The copy must not
 * be left unnamed where that gc can take it: before, each copy was
 * committed and then named, three tries at most, and a gc between the two
 * every time made the set fail ENOTFOUND although the object was there,
 * named, on other nodes (and left a pin missing, which verify reported).
 * The set is held (MINIDBX_TEST_PAUSE) after the copy is committed, before
 * the name is set, and a gc of the whole cluster starts at each hold. */
struct gc_at_holds {
    char marker[PATH_MAX + 64];
    atomic_int armed; /* 0: let the set go on at once, without a gc */
    unsigned holds;    /* holds with a gc */
    int gc_error;      /* the first gc that failed, or 0 */
};

/* The gc runs on a cluster handle of its own in another process (see
 * in_child), where the held set's write lock on a node really holds it. */
static int gc_in_child(const void *arg)
{
    char location[PATH_MAX + 16];
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx *db = NULL;
    (void)arg;
    opts.durability = MINIDBX_SYNC_NONE;
    snprintf(location, sizeof location, "cluster:%s", file);
    int rc = minidbx_open(&db, location, &opts);
    if (rc == 0)
        rc = test_gc_now(db, NULL);
    minidbx_close(db);
    return rc;
}

static void *gc_now_main(void *arg)
{
    struct gc_at_holds *g = arg;
    int rc = in_child(gc_in_child, NULL);
    if (rc != 0 && g->gc_error == 0)
        g->gc_error = rc;
    return NULL;
}

static void *gc_at_each_hold(void *arg)
{
    struct gc_at_holds *g = arg;
    for (unsigned round = 0; round < 256; round++) {
        for (unsigned ms = 0; ms < 3000 && !path_exists(g->marker); ms++)
            usleep(1000); /* polls for the marker of the held set */
        if (!path_exists(g->marker))
            break; /* the sets are done */
        if (!atomic_load(&g->armed)) {
            unlink(g->marker);
            continue;
        }
        g->holds++;
        pthread_t gc;
        if (pthread_create(&gc, NULL, gc_now_main, g) != 0) {
            g->gc_error = MINIDBX_ENOMEM;
            unlink(g->marker);
            break;
        }
        /* Time for the gc to reach the node before the set goes on. It
         * either removes an unnamed copy (the bug) or waits for the set:
         * the outcome is checked below, whichever way the timing goes. */
        usleep(200 * 1000);
        unlink(g->marker);
        pthread_join(gc, NULL);
    }
    return NULL;
}

START_TEST(a_name_set_survives_a_gc_with_no_grace)
{
    enum { N = 5, NAMES = 6 };
    struct gc_at_holds g = { .holds = 0 };
    char name[32];
    unsigned char bytes[2 * MINIDBX_DEFAULT_INLINE_THRESHOLD];
    minidbx_name_info info;
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    minidbx_id x;
    test_rng rng;
    pthread_t gcs;

    pause_at("cluster-name-copy", g.marker);
    write_cluster(N, "\"replicas\": 2");
    minidbx *db = open_cluster();
    rng_seed(&rng, 22);
    rng_fill(&rng, bytes, sizeof bytes);
    ck_assert_int_eq(pthread_create(&gcs, NULL, gc_at_each_hold, &g), 0);
    ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, &x));
    ck_assert_ok(minidbx_name_set(db, "keep", &x)); /* from now on x is named somewhere */
    atomic_store(&g.armed, 1);
    for (unsigned k = 0; k < NAMES; k++) {
        snprintf(name, sizeof name, "n%u", k);
        int rc = minidbx_name_set(db, name, &x);
        ck_assert_msg(rc == 0, "name set %s during gc: %s (%s)", name, minidbx_strerror(rc), minidbx_errmsg(db));
    }
    pthread_join(gcs, NULL);
    ck_assert_int_eq(g.gc_error, 0);
    ck_assert_msg(g.holds >= 1, "no set copied its object: the race was not run");
    for (unsigned k = 0; k < NAMES; k++) {
        snprintf(name, sizeof name, "n%u", k);
        ck_assert_ok(minidbx_name_get(db, name, &info));
        ck_assert(minidbx_id_equal(&info.id, &x));
    }
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_msg(report.problems == 0, "after the sets: missing %u, dangling %u, misplaced %u",
                  log.count[MINIDBX_PROBLEM_MISSING], log.count[MINIDBX_PROBLEM_DANGLING],
                  log.count[MINIDBX_PROBLEM_MISPLACED]);
    printf("name sets held %u times for a gc\n", g.holds);
    minidbx_close(db);
}
END_TEST

/* A node that fails in the middle of a repair pass is marked down. The
 * rest of the pass must not make its objects at home elsewhere: the next
 * pass, with the node back, would move every copy back again (under load,
 * cluster-real's repair churned so for three passes). Here n1's directory
 * is moved away once repair has started: the name set that repairs a
 * name's copy there fails (EIO: the store is gone) and marks n1 down
 * before the objects. The objects that n1 lacks must then be left to the
 * next pass, not copied to n2, which is not their home. */
START_TEST(repair_keeps_homes_when_a_node_fails_mid_pass)
{
    enum { N = 3, WANT = 16 };
    minidbx_id ids[WANT + 1], id;
    unsigned char bytes[64];
    unsigned got = 0;
    char away[PATH_MAX + 8];
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    test_rng rng;

    write_cluster(N, "\"replicas\": 2");
    minidbx *db = open_cluster();
    rng_seed(&rng, 23);
    /* objects at home on n0 and n1 (ids[0] also gets a name); others go */
    for (unsigned tries = 0; got < WANT + 1 && tries < 2000; tries++) {
        rng_fill(&rng, bytes, sizeof bytes);
        ck_assert_ok(minidbx_put(db, bytes, sizeof bytes, &id));
        if (holders(N, &id) == 0x3)
            ids[got++] = id;
        else
            ck_assert_ok(minidbx_delete(db, &id));
    }
    ck_assert_uint_eq(got, WANT + 1);
    ck_assert_ok(minidbx_name_set(db, "pin", &ids[0]));
    /* n1 loses the name's copy and every other object */
    minidbx *n1 = node_open(node_dir[1]);
    ck_assert_ok(minidbx_name_delete(n1, "pin"));
    for (unsigned i = 1; i <= WANT; i++)
        ck_assert_ok(minidbx_delete(n1, &ids[i]));
    minidbx_close(n1);
    /* n1's store goes away under the open cluster: its next write fails */
    snprintf(away, sizeof away, "%s.away", node_dir[1]);
    ck_assert_int_eq(rename(node_dir[1], away), 0);
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &log));
    ck_assert_int_eq(rename(away, node_dir[1]), 0);
    unsigned on_n2 = 0;
    for (unsigned i = 1; i <= WANT; i++)
        on_n2 += (holders(N, &ids[i]) & 0x4) != 0;
    ck_assert_msg(on_n2 == 0, "%u of %u objects of n0 and n1 were copied to n2 while n1 was down", on_n2, WANT);
    ck_assert_msg(report.problems > report.repaired, "n1's missing copies are left to the next pass");
    minidbx_close(db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TEST_TIMEOUT_LONG_S);
    tcase_add_test(tc, bad_files_name_the_field);
    tcase_add_test(tc, defaults_and_info);
    tcase_add_test(tc, put_get_exists_on_r_nodes);
    tcase_add_test(tc, puts_reuse_their_copy_threads);
    tcase_add_test(tc, a_put_racing_a_delete_is_repaired_to_r_copies);
    tcase_add_test(tc, get_falls_back_on_a_corrupt_copy);
    tcase_add_test(tc, adding_or_removing_a_node_moves_about_1_in_n);
    tcase_add_test(tc, names_last_writer_wins);
    tcase_add_test(tc, replacing_a_name_unpins_the_old_object);
    tcase_add_test(tc, repair_after_a_node_is_replaced_or_added);
    tcase_add_test(tc, repair_replaces_a_corrupt_copy);
    tcase_add_test(tc, repair_keeps_copies_it_cannot_replace);
    tcase_add_test(tc, repair_keeps_a_surplus_copy_set_since);
    tcase_add_test(tc, a_name_set_survives_a_gc_with_no_grace);
    tcase_add_test(tc, repair_keeps_homes_when_a_node_fails_mid_pass);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
