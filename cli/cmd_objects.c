/* cmd_objects.c - commands on objects: put, get (cat), exists, rm, stat, ls. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- shared by the commands of this file --------------------------------- */

enum { OPT_CASCADE = 0x200 };

/* Options of the commands below; each command reads the ones it has. */
struct object_options {
    const char *name;      /* put -n */
    int recursive;         /* put -r */
    const char *output;    /* get -o */
    int long_format;       /* ls -l */
    unsigned delete_flags; /* rm --cascade */
    int force;             /* put -f (move a name), get -f (binary to a terminal) */
};

static int object_option(void *ctx, int opt, const char *arg)
{
    struct object_options *o = ctx;

    switch (opt) {
    case 'n': o->name = arg; break;
    case 'r': o->recursive = 1; break;
    case 'o': o->output = arg; break;
    case 'l': o->long_format = 1; break;
    case OPT_CASCADE: o->delete_flags |= MINIDBX_DELETE_CASCADE; break;
    case 'f': o->force = 1; break;
    default: return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Parse options, check the operand count, open the store. Returns 1 when
 * the command should go on (*status 0), else 0 with its exit status. */
static int start_command(struct cli *cli, int argc, char **argv, const char *shortopts,
                         const struct option *longopts, struct object_options *o,
                         int need_operand, enum cli_open_mode mode, int *first, int *status)
{
    int rc = cli_parse_options(cli, argc, argv, shortopts, longopts, object_option, o, first);

    if (rc == CLI_PARSE_CONTINUE && need_operand && *first == argc)
        rc = cli_usage_error(cli, "nothing given to %s", cli->command->name);
    else if (rc == CLI_PARSE_CONTINUE && !need_operand && *first != argc)
        rc = cli_usage_error(cli, "unexpected argument '%s'", argv[*first]);
    else if (rc == CLI_PARSE_CONTINUE)
        return (*status = cli_open_store(cli, mode)) == CLI_EXIT_OK;
    *status = rc; /* 0 after --help */
    return 0;
}

/* ---- put ---------------------------------------------------------------- */

static int print_put(struct cli *cli, const struct object_options *o, const char *file,
                     const minidbx_id *id, uint64_t size, const char *name)
{
    char hex[MINIDBX_ID_HEX_SIZE];

    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "file", file);
        dbx_json_add_id(obj, "id", id);
        dbx_json_add_u64(obj, "size", size);
        if (name)
            cJSON_AddStringToObject(obj, "name", name);
        return cli_print_json(cli, obj);
    }
    minidbx_id_format(id, hex);
    if (o->recursive && name)
        return cli_printf(cli, "%s  %s\n", hex, name);
    return cli_printf(cli, "%s\n", hex);
}

/* Store what fd holds, point name (may be NULL) at it, print the id. */
static int put_fd(struct cli *cli, const struct object_options *o, int fd, const char *file,
                  const char *name, uint64_t size_hint)
{
    minidbx_id id;
    uint64_t size = 0;
    /* The object and its name are stored together, or neither is. */
    int rc = cli_put_stream(cli, fd, strcmp(file, "-") == 0 ? "stdin" : file, name, o->force, size_hint, &id,
                            &size);

    if (rc != CLI_EXIT_OK)
        return rc;
    print_put(cli, o, file, &id, size, name);
    return rc;
}

/* The id of what the regular file fd holds, read to its end (not mapped:
 * a file cut short meanwhile would be SIGBUS), then back at its start. */
static int file_id(int fd, minidbx_id *out)
{
    enum { CHUNK = 256 * 1024 };
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = malloc(CHUNK);
    ssize_t n = 0;
    int ok = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

    while (ok && ((n = read(fd, buf, CHUNK)) > 0 || (n < 0 && errno == EINTR)))
        ok = n < 0 || EVP_DigestUpdate(md, buf, (size_t)n) == 1;
    ok = ok && n == 0 && EVP_DigestFinal_ex(md, digest, &size) == 1 && size == MINIDBX_ID_SIZE &&
         lseek(fd, 0, SEEK_SET) == 0;
    if (ok)
        memcpy(out->bytes, digest, MINIDBX_ID_SIZE);
    EVP_MD_CTX_free(md);
    free(buf);
    return ok ? MINIDBX_OK : MINIDBX_EIO;
}

/* put -n NAME moves no name by surprise: without --force, NAME must be
 * free or point at these very bytes already (a regular file is hashed to
 * tell, only when NAME exists; standard input cannot be read twice). A
 * file that changes between this and the put is what gets stored. */
