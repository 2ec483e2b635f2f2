/* cmd_serve.c - `mdbx serve`: the command line into the node's settings
 * (server/server.h), the store opened, the node run until SIGTERM/SIGINT.
 * The node itself lives in server/. */
#include "cli.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Option codes: above the global options' (util.c), one per setting. */
#define OPT_SETTING_BASE 0x200

struct option_ctx {
    struct cli *cli;
    struct minidbx_server_config *cfg;
    struct minidbx_server_error *err;
    bool config_only; /* the first pass only looks for --config */
};

/* The exit status for a failure of the node (and its message). */
static int serve_failed(struct cli *cli, const struct minidbx_server_error *err)
{
    if (err->code == MINIDBX_EINVAL)
        return cli_usage_error(cli, "%s", err->text);
    if (err->errnum)
        return cli_fail_errno(cli, err->text, err->errnum);
    fprintf(stderr, "mdbx serve: %s\n", err->text);
    return CLI_EXIT_FAILURE;
}

static int on_option(void *cls, int opt, const char *value)
{
    struct option_ctx *ctx = cls;
    const char *name = minidbx_server_settings[opt - OPT_SETTING_BASE].name;

    if (ctx->config_only && strcmp(name, "config") != 0)
        return 0;
    if (minidbx_server_config_set(ctx->cfg, name, value, ctx->err) != 0)
        return serve_failed(ctx->cli, ctx->err);
    return 0;
}

/* getopt's table, from the node's settings. */
static struct option *serve_longopts(void)
{
    size_t count = 0;

    while (minidbx_server_settings[count].name)
        count++;
    struct option *opts = calloc(count + 1, sizeof *opts);
    for (size_t i = 0; opts && i < count; i++)
        opts[i] = (struct option){ minidbx_server_settings[i].name,
                                   minidbx_server_settings[i].takes_value ? required_argument
                                                                          : no_argument,
                                   NULL, OPT_SETTING_BASE + (int)i };
    return opts;
}

/* Two passes: --config first, so that the options on the command line win
 * over the file whatever their order. */
static int parse_serve_options(struct cli *cli, int argc, char **argv,
                               struct minidbx_server_config *cfg, struct minidbx_server_error *err)
{
    struct option_ctx ctx = { cli, cfg, err, true };
    struct option *longopts = serve_longopts();
    int first, rc;

    if (!longopts)
        return cli_fail_errno(cli, "serve", ENOMEM);
    rc = cli_parse_options(cli, argc, argv, "", longopts, on_option, &ctx, &first);
    if (rc == CLI_PARSE_CONTINUE && first != argc)
        rc = cli_usage_error(cli, "unexpected argument '%s'", argv[first]);
    if (rc == CLI_PARSE_CONTINUE && cfg->config_file && minidbx_server_config_load(cfg, err) != 0)
        rc = serve_failed(cli, err);
    if (rc == CLI_PARSE_CONTINUE) {
        ctx.config_only = false;
        rc = cli_parse_options(cli, argc, argv, "", longopts, on_option, &ctx, &first);
    }
    if (rc == CLI_PARSE_CONTINUE && minidbx_server_config_check(cfg, err) != 0)
        rc = serve_failed(cli, err);
    free(longopts);
    return rc;
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
    struct minidbx_server_config cfg;
    struct minidbx_server_error err = { 0 };
    minidbx_server *server = NULL;
    int rc;

    minidbx_server_config_init(&cfg);
    rc = parse_serve_options(cli, argc, argv, &cfg, &err);
    if (rc != CLI_PARSE_CONTINUE)
        goto out;
    /* One limit: the library enforces it on every write to the store. */
    cli->max_object_size = cfg.max_object_bytes;
    cli->durability = cfg.sync_none ? MINIDBX_SYNC_NONE : MINIDBX_SYNC_FULL;
    if (minidbx_server_open(&server, &cfg, &err) != 0) {
        rc = serve_failed(cli, &err);
        goto out;
    }
    if ((rc = cli_open_store(cli, cfg.read_only ? CLI_OPEN_READ : CLI_OPEN_CREATE)) != 0)
        goto out;
    rc = minidbx_server_run(server, cli->db, &err) != 0 ? serve_failed(cli, &err) : CLI_EXIT_OK;
out:
    minidbx_server_free(server);
    minidbx_server_config_free(&cfg);
    return rc;
}
