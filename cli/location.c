/* location.c - where the store is, opening it, and turning arguments into ids. */
#include "cli.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
}

/* --store, else $MINIDBX_STORE, else the XDG data dir. The XDG base
 * directory spec says a relative $XDG_DATA_HOME is to be ignored. */
static int resolve_location(struct cli *cli)
{
    const char *env = getenv("MINIDBX_STORE");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home;

    if (cli->store_arg || (env && env[0])) {
        cli->location = strdup(cli->store_arg ? cli->store_arg : env);
    } else if (xdg && xdg[0] == '/') {
        cli->location = cli_join_path(xdg, "minidbx");
        cli->location_is_default = 1;
    } else if ((home = home_dir()) != NULL) {
        cli->location = cli_join_path(home, ".local/share/minidbx");
        cli->location_is_default = 1;
    } else {
        fprintf(stderr, "mdbx: %s: no store given and no home directory; use --store\n",
                cli->command_name);
        return CLI_EXIT_USAGE;
    }
    if (!cli->location) {
        fprintf(stderr, "mdbx: %s: out of memory\n", cli->command_name);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

/* mkdir -p the parents of the default location (the XDG spec asks for
 * mode 0700); a store named by the user gets no directories made up. */
static int make_parent_dirs(struct cli *cli)
{
    char *path = cli->location;
    int rc = CLI_EXIT_OK;

    for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            rc = cli_fail_errno(cli, path, errno);
        *slash = '/';
        if (rc != CLI_EXIT_OK)
            break;
    }
    return rc;
}

/* Does location look like HOST:PORT (a node written without http://)? */
static int looks_like_host_port(const char *location)
{
    const char *colon = strrchr(location, ':');
    if (!colon || colon == location || strchr(location, '/') || !colon[1])
        return 0;
    return strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

static int report_missing_store(struct cli *cli)
{
    if (looks_like_host_port(cli->location)) {
        fprintf(stderr, "mdbx: %s: no store at %s: for a node, write http://%s\n", cli->command_name,
                cli->location, cli->location);
        return CLI_EXIT_NOTFOUND;
    }
    fprintf(stderr, "mdbx: %s: no store at %s (create it with: mdbx %s%s%sinit)\n",
            cli->command_name, cli->location, cli->store_arg ? "-s " : "",
            cli->store_arg ? cli->store_arg : "", cli->store_arg ? " " : "");
    return CLI_EXIT_NOTFOUND;
}

static int open_with_flags(struct cli *cli, unsigned flags)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = flags | cli->open_flags;
    opts.max_object_size = cli->max_object_size;
    opts.durability = cli->durability;
    return minidbx_open(&cli->db, cli->location, &opts);
}

int cli_open_store(struct cli *cli, enum cli_open_mode mode)
{
    static const unsigned flags_for_mode[] = {
        [CLI_OPEN_READ] = MINIDBX_OPEN_NO_CREATE | MINIDBX_OPEN_READONLY,
        [CLI_OPEN_WRITE] = MINIDBX_OPEN_NO_CREATE,
        [CLI_OPEN_CREATE] = MINIDBX_OPEN_NO_CREATE, /* first: to tell if we create it */
    };
    int rc = resolve_location(cli);
    int code;

    if (rc != CLI_EXIT_OK)
        return rc;
    code = open_with_flags(cli, flags_for_mode[mode]);
    if (code == MINIDBX_ENOTFOUND && mode == CLI_OPEN_CREATE) {
        if (cli->location_is_default && (rc = make_parent_dirs(cli)) != CLI_EXIT_OK)
            return rc;
        code = open_with_flags(cli, 0);
        cli->store_created = code == MINIDBX_OK;
    }
    if (code == MINIDBX_ENOTFOUND && mode != CLI_OPEN_CREATE)
        return report_missing_store(cli);
    /* ENOTFOUND here is a missing parent directory, not a missing object:
     * an error of its own (exit 4), not "not found" (exit 1) */
    if (code == MINIDBX_ENOTFOUND) {
        fprintf(stderr, "mdbx: %s: cannot create a store at %s: no directory can be made there\n",
                cli->command_name, cli->location);
        return CLI_EXIT_FAILURE;
    }
    if (code != MINIDBX_OK)
        return cli_fail(cli, cli->location, code, NULL);
    return CLI_EXIT_OK;
}

int cli_resolve(struct cli *cli, const char *arg, minidbx_id *id, minidbx_name_info *name_out,
                int quiet_missing)
{
    minidbx_name_info info;
    int code;

    if (name_out)
        name_out->name[0] = '\0';
    if (minidbx_id_parse(id, arg) == MINIDBX_OK)
        return CLI_EXIT_OK;
    if (!minidbx_name_valid(arg)) {
        fprintf(stderr, "mdbx: %s %s: not an id (64 hex digits) or a valid name\n",
                cli->command_name, arg);
        return CLI_EXIT_USAGE;
    }
    code = minidbx_name_get(cli->db, arg, &info);
    if (code == MINIDBX_ENOTFOUND && quiet_missing)
        return CLI_EXIT_NOTFOUND;
    if (code == MINIDBX_ENOTFOUND && strlen(arg) != 64 && strlen(arg) >= 32 &&
        strspn(arg, "0123456789abcdefABCDEF") == strlen(arg)) {
        fprintf(stderr, "mdbx: %s %s: no such name, and not an id: ids are 64 hex digits, this has %zu\n",
                cli->command_name, arg, strlen(arg));
        return CLI_EXIT_NOTFOUND;
    }
    if (code != MINIDBX_OK)
        return cli_fail(cli, arg, code, code == MINIDBX_ENOTFOUND ? "name not found" : NULL);
    *id = info.id;
    if (name_out)
        *name_out = info;
    return CLI_EXIT_OK;
}

int cli_check_name_move(struct cli *cli, const char *what, const char *name, const minidbx_id *id,
                        int force)
{
    minidbx_name_info current;
    char hex[MINIDBX_ID_HEX_SIZE], message[MINIDBX_NAME_MAX + 160];
    int code;

    if (force)
        return CLI_EXIT_OK;
    code = minidbx_name_get(cli->db, name, &current);
    if (code == MINIDBX_ENOTFOUND || (code == MINIDBX_OK && id && minidbx_id_equal(id, &current.id)))
        return CLI_EXIT_OK;
    if (code != MINIDBX_OK)
        return cli_fail(cli, name, code, NULL);
    minidbx_id_format(&current.id, hex);
    snprintf(message, sizeof message, "%s%salready points at %s; not moved (use --force to move it)",
             what == name ? "" : name, what == name ? "" : " ", hex);
    return cli_refuse(cli, what, MINIDBX_EEXISTS, message);
}

void cli_names_of(struct cli *cli, const minidbx_id *id, char *out, size_t size, int max)
{
    enum { PAGE = 256 };
    minidbx_name_info *page = malloc(PAGE * sizeof *page);
    char after[MINIDBX_NAME_MAX + 1];
    size_t count = 0, used = 0;
    int found = 0;

    out[0] = '\0';
    if (!page)
        return;
    /* A short page is the last one; each resumes after the last name. */
    do {
        if (minidbx_name_list(cli->db, NULL, count ? after : NULL, page, PAGE, &count) != MINIDBX_OK)
            break;
        for (size_t i = 0; i < count && found <= max; i++) {
            if (!minidbx_id_equal(&page[i].id, id))
                continue;
            if (++found > max)
                snprintf(out + used, size - used, ", ...");
            else
                snprintf(out + used, size - used, "%s%s", found > 1 ? ", " : "", page[i].name);
            used += strlen(out + used);
        }
        if (count)
            strcpy(after, page[count - 1].name);
    } while (count == PAGE && found <= max);
    free(page);
}