static int check_put_name(struct cli *cli, const struct object_options *o, int fd,
                          const struct stat *st, const char *label, const char *name)
{
    minidbx_id id;
    int known = fd >= 0 && S_ISREG(st->st_mode) && !o->force &&
                minidbx_name_get(cli->db, name, &(minidbx_name_info){ 0 }) == MINIDBX_OK &&
                file_id(fd, &id) == MINIDBX_OK;

    return cli_check_name_move(cli, label, name, known ? &id : NULL, o->force);
}

static int put_regular_file(struct cli *cli, const struct object_options *o, const char *path,
                            const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    int rc;

    if (fd < 0)
        return cli_fail_errno(cli, path, errno);
    if (fstat(fd, &st) != 0) {
        rc = cli_fail_errno(cli, path, errno);
        goto out;
    }
    if (name && !minidbx_name_valid(name)) {
        fprintf(stderr, "mdbx: put %s: '%s' is not a valid name; not stored\n", path, name);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (name && (rc = check_put_name(cli, o, fd, &st, path, name)) != CLI_EXIT_OK)
        goto out;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    rc = put_fd(cli, o, fd, path, name, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
out:
    close(fd);
    return rc;
}

static int put_tree(struct cli *cli, const struct object_options *o, const char *dir,
                    const char *name_prefix);

/* One entry of a directory under -r: recurse, store, or skip it. */
static int put_tree_entry(struct cli *cli, const struct object_options *o, const char *dir,
                          const char *name_prefix, const char *leaf)
{
    char *path = cli_join_path(dir, leaf);
    char *name = name_prefix ? cli_join_path(name_prefix, leaf) : strdup(leaf);
    struct stat st;
    int rc = CLI_EXIT_OK;

    if (!path || !name)
        rc = cli_fail_errno(cli, dir, ENOMEM);
    else if (lstat(path, &st) != 0)
        rc = cli_fail_errno(cli, path, errno);
    else if (S_ISDIR(st.st_mode))
        rc = put_tree(cli, o, path, name);
    else if (S_ISREG(st.st_mode))
        rc = put_regular_file(cli, o, path, name);
    else
        cli_warn(cli, "%s: not a regular file; skipped", path);
    free(path);
    free(name);
    return rc;
}

static int not_dot_or_dotdot(const struct dirent *entry)
{
    return strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
}

/* Sorted, so that the output and the order of puts do not depend on the
 * file system. Symlinks are not followed (no loops, nothing outside). */
static int put_tree(struct cli *cli, const struct object_options *o, const char *dir,
                    const char *name_prefix)
{
    struct dirent **entries;
    int count = scandir(dir, &entries, not_dot_or_dotdot, alphasort);
    int rc = CLI_EXIT_OK;

    if (count < 0)
        return cli_fail_errno(cli, dir, errno);
    for (int i = 0; i < count; i++) {
        if (!cli->stop)
            rc = cli_merge_status(rc, put_tree_entry(cli, o, dir, name_prefix, entries[i]->d_name));
        free(entries[i]);
    }
    free(entries);
    return rc;
}

static int put_argument(struct cli *cli, const struct object_options *o, const char *arg)
{
    struct stat st;

    if (strcmp(arg, "-") == 0) {
        const char *name = o->recursive ? NULL : o->name;
        int rc = name ? check_put_name(cli, o, -1, NULL, "stdin", name) : CLI_EXIT_OK;
        return rc != CLI_EXIT_OK ? rc : put_fd(cli, o, STDIN_FILENO, arg, name, 0);
    }
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (o->recursive)
            return put_tree(cli, o, arg, o->name);
        fprintf(stderr, "mdbx: put %s: is a directory (use -r to store what it holds)\n", arg);
        return CLI_EXIT_USAGE;
    }
    return put_regular_file(cli, o, arg, o->recursive ? NULL : o->name);
}

int cmd_put(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "name", required_argument, NULL, 'n' },
        { "recursive", no_argument, NULL, 'r' },
        { "force", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    struct object_options o = { 0 };
    int first, rc;

    rc = cli_parse_options(cli, argc, argv, "n:rf", longopts, object_option, &o, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first == argc)
        return cli_usage_error(cli, "no FILE given");
    if (o.name && !o.recursive && argc - first > 1)
        return cli_usage_error(cli, "--name goes with one FILE (or with -r, as a prefix)");
    if (o.name && !minidbx_name_valid(o.name))
        return cli_usage_error(cli, "'%s' is not a valid name", o.name);
    rc = cli_open_store(cli, CLI_OPEN_CREATE);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_signals_catch();
    for (int i = first; i < argc && !cli->stop; i++)
        rc = cli_merge_status(rc, put_argument(cli, &o, argv[i]));
    return rc;
}

/* ---- get ---------------------------------------------------------------- */

static int get_one(struct cli *cli, const struct object_options *o, const char *arg)
{
    minidbx_id id;
    uint64_t size = 0;
    int rc = cli_resolve(cli, arg, &id, NULL, 0);

    if (rc != CLI_EXIT_OK)
        return rc;
    if (!o->output)
        return cli_get_to_stdout(cli, &id, arg, o->force);
    rc = cli_get_to_file(cli, &id, arg, o->output, &size);
    if (rc == CLI_EXIT_OK && cli->json) {
        cJSON *obj = cJSON_CreateObject();
        dbx_json_add_id(obj, "id", &id);
        dbx_json_add_u64(obj, "size", size);
        cJSON_AddStringToObject(obj, "file", o->output);
        cli_print_json(cli, obj);
    }
    return rc;
}

int cmd_get(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "force", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    struct object_options o = { 0 };
    int first, rc;

    rc = cli_parse_options(cli, argc, argv, "o:f", longopts, object_option, &o, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (o.output && strcmp(o.output, "-") == 0) { /* as with curl: stdout, whatever it is */
        o.output = NULL;
        o.force = 1;
    }
    if (first == argc)
        return cli_usage_error(cli, "no ID or NAME given");
    if (o.output && argc - first > 1)
        return cli_usage_error(cli, "-o FILE goes with one ID or NAME");
    if (cli->json && !o.output)
        return cli_usage_error(cli, "--json needs -o FILE (the bytes go to stdout)");
    rc = cli_open_store(cli, CLI_OPEN_READ);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_signals_catch();
    for (int i = first; i < argc && !cli->stop; i++)
        rc = cli_merge_status(rc, get_one(cli, &o, argv[i]));
    return rc;
}

/* ---- exists ------------------------------------------------------------- */

static int print_exists(struct cli *cli, const char *arg, const minidbx_id *id, int exists)
{
    if (!cli->json)
        return exists ? 0 : cli_printf(cli, "%s\n", arg);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "arg", arg);
    if (id)
        dbx_json_add_id(obj, "id", id);
    else
        cJSON_AddNullToObject(obj, "id");
    cJSON_AddBoolToObject(obj, "exists", exists);
    return cli_print_json(cli, obj);
}

/* What became of one argument of exists. */
enum exists_state { ARG_ID, ARG_NAME_MISSING, ARG_BAD };

/* minidbx_missing keeps input order, so one walk pairs its answer with
 * the arguments that resolved to ids (state ARG_ID, in order). */
static int report_missing(struct cli *cli, char **args, int count, const minidbx_id *ids,
                          const unsigned char *states, const minidbx_id *missing,
                          size_t missing_count)
{
    size_t next_id = 0, next_missing = 0;
    int rc = CLI_EXIT_OK;

    for (int i = 0; i < count && !cli->stop; i++) {
        const minidbx_id *id = states[i] == ARG_ID ? &ids[next_id++] : NULL;
        int exists = id != NULL;

        if (states[i] == ARG_BAD)
            continue; /* already reported */
        if (id && next_missing < missing_count && minidbx_id_equal(id, &missing[next_missing])) {
            exists = 0;
            next_missing++;
        }
        if (!exists)
            rc = CLI_EXIT_NOTFOUND;
        print_exists(cli, args[i], id, exists);
    }
    return rc;
}

int cmd_exists(struct cli *cli, int argc, char **argv)
{
    struct object_options o = { 0 };
    minidbx_id *ids = NULL, *missing = NULL;
    unsigned char *states = NULL;
    size_t id_count = 0, missing_count = 0;
    int first, rc, code, count;

    if (!start_command(cli, argc, argv, NULL, NULL, &o, 1, CLI_OPEN_READ, &first, &rc))
        return rc;
    count = argc - first;
    ids = calloc((size_t)count, sizeof *ids);
    missing = calloc((size_t)count, sizeof *missing);
    states = calloc((size_t)count, 1);
    if (!ids || !missing || !states) {
        rc = cli_fail_errno(cli, "ids", ENOMEM);
        goto out;
    }
    for (int i = 0; i < count; i++) {
        int status = cli_resolve(cli, argv[first + i], &ids[id_count], NULL, 1);
        states[i] = status == CLI_EXIT_OK ? ARG_ID
                    : status == CLI_EXIT_NOTFOUND ? ARG_NAME_MISSING : ARG_BAD;
        id_count += status == CLI_EXIT_OK;
        if (states[i] == ARG_BAD)
            rc = cli_merge_status(rc, status);
    }
    code = minidbx_missing(cli->db, ids, id_count, missing, &missing_count);
    if (code != MINIDBX_OK) {
        rc = cli_fail(cli, NULL, code, NULL);
        goto out;
    }
    rc = cli_merge_status(rc, report_missing(cli, argv + first, count, ids, states, missing,
                                             missing_count));
out:
    free(ids);
    free(missing);
    free(states);
    return rc;
}

/* ---- rm ----------------------------------------------------------------- */

static void print_rm(struct cli *cli, const char *arg, const minidbx_id *id, const char *name,
                     int deleted)
{
    if (!cli->json)
        return;
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "arg", arg);
    dbx_json_add_id(obj, "id", id);
    if (name)
        cJSON_AddStringToObject(obj, "name_removed", name);
    cJSON_AddBoolToObject(obj, "deleted", deleted);
    cli_print_json(cli, obj);
}

