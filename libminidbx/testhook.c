/*
 * testhook.c - TEST ONLY: pause points for the race tests (tests/test_races.c).
 *
 * MINIDBX_TEST_PAUSE=POINT:FILE makes the library, each time it reaches
 * DBX_TEST_PAUSE("POINT"), create FILE and wait until the test removes it
 * (at most PAUSE_MAX_MS, then it goes on alone). A test thus holds one
 * process at the dangerous instant (between a scan and its re-check, a
 * rename and its commit) while another process acts. Nothing else reads the
 * variable; a program that does not set it pays one branch per point.
 */
#include "internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAUSE_MAX_MS 10000
#define PAUSE_POLL_MS 1

const char *dbx_test_pause_point;
static char pause_point[64];
static const char *pause_file;
static pthread_once_t pause_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *spec = getenv("MINIDBX_TEST_PAUSE");
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof pause_point || !colon[1])
        return;
    memcpy(pause_point, spec, (size_t)(colon - spec));
    pause_file = colon + 1;
    dbx_test_pause_point = pause_point;
}

void dbx_test_pause_init(void)
{
    pthread_once(&pause_once, read_env);
}

void dbx_test_pause_at(const char *point)
{
    if (strcmp(point, pause_point) != 0)
        return;
    int fd = open(pause_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    close(fd);
    struct timespec poll = { 0, PAUSE_POLL_MS * 1000000L };
    for (int waited_ms = 0; waited_ms < PAUSE_MAX_MS && access(pause_file, F_OK) == 0;
         waited_ms += PAUSE_POLL_MS)
        nanosleep(&poll, NULL);
}
