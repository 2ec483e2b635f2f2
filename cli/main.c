/* main.c - mdbx: global options, the command table, dispatch and help. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* push, pull and sync share their options and rules. */
#define COPY_HELP                                                                           \
    "  SRC, DEST          stores: directories, http://HOST:PORT, any location;\n"          \
    "                     push and pull copy between -s and SRC or DEST; a\n"               \
    "                     missing local destination is created\n"                          \
    "  ID|NAME            only these objects, and these names (of the source)\n"          \
    "                     with their objects (default: every object and name)\n"           \
    "  -j, --jobs N       copies at once (default 4, at most 64)\n"                         \
    "  -n, --dry-run      print what would be copied and named; change nothing\n"          \
    "  -v, --verbose      also print each object copied\n"                                   \
    "Copies only what the destination lacks, so a re-run copies nothing; every\n"         \
    "object is verified against its id as it is stored. Names: a name the\n"              \
    "destination lacks is set; one that points elsewhere there is set to the\n"         \
    "source's object (the source wins) and printed with what it pointed at;\n"          \
    "nothing is deleted on the destination. Prints each name it sets and a\n"           \
    "summary (not with -q; always with --json); progress on stderr when it is\n"       \
    "a terminal. An object that fails (corrupt in the source) is reported and\n"       \
    "the others go on, unless the destination is unusable (read-only, full,\n"         \
    "gone). Exit status as for the first failure (3: corrupt, 1: not in the\n"         \
    "source), 130 interrupted.\n"

/* Order is the order of `mdbx help`. cli.h supplies `serve` when the
 * build has libmicrohttpd (else SERVE_COMMAND_ENTRY is empty). */
