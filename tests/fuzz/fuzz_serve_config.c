/* fuzz_serve_config.c - the server's config file (mdbx serve --config
 * FILE.json): the input is the file. It is read and applied as `mdbx serve`
 * does (server/server.h), then "--threads 0" from the command line (which
 * wins over the file) must fail the check that comes before a store is
 * opened or a port listened on.
 *
 * Properties: loading returns 0 or a usage error (EINVAL), a file that
 * loads still fails the check with "--threads 0", and nothing of the
 * parsed file leaks. */
#include "fuzz.h"

#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char config_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_temp_dir("config");
    (void)argc, (void)argv;

    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct minidbx_server_config cfg;
    struct minidbx_server_error err = { 0 };

    fuzz_check_setup(fuzz_write_file(config_path, data, size) == 0, "write the config file");
    minidbx_server_config_init(&cfg);
    fuzz_check_setup(minidbx_server_config_set(&cfg, "config", config_path, &err) == 0, err.text);
    int rc = minidbx_server_config_load(&cfg, &err);
    if (rc != 0 && rc != MINIDBX_EINVAL)
        fuzz_fail("loading the config file gave %d (%s)", rc, err.text);
    if (rc == 0) {
        fuzz_check_setup(minidbx_server_config_set(&cfg, "threads", "0", &err) == 0, err.text);
        if ((rc = minidbx_server_config_check(&cfg, &err)) != MINIDBX_EINVAL)
            fuzz_fail("the check passed %d for a config that --threads 0 overrides", rc);
    }
    if (rc == MINIDBX_EINVAL && !err.text[0])
        fuzz_fail("a usage error without words");
    minidbx_server_config_free(&cfg);
    return 0;
}