/* rm NAME: the name goes, and its object with it unless another name
 * still points at it (then it stays, and rm says which names hold it). A
 * name moved meanwhile by another writer is removed all the same; the
 * object rm resolved is deleted only if nothing names it. */
static int rm_name(struct cli *cli, const char *name, const minidbx_id *id)
{
    char holders[512], message[1024];
    int code = minidbx_name_delete(cli->db, name);

    if (code != MINIDBX_OK)
        return cli_fail(cli, name, code, code == MINIDBX_ENOTFOUND ? "name not found" : NULL);
    code = minidbx_delete(cli->db, id);
    if (code == MINIDBX_EREFERENCED) {
        cli_names_of(cli, id, holders, sizeof holders, 5);
        snprintf(message, sizeof message, "name removed; the object stays: %s %s at it",
                 holders[0] ? holders : "another name", strchr(holders, ',') ? "point" : "points");
        if (!cli->quiet)
            fprintf(stderr, "mdbx: %s %s: %s\n", cli->command_name, name, message);
    } else if (code != MINIDBX_OK && code != MINIDBX_ENOTFOUND) {
        return cli_fail(cli, name, code, "name removed, but its object was not deleted");
    }
    print_rm(cli, name, id, name, code == MINIDBX_OK);
    return CLI_EXIT_OK;
}

