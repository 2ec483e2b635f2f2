/*
 * fuzz.h - what the fuzz targets of tests/fuzz share.
 *
 * Each target is one file that defines LLVMFuzzerTestOneInput (and, when it
 * needs a fixture, LLVMFuzzerInitialize). With -Dfuzzing=true libFuzzer
 * drives it; without, replay.c feeds it every file of its seed corpus, so
 * that the harness and the corpus stay valid under gcc too.
 *
 * A target checks properties of what it calls (a parsed id formats back to
 * the same digits, a 206 reply carries the bytes it says, ...) and calls
 * fuzz_fail when one breaks: libFuzzer then saves the input as a crash.
 * Work per input is bounded: inputs are at most -max_len bytes (see
 * meson.build) and every wait has a deadline.
 */
#ifndef MINIDBX_FUZZ_H
#define MINIDBX_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* MINIDBX_FUZZ_SKIP_KNOWN=1 is set: step around the findings saved in
 * crashes/ that another area must fix (see known_findings.h), so that a
 * long run can go past them. Off by default and in every meson test. */
bool fuzz_skip_known(void);

/* A NUL-terminated copy of size bytes at data (free it). A NUL inside the
 * input ends the string early, as it would for a C caller. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* Report a broken property on stderr and abort: a finding. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Abort with the reason when a setup step fails (not a finding). */
void fuzz_check_setup(int ok, const char *what);

/* A new directory under $TMPDIR (else /dev/shm, else /tmp) named after
 * tag, removed with everything in it at exit. The path stays valid until
 * then. */
const char *fuzz_temp_dir(const char *tag);

/* Write size bytes at data to path (created or truncated). 0 or -1. */
int fuzz_write_file(const char *path, const void *data, size_t size);

#endif /* MINIDBX_FUZZ_H */
