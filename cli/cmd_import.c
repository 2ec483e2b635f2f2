/* cmd_import.c - `mdbx import-go DIR`: the data directory of one of the old
 * Go system's storage nodes (a file per object, named by the MD5 of its
 * bytes) into the store, each object with its MD5 alias, so that the old
 * clients' ids keep working once `mdbx serve` serves the store. */
#include "cli.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MD5_HEX_DIGITS 32
#define CHUNK_BYTES (256u * 1024u)

/* What became of one file. */
enum import_result { IMPORTED, ALREADY, SKIPPED, CORRUPT, COLLISION, FAILED };

struct import_run {
    struct cli *cli;
    unsigned long counts[FAILED + 1];
    int status;
};

/* A file the old node kept: named by 32 hex digits. */
static int md5_named(const char *leaf)
{
    return strlen(leaf) == MD5_HEX_DIGITS && strspn(leaf, "0123456789abcdefABCDEF") == MD5_HEX_DIGITS;
}

static void hex_of(const unsigned char *bytes, unsigned size, char *out)
{
    for (unsigned i = 0; i < size; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

/* Stream fd into a writer, computing the MD5 and the SHA-256 on the way.
 * Returns a MINIDBX code, or 0 with *err set to a failed read's errno. */
static int read_into(int fd, minidbx_writer *w, EVP_MD_CTX *md5, EVP_MD_CTX *sha, char *buf, int *err)
{
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            return MINIDBX_OK;
        }
        if (n == 0 || cli_interrupted)
            return MINIDBX_OK;
        if (EVP_DigestUpdate(md5, buf, (size_t)n) != 1 || EVP_DigestUpdate(sha, buf, (size_t)n) != 1)
            return MINIDBX_EIO;
        int code = minidbx_writer_write(w, buf, (size_t)n);
        if (code != MINIDBX_OK)
            return code;
    }
}

static void print_result(struct import_run *run, const char *path, const char *md5, const char *id_hex,
                         enum import_result result, const char *why)
{
    static const char *const words[] = { "imported", "already", "skipped", "corrupt", "collision", "failed" };

    run->counts[result]++;
    if (run->cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "file", path);
        cJSON_AddStringToObject(obj, "result", words[result]);
        if (md5)
            cJSON_AddStringToObject(obj, "md5", md5);
        if (id_hex)
            cJSON_AddStringToObject(obj, "id", id_hex);
        if (why)
            cJSON_AddStringToObject(obj, "why", why);
        cli_print_json(run->cli, obj);
    } else if (result == IMPORTED || result == ALREADY) {
        cli_printf(run->cli, "%s  %s%s\n", id_hex, md5, result == ALREADY ? " (already)" : "");
    }
    if (why && !run->cli->json)
        fprintf(stderr, "mdbx: import-go %s: %s\n", path, why);
}

/* The hex digest of ctx, finished. */
static void digest_hex(EVP_MD_CTX *ctx, char *out)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned size = 0;

    out[0] = '\0';
    if (EVP_DigestFinal_ex(ctx, digest, &size) == 1)
        hex_of(digest, size, out);
}

/* Store one file, and point its MD5 alias at it in the same step. */
static void import_file(struct import_run *run, const char *path, const char *leaf)
{
    struct cli *cli = run->cli;
    char md5[MD5_HEX_DIGITS + 1], got_md5[2 * EVP_MAX_MD_SIZE + 1], sha_hex[2 * EVP_MAX_MD_SIZE + 1];
    char alias[sizeof DBX_GO_MD5_ALIAS_PREFIX + MD5_HEX_DIGITS], why[256];
    EVP_MD_CTX *md5_ctx = EVP_MD_CTX_new(), *sha_ctx = EVP_MD_CTX_new();
    minidbx_writer *w = NULL;
    minidbx_name_info current;
    minidbx_id id;
    char *buf = malloc(CHUNK_BYTES);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), err = 0, code = MINIDBX_OK;

    for (size_t i = 0; i <= MD5_HEX_DIGITS; i++)
        md5[i] = (char)(leaf[i] >= 'A' && leaf[i] <= 'F' ? leaf[i] - 'A' + 'a' : leaf[i]);
    snprintf(alias, sizeof alias, DBX_GO_MD5_ALIAS_PREFIX "%s", md5);
    if (fd < 0 || !buf || !md5_ctx || !sha_ctx)
        err = fd < 0 ? errno : ENOMEM;
    else if (EVP_DigestInit_ex(md5_ctx, EVP_md5(), NULL) != 1 ||
             EVP_DigestInit_ex(sha_ctx, EVP_sha256(), NULL) != 1)
        code = MINIDBX_EIO;
    else if ((code = minidbx_writer_open(cli->db, &w)) == MINIDBX_OK)
        code = read_into(fd, w, md5_ctx, sha_ctx, buf, &err);
    if (code != MINIDBX_OK || err || cli_interrupted)
        goto failed;
    digest_hex(md5_ctx, got_md5);
    digest_hex(sha_ctx, sha_hex);
    if (strcmp(got_md5, md5) != 0) {
        /* the old node's copy is damaged: nothing of it is stored */
        snprintf(why, sizeof why, "its bytes have the MD5 %s, not the one it is named by; not imported",
                 got_md5);
        print_result(run, path, md5, NULL, CORRUPT, why);
        run->status = cli_merge_status(run->status, CLI_EXIT_CORRUPT);
        goto out;
    }
    minidbx_id_parse(&id, sha_hex);
    /* An alias never moves: one that names other bytes is an MD5 collision. */
    code = minidbx_name_get(cli->db, alias, &current);
    if (code == MINIDBX_OK && !minidbx_id_equal(&current.id, &id)) {
        char other[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(&current.id, other);
        snprintf(why, sizeof why, "another object (%s) has this MD5 already (a collision); not imported", other);
        print_result(run, path, md5, sha_hex, COLLISION, why);
        run->status = cli_merge_status(run->status, CLI_EXIT_FAILURE);
        goto out;
    }
    if (code != MINIDBX_OK && code != MINIDBX_ENOTFOUND)
        goto failed;
    /* Stored again even when aliased already: a put heals a bad copy. */
    bool already = code == MINIDBX_OK;
    minidbx_id stored;
    code = already ? minidbx_writer_commit_ex(w, &id, &stored, NULL) : minidbx_writer_commit_named(w, alias, &stored);
    w = NULL; /* both free it */
    if (code != MINIDBX_OK)
        goto failed;
    print_result(run, path, md5, sha_hex, already ? ALREADY : IMPORTED, NULL);
    goto out;
failed:
    if (cli_interrupted)
        run->status = CLI_EXIT_INTERRUPTED;
    else
        run->status = cli_merge_status(run->status, err ? cli_fail_errno(cli, path, err) : cli_fail(cli, path, code, NULL));
    run->counts[FAILED]++;
out:
    minidbx_writer_abort(w);
    EVP_MD_CTX_free(md5_ctx);
    EVP_MD_CTX_free(sha_ctx);
    free(buf);
    if (fd >= 0)
        close(fd);
}