static const struct cli_command commands[] = {
    { "init", NULL, cmd_init, "",
      "create the store",
      "Creates the store if it does not exist yet (running it on an existing\n"
      "store is harmless). Other commands, except put, need an existing store.\n" },
    { "put", NULL, cmd_put, "[-r] [-f] [-n NAME] FILE...",
      "store files; print one id per line",
      "  FILE              a file to store; '-' reads standard input\n"
      "  -n, --name NAME   also point NAME at the object (one FILE only);\n"
      "                    with -r, NAME is a prefix for the names\n"
      "  -r, --recursive   store every file under a directory, named by its\n"
      "                    path relative to that directory; prints ID  NAME\n"
      "  -f, --force       move a name that points at other bytes\n"
      "A name that already points at other bytes is not moved: the file is\n"
      "not stored and put says so (exit 4), unless --force (a name that\n"
      "already points at the same bytes is fine; with '-', any existing name\n"
      "needs --force). Creates the store if it is missing. Interrupting a put\n"
      "stores nothing of the file being read.\n" },
    { "get", "cat", cmd_get, "[-o FILE] [-f] ID|NAME...",
      "write objects to stdout or a file (alias: cat)",
      "  -o, --output FILE  write to FILE (one object only) through a temp file\n"
      "                     renamed into place when complete, never a half file\n"
      "                     ('-': standard output, even a terminal)\n"
      "  -f, --force        write binary bytes to a terminal\n"
      "Bytes are verified against their id as they go. Binary bytes (a NUL in\n"
      "the first block) are not written to a terminal unless -f or -o -\n"
      "(exit 2). With --json (and -o), prints what was written.\n" },
    { "exists", NULL, cmd_exists, "ID|NAME...",
      "exit 0 if all exist, 1 if any is missing (printed)",
      "Prints the missing arguments, one per line; with --json, one record\n"
      "per argument.\n" },
    { "rm", NULL, cmd_rm, "[--cascade] ID|NAME...",
      "delete objects, or names and their objects",
      "  NAME        remove the name, and its object unless another name\n"
      "              still points at it (rm says which; the object stays)\n"
      "  ID          delete the object; refused when names point at it\n"
      "              (rm lists them, exit 4)\n"
      "  --cascade   delete the object and every name that points at it\n"
      "To remove only a name, use `mdbx name rm`.\n" },
    { "stat", NULL, cmd_stat, "ID|NAME...",
      "show what the store knows about objects",
      "Prints id, size, storage (inline or file), names pointing at it and\n"
      "creation time; for a NAME, also the name and when it was set.\n" },
    { "ls", NULL, cmd_ls, "[-l]",
      "list objects: ID SIZE per line",
      "  -l, --long   also print references, storage and creation time\n" },
    { "names", NULL, cmd_names, "[-l] [-a] [PREFIX]",
      "list names (that start with PREFIX)",
      "  -l, --long   print ID SIZE TIME NAME instead of the name alone\n"
      "  -a, --all    also the records `mdbx serve` keeps for the old\n"
      "               system's /register (_go/...; also listed for a PREFIX\n"
      "               that starts with _go)\n" },
    { "name", NULL, cmd_name, "set [-f] NAME ID|NAME | rm NAME...",
      "point a name at an object, or remove names",
      "  name set NAME ID   point NAME at the object ID (or at the object\n"
      "                     another name points at); a NAME that points at\n"
      "                     another object is not moved (exit 4) unless -f\n"
      "  -f, --force        move it\n"
      "  name rm NAME...    remove names (the objects stay; see gc)\n" },
    { "push", NULL, cmd_push, "[-j N] [-n] [-v] DEST [ID|NAME...]",
      "copy to DEST what it lacks of this store, names too",
      COPY_HELP },
    { "pull", NULL, cmd_pull, "[-j N] [-n] [-v] SRC [ID|NAME...]",
      "copy from SRC what this store lacks, names too",
      COPY_HELP },
    { "sync", NULL, cmd_sync, "[-j N] [-n] [-v] SRC DEST",
      "copy from SRC to DEST what DEST lacks, names too",
      COPY_HELP },
    { "import-go", NULL, cmd_import_go, "DIR",
      "import an old Go storage node's files, with their MD5 aliases",
      "  DIR   the node's data directory: one file per object, named by the\n"
      "        MD5 of its bytes (32 hex digits), in DIR or below it\n"
      "Stores each file and points the name _go/md5/MD5 at it in the same\n"
      "step, so that once `mdbx serve` serves the store the old clients' ids\n"
      "keep working (see --md5-aliases in mdbx(1)). A file whose bytes do not\n"
      "have the MD5 it is named by is not imported (exit 3); one whose MD5\n"
      "names other bytes here already (a collision) is not either (exit 4);\n"
      "other files are skipped. Prints ID  MD5 per file imported (--json:\n"
      "a record per file) and a summary. Re-running imports nothing twice.\n"
      "Import into a local store: an http:// node keeps _go/ names its own.\n" },
    { "verify", NULL, cmd_verify, "[--repair] [ID|NAME...]",
      "check every object (or the ones given) against its id",
      "  --repair   remove corrupt and missing objects (and their names),\n"
      "             orphan blobs and temp files; fix reference counts\n"
      "             (on a cluster: store, what `mdbx repair` does)\n"
      "Prints one line per problem, one per name removed with its object\n"
      "(name removed  NAME  (pointed at ID)) and a summary. Exit status 3 if\n"
      "a problem remains.\n" },
    { "repair", NULL, cmd_repair, "[--dry-run]",
      "bring every object and name back to its copies (verify --repair)",
      "  --dry-run   report what is wrong, change nothing\n"
      "On a cluster: store, copies every object and name that a home node\n"
      "lacks (or holds corrupt, or an older name) from another node, and\n"
      "then removes copies outside the homes once every home copy is\n"
      "verified. Prints one line per problem (what was copied, replaced,\n"
      "set or removed) and a summary; a progress line on a terminal. On\n"
      "another store it is verify --repair. Exit status 3 if a problem\n"
      "remains.\n" },
    { "gc", NULL, cmd_gc, "[--older-than DURATION] [--dry-run]",
      "remove objects that no name points at and that are old enough",
      "  --older-than DURATION  remove only unnamed objects last put at least\n"
      "                         this long ago: 0 (all of them), 30s, 10m, 2h,\n"
      "                         14d, 2w (default: 14d, as git prune)\n"
      "  --dry-run              remove nothing; list what would go\n"
      "Removes each object that no name points at and that was not put again\n"
      "within the grace period (putting the same bytes again makes them\n"
      "young). Named objects are never removed. Prints one line per object\n"
      "(\"removed ID SIZE\"; with --json one record each) and a summary. An\n"
      "object put while gc runs is kept. Only runs when asked.\n" },
    { "info", NULL, cmd_info, "",
      "show the store's figures (objects, bytes, names, ...)", "" },
    { "version", NULL, cmd_version, "",
      "show the versions of mdbx and libminidbx", "" },
    SERVE_COMMAND_ENTRY
    { "help", NULL, cmd_help, "[COMMAND]",
      "show help for mdbx or a command", "" },
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const char global_usage[] = "usage: mdbx [-s LOCATION] [--json] [-q] COMMAND [ARGS]\n";

static const char global_options[] =
    "Options (before or after the command):\n"
    "  -s, --store LOCATION  the store: a directory (./a:b if it has a colon)\n"
    "                        or http://HOST:PORT, s3://BUCKET[/PREFIX] or\n"
    "                        cluster:FILE.json (s3: AWS_* and\n"
    "                        MINIDBX_S3_ENDPOINT; see mdbx(1))\n"
    "                        (default: $MINIDBX_STORE,\n"
    "                        else $XDG_DATA_HOME/minidbx, else\n"
    "                        ~/.local/share/minidbx)\n"
    "      --json            print one JSON object per line\n"
    "  -q, --quiet           no progress and no informational messages\n"
    "  -h, --help            show help (for a command after it)\n"
    "  -V, --version         show versions\n"
    "\n"
    "Exit status: 0 ok, 1 not found or missing, 2 usage, 3 corrupt, 4 other\n"
    "error, 130 interrupted. See mdbx(1).\n";

const struct cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        const struct cli_command *cmd = &commands[i];
        if (strcmp(cmd->name, name) == 0 || (cmd->alias && strcmp(cmd->alias, name) == 0))
            return cmd;
    }
    return NULL;
}