static int rm_one(struct cli *cli, unsigned flags, const char *arg)
{
    minidbx_name_info name;
    minidbx_id id;
    char holders[512], message[1024];
    int rc = cli_resolve(cli, arg, &id, &name, 0);
    int code;

    if (rc != CLI_EXIT_OK)
        return rc;
    if (name.name[0] && !(flags & MINIDBX_DELETE_CASCADE))
        return rm_name(cli, arg, &id);
    code = minidbx_delete_ex(cli->db, &id, flags);
    if (code == MINIDBX_EREFERENCED && (flags & MINIDBX_DELETE_CASCADE))
        /* s3://: a name set of it is in flight (the library's message says which) */
        return cli_refuse(cli, arg, code, minidbx_errmsg(cli->db));
    if (code == MINIDBX_EREFERENCED) {
        cli_names_of(cli, &id, holders, sizeof holders, 5);
        snprintf(message, sizeof message,
                 "not deleted: %s %s at it (rm NAME removes a name and, when no other name "
                 "holds it, its object; --cascade removes the object and all its names)",
                 holders[0] ? holders : "a name", strchr(holders, ',') ? "point" : "points");
        return cli_refuse(cli, arg, code, message);
    }
    if (code != MINIDBX_OK)
        return cli_fail(cli, arg, code, NULL);
    print_rm(cli, arg, &id, NULL, 1);
    return CLI_EXIT_OK;
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "cascade", no_argument, NULL, OPT_CASCADE },
        { NULL, 0, NULL, 0 },
    };
    struct object_options o = { 0 };
    int first, rc;

    if (!start_command(cli, argc, argv, NULL, longopts, &o, 1, CLI_OPEN_WRITE, &first, &rc))
        return rc;
    for (int i = first; i < argc && !cli->stop; i++)
        rc = cli_merge_status(rc, rm_one(cli, o.delete_flags, argv[i]));
    return rc;
}

