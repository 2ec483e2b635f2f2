#!/bin/bash
# bench/sync/run.sh - `mdbx sync` from a local store against `rclone copy`
# of the same bytes as files, to the same destination, in one run. See
# bench/sync/README.md.
#
#   bench/sync/run.sh [BUILD_DIR] [DEST...]     (default: ./build local http s3)
#
# DEST is where both copy to:
#   local   a local store for mdbx, a directory for rclone (same disk)
#   http    an `mdbx serve` node on 127.0.0.1 (over a local store); rclone
#           cannot write to it, so its row is left out
#   s3      s3://BUCKET/... on the S3 engine of $MINIDBX_S3_ENDPOINT with
#           $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY; without an endpoint,
#           a Ceph RGW on 127.0.0.1 that it starts (tests/s3/rgw-up, 6 GiB
#           memstore) and stops. rclone goes through its s3 backend
#           (provider Ceph) to another prefix of the same bucket
#
# Workloads (WORKLOADS, default "small small-named big"): small is
# SMALL_COUNT x 4 KiB (default 10,000) as objects without names, the same
# bytes rclone copies as files; small-named the same objects, each with a
# name (its file's name), as a backup of files would have; big is BIG_COUNT
# x BIG_MIB MiB (default 20 x 100), named. JOBS
# (default 4) is both mdbx's -j and rclone's --transfers. BENCH_DIR
# (default /var/tmp/mdbx-bench-sync) keeps the generated files and source
# stores between runs (delete it to start over); destinations are made
# fresh for every copy. Each copy runs twice: the first copies
# everything, the second (a re-run) must copy nothing.
set -u

BUILD=${1:-build}
[ $# -gt 0 ] && shift
DESTS=${*:-local http s3}
MDBX=${MDBX:-$BUILD/cli/mdbx}
GEN_BYTES=${GEN_BYTES:-$BUILD/tests/cli/gen_bytes}
SMALL_COUNT=${SMALL_COUNT:-10000}
BIG_COUNT=${BIG_COUNT:-20}
BIG_MIB=${BIG_MIB:-100}
JOBS=${JOBS:-4}
WORKLOADS=${WORKLOADS:-small small-named big}
B=${BENCH_DIR:-/var/tmp/mdbx-bench-sync}
S3_BUCKET=${S3_BUCKET:-mdbx-bench-sync}

[ -x "$MDBX" ] || { echo "bench/sync: no mdbx at $MDBX (give the build directory)" >&2; exit 2; }
[ -x "$GEN_BYTES" ] || { echo "bench/sync: no gen_bytes at $GEN_BYTES" >&2; exit 2; }
MDBX=$(realpath "$MDBX") GEN_BYTES=$(realpath "$GEN_BYTES")
command -v rclone >/dev/null || { echo "bench/sync: rclone is missing (apt-get install rclone)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/sync: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
export RCLONE_CONFIG=/dev/null # remotes come from the environment below

SERVER_PID=""
RGW_TMP=""
cleanup()
{
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [ -n "$RGW_TMP" ] && "$HERE/../../tests/s3/rgw-down" --rm "$RGW_TMP/rgw" >/dev/null 2>&1
    [ -n "$RGW_TMP" ] && rm -rf "$RGW_TMP"
    rm -rf "$B/dest"
}
trap cleanup EXIT
HERE=$(cd "$(dirname "$0")" && pwd)

# start_rgw: a throw-away RGW (tests/s3) on the first free port of 7700.. 7990.
start_rgw()
{
    local env="" port
    export RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-$((6 << 30))}
    RGW_TMP=$(mktemp -d /var/tmp/mdbx-bench-sync-rgw.XXXXXX)
    for ((port = 7700; port <= 7990; port += 10)); do
        env=$("$HERE/../../tests/s3/rgw-up" "$RGW_TMP/rgw" "$port" 2>"$RGW_TMP/up.log") && break
        env=""
        grep -q "already in use" "$RGW_TMP/up.log" || { cat "$RGW_TMP/up.log" >&2; exit 1; }
        rm -rf "$RGW_TMP/rgw"
    done
    [ -n "$env" ] || { echo "bench/sync: no free port for an RGW" >&2; exit 1; }
    eval "$env"
}

# --- the data: files for rclone, the same bytes in named objects for mdbx --------
# files_of WORKLOAD: the directory of its files (small-named shares small's).
files_of() { echo "$B/${1%-named}"; }

make_data()
{
    local workload=$1 files
    files=$(files_of "$1")
    [ -e "$B/$workload.ready" ] && return 0
    if [ ! -e "$files.ready" ]; then
        rm -rf "$files"
        mkdir -p "$files"
        if [ "$workload" = big ]; then
            for i in $(seq "$BIG_COUNT"); do "$GEN_BYTES" "${BIG_MIB}M" "$((100 + i))" >"$files/f$i"; done
        else
            "$GEN_BYTES" $((SMALL_COUNT * 4))K 1 | (cd "$files" && split -a 6 -d -b 4096 - f)
        fi
        touch "$files.ready"
    fi
    echo "bench/sync: storing $workload in $B/src-$workload (once)" >&2
    rm -rf "$B/src-$workload"
    if [ "$workload" = small ]; then
        (cd "$files" && find . -type f -print0 | xargs -0 "$MDBX" -q -s "$B/src-$workload" put) >/dev/null
    else
        "$MDBX" -q -s "$B/src-$workload" put -r "$files" >/dev/null
    fi || exit 1
    touch "$B/$workload.ready"
}

# --- destinations ---------------------------------------------------------------------
start_node()
{
    rm -rf "$B/dest/node"
    "$MDBX" -s "$B/dest/node" init >/dev/null
    "$MDBX" -s "$B/dest/node" serve --listen 127.0.0.1:0 --threads "$JOBS" >"$B/dest/node.out" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        NODE_URL=$(sed -n 's/^listening on //p' "$B/dest/node.out")
        [ -n "$NODE_URL" ] && return 0
        sleep 0.05
    done
    echo "bench/sync: mdbx serve did not start" >&2
    exit 1
}

stop_node()
{
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

s3_clear() # s3_clear PREFIX: remove the bench's objects under it
{
    rclone purge ":s3:$S3_BUCKET/$1" >/dev/null 2>&1 || true
}

# mdbx_dest KIND WORKLOAD: set WHERE to a fresh destination for mdbx (not
# in a subshell: the node it may start must be ours to stop).
mdbx_dest()
{
    case $1 in
    local) rm -rf "$B/dest/store"; WHERE=$B/dest/store ;;
    http) start_node; WHERE=$NODE_URL ;;
    s3) s3_clear "mdbx-$2"; WHERE=s3://$S3_BUCKET/mdbx-$2 ;;
    esac
}

