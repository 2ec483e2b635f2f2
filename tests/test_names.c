/* test_names.c - names: validation, set/get/delete, listing by prefix with
 * paging, reference counts, and gc removing only unnamed objects. Runs on
 * every backend of the matrix in util.c (MINIDBX_TEST_BACKEND). */
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THRESHOLD MINIDBX_DEFAULT_INLINE_THRESHOLD

static const char *const BAD_NAMES[] = {
    "", "/abs", "/", "a/../b", "..", "../a", "a/..", ".", "./a", "a/./b", "a/.",
    "a//b", "a/", "//", "a\001b", "tab\there", "new\nline", "del\x7f", "\x1f",
};

START_TEST(name_valid_rules)
{
    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++)
        ck_assert_msg(minidbx_name_valid(BAD_NAMES[i]) == 0, "\"%s\" (#%zu) accepted", BAD_NAMES[i], i);
    ck_assert_int_eq(minidbx_name_valid(NULL), 0);
    static const char *const good[] = {"a", "photos/2024/cat.jpg", "a.b", "..a", "a..", ".hidden/x",
                                       "with space", "ünïcødé/名前", "a-b_c~d"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(minidbx_name_valid(good[i]) == 1, "\"%s\" refused", good[i]);
}
END_TEST

static char *name_of_length(size_t len)
{
    char *name = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        name[i] = (i % 10 == 9 && i + 1 < len) ? '/' : (char)('a' + i % 26);
    name[len] = '\0';
    return name;
}

START_TEST(name_max_length)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, "x", 1, &id));
    char *at_max = name_of_length(MINIDBX_NAME_MAX);
    char *over = name_of_length(MINIDBX_NAME_MAX + 1);
    ck_assert_int_eq(minidbx_name_valid(at_max), 1);
    ck_assert_int_eq(minidbx_name_valid(over), 0);
    ck_assert_ok(minidbx_name_set(fx_db, at_max, &id));
    minidbx_name_info info;
    ck_assert_ok(minidbx_name_get(fx_db, at_max, &info));
    ck_assert_str_eq(info.name, at_max);
    ck_assert_rc(minidbx_name_set(fx_db, over, &id), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_name_get(fx_db, over, &info), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_name_delete(fx_db, over), MINIDBX_EINVAL);
    size_t count;
    minidbx_name_info all[2];
    ck_assert_ok(minidbx_name_list(fx_db, NULL, NULL, all, 2, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(all[0].name, at_max);
    ck_assert_ok(minidbx_name_delete(fx_db, at_max));
    free(at_max);
    free(over);
}
END_TEST

START_TEST(bad_names_refused_and_nothing_stored)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, "x", 1, &id));
    minidbx_name_info info;
    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++) {
        ck_assert_rc(minidbx_name_set(fx_db, BAD_NAMES[i], &id), MINIDBX_EINVAL);
        ck_assert_rc(minidbx_name_get(fx_db, BAD_NAMES[i], &info), MINIDBX_EINVAL);
        ck_assert_rc(minidbx_name_delete(fx_db, BAD_NAMES[i]), MINIDBX_EINVAL);
    }
    ck_assert_rc(minidbx_name_set(fx_db, NULL, &id), MINIDBX_EINVAL);
    size_t count = 99;
    minidbx_name_info all[4];
    ck_assert_ok(minidbx_name_list(fx_db, "", NULL, all, 4, &count));
    ck_assert_uint_eq(count, 0);
    minidbx_object_info oinfo;
    ck_assert_ok(minidbx_stat(fx_db, &id, &oinfo));
    ck_assert_uint_eq(oinfo.refs, 0);
}
END_TEST

