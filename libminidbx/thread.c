/*
 * thread.c - the library's own threads.
 *
 * A library thread takes no asynchronous signal: it is started with every
 * signal blocked. Threads inherit their creator's mask, and the program
 * decides how its signals are handled (mdbx serve waits for SIGTERM and
 * SIGHUP in sigwait, which blocks them only in its own threads); a
 * signal the kernel handed to one of ours instead would run the default
 * action, SIGHUP's being to end the process.
 */
#include "internal.h"

#include <signal.h>

int dbx_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
