/* fuzz_serve_config.c - the server's config file (mdbx serve --config
 * FILE.json): the input is the file. cmd_serve reads and applies it, then
 * stops at "--threads 0" from the command line (which wins over the file),
 * before it opens a store or listens; the store path given has no parent
 * directory, so even past that check it could not create one.
 *
 * Properties: cmd_serve returns a usage error (2) or a plain failure, never
 * starts a server, and leaks nothing of the parsed file. */
#include "fuzz.h"

#include "cli.h"
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char config_path[4200];
static char store_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_temp_dir("config");
    (void)argc, (void)argv;

    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    snprintf(store_path, sizeof store_path, "%s/no/such/parent/store", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char arg_serve[] = "serve", arg_config[] = "--config", arg_threads[] = "--threads",
         arg_zero[] = "0";
    char *argv[] = { arg_serve, arg_config, config_path, arg_threads, arg_zero, NULL };
    struct cli cli = { 0 };

    cli.store_arg = store_path;
    cli.quiet = 1;
    cli.command = cli_find_command("serve");
    cli.command_name = "serve";
    fuzz_check_setup(cli.command != NULL, "this build has no `mdbx serve`");
    fuzz_check_setup(fuzz_write_file(config_path, data, size) == 0, "write the config file");
    int rc = cmd_serve(&cli, 5, argv);
    if (rc != CLI_EXIT_USAGE && rc != CLI_EXIT_FAILURE)
        fuzz_fail("cmd_serve returned %d for a config that --threads 0 overrides", rc);
    if (cli.db)
        fuzz_fail("cmd_serve opened a store despite --threads 0");
    free(cli.location);
    return 0;
}
