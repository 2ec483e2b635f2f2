/*
 * testhook.c - TEST ONLY: pause points for the race tests (tests/test_races.c).
 *
 * MINIDBX_TEST_PAUSE=POINT[,POINT...]:FILE makes the library, each time it
 * reaches DBX_TEST_PAUSE("POINT") for a listed point, create FILE.POINT and
 * wait until the test removes it (at most PAUSE_MAX_MS, then it goes on
 * alone). A test thus holds one process at the dangerous instant (between a
 * scan and its re-check, a rename and its commit) while another process
 * acts. Nothing else reads the variable; a program that does not set it
 * pays one branch per point.
 *
 * MINIDBX_TEST_CLOCK_SHIFT=SECONDS moves the library's wall clock (internal.h).
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAUSE_MAX_MS 10000
#define PAUSE_POLL_MS 1

const char *dbx_test_pause_point;
static char pause_points[256]; /* ",a,b," so that ",a," finds a */
static const char *pause_file;
static pthread_once_t pause_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *spec = getenv("MINIDBX_TEST_PAUSE");
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    if (!colon || colon == spec || (size_t)(colon - spec) + 3 > sizeof pause_points || !colon[1])
        return;
    snprintf(pause_points, sizeof pause_points, ",%.*s,", (int)(colon - spec), spec);
    pause_file = colon + 1;
    dbx_test_pause_point = pause_points;
}

_Atomic int64_t dbx_test_clock_shift_ns;

void dbx_test_pause_init(void)
{
    pthread_once(&pause_once, read_env);
    const char *shift = getenv("MINIDBX_TEST_CLOCK_SHIFT");
    long long seconds = shift ? strtoll(shift, NULL, 10) : 0;
    if (seconds < -100LL * 365 * 86400 || seconds > 100LL * 365 * 86400)
        seconds = 0; /* nonsense: ignored */
    atomic_store_explicit(&dbx_test_clock_shift_ns, (int64_t)seconds * 1000000000, memory_order_relaxed);
}

void dbx_test_pause_at(const char *point)
{
    char key[72], marker[PATH_MAX];
    snprintf(key, sizeof key, ",%s,", point);
    if (!strstr(pause_points, key) || snprintf(marker, sizeof marker, "%s.%s", pause_file, point) >= (int)sizeof marker)
        return;
    int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    close(fd);
    struct timespec poll = { 0, PAUSE_POLL_MS * 1000000L };
    for (int waited_ms = 0; waited_ms < PAUSE_MAX_MS && access(marker, F_OK) == 0;
         waited_ms += PAUSE_POLL_MS)
        nanosleep(&poll, NULL);
}