static int print_global_help(void)
{
    printf("%s\nCommands:\n", global_usage);
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\n%s", global_options);
    return CLI_EXIT_OK;
}

int cli_print_command_help(const struct cli_command *cmd)
{
    printf("usage: mdbx %s%s%s\n\n%s.\n", cmd->name, cmd->usage[0] ? " " : "", cmd->usage,
           cmd->summary);
    if (cmd->details[0])
        printf("\n%s", cmd->details);
    printf("\nGlobal options: -s LOCATION, --json, -q, -h (see `mdbx help`).\n");
    return CLI_EXIT_OK;
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    const struct cli_command *cmd = cli->command;

    fprintf(stderr, "mdbx: %s%s", cmd ? cli->command_name : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "\nusage: mdbx %s%s%s\nTry 'mdbx help %s'.\n", cmd->name,
                cmd->usage[0] ? " " : "", cmd->usage, cmd->name);
    else
        fprintf(stderr, "\n%sTry 'mdbx help'.\n", global_usage);
    return CLI_EXIT_USAGE;
}

int cmd_help(struct cli *cli, int argc, char **argv)
{
    int first;
    int rc = cli_parse_options(cli, argc, argv, NULL, NULL, NULL, NULL, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first == argc)
        return print_global_help();
    if (argc - first > 1)
        return cli_usage_error(cli, "give at most one COMMAND");
    const struct cli_command *cmd = cli_find_command(argv[first]);
    if (!cmd)
        return cli_usage_error(cli, "unknown command '%s'", argv[first]);
    return cli_print_command_help(cmd);
}

/* Global options end at the command (the leading '+'); the command's own
 * parser accepts them again after it. */
static int parse_global_options(struct cli *cli, int argc, char **argv, int *command_index)
{
    static const struct option longopts[] = {
        { "store", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:s:qhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': cli->store_arg = optarg; break;
        case 'j': cli->json = 1; break;
        case 'q': cli->quiet = 1; break;
        case 'h': return print_global_help();
        case 'V': *command_index = -1; return CLI_PARSE_CONTINUE;
        case ':': return cli_usage_error(cli, "option '%s' needs an argument", argv[optind - 1]);
        default: return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
        }
    }
    *command_index = optind;
    return CLI_PARSE_CONTINUE;
}

static int run(struct cli *cli, int argc, char **argv)
{
    int index;
    int rc = parse_global_options(cli, argc, argv, &index);

    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (index < 0) {
        cli->command = cli_find_command("version");
        cli->command_name = "version";
        static char name[] = "version";
        char *args[] = { name, NULL };
        return cmd_version(cli, 1, args);
    }
    if (index >= argc)
        return cli_usage_error(cli, "no command given");
    cli->command = cli_find_command(argv[index]);
    if (!cli->command)
        return cli_usage_error(cli, "unknown command '%s'", argv[index]);
    cli->command_name = argv[index];
    return cli->command->run(cli, argc - index, argv + index);
}

int main(int argc, char **argv)
{
    struct cli cli = { 0 };
    int rc;

    /* A closed stdout must show up as EPIPE from write, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    rc = run(&cli, argc, argv);
    minidbx_close(cli.db);
    free(cli.location);
    rc = cli_merge_status(rc, cli_finish_stdout(&cli));
    cli_reraise();
    return rc;
}
