/*
 * rss_run - run a command and check its peak resident memory.
 *
 *   usage: rss_run MAX_KIB COMMAND [ARG...]
 *
 * Runs COMMAND (stdin and stdout inherited), then reads the peak RSS of
 * the child from getrusage(RUSAGE_CHILDREN) and prints it on stderr.
 * Exits with the command's status if it failed, 98 if its peak RSS was
 * above MAX_KIB, else 0. No dependency on /usr/bin/time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct rusage usage;
    long max_kib;
    pid_t pid;
    int status;

    if (argc < 3 || (max_kib = strtol(argv[1], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: rss_run MAX_KIB COMMAND [ARG...]\n");
        return 2;
    }
    pid = fork();
    if (pid < 0) {
        perror("rss_run: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "rss_run: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("rss_run: waitpid");
            return 2;
        }
    }
    if (getrusage(RUSAGE_CHILDREN, &usage) != 0) {
        perror("rss_run: getrusage");
        return 2;
    }
    fprintf(stderr, "rss_run: %s: peak RSS %ld KiB (limit %ld KiB)\n", argv[2], usage.ru_maxrss,
            max_kib);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    if (WEXITSTATUS(status) != 0)
        return WEXITSTATUS(status);
    return usage.ru_maxrss > max_kib ? 98 : 0;
}