static int not_dot_or_dotdot(const struct dirent *entry)
{
    return strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
}

/* Every file under dir named by an MD5, in name order; others are skipped
 * (and said so). Symbolic links are not followed. */
static void import_dir(struct import_run *run, const char *dir)
{
    struct dirent **entries;
    int count = scandir(dir, &entries, not_dot_or_dotdot, alphasort);

    if (count < 0) {
        run->status = cli_merge_status(run->status, cli_fail_errno(run->cli, dir, errno));
        return;
    }
    for (int i = 0; i < count; i++) {
        char *path = cli_join_path(dir, entries[i]->d_name);
        struct stat st;
        if (!path)
            run->status = cli_merge_status(run->status, cli_fail_errno(run->cli, dir, ENOMEM));
        else if (run->cli->stop || cli_interrupted)
            ; /* the rest is not looked at */
        else if (lstat(path, &st) != 0)
            run->status = cli_merge_status(run->status, cli_fail_errno(run->cli, path, errno));
        else if (S_ISDIR(st.st_mode))
            import_dir(run, path);
        else if (S_ISREG(st.st_mode) && md5_named(entries[i]->d_name))
            import_file(run, path, entries[i]->d_name);
        else
            print_result(run, path, NULL, NULL, SKIPPED, "not a file named by an MD5; skipped");
        free(path);
        free(entries[i]);
    }
    free(entries);
}

int cmd_import_go(struct cli *cli, int argc, char **argv)
{
    struct import_run run = { .cli = cli };
    struct stat st;
    int first, rc;

    rc = cli_parse_options(cli, argc, argv, NULL, NULL, NULL, NULL, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (argc - first != 1)
        return cli_usage_error(cli, "give one DIR: the old node's data directory");
    if (stat(argv[first], &st) != 0)
        return cli_fail_errno(cli, argv[first], errno);
    if (!S_ISDIR(st.st_mode))
        return cli_usage_error(cli, "%s is not a directory", argv[first]);
    rc = cli_open_store(cli, CLI_OPEN_CREATE);
    if (rc != CLI_EXIT_OK)
        return rc;
    minidbx_store_info info;
    if (minidbx_info(cli->db, &info) == MINIDBX_OK && strcmp(info.backend, "http") == 0)
        return cli_usage_error(cli, "import into a local store (then serve it): an http:// node keeps "
                                    "the names under _go/ its own");
    cli_signals_catch();
    import_dir(&run, argv[first]);
    if (cli_interrupted)
        run.status = CLI_EXIT_INTERRUPTED;
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "summary", "import-go");
        static const char *const keys[] = { "imported", "already", "skipped", "corrupt", "collisions", "failed" };
        for (int i = IMPORTED; i <= FAILED; i++)
            cJSON_AddNumberToObject(obj, keys[i], (double)run.counts[i]);
        cli_print_json(cli, obj);
    } else if (!cli->quiet) {
        fprintf(stderr, "mdbx: import-go: %lu imported, %lu already there, %lu skipped, %lu corrupt, "
                        "%lu collisions, %lu failed\n",
                run.counts[IMPORTED], run.counts[ALREADY], run.counts[SKIPPED], run.counts[CORRUPT],
                run.counts[COLLISION], run.counts[FAILED]);
    }
    return run.status;
}
