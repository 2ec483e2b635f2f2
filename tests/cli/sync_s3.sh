#!/bin/bash
# sync_s3.sh - mdbx push, pull and sync with an s3:// store on a real Ceph
# RGW (run under tests/s3/with-rgw.sh, which sets MINIDBX_S3_ENDPOINT,
# AWS_* and MINIDBX_TEST_S3_BUCKET): local -> s3 -> another local gives
# identical stores, re-runs copy nothing, a dry run copies nothing, a
# 20 MiB object (a multipart upload) in bounded memory, a corrupt source
# object is not copied.
#
# Environment: MDBX, JSONQ, GEN_BYTES, RSS_RUN, and what with-rgw.sh sets.
. "$(dirname "$0")/lib.sh"

M=$MDBX
: "${JSONQ:?}" "${GEN_BYTES:?}" "${RSS_RUN:?}" "${MINIDBX_TEST_S3_BUCKET:?run under tests/s3/with-rgw.sh}"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$T" || exit 99
. "$HERE/sync_lib.sh"

# A fresh prefix per run: the bucket outlives it.
S3="s3://$MINIDBX_TEST_S3_BUCKET/cli-sync-$$-$RANDOM"
RSS_LIMIT_KIB=$((64 * 1024))
[ "${MINIDBX_SANITIZE:-none}" != none ] && RSS_LIMIT_KIB=$((400 * 1024))

make_source "$T/A"

echo "# --- local -> s3 -> local"
expect 0 "sync A -> s3" "$M" --json sync A "$S3/one"
check "  6 objects, their bytes, 4 names, no error" \
    eval '[ "$(summary objects bytes names_set errors)" = "6	$(total_bytes A)	4	0" ]'
check "  the s3 store has the objects and names of A" same_stores A "$S3/one"
expect 0 "sync s3 -> B" "$M" --json sync "$S3/one" B
check "  6 objects, 4 names" eval '[ "$(summary objects names_set errors)" = "6	4	0" ]'
check "  mdbx ls of A and B are equal" eval '[ "$("$M" -s A ls)" = "$("$M" -s B ls)" ]'
check "  mdbx names of A and B are equal" eval '[ "$("$M" -s A names)" = "$("$M" -s B names)" ]'
check "  and point at the same objects" same_stores A B
check "  B is sound" "$M" -s B verify
expect 0 "sync A -> s3 again" "$M" --json sync A "$S3/one"
check "  copies nothing" eval '[ "$(summary objects bytes names_set skipped names_unchanged)" = "0	0	0	6	4" ]'
expect 0 "sync s3 -> B again" "$M" --json sync "$S3/one" B
check "  copies nothing" eval '[ "$(summary objects bytes names_set)" = "0	0	0"  ]'
expect 0 "a dry run to a new prefix" "$M" --json sync -n A "$S3/dry"
check "  would copy 6 objects and 4 names" eval '[ "$(summary dry_run objects names_set)" = "true	6	4" ]'
check "  and copies nothing" eval '[ -z "$("$M" -s "$S3/dry" ls)" ]'

echo "# --- a name that differs on both sides"
"$M" -s "$S3/one" put -f -n docs/readme other >/dev/null
expect 0 "sync A -> s3 with docs/readme pointing elsewhere there" "$M" sync A "$S3/one"
check "  the source wins, and says what it replaced" out_has "named docs/readme $(sha readme) (was $(sha other))"

echo "# --- a 20 MiB object (multipart) in bounded memory"
"$GEN_BYTES" 20M 20 >big20
"$M" -s BIG put -n big/20 big20 >/dev/null
expect 0 "push it to s3, peak RSS <= $((RSS_LIMIT_KIB / 1024)) MiB" "$RSS_RUN" "$RSS_LIMIT_KIB" "$M" -s BIG push "$S3/big"
diag "$T/err"
expect 0 "pull it back, peak RSS <= $((RSS_LIMIT_KIB / 1024)) MiB" "$RSS_RUN" "$RSS_LIMIT_KIB" "$M" -s BIG2 pull "$S3/big"
diag "$T/err"
check "  the same bytes" eval '"$M" -s BIG2 get big/20 | cmp -s - big20'

echo "# --- a corrupt source object"
make_source "$T/C"
BIG1=$(sha big1)
corrupt "$T/C/blobs/${BIG1:0:2}/${BIG1:2:2}/$BIG1"
expect 3 "push a store with a corrupt object to s3" "$M" -s C --json push "$S3/corrupt"
check "  reported as corrupt, from the source" \
    eval '[ "$(events error id error side | head -n1)" = "$BIG1	ECORRUPT	source" ]'
check "  not copied, the others are" \
    eval '! "$M" -s "$S3/corrupt" exists "$BIG1" && [ "$("$M" -s "$S3/corrupt" ls | wc -l)" = 5 ]'

finish
