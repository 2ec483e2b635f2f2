/* test_errors.c - error codes live in their band, are distinct and named;
 * minidbx_errmsg says something after a failure, per thread. */
#include "util.h"

#include <minidbx/sys/backend.h>

#include <pthread.h>
#include <string.h>

/* Each code with the number it was released with: the numbers are ABI and
 * are never renumbered, so this table only ever grows. */
static const struct {
    int code;
    const char *macro;
    int number;
} CODES[] = {
    {MINIDBX_ENOTFOUND, "ENOTFOUND", -40901},       {MINIDBX_EEXISTS, "EEXISTS", -40902},
    {MINIDBX_EINVAL, "EINVAL", -40903},             {MINIDBX_ECORRUPT, "ECORRUPT", -40904},
    {MINIDBX_ENOSPC, "ENOSPC", -40905},             {MINIDBX_EIO, "EIO", -40906},
    {MINIDBX_ETOOBIG, "ETOOBIG", -40907},           {MINIDBX_EREFERENCED, "EREFERENCED", -40908},
    {MINIDBX_EREADONLY, "EREADONLY", -40909},       {MINIDBX_ENOMEM, "ENOMEM", -40910},
    {MINIDBX_EUNSUPPORTED, "EUNSUPPORTED", -40911}, {MINIDBX_EPERM, "EPERM", -40912},
    {MINIDBX_ESTATE, "ESTATE", -40913},
};
enum { NCODES = sizeof CODES / sizeof CODES[0] };

START_TEST(codes_in_band_and_distinct)
{
    for (int i = 0; i < NCODES; i++) {
        ck_assert_msg(CODES[i].code <= -40900 && CODES[i].code >= -40999, "%s out of band", CODES[i].macro);
        for (int j = i + 1; j < NCODES; j++)
            ck_assert_msg(CODES[i].code != CODES[j].code, "%s == %s", CODES[i].macro, CODES[j].macro);
    }
    ck_assert_int_eq(MINIDBX_OK, 0);
    for (int i = 0; i < NCODES; i++)
        ck_assert_msg(CODES[i].code == CODES[i].number, "%s is %d, released as %d", CODES[i].macro, CODES[i].code,
                      CODES[i].number);
}
END_TEST

START_TEST(strerror_names_every_code)
{
    const char *unknown = minidbx_strerror(-40999);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(unknown, "unknown error");
    ck_assert_str_eq(minidbx_strerror(12345), "unknown error");
    ck_assert_ptr_nonnull(minidbx_strerror(0));
    ck_assert_str_ne(minidbx_strerror(0), "unknown error");
    for (int i = 0; i < NCODES; i++) {
        const char *text = minidbx_strerror(CODES[i].code);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(text[0] != '\0', "%s: empty text", CODES[i].macro);
        ck_assert_msg(strcmp(text, unknown) != 0, "%s: \"%s\"", CODES[i].macro, text);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(text, minidbx_strerror(CODES[j].code)) != 0, "%s and %s share \"%s\"",
                          CODES[i].macro, CODES[j].macro, text);
    }
}
END_TEST

START_TEST(errmsg_after_failures)
{
    ck_assert_ptr_nonnull(minidbx_errmsg(NULL));
    minidbx_id id;
    ck_assert_rc(minidbx_id_parse(&id, "../../etc/passwd"), MINIDBX_EINVAL);
    ck_assert_str_ne(minidbx_errmsg(NULL), "");

    memset(&id, 0x11, sizeof id);
    void *data = NULL;
    size_t size = 0;
    ck_assert_rc(minidbx_get(fx_db, &id, &data, &size), MINIDBX_ENOTFOUND);
    const char *msg = minidbx_errmsg(fx_db);
    ck_assert_ptr_nonnull(msg);
    ck_assert_str_ne(msg, "");
    ck_assert_rc(minidbx_name_set(fx_db, "/abs", &id), MINIDBX_EINVAL);
    ck_assert_str_ne(minidbx_errmsg(fx_db), "");
    ck_assert_rc(minidbx_batch_commit(fx_db), MINIDBX_ESTATE);
    ck_assert_str_ne(minidbx_errmsg(fx_db), "");

    minidbx *db = NULL;
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_NO_CREATE;
    ck_assert_rc(minidbx_open(&db, "/nonexistent/minidbx/store", &opts), MINIDBX_ENOTFOUND);
    ck_assert_str_ne(minidbx_errmsg(NULL), "");
}
END_TEST

/* A NULL handle or id is a bad argument, not a crash. */
START_TEST(null_arguments)
{
    minidbx_id id;
    memset(&id, 1, sizeof id);
    void *data = NULL;
    size_t size = 0;
    ck_assert_rc(minidbx_put(NULL, "x", 1, &id), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_get(NULL, &id, &data, &size), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_get(fx_db, NULL, &data, &size), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_exists(NULL, &id), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_delete(fx_db, NULL), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_put(fx_db, NULL, 5, &id), MINIDBX_EINVAL); /* NULL data, size 5 */
    ck_assert_rc(minidbx_open(NULL, fx_dir, NULL), MINIDBX_EINVAL);
    minidbx *db = NULL;
    ck_assert_rc(minidbx_open(&db, NULL, NULL), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_open(&db, "", NULL), MINIDBX_EINVAL);
    minidbx_options bad = MINIDBX_OPTIONS_INIT;
    bad.version = 0;
    ck_assert_rc(minidbx_open(&db, fx_dir, &bad), MINIDBX_EINVAL);
    ck_assert_ptr_null(db);
}
END_TEST

/* minidbx_error_set sets code and message for backends. */
START_TEST(error_set_for_backends)
{
    ck_assert_int_eq(minidbx_error_set(MINIDBX_EIO, "disk %d on fire", 3), MINIDBX_EIO);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "disk 3 on fire"));
}
END_TEST

static void *fail_in_thread(void *arg)
{
    (void)arg;
    minidbx_error_set(MINIDBX_ECORRUPT, "other thread's failure");
    return NULL;
}

START_TEST(errmsg_is_thread_local)
{
    minidbx_error_set(MINIDBX_EIO, "this thread's failure");
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "this thread's failure"));
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_with_store("errors", TEST_TIMEOUT_S);
    tcase_add_test(tc, codes_in_band_and_distinct);
    tcase_add_test(tc, strerror_names_every_code);
    tcase_add_test(tc, errmsg_after_failures);
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, error_set_for_backends);
    tcase_add_test(tc, errmsg_is_thread_local);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(errors_suite());
}
