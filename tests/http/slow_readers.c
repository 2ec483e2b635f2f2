/*
 * slow_readers - clients that ask for a large object and never read it, as
 * a test's coprocess: tests/http/fd_limits.sh.
 *
 *   slow_readers PORT PATH COUNT
 *
 * Opens COUNT connections to 127.0.0.1:PORT, each with a 4 KiB receive
 * buffer, sends "GET PATH" on each and reads nothing: the node's reply
 * stalls as soon as the buffers between are full, and the node holds
 * whatever the reply needs (its socket, the blob file) until it gives up.
 * Says "opened N" once all are connected and their requests sent, then
 * waits for the end of stdin (60 s at most, so that a test that dies
 * cannot leave it behind) and closes them all.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define COUNT_MAX 4096
#define LIFETIME_S 60

int main(int argc, char **argv)
{
    static int fds[COUNT_MAX];
    char request[512], line[64];
    int rcvbuf = 4096, opened = 0;

    if (argc != 4 || atoi(argv[3]) < 1 || atoi(argv[3]) > COUNT_MAX) {
        fprintf(stderr, "usage: slow_readers PORT PATH COUNT (1..%d)\n", COUNT_MAX);
        return 2;
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int count = atoi(argv[3]);
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    if (len < 0 || (size_t)len >= sizeof request) {
        fprintf(stderr, "slow_readers: the path is too long\n");
        return 2;
    }
    alarm(LIFETIME_S);
    for (; opened < count; opened++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        /* before connect: the window the node sees is this small from the start */
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0 ||
            connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
            send(fd, request, (size_t)len, MSG_NOSIGNAL) != len) {
            perror("slow_readers");
            if (fd >= 0)
                close(fd);
            break;
        }
        fds[opened] = fd;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("opened %d\n", opened);
    while (fgets(line, sizeof line, stdin))
        continue;
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    return opened == count ? 0 : 1;
}
