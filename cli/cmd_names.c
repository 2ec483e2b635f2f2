/* cmd_names.c - commands on names: names [PREFIX], name set, name rm. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_PAGE 128

/* The options of names and name: -l, -a, -f. */
struct name_options {
    int long_format; /* names -l */
    int all;         /* names -a: the old system's records (_go/) too */
    int force;       /* name set -f: move a name that points elsewhere */
};

static int name_option(void *ctx, int opt, const char *arg)
{
    struct name_options *o = ctx;

    (void)arg;
    switch (opt) {
    case 'l': o->long_format = 1; break;
    case 'a': o->all = 1; break;
    case 'f': o->force = 1; break;
    default: return CLI_EXIT_USAGE;
    }
    return 0;
}

/* The records `mdbx serve` keeps for the old system's /register
 * (_go/register/...) are not the user's names: listed only when asked
 * for (-a, or a PREFIX that starts with "_go"). */
static int hidden_name(const struct name_options *o, const char *prefix, const char *name)
{
    return !o->all && !(prefix && strncmp(prefix, "_go", 3) == 0) && strncmp(name, "_go/", 4) == 0;
}

static int print_name(struct cli *cli, const minidbx_name_info *info, int long_format)
{
    char hex[MINIDBX_ID_HEX_SIZE], mtime[40];

    cli_format_time(info->mtime_ns, mtime);
    if (cli->json) {
        cJSON *obj = dbx_json_name_info(info);
        cJSON_AddStringToObject(obj, "mtime", mtime);
        return cli_print_json(cli, obj);
    }
    if (!long_format)
        return cli_printf(cli, "%s\n", info->name);
    minidbx_id_format(&info->id, hex);
    return cli_printf(cli, "%s %" PRIu64 " %s %s\n", hex, info->size, mtime, info->name);
}

int cmd_names(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "long", no_argument, NULL, 'l' },
        { "all", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    minidbx_name_info *page = NULL;
    struct name_options o = { 0 };
    const char *prefix;
    size_t count = 0;
    int first, rc, code;

    rc = cli_parse_options(cli, argc, argv, "la", longopts, name_option, &o, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (argc - first > 1)
        return cli_usage_error(cli, "give at most one PREFIX");
    prefix = first < argc ? argv[first] : NULL;
    rc = cli_open_store(cli, CLI_OPEN_READ);
    if (rc != CLI_EXIT_OK)
        return rc;
    page = malloc(NAME_PAGE * sizeof *page);
    if (!page)
        return cli_fail_errno(cli, "names", ENOMEM);
    /* A short page is the last one; each page resumes after the last name. */
    do {
        const char *after = count ? page[count - 1].name : NULL;
        char after_copy[MINIDBX_NAME_MAX + 1];
        if (after)
            after = strcpy(after_copy, after); /* the page is overwritten */
        code = minidbx_name_list(cli->db, prefix, after, page, NAME_PAGE, &count);
        if (code != MINIDBX_OK) {
            rc = cli_fail(cli, prefix, code, NULL);
            break;
        }
        for (size_t i = 0; i < count && !cli->stop; i++)
            if (!hidden_name(&o, prefix, page[i].name))
                print_name(cli, &page[i], o.long_format);
    } while (count == NAME_PAGE && !cli->stop);
    free(page);
    return rc;
}

static int check_name(struct cli *cli, const char *name)
{
    if (minidbx_name_valid(name))
        return CLI_EXIT_OK;
    fprintf(stderr, "mdbx: %s %s: not a valid name\n", cli->command_name, name);
    return CLI_EXIT_USAGE;
}

static int name_set(struct cli *cli, const struct name_options *o, const char *name,
                    const char *target)
{
    minidbx_id id;
    int rc = check_name(cli, name);
    int code;

    if (rc == CLI_EXIT_OK)
        rc = cli_open_store(cli, CLI_OPEN_WRITE);
    if (rc == CLI_EXIT_OK)
        rc = cli_resolve(cli, target, &id, NULL, 0);
    if (rc != CLI_EXIT_OK)
        return rc;
    /* without --force the library checks, in the set's own transaction on
     * a local store, that the name does not point elsewhere */
    code = minidbx_name_set_ex(cli->db, name, &id, o->force ? 0 : MINIDBX_NAME_KEEP);
    if (code == MINIDBX_EEXISTS && (rc = cli_check_name_move(cli, name, name, &id, 0)) != CLI_EXIT_OK)
        return rc; /* says where it points */
    if (code != MINIDBX_OK)
        return cli_fail(cli, name, code, NULL);
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "name", name);
        dbx_json_add_id(obj, "id", &id);
        cli_print_json(cli, obj);
    }
    return CLI_EXIT_OK;
}

static int name_rm_one(struct cli *cli, const char *name)
{
    int rc = check_name(cli, name);
    int code;

    if (rc != CLI_EXIT_OK)
        return rc;
    code = minidbx_name_delete(cli->db, name);
    if (code != MINIDBX_OK)
        return cli_fail(cli, name, code, code == MINIDBX_ENOTFOUND ? "name not found" : NULL);
    if (cli->json) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "name", name);
        cJSON_AddBoolToObject(obj, "removed", 1);
        cli_print_json(cli, obj);
    }
    return CLI_EXIT_OK;
}

static int name_rm(struct cli *cli, int count, char **names)
{
    int rc = cli_open_store(cli, CLI_OPEN_WRITE);

    if (rc != CLI_EXIT_OK)
        return rc;
    for (int i = 0; i < count && !cli->stop; i++)
        rc = cli_merge_status(rc, name_rm_one(cli, names[i]));
    return rc;
}

int cmd_name(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "force", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    struct name_options o = { 0 };
    int first, rc;
    const char *sub;

    rc = cli_parse_options(cli, argc, argv, "f", longopts, name_option, &o, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    sub = first < argc ? argv[first] : "";
    if (strcmp(sub, "set") == 0 && argc - first == 3)
        return name_set(cli, &o, argv[first + 1], argv[first + 2]);
    if (strcmp(sub, "set") == 0)
        return cli_usage_error(cli, "name set takes NAME and ID");
    if (strcmp(sub, "rm") == 0 && argc - first >= 2)
        return name_rm(cli, argc - first - 1, argv + first + 1);
    if (strcmp(sub, "rm") == 0)
        return cli_usage_error(cli, "name rm takes one NAME or more");
    if (sub[0])
        return cli_usage_error(cli, "unknown subcommand '%s'", sub);
    return cli_usage_error(cli, "missing subcommand (set or rm)");
}
