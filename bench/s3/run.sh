#!/bin/bash
# bench/s3/run.sh - s3:// put and get against curl --aws-sigv4, in one run,
# on one Ceph RGW on 127.0.0.1 that it starts (tests/s3/rgw-up) and stops.
#
#   bench/s3/run.sh [BUILD_DIR]       (default: ./build)
#
# For 4 KiB and 1 MiB objects, at 1 and at 16 parallel streams:
#   minidbx  bench/s3/s3load: minidbx_put / minidbx_get of distinct objects on
#            THREADS threads sharing one handle (the library hashes every put
#            for its id and verifies every get against it)
#   curl     the same requests by curl --aws-sigv4 with keep-alive: one curl
#            process per stream, all its requests from one config file (one
#            connection each); a PUT's x-amz-content-sha256 is its body's
#            SHA-256 (computed before, untimed), as minidbx sends over http://
#            (the engine checks it); a GET's is UNSIGNED-PAYLOAD, as minidbx's
# Each figure is the median of RUNS (3) runs; ratio = minidbx / curl in
# requests per second (goal >= 0.9). cpu: the client's CPU time (user +
# sys, /usr/bin/time) per request, in ms: what each side spends, whatever
# the waiting that a loaded machine adds to the seconds. Environment: RUNS, SPECS (default
# "4096:1:1000 4096:16:4000 1048576:1:100 1048576:16:320": SIZE:STREAMS:COUNT
# per row), KEEP=1 keeps the temp directory, BASE=OTHER_BUILD_DIR adds a row get-base:
# the gets by that build's s3load (say, of the commit before a change), run
# in turn with the others in each run, of the same objects: before and after
# measured alike. Needs ceph-mon ceph-osd radosgw and curl.
set -u
BUILD=${1:-build}
LOAD=$BUILD/bench/s3/s3load
RUNS=${RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
S3=$HERE/../../tests/s3
[ -x "$LOAD" ] || { echo "bench/s3: no s3load at $LOAD (give the build directory)" >&2; exit 2; }
BASE_LOAD=${BASE:+$BASE/bench/s3/s3load}
[ -z "$BASE_LOAD" ] || [ -x "$BASE_LOAD" ] || { echo "bench/s3: no s3load at $BASE_LOAD (BASE)" >&2; exit 2; }
command -v radosgw >/dev/null || { echo "bench/s3: Ceph is missing (apt-get install ceph-mon ceph-osd radosgw)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/s3: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

T=$(mktemp -d /var/tmp/mdbx-bench-s3.XXXXXX)
cleanup() {
    "$S3/rgw-down" --rm "$T/rgw" >/dev/null 2>&1
    [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

# --- the RGW -------------------------------------------------------------------------
export RGW_MEMSTORE_BYTES=$((4 << 30))
mkdir -p "$T/rgw"
env=$("$S3/rgw-up-any" "$T/rgw") || exit 1
eval "$env"
EP=$MINIDBX_S3_ENDPOINT
BUCKET=bench
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 aws:amz:us-east-1:s3 \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/$BUCKET")
[ "$code" = 200 ] || { echo "bench/s3: creating the bucket: HTTP $code" >&2; exit 1; }

now() { date +%s.%N; }

# cpu_of FILE...: the user + sys seconds that /usr/bin/time -f "%U %S" wrote, summed.
cpu_of() { cat "$@" | awk '{ t += $1 + $2 } END { printf "%.4f\n", t }'; }

# curl_run METHOD DIR COUNT STREAMS KEYPREFIX: seconds for COUNT requests, one
# curl (one kept-alive connection) per stream; their CPU seconds to $T/peer-cpu.
curl_run() {
    local method=$1 dir=$2 count=$3 streams=$4 key=$5 s i
    for ((s = 0; s < streams; s++)); do
        : >"$T/curl.$s.conf"
        for ((i = s; i < count; i += streams)); do
            {
                if [ "$i" != "$s" ]; then echo "next"; fi
                echo "aws-sigv4 = \"aws:amz:us-east-1:s3\""
                echo "user = \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\""
                # the same request as minidbx's: a PUT carries its body's SHA-256
                # (the engine checks it), a GET UNSIGNED-PAYLOAD
                if [ "$method" = PUT ]; then
                    echo "header = \"x-amz-content-sha256: ${hashes[$i]}\""
                else
                    echo "header = \"x-amz-content-sha256: UNSIGNED-PAYLOAD\""
                fi
                echo "url = \"$EP/$BUCKET/$key/o$i\""
                if [ "$method" = PUT ]; then echo "upload-file = \"$dir/o$i\""; fi
                echo "output = \"/dev/null\""
                echo "write-out = \"%{http_code}\\n\""
            } >>"$T/curl.$s.conf"
        done
    done
    local start end
    start=$(now)
    for ((s = 0; s < streams; s++)); do
        /usr/bin/time -f "%U %S" -o "$T/curl.$s.cpu" curl -s -K "$T/curl.$s.conf" >"$T/curl.$s.codes" &
    done
    wait
    end=$(now)
    local bad
    bad=$(cat "$T"/curl.*.codes | grep -cv '^200$')
    [ "$bad" = 0 ] || { echo "bench/s3: curl: $bad requests failed" >&2; exit 1; }
    [ "$(cat "$T"/curl.*.codes | wc -l)" = "$count" ] || { echo "bench/s3: curl: requests missing" >&2; exit 1; }
    cpu_of "$T"/curl.*.cpu >>"$T/peer-cpu"
    rm -f "$T"/curl.*
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f\n", b - a }'
}

# load_run S3LOAD OP NAME: one run of s3load OP on the spec's objects; its
# seconds to $T/NAME, its CPU seconds to $T/NAME-cpu.
load_run() {
    "$1" "$2" "$loc" "$dir" "$count" "$streams" >"$T/out" || exit 1
    read -r secs cpu _ <"$T/out" && echo "$secs" >>"$T/$3" && echo "$cpu" >>"$T/$3-cpu"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# row OP OURS_SECONDS CURL_SECONDS OURS_CPU CURL_CPU (size, streams, count from the loop)
row() {
    local label
    label=$([ "$size" = 4096 ] && echo 4KiB || echo 1MiB)
    awk -v s="$label" -v st="$streams" -v op="$1" -v n="$count" -v b="$size" -v o="$2" -v p="$3" \
        -v oc="$4" -v pc_="$5" 'BEGIN {
        mo = n / o; pc = n / p; r = mo / pc
        printf "%-6s %-7s %-8s %12.0f %12.0f %6.2fx %10.1f %10.1f %9.3f %9.3f  %s\n", s, st, op, mo, pc, r,
            mo * b / 1048576, pc * b / 1048576, 1000 * oc / n, 1000 * pc_ / n,
            (r >= 0.9 ? "ok" : "MISS (goal 0.9x)") }'
}

printf '%-6s %-7s %-8s %12s %12s %7s %10s %10s %9s %9s\n' size streams op "minidbx/s" "curl/s" ratio \
    "mdbx MiB/s" "curl MiB/s" "mdbx cpu" "curl cpu"
SPECS=${SPECS:-"4096:1:1000 4096:16:4000 1048576:1:100 1048576:16:320"}
for spec in $SPECS; do
    spec=${spec//:/ }
    read -r size streams count <<<"$spec"
    dir=$T/data-$size-$streams
    mkdir -p "$dir"
    "$LOAD" gen "$dir" "$size" "$count" || exit 1
    hashes=()
    for ((i = 0; i < count; i++)); do hashes[i]=$(sha256sum <"$dir/o$i" | cut -d' ' -f1); done
    loc="s3://$BUCKET/mdbx-$size-$streams"
    for op in put get; do
        for f in ours ours-nv ours-base peer ours-cpu ours-nv-cpu ours-base-cpu peer-cpu; do : >"$T/$f"; done
        for ((r = 0; r < RUNS; r++)); do
            if [ "$op" = get ] && [ -n "$BASE_LOAD" ]; then
                # this build's and BASE's gets, which goes first alternating by run
                if ((r % 2)); then load_run "$BASE_LOAD" get ours-base; fi
                load_run "$LOAD" get ours
                if ! ((r % 2)); then load_run "$BASE_LOAD" get ours-base; fi
            else
                load_run "$LOAD" "$op" ours
            fi
            curl_run "$(tr a-z A-Z <<<"$op")" "$dir" "$count" "$streams" "curl-$size-$streams" >>"$T/peer" || exit 1
            if [ "$op" = get ]; then
                S3LOAD_NO_VERIFY=1 load_run "$LOAD" get ours-nv
            fi
        done
        row "$op" "$(median <"$T/ours")" "$(median <"$T/peer")" "$(median <"$T/ours-cpu")" "$(median <"$T/peer-cpu")"
        if [ "$op" = get ] && [ -n "$BASE_LOAD" ]; then
            row "$op-base" "$(median <"$T/ours-base")" "$(median <"$T/peer")" "$(median <"$T/ours-base-cpu")" "$(median <"$T/peer-cpu")"
        fi
        if [ "$op" = get ]; then
            row "get-nv" "$(median <"$T/ours-nv")" "$(median <"$T/peer")" "$(median <"$T/ours-nv-cpu")" "$(median <"$T/peer-cpu")"
        fi
    done
done
echo "get-nv: minidbx opened MINIDBX_OPEN_NO_VERIFY (gets not hashed), for the share of verification"
[ -z "$BASE_LOAD" ] || echo "get-base: the gets of the s3load of BASE=$BASE, in the same runs"
echo "cpu: the client's CPU time (user + sys) per request, ms (s3load: of its timed requests, and a"
echo "memcmp of each get with the bytes put; curl: of the whole process, which writes to /dev/null)"
