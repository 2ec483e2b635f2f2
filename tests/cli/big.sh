#!/bin/bash
# big.sh - a 1 GiB object through `mdbx put` and `mdbx get` (to a file and
# to a pipe) with the peak RSS of each mdbx run at most 32 MiB, measured by
# rss_run from getrusage(RUSAGE_CHILDREN).
#
# Environment: MDBX, GEN_BYTES, RSS_RUN; BIG_MIB (default 1024).
. "$(dirname "$0")/lib.sh"

: "${GEN_BYTES:?}" "${RSS_RUN:?}"
BIG_MIB=${BIG_MIB:-1024}
SIZE="$BIG_MIB MiB"
LIMIT_KIB=$((32 * 1024))
cd "$T" || exit 99

# The measure must be able to fail: a process that holds 40 MiB.
expect 98 "rss_run catches a 40 MiB process" "$RSS_RUN" "$LIMIT_KIB" \
    bash -c 'x=$(head -c 41943040 /dev/zero | tr "\\0" a); echo ${#x}'

"$GEN_BYTES" "${BIG_MIB}M" 42 >big.bin
check "generated $SIZE of test data" [ "$(stat -c %s big.bin)" = $((BIG_MIB << 20)) ]
WANT=$(sha256sum big.bin | cut -c1-64)
expect 0 "put $SIZE, peak RSS <= 32 MiB" "$RSS_RUN" "$LIMIT_KIB" "$MDBX" put big.bin
diag "$T/err"
check "  id is the SHA-256 of the file" out_is "$WANT"
expect 0 "put $SIZE from a pipe, peak RSS <= 32 MiB" sh -c '"$0" "$1" "$2" put - <big.bin' "$RSS_RUN" "$LIMIT_KIB" "$MDBX"
diag "$T/err"
check "  same id" out_is "$WANT"
expect 0 "get -o, peak RSS <= 32 MiB" "$RSS_RUN" "$LIMIT_KIB" "$MDBX" get "$WANT" -o big.out
diag "$T/err"
check "  same bytes" cmp big.bin big.out
rm -f big.out
expect 0 "get to a pipe, peak RSS <= 32 MiB" sh -c '"$0" "$1" "$2" get "$3" | cmp - big.bin' "$RSS_RUN" "$LIMIT_KIB" "$MDBX" "$WANT"
diag "$T/err"
"$MDBX" get "$WANT" 2>"$T/err" | head -c1 >/dev/null
st=${PIPESTATUS[0]}
check "get $SIZE | head -c1: quiet exit 0 (got $st)" eval '[ "$st" = 0 ] && err_empty'
expect 0 "stat says $SIZE, stored as a file" "$MDBX" --json stat "$WANT"
check "  size and storage" eval '[ "$(json size inline)" = "$((BIG_MIB << 20))	false" ]'

finish
