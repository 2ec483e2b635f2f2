/* replay.c - main() for the fuzz targets when libFuzzer is not there (gcc,
 * or -Dfuzzing=false): run every input file given, or every file in the
 * directories given, through LLVMFuzzerTestOneInput once, in name order.
 *
 *   replay [--max-len N] PATH...
 *
 * --max-len cuts inputs as libFuzzer's -max_len does. Exits 0 when every
 * input ran (a finding aborts), 1 when no input was found. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static size_t max_len = SIZE_MAX;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;

    if (!f) {
        perror(path);
        exit(2);
    }
    for (;;) {
        if (size == cap) {
            cap = cap ? 2 * cap : 4096;
            data = realloc(data, cap);
            fuzz_check_setup(data != NULL, "realloc");
        }
        size_t n = fread(data + size, 1, cap - size, f);
        if (n == 0)
            break;
        size += n;
    }
    fclose(f);
    if (size > max_len)
        size = max_len;
    /* a copy of exactly size bytes, so that ASan sees any read past it */
    uint8_t *input = malloc(size ? size : 1);
    fuzz_check_setup(input != NULL, "malloc");
    if (size)
        memcpy(input, data, size);
    free(data);
    LLVMFuzzerTestOneInput(input, size);
    free(input);
    return 1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);

    DIR *dir = opendir(path);
    struct dirent *e;
    char **names = NULL;
    size_t count = 0, cap = 0;
    int ran = 0;

    fuzz_check_setup(dir != NULL, path);
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            fuzz_check_setup(names != NULL, "realloc");
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[count] = malloc(len);
        fuzz_check_setup(names[count] != NULL, "malloc");
        snprintf(names[count++], len, "%s/%s", path, e->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count; i++) {
        ran += run_path(names[i]);
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    int first = 1, ran = 0;

    if (argc > 2 && strcmp(argv[1], "--max-len") == 0) {
        max_len = strtoull(argv[2], NULL, 10);
        first = 3;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = first; i < argc; i++)
        ran += run_path(argv[i]);
    printf("replayed %d inputs\n", ran);
    return ran > 0 ? 0 : 1;
}
