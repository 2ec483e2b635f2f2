/*
 * mmap_writer - a careless tool that writes to files through shared
 * mappings, as a test's coprocess: tests/http/mmap_writes.sh.
 *
 *   mmap_writer OFFSET FILE...
 *
 * Maps each FILE shared and writable and stores its byte at OFFSET back
 * unchanged: the write fault, after which the page is dirty and writable
 * and the file's ctime is now. Says "mapped", then reads commands from
 * stdin, one a line, and answers each:
 *
 *   flip    the byte at OFFSET ^= 1 in each file, through the mappings (no
 *           fault, so no new ctime while the pages stay dirty): "flipped"
 *   ctime   the first file's ctime: "SEC.NSEC"
 *
 * At the end of stdin it unmaps the files and exits 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILES_MAX 8

int main(int argc, char **argv)
{
    volatile unsigned char *map[FILES_MAX];
    size_t size[FILES_MAX];
    int fd[FILES_MAX], files = argc - 2;
    struct stat st;
    char line[64];

    if (files < 1 || files > FILES_MAX) {
        fprintf(stderr, "usage: mmap_writer OFFSET FILE... (at most %d)\n", FILES_MAX);
        return 2;
    }
    size_t offset = strtoul(argv[1], NULL, 10);
    for (int i = 0; i < files; i++) {
        const char *path = argv[i + 2];
        if ((fd[i] = open(path, O_RDWR)) < 0 || fstat(fd[i], &st) < 0) {
            perror(path);
            return 1;
        }
        if (offset >= (size_t)st.st_size) {
            fprintf(stderr, "mmap_writer: %s has %lld bytes\n", path, (long long)st.st_size);
            return 2;
        }
        size[i] = (size_t)st.st_size;
        map[i] = mmap(NULL, size[i], PROT_READ | PROT_WRITE, MAP_SHARED, fd[i], 0);
        if (map[i] == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        map[i][offset] = map[i][offset];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("mapped\n");
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "flip\n") == 0) {
            for (int i = 0; i < files; i++)
                map[i][offset] ^= 1;
            printf("flipped\n");
        } else if (strcmp(line, "ctime\n") == 0 && fstat(fd[0], &st) == 0) {
            printf("%lld.%09ld\n", (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
        } else {
            printf("? %s", line);
        }
    }
    for (int i = 0; i < files; i++) {
        munmap((void *)map[i], size[i]);
        close(fd[i]);
    }
    return 0;
}
