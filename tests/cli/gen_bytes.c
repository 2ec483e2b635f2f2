/*
 * gen_bytes - write test data fast.
 *
 *   usage: gen_bytes SIZE SEED     SIZE pseudo-random bytes (xorshift64*)
 *          gen_bytes SIZE ramp     bytes 0, 1, ..., 255, 0, 1, ...
 *
 * SIZE takes a K, M or G suffix (powers of 1024). The same SEED always
 * gives the same bytes; about 2 GB/s, so a 1 GiB file costs a second.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static uint64_t parse_size(const char *text)
{
    char *end;
    uint64_t size = strtoull(text, &end, 10);
    switch (*end) {
    case 'G': size <<= 10; /* fall through */
    case 'M': size <<= 10; /* fall through */
    case 'K': size <<= 10; break;
    default: break;
    }
    return size;
}

static void fill(unsigned char *buf, size_t len, uint64_t *state, int ramp, uint64_t *offset)
{
    if (ramp) {
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)(*offset + i);
    } else {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t x = *state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *state = x;
            x *= 0x2545F4914F6CDD1Dull;
            memcpy(buf + i, &x, 8);
        }
    }
    *offset += len;
}

int main(int argc, char **argv)
{
    static unsigned char buf[CHUNK];
    uint64_t size, offset = 0, state;
    int ramp;

    if (argc != 3) {
        fprintf(stderr, "usage: gen_bytes SIZE SEED|ramp\n");
        return 2;
    }
    size = parse_size(argv[1]);
    ramp = strcmp(argv[2], "ramp") == 0;
    state = ramp ? 1 : strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
    while (offset < size) {
        size_t len = size - offset < CHUNK ? (size_t)(size - offset) : CHUNK;
        const unsigned char *p = buf;
        size_t left = len;
        fill(buf, (len + 7) & ~(size_t)7, &state, ramp, &offset);
        offset -= ((len + 7) & ~(size_t)7) - len;
        while (left > 0) {
            ssize_t n = write(STDOUT_FILENO, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                perror("gen_bytes: write");
                return 1;
            }
            p += n;
            left -= (size_t)n;
        }
    }
    return 0;
}
