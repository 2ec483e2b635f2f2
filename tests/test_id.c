/* test_id.c - ids are SHA-256, formatted as 64 lowercase hex digits and
 * parsed strictly: anything but exactly 64 hex digits is EINVAL. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

static const char EMPTY_HEX[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char ABC_HEX[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/* SHA-256 of "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" (FIPS 180-2) */
static const char LONG_HEX[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";

static void expect_id_of(const void *data, size_t size, const char *hex)
{
    minidbx_id id;
    char got[MINIDBX_ID_HEX_SIZE];
    ck_assert_ok(minidbx_id_of(&id, data, size));
    minidbx_id_format(&id, got);
    ck_assert_str_eq(got, hex);
}

START_TEST(known_vectors)
{
    expect_id_of("", 0, EMPTY_HEX);
    expect_id_of(NULL, 0, EMPTY_HEX);
    expect_id_of("abc", 3, ABC_HEX);
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_id_of(msg, strlen(msg), LONG_HEX);
}
END_TEST

/* The library's digest equals OpenSSL's for many sizes, including ones that
 * straddle SHA-256's 64-byte block. */
START_TEST(equals_openssl)
{
    test_rng rng;
    rng_seed(&rng, 42);
    static const size_t sizes[] = {1, 55, 56, 63, 64, 65, 1000, 16384, 16385, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *data = rng_alloc(&rng, sizes[i]);
        minidbx_id lib, ref;
        ck_assert_ok(minidbx_id_of(&lib, data, sizes[i]));
        sha256_raw(data, sizes[i], &ref);
        ck_assert_msg(minidbx_id_equal(&lib, &ref), "id of %zu bytes differs from OpenSSL", sizes[i]);
        free(data);
    }
}
END_TEST

START_TEST(put_id_equals_sha256)
{
    minidbx_id id, ref;
    ck_assert_ok(minidbx_put(fx_db, "abc", 3, &id));
    sha256_raw("abc", 3, &ref);
    ck_assert(minidbx_id_equal(&id, &ref));
    ck_assert_ok(minidbx_put(fx_db, NULL, 0, &id));
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&id, hex);
    ck_assert_str_eq(hex, EMPTY_HEX);
}
END_TEST

START_TEST(parse_format_round_trip)
{
    test_rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < 100; i++) {
        minidbx_id id, back;
        char hex[MINIDBX_ID_HEX_SIZE];
        rng_fill(&rng, id.bytes, sizeof id.bytes);
        memset(hex, 'X', sizeof hex);
        minidbx_id_format(&id, hex);
        ck_assert_uint_eq(strlen(hex), 64);
        ck_assert_ok(minidbx_id_parse(&back, hex));
        ck_assert(minidbx_id_equal(&id, &back));
    }
}
END_TEST

START_TEST(parse_uppercase_formats_lowercase)
{
    char upper[MINIDBX_ID_HEX_SIZE];
    for (size_t i = 0; i < 64; i++)
        upper[i] = (char)((ABC_HEX[i] >= 'a') ? ABC_HEX[i] - 'a' + 'A' : ABC_HEX[i]);
    upper[64] = '\0';
    minidbx_id id;
    ck_assert_ok(minidbx_id_parse(&id, upper));
    char out[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&id, out);
    ck_assert_str_eq(out, ABC_HEX);
}
END_TEST

START_TEST(id_equal)
{
    minidbx_id a, b;
    ck_assert_ok(minidbx_id_parse(&a, ABC_HEX));
    ck_assert_ok(minidbx_id_parse(&b, ABC_HEX));
    ck_assert_int_eq(minidbx_id_equal(&a, &b), 1);
    b.bytes[31] ^= 1;
    ck_assert_int_eq(minidbx_id_equal(&a, &b), 0);
}
END_TEST

/* A bad hex gives EINVAL and leaves *out as it was. */
static void expect_parse_einval(const char *hex)
{
    minidbx_id id, before;
    memset(&id, 0x5a, sizeof id);
    before = id;
    ck_assert_rc(minidbx_id_parse(&id, hex), MINIDBX_EINVAL);
    ck_assert_msg(memcmp(&id, &before, sizeof id) == 0, "parse touched *out for bad input \"%s\"",
                  hex ? hex : "(null)");
}

START_TEST(parse_rejects_bad_lengths)
{
    char buf[80];
    memcpy(buf, ABC_HEX, 63);
    buf[63] = '\0';
    expect_parse_einval(buf); /* 63 digits */
    memcpy(buf, ABC_HEX, 64);
    buf[64] = 'a';
    buf[65] = '\0';
    expect_parse_einval(buf); /* 65 digits */
    expect_parse_einval("");
    expect_parse_einval(NULL);
    snprintf(buf, sizeof buf, "%s ", ABC_HEX); /* trailing space */
    expect_parse_einval(buf);
    snprintf(buf, sizeof buf, " %.63s", ABC_HEX); /* leading space, 64 chars */
    expect_parse_einval(buf);
    snprintf(buf, sizeof buf, "%s\n", ABC_HEX);
    expect_parse_einval(buf);
}
END_TEST

START_TEST(parse_rejects_non_hex)
{
    static const char bad_chars[] = "gGzZ/.-+ x:\x7f\x80\xff";
    for (size_t i = 0; i < sizeof bad_chars - 1; i++) {
        for (size_t pos = 0; pos < 64; pos += 21) {
            char buf[MINIDBX_ID_HEX_SIZE];
            memcpy(buf, ABC_HEX, sizeof buf);
            buf[pos] = bad_chars[i];
            expect_parse_einval(buf);
        }
    }
    expect_parse_einval("0x7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"); /* 64 chars */
}
END_TEST

START_TEST(parse_rejects_paths)
{
    expect_parse_einval("../../etc/passwd");
    /* a path padded to exactly 64 characters */
    char buf[MINIDBX_ID_HEX_SIZE];
    memset(buf, 'a', 64);
    memcpy(buf, "../../etc/passwd", 16);
    buf[64] = '\0';
    expect_parse_einval(buf);
    memcpy(buf, ABC_HEX, sizeof buf);
    buf[2] = '/';
    expect_parse_einval(buf);
}
END_TEST

/* parse reads a C string: a NUL inside the 64 characters ends it early. */
START_TEST(parse_rejects_nul_inside)
{
    char buf[MINIDBX_ID_HEX_SIZE];
    memcpy(buf, ABC_HEX, sizeof buf);
    buf[10] = '\0';
    expect_parse_einval(buf);
    memcpy(buf, ABC_HEX, sizeof buf);
    buf[63] = '\0';
    expect_parse_einval(buf);
}
END_TEST

static Suite *id_suite(void)
{
    Suite *s = suite_create("id");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, known_vectors);
    tcase_add_test(pure, equals_openssl);
    tcase_add_test(pure, parse_format_round_trip);
    tcase_add_test(pure, parse_uppercase_formats_lowercase);
    tcase_add_test(pure, id_equal);
    tcase_add_test(pure, parse_rejects_bad_lengths);
    tcase_add_test(pure, parse_rejects_non_hex);
    tcase_add_test(pure, parse_rejects_paths);
    tcase_add_test(pure, parse_rejects_nul_inside);
    suite_add_tcase(s, pure);
    TCase *stored = tcase_with_store("stored", TEST_TIMEOUT_S);
    tcase_add_test(stored, put_id_equals_sha256);
    suite_add_tcase(s, stored);
    return s;
}

int main(void)
{
    return run_suite(id_suite());
}