START_TEST(set_get_replace_delete)
{
    test_rng rng;
    rng_seed(&rng, 31);
    minidbx_id a = store_put_random(fx_db, &rng, 100);
    minidbx_id b = store_put_random(fx_db, &rng, THRESHOLD + 10);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before_ns = (int64_t)ts.tv_sec * 1000000000 - 2000000000LL;

    ck_assert_ok(minidbx_name_set(fx_db, "photos/2024/cat.jpg", &a));
    minidbx_name_info info;
    ck_assert_ok(minidbx_name_get(fx_db, "photos/2024/cat.jpg", &info));
    ck_assert_str_eq(info.name, "photos/2024/cat.jpg");
    ck_assert(minidbx_id_equal(&info.id, &a));
    ck_assert_uint_eq(info.size, 100);
    ck_assert_int_ge(info.mtime_ns, before_ns);

    minidbx_object_info oa, ob;
    ck_assert_ok(minidbx_stat(fx_db, &a, &oa));
    ck_assert_uint_eq(oa.refs, 1);

    /* replacing moves the reference */
    ck_assert_ok(minidbx_name_set(fx_db, "photos/2024/cat.jpg", &b));
    ck_assert_ok(minidbx_name_get(fx_db, "photos/2024/cat.jpg", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_uint_eq(info.size, THRESHOLD + 10);
    ck_assert_ok(minidbx_stat(fx_db, &a, &oa));
    ck_assert_ok(minidbx_stat(fx_db, &b, &ob));
    ck_assert_uint_eq(oa.refs, 0);
    ck_assert_uint_eq(ob.refs, 1);
    /* setting the same again does not count twice */
    ck_assert_ok(minidbx_name_set(fx_db, "photos/2024/cat.jpg", &b));
    ck_assert_ok(minidbx_stat(fx_db, &b, &ob));
    ck_assert_uint_eq(ob.refs, 1);

    ck_assert_ok(minidbx_name_delete(fx_db, "photos/2024/cat.jpg"));
    ck_assert_rc(minidbx_name_get(fx_db, "photos/2024/cat.jpg", &info), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_delete(fx_db, "photos/2024/cat.jpg"), MINIDBX_ENOTFOUND);
    ck_assert_ok(minidbx_stat(fx_db, &b, &ob));
    ck_assert_uint_eq(ob.refs, 0);
    ck_assert_int_eq(minidbx_exists(fx_db, &b), 1); /* the object stays */
    ck_assert_ok(minidbx_delete(fx_db, &b));        /* and is no longer referenced */
}
END_TEST

/* minidbx_name_set_at: a copy of a name with its time does not replace a
 * newer one (last writer wins: the later mtime, then the larger id),
 * whatever order the sets arrive in; minidbx_name_set always replaces. */
START_TEST(set_at_last_writer_wins)
{
    test_rng rng;
    rng_seed(&rng, 91);
    minidbx_id a = store_put_random(fx_db, &rng, 100), b = store_put_random(fx_db, &rng, 200);
    const minidbx_id *larger = memcmp(a.bytes, b.bytes, MINIDBX_ID_SIZE) > 0 ? &a : &b;
    const minidbx_id *smaller = larger == &a ? &b : &a;
    minidbx_name_info info;

    ck_assert_ok(minidbx_name_set_at(fx_db, "lww", &b, 3000));
    ck_assert_ok(minidbx_name_set_at(fx_db, "lww", &a, 2000)); /* older, arriving later: no change */
    ck_assert_ok(minidbx_name_get(fx_db, "lww", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_int_eq(info.mtime_ns, 3000);
    ck_assert_ok(minidbx_name_set_at(fx_db, "tie", larger, 5000));
    ck_assert_ok(minidbx_name_set_at(fx_db, "tie", smaller, 5000)); /* same time: the larger id stays */
    ck_assert_ok(minidbx_name_get(fx_db, "tie", &info));
    ck_assert(minidbx_id_equal(&info.id, larger));
    ck_assert_ok(minidbx_name_set_at(fx_db, "lww", &a, 4000)); /* newer: replaces */
    ck_assert_ok(minidbx_name_get(fx_db, "lww", &info));
    ck_assert(minidbx_id_equal(&info.id, &a));
    ck_assert_int_eq(info.mtime_ns, 4000);
    ck_assert_ok(minidbx_name_set(fx_db, "tie", smaller)); /* a plain set always replaces */
    ck_assert_ok(minidbx_name_get(fx_db, "tie", &info));
    ck_assert(minidbx_id_equal(&info.id, smaller));
}
END_TEST

/* minidbx_name_set_ex: MINIDBX_NAME_KEEP sets a free name, leaves one that
 * points at id as it is, and refuses (EEXISTS, nothing changed) one that
 * points elsewhere; 0 moves it as minidbx_name_set does. */
START_TEST(set_ex_keep_does_not_move)
{
    test_rng rng;
    rng_seed(&rng, 93);
    minidbx_id a = store_put_random(fx_db, &rng, 100), b = store_put_random(fx_db, &rng, 200);
    minidbx_name_info info, before;

    ck_assert_ok(minidbx_name_set_ex(fx_db, "keep/me", &a, MINIDBX_NAME_KEEP)); /* free: set */
    ck_assert_ok(minidbx_name_get(fx_db, "keep/me", &before));
    ck_assert(minidbx_id_equal(&before.id, &a));
    ck_assert_ok(minidbx_name_set_ex(fx_db, "keep/me", &a, MINIDBX_NAME_KEEP)); /* there already */
    ck_assert_rc(minidbx_name_set_ex(fx_db, "keep/me", &b, MINIDBX_NAME_KEEP), MINIDBX_EEXISTS);
    ck_assert_ok(minidbx_name_get(fx_db, "keep/me", &info));
    ck_assert(minidbx_id_equal(&info.id, &a));
    ck_assert_int_eq(info.mtime_ns, before.mtime_ns); /* nothing changed */
    ck_assert_ok(minidbx_name_set_ex(fx_db, "keep/me", &b, 0)); /* 0: it moves */
    ck_assert_ok(minidbx_name_get(fx_db, "keep/me", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_rc(minidbx_name_set_ex(fx_db, "keep/me", &a, 0x2), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_name_set_ex(fx_db, "../bad", &a, MINIDBX_NAME_KEEP), MINIDBX_EINVAL);
}
END_TEST

/* A writer committed named with MINIDBX_NAME_KEEP: a free name is set, a
 * name on other bytes stays (EEXISTS), and on a local store those bytes
 * are not stored either (one transaction); an unknown flag is EINVAL (the
 * writer freed: ASan sees a leak otherwise). */
static int commit_keep(const char *name, const void *data, size_t size, unsigned flags, minidbx_id *id)
{
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    ck_assert_ok(minidbx_writer_write(w, data, size));
    return minidbx_writer_commit_named_ex(w, name, flags, id);
}

START_TEST(writer_commit_named_keep)
{
    minidbx_store_info store;
    minidbx_name_info info;
    minidbx_id a, b, got;
    ck_assert_ok(minidbx_info(fx_db, &store));

    ck_assert_ok(commit_keep("w/keep", "first bytes", 11, MINIDBX_NAME_KEEP, &a)); /* free: set */
    ck_assert_ok(commit_keep("w/keep", "first bytes", 11, MINIDBX_NAME_KEEP, &got)); /* points there */
    ck_assert(minidbx_id_equal(&a, &got));
    ck_assert_rc(commit_keep("w/keep", "other bytes", 11, MINIDBX_NAME_KEEP, &b), MINIDBX_EEXISTS);
    ck_assert_ok(minidbx_name_get(fx_db, "w/keep", &info));
    ck_assert(minidbx_id_equal(&info.id, &a));
    ck_assert_ok(minidbx_put(fx_db, "other bytes", 11, &b)); /* only to learn its id */
    ck_assert_ok(minidbx_delete(fx_db, &b));
    if (strcmp(store.backend, "local") == 0) {
        ck_assert_rc(commit_keep("w/keep", "other bytes", 11, MINIDBX_NAME_KEEP, &got), MINIDBX_EEXISTS);
        ck_assert_int_eq(minidbx_exists(fx_db, &b), 0); /* refused: nothing stored */
    }
    ck_assert_ok(commit_keep("w/keep", "other bytes", 11, 0, &got)); /* 0: it moves */
    ck_assert_ok(minidbx_name_get(fx_db, "w/keep", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_rc(commit_keep("w/keep", "more", 4, 0x2, &got), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_writer_commit_named_ex(NULL, "w/x", 0, &got), MINIDBX_EINVAL);
}
END_TEST

struct keep_racer {
    const minidbx_id *id;
    char name[32];
    int rc;
};

static void *keep_race_thread(void *arg)
{
    struct keep_racer *r = arg;
    r->rc = minidbx_name_set_ex(fx_db, r->name, r->id, MINIDBX_NAME_KEEP);
    return NULL;
}

/* Two writers set one free name with MINIDBX_NAME_KEEP at once, 50 times:
 * on a local store (the check in the set's transaction) exactly one wins
 * and the other gets EEXISTS; elsewhere (a read before the write) at least
 * one wins, and the name points at a winner's object. */
START_TEST(set_ex_keep_race)
{
    test_rng rng;
    minidbx_store_info store;
    rng_seed(&rng, 94);
    minidbx_id a = store_put_random(fx_db, &rng, 100), b = store_put_random(fx_db, &rng, 200);
    ck_assert_ok(minidbx_info(fx_db, &store));
    bool atomic = strcmp(store.backend, "local") == 0;

    for (int round = 0; round < 50; round++) {
        struct keep_racer r[2] = { { .id = &a }, { .id = &b } };
        pthread_t t[2];
        minidbx_name_info info;
        for (int i = 0; i < 2; i++) {
            snprintf(r[i].name, sizeof r[i].name, "race/%d", round);
            ck_assert_int_eq(pthread_create(&t[i], NULL, keep_race_thread, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        int wins = (r[0].rc == 0) + (r[1].rc == 0);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(r[i].rc == 0 || r[i].rc == MINIDBX_EEXISTS, "round %d: %s", round,
                          minidbx_strerror(r[i].rc));
        ck_assert_ok(minidbx_name_get(fx_db, r[0].name, &info));
        if (atomic) {
            ck_assert_msg(wins == 1, "round %d: %d writers won on a local store", round, wins);
            ck_assert(minidbx_id_equal(&info.id, r[0].rc == 0 ? &a : &b));
        } else {
            ck_assert_int_ge(wins, 1);
            ck_assert((r[0].rc == 0 && minidbx_id_equal(&info.id, &a)) ||
                      (r[1].rc == 0 && minidbx_id_equal(&info.id, &b)));
        }
    }
}
END_TEST

START_TEST(set_to_missing_object)
{
    minidbx_id ghost;
    memset(&ghost, 0x42, sizeof ghost);
    ck_assert_rc(minidbx_name_set(fx_db, "ghost", &ghost), MINIDBX_ENOTFOUND);
    minidbx_name_info info;
    ck_assert_rc(minidbx_name_get(fx_db, "ghost", &info), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_get(fx_db, "never/set", &info), MINIDBX_ENOTFOUND);
}
END_TEST

/* List names under prefix, page entries at a time; return how many, and
 * check byte order and the prefix on the way. */
static size_t list_prefix(const char *prefix, size_t page, char names[][64], size_t max)
{
    minidbx_name_info buf[8];
    size_t total = 0, count;
    char after[MINIDBX_NAME_MAX + 1] = "";
    do {
        ck_assert_ok(minidbx_name_list(fx_db, prefix, total ? after : NULL, buf, page, &count));
        for (size_t i = 0; i < count; i++) {
            ck_assert_uint_lt(total, max);
            if (prefix)
                ck_assert_msg(strncmp(buf[i].name, prefix, strlen(prefix)) == 0,
                              "\"%s\" listed under prefix \"%s\"", buf[i].name, prefix);
            if (total > 0)
                ck_assert_msg(strcmp(names[total - 1], buf[i].name) < 0, "not in order: %s, %s",
                              names[total - 1], buf[i].name);
            snprintf(names[total++], 64, "%.63s", buf[i].name);
        }
        if (count > 0)
            snprintf(after, sizeof after, "%s", buf[count - 1].name);
    } while (count == page);
    return total;
}

START_TEST(list_by_prefix_with_paging)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, "obj", 3, &id));
    static const char *const all[] = {"a", "a/1", "a/2", "a/3/x", "a0", "ab", "b/1", "b/2", "photos/1",
                                      "photos/2", "photos/3", "photos/30", "photosx", "z"};
    enum { N = sizeof all / sizeof all[0] };
    for (size_t i = N; i-- > 0;) /* reverse order: the list must sort */
        ck_assert_ok(minidbx_name_set(fx_db, all[i], &id));

    char names[32][64];
    for (size_t page = 1; page <= 8; page += 3) {
        ck_assert_uint_eq(list_prefix(NULL, page, names, 32), N);
        for (size_t i = 0; i < N; i++)
            ck_assert_str_eq(names[i], all[i]);
        ck_assert_uint_eq(list_prefix("", page, names, 32), N);
        ck_assert_uint_eq(list_prefix("photos/", page, names, 32), 4);
        ck_assert_str_eq(names[3], "photos/30");
        ck_assert_uint_eq(list_prefix("photos", page, names, 32), 5);
        ck_assert_uint_eq(list_prefix("a/", page, names, 32), 3);
        ck_assert_uint_eq(list_prefix("a", page, names, 32), 6);
        ck_assert_uint_eq(list_prefix("nothing", page, names, 32), 0);
        ck_assert_uint_eq(list_prefix("z", page, names, 32), 1);
    }
    minidbx_store_info info;
    ck_assert_ok(minidbx_info(fx_db, &info));
    ck_assert_uint_eq(info.names, N);
    minidbx_object_info oinfo;
    ck_assert_ok(minidbx_stat(fx_db, &id, &oinfo));
    ck_assert_uint_eq(oinfo.refs, N);
}
END_TEST

START_TEST(gc_removes_only_unnamed)
{
    test_rng rng;
    rng_seed(&rng, 32);
    minidbx_id named_small = store_put_random(fx_db, &rng, 10);
    minidbx_id named_big = store_put_random(fx_db, &rng, THRESHOLD * 2);
    minidbx_id loose_small = store_put_random(fx_db, &rng, 20);
    minidbx_id loose_big = store_put_random(fx_db, &rng, THRESHOLD * 3);
    minidbx_id unnamed_later = store_put_random(fx_db, &rng, 30);
    ck_assert_ok(minidbx_name_set(fx_db, "keep/small", &named_small));
    ck_assert_ok(minidbx_name_set(fx_db, "keep/big", &named_big));
    ck_assert_ok(minidbx_name_set(fx_db, "temp", &unnamed_later));
    ck_assert_ok(minidbx_name_delete(fx_db, "temp"));

    minidbx_gc_report report;
    memset(&report, 0xff, sizeof report);
    ck_assert_ok(test_gc_now(fx_db, &report));
    ck_assert_uint_eq(report.objects_removed, 3);
    ck_assert_uint_eq(report.bytes_removed, 20 + THRESHOLD * 3 + 30);
    ck_assert_int_eq(minidbx_exists(fx_db, &named_small), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &named_big), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &loose_small), 0);
    ck_assert_int_eq(minidbx_exists(fx_db, &loose_big), 0);
    ck_assert_int_eq(minidbx_exists(fx_db, &unnamed_later), 0);
    char path[PATH_MAX];
    store_blob_path(fx_dir, &loose_big, path);
    ck_assert_msg(!path_exists(path), "gc left %s", path);
    store_blob_path(fx_dir, &named_big, path);
    ck_assert(path_exists(path));

    ck_assert_ok(test_gc_now(fx_db, NULL));
    ck_assert_ok(test_gc_now(fx_db, &report));
    ck_assert_uint_eq(report.objects_removed, 0);
    minidbx_verify_report vr;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &vr, NULL, NULL));
    ck_assert_uint_eq(vr.problems, 0);
    ck_assert_uint_eq(vr.objects_checked, 2);
}
END_TEST

static Suite *names_suite(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_with_store("names", TEST_TIMEOUT_S);
    tcase_add_test(tc, name_valid_rules);
    tcase_add_test(tc, name_max_length);
    tcase_add_test(tc, bad_names_refused_and_nothing_stored);
    tcase_add_test(tc, set_get_replace_delete);
    tcase_add_test(tc, set_at_last_writer_wins);
    tcase_add_test(tc, set_to_missing_object);
    tcase_add_test(tc, set_ex_keep_does_not_move);
    tcase_add_test(tc, set_ex_keep_race);
    tcase_add_test(tc, writer_commit_named_keep);
    tcase_add_test(tc, list_by_prefix_with_paging);
    tcase_add_test_needs(tc, gc_removes_only_unnamed, TEST_CAP_FILES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(names_suite());
}
