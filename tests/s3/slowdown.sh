#!/bin/bash
# slowdown.sh - retries of idempotent requests on 503 SlowDown, bounded. Run
# under with-rgw.sh --own with RGW_EXTRA_CONF="rgw max concurrent requests
# = 1": while a slow upload (curl --limit-rate) holds the RGW's only slot,
# every other request gets 503 SlowDown. TAP output. MDBX: the mdbx binary.
#   * a slot held for ~1 s: mdbx get succeeds after retries (>= 0.1 s later)
#   * a slot held for ~8 s: mdbx get gives up after its 5 attempts (pauses
#     of 0.1 + 0.2 + 0.4 + 0.8 s) with exit 4 (EIO), "SlowDown" and "503"
set -u
: "${MDBX:?}" "${MINIDBX_TEST_S3_BUCKET:?run under tests/s3/with-rgw.sh --own}"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
S=s3://$MINIDBX_TEST_S3_BUCKET/slowdown
EP=${MINIDBX_S3_ENDPOINT%/}/$MINIDBX_TEST_S3_BUCKET
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
s3curl() {
    curl -sS --max-time 60 --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
ms() { echo $(($(date +%s%N) / 1000000)); }

# hold_slot KIB: a PUT of KIB KiB at 100 KiB/s in the background (pid in
# $slow); returns once a request of ours gets 503 SlowDown. If a request of
# ours took the slot first, the upload got the 503 and ended: start it again
# (at most 10 times).
hold_slot() {
    head -c $(($1 * 1024)) /dev/zero >"$t/slow"
    for ((try = 0; try < 10; try++)); do
        s3curl -o /dev/null -X PUT --limit-rate 100K -T "$t/slow" "$EP/slow-upload" &
        slow=$!
        for ((i = 0; i < 100; i++)); do
            [ "$(s3curl -o /dev/null -w '%{http_code}' "$EP?list-type=2&max-keys=1")" = 503 ] && return 0
            kill -0 "$slow" 2>/dev/null || break
            sleep 0.05
        done
        wait "$slow"
    done
    return 1
}

head -c 4096 /dev/urandom >"$t/obj"
id=$("$MDBX" -s "$S" put "$t/obj")
check "put with the slot free" [ ${#id} = 64 ]

check "a 100 KiB upload holds the slot (others get 503)" hold_slot 100
start=$(ms)
"$MDBX" -s "$S" get "$id" >"$t/got" 2>"$t/err"
rc=$? took=$(($(ms) - start))
echo "# get while the slot was held: exit $rc after $took ms"
check "get succeeds after retries" [ $rc = 0 ]
check "the bytes are right" cmp -s "$t/got" "$t/obj"
check "it waited (retried) >= 100 ms" [ "$took" -ge 100 ]
wait "$slow"

check "an 800 KiB upload holds the slot" hold_slot 800
start=$(ms)
"$MDBX" -s "$S" get "$id" >/dev/null 2>"$t/err"
rc=$? took=$(($(ms) - start))
echo "# get while the slot was held for long: exit $rc after $took ms: $(cat "$t/err")"
check "get gives up: exit 4 (EIO)" [ $rc = 4 ]
check "the message names SlowDown and 503" grep -q "503.*SlowDown" "$t/err"
check "bounded: gave up within 1.4..7 s" [ "$took" -ge 1400 ] && [ "$took" -le 7000 ]
wait "$slow"
echo "1..$n"
exit $failed