rclone_dest()
{
    case $1 in
    local) rm -rf "$B/dest/files"; WHERE=$B/dest/files ;;
    s3) s3_clear "rclone-$2"; WHERE=:s3:$S3_BUCKET/rclone-$2 ;;
    esac
}

if [[ " $DESTS " == *" s3 "* ]] && [ -z "${MINIDBX_S3_ENDPOINT:-}" ] && ! command -v radosgw >/dev/null; then
    echo "bench/sync: SKIPPING s3: no MINIDBX_S3_ENDPOINT and no Ceph to start an RGW" \
        "(apt-get install ceph-mon ceph-osd radosgw)" >&2
    DESTS=${DESTS//s3/}
fi
if [[ " $DESTS " == *" s3 "* ]]; then
    [ -n "${MINIDBX_S3_ENDPOINT:-}" ] || start_rgw
    export RCLONE_S3_PROVIDER=Ceph RCLONE_S3_ENDPOINT=$MINIDBX_S3_ENDPOINT
    export RCLONE_S3_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_S3_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
    export RCLONE_S3_REGION=${AWS_REGION:-us-east-1} RCLONE_S3_FORCE_PATH_STYLE=true
    # rclone's AWS SDK fails on a custom CA bundle with its own transport
    # ("LoadCustomCABundleError"); the endpoint says whether TLS is used.
    unset AWS_CA_BUNDLE
    rclone mkdir ":s3:$S3_BUCKET" || exit 1
fi

# --- timing -----------------------------------------------------------------------------
# timed CMD...: run it; sets SECS, RSS_MIB (its peak RSS, as /usr/bin/time
# sees it) and ANON_MIB (the largest RssAnon seen, sampled every 20 ms:
# RSS also counts the pages of files it maps, such as a local store's
# LMDB map, which are page cache, not memory of its own). A failure ends
# the bench.
timed()
{
    local tpid child="" anon_kib=0 key value _
    /usr/bin/time -f "TIME %e %M" -o "$B/time.out" "$@" >/dev/null 2>"$B/cmd.err" &
    tpid=$!
    while kill -0 "$tpid" 2>/dev/null; do
        [ -n "$child" ] || child=$(pgrep -P "$tpid" | head -n1)
        if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
            { while read -r key value _; do
                [ "$key" = RssAnon: ] && [ "$value" -gt "$anon_kib" ] && anon_kib=$value
            done <"/proc/$child/status"; } 2>/dev/null
        fi
        sleep 0.02
    done
    if ! wait "$tpid"; then
        echo "bench/sync: failed: $*" >&2
        tail -n 5 "$B/cmd.err" >&2
        exit 1
    fi
    read -r _ SECS RSS_KIB <"$B/time.out"
    RSS_MIB=$(awk -v k="$RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
    ANON_MIB=$(awk -v k="$anon_kib" 'BEGIN { printf "%.1f", k / 1024 }')
}

row() # row WORKLOAD DEST TOOL OBJECTS BYTES SECS RESECS RSS_MIB ANON_MIB
{
    awk -v w="$1" -v d="$2" -v t="$3" -v n="$4" -v b="$5" -v s="$6" -v r="$7" -v m="$8" -v a="$9" 'BEGIN {
        if (s < 0.001) s = 0.001
        printf "%-20s %-6s %-7s %9.2f %9.0f %9.1f %9.2f %9s %9s\n", w, d, t, s, n / s, b / s / 1048576, r, m, a
    }'
}

printf "%-20s %-6s %-7s %9s %9s %9s %9s %9s %9s\n" workload dest tool seconds objects/s MiB/s rerun_s rss_MiB anon_MiB
summary=""
for workload in $WORKLOADS; do
    make_data "$workload"
    files=$(files_of "$workload")
    count=$(find "$files" -type f | wc -l)
    bytes=$(find "$files" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
    label="$workload ${count}x$((bytes / count / 1024))K"
    for dest in $DESTS; do
        mkdir -p "$B/dest"
        mdbx_dest "$dest" "$workload"
        where=$WHERE
        timed "$MDBX" -q sync -j "$JOBS" "$B/src-$workload" "$where"
        mdbx_secs=$SECS mdbx_rss=$RSS_MIB mdbx_anon=$ANON_MIB
        timed "$MDBX" -q sync -j "$JOBS" "$B/src-$workload" "$where"
        row "$label" "$dest" mdbx "$count" "$bytes" "$mdbx_secs" "$SECS" "$mdbx_rss" "$mdbx_anon"
        # the re-run copies nothing: check it, do not only time it
        copied=$("$MDBX" --json sync "$B/src-$workload" "$where" | tail -n1 | grep -o '"objects":[0-9]*')
        [ "$copied" = '"objects":0' ] || { echo "bench/sync: a re-run copied something ($copied)" >&2; exit 1; }
        [ "$dest" = http ] && stop_node
        [ "$dest" = s3 ] && s3_clear "mdbx-$workload"
        [ "$dest" = http ] && continue
        rclone_dest "$dest" "$workload"
        where=$WHERE
        timed rclone copy --transfers "$JOBS" "$files" "$where"
        rclone_secs=$SECS rclone_rss=$RSS_MIB rclone_anon=$ANON_MIB
        timed rclone copy --transfers "$JOBS" "$files" "$where"
        row "$label" "$dest" rclone "$count" "$bytes" "$rclone_secs" "$SECS" "$rclone_rss" "$rclone_anon"
        [ "$dest" = s3 ] && s3_clear "rclone-$workload"
        ratio=$(awk -v m="$mdbx_secs" -v r="$rclone_secs" 'BEGIN { if (m < 0.001) m = 0.001; printf "%.2f", r / m }')
        summary+="$(printf '%-20s %-6s mdbx sync vs rclone copy: %sx (goal >= 1.0x), mdbx peak RSS %s MiB (goal <= 64; anon %s MiB)' "$label" "$dest" "$ratio" "$mdbx_rss" "$mdbx_anon")"$'\n'
    done
done
echo
printf "%s" "$summary"