/* ---- stat --------------------------------------------------------------- */

static int print_stat_json(struct cli *cli, const minidbx_object_info *info,
                           const minidbx_name_info *name)
{
    char time_text[40];
    cJSON *obj = dbx_json_object_info(info);

    cli_format_time(info->created_ns, time_text);
    cJSON_AddStringToObject(obj, "created", time_text);
    if (name->name[0]) {
        cJSON_AddStringToObject(obj, "name", name->name);
        dbx_json_add_i64(obj, "name_mtime_ns", name->mtime_ns);
    }
    return cli_print_json(cli, obj);
}

static int print_stat_text(struct cli *cli, const minidbx_object_info *info,
                           const minidbx_name_info *name, int first)
{
    char hex[MINIDBX_ID_HEX_SIZE], created[40], name_time[40];

    minidbx_id_format(&info->id, hex);
    cli_format_time(info->created_ns, created);
    if (cli_printf(cli, "%sid:      %s\nsize:    %" PRIu64 "\nstorage: %s\nrefs:    %" PRIu64
                        "\ncreated: %s\n",
                   first ? "" : "\n", hex, info->size,
                   info->flags & MINIDBX_OBJECT_INLINE ? "inline" : "file", info->refs,
                   created) < 0)
        return -1;
    if (!name->name[0])
        return 0;
    cli_format_time(name->mtime_ns, name_time);
    return cli_printf(cli, "name:    %s\nnamed:   %s\n", name->name, name_time);
}

static int stat_one(struct cli *cli, const char *arg, int first)
{
    minidbx_object_info info;
    minidbx_name_info name;
    minidbx_id id;
    int rc = cli_resolve(cli, arg, &id, &name, 0);
    int code;

    if (rc != CLI_EXIT_OK)
        return rc;
    code = minidbx_stat(cli->db, &id, &info);
    if (code != MINIDBX_OK)
        return cli_fail(cli, arg, code, NULL);
    if (cli->json)
        print_stat_json(cli, &info, &name);
    else
        print_stat_text(cli, &info, &name, first);
    return CLI_EXIT_OK;
}

int cmd_stat(struct cli *cli, int argc, char **argv)
{
    struct object_options o = { 0 };
    int first, rc;

    if (!start_command(cli, argc, argv, NULL, NULL, &o, 1, CLI_OPEN_READ, &first, &rc))
        return rc;
    for (int i = first; i < argc && !cli->stop; i++)
        rc = cli_merge_status(rc, stat_one(cli, argv[i], i == first));
    return rc;
}

/* ---- ls ----------------------------------------------------------------- */

#define LIST_PAGE 256

static int print_object(struct cli *cli, const minidbx_object_info *info, int long_format)
{
    char hex[MINIDBX_ID_HEX_SIZE], created[40];
    minidbx_name_info no_name;

    if (cli->json) {
        no_name.name[0] = '\0';
        return print_stat_json(cli, info, &no_name);
    }
    minidbx_id_format(&info->id, hex);
    if (!long_format)
        return cli_printf(cli, "%s %" PRIu64 "\n", hex, info->size);
    cli_format_time(info->created_ns, created);
    return cli_printf(cli, "%s %" PRIu64 " %" PRIu64 " %s %s\n", hex, info->size, info->refs,
                      info->flags & MINIDBX_OBJECT_INLINE ? "inline" : "file", created);
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "long", no_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    struct object_options o = { 0 };
    minidbx_object_info *page;
    minidbx_id after;
    size_t count = 0;
    int first, rc, code;

    if (!start_command(cli, argc, argv, "l", longopts, &o, 0, CLI_OPEN_READ, &first, &rc))
        return rc;
    page = malloc(LIST_PAGE * sizeof *page);
    if (!page)
        return cli_fail_errno(cli, "list", ENOMEM);
    /* A short page is the last one; each page resumes after the last id. */
    do {
        code = minidbx_list(cli->db, count ? &after : NULL, page, LIST_PAGE, &count);
        if (code != MINIDBX_OK) {
            rc = cli_fail(cli, NULL, code, NULL);
            break;
        }
        for (size_t i = 0; i < count && !cli->stop; i++)
            print_object(cli, &page[i], o.long_format);
        if (count)
            after = page[count - 1].id;
    } while (count == LIST_PAGE && !cli->stop);
    free(page);
    return rc;
}
