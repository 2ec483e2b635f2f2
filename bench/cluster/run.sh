#!/bin/bash
# bench/cluster/run.sh - a cluster: store against a single node, in one run
# on 127.0.0.1 (see bench/cluster/README.md):
#   1. put latency, 4 KiB and 1 MiB: cluster of 3 http nodes (R = 2, W = 2,
#      the library is the client: no gateway) vs one node (goal <= 1.3x),
#      and vs two puts at once to two single nodes (the machine's floor);
#   2. get throughput, 4 KiB and 1 MiB, 2 client threads (goal >= 0.9x);
#   3. gets with one of the 3 nodes SIGKILLed: after the first second,
#      vs healthy (goal >= 0.8x);
#   4. a gateway (mdbx -s cluster:FILE serve) vs a single `mdbx serve`:
#      4 KiB GET, wrk -t2 -c64 (goal >= 0.8x);
#   5. repair after an empty restart of a node: objects/s, MB/s.
#
#   bench/cluster/run.sh [BUILD_DIR]      (default: ./build)
# Environment: SECONDS_PER (default 5), ROUNDS (default 3), SECTIONS (which
# of 1..5 to run, default "1 2 3 4 5"), KEEP=1 keeps the temp directory.
set -u
BUILD=${1:-build}
MDBX=${MDBX:-$BUILD/cli/mdbx}
BENCH=$BUILD/bench/cluster/cluster_bench
DUR=${SECONDS_PER:-5}
command -v wrk >/dev/null || { echo "bench/cluster: wrk is missing (apt-get install wrk)" >&2; exit 2; }
[ -x "$MDBX" ] && [ -x "$BENCH" ] || { echo "bench/cluster: build first ($MDBX, $BENCH)" >&2; exit 2; }

T=$(mktemp -d /var/tmp/mdbx-bench-cluster.XXXXXX)
PIDS=()
cleanup()
{
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

# serve STORE NAME [PORT]: start `mdbx serve`; its URL in $NAME.url, pid in $NAME.pid
serve()
{
    local store=$1 name=$2 port=${3:-0}
    "$MDBX" -s "$store" serve --listen "127.0.0.1:$port" >"$T/$name.out" 2>"$T/$name.err" &
    echo $! >"$T/$name.pid"
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q '^listening on ' "$T/$name.out" 2>/dev/null && break
        sleep 0.05
    done
    sed -n 's/^listening on //p' "$T/$name.out" >"$T/$name.url"
}
url() { cat "$T/$1.url"; }
pid() { cat "$T/$1.pid"; }

# cluster PREFIX [CACHE]: three nodes PREFIX0..2 and PREFIX.json (R = 2,
# W = 2; cache_objects CACHE, default 0: every get goes to a node)
cluster()
{
    local p=$1 cache=${2:-0}
    for i in 0 1 2; do serve "$T/$p$i" "$p$i"; done
    printf '{"replicas": 2, "write_quorum": 2, "timeout_ms": 2000, "cache_objects": %s, "nodes": ["%s", "%s", "%s"]}\n' \
        "$cache" "$(url ${p}0)" "$(url ${p}1)" "$(url ${p}2)" >"$T/$p.json"
}

SECTIONS=${SECTIONS:-1 2 3 4 5}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" | head -1; }

echo "# bench/cluster: $(nproc) cores, $(date -u +%FT%TZ), mdbx $("$MDBX" version | head -1)"
echo "# /var/tmp is $(df -T /var/tmp | awk 'NR==2 {print $2}'); nodes fsync every put (durability full)"

serve "$T/single" single
cluster c

echo
ROUNDS=${ROUNDS:-3}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if want 1; then
serve "$T/single2" single2
echo "## 1. put latency (one client thread; cluster_bench compare: put by put, single, cluster and 2singles"
echo "#  in turn, so all three see the same load; median of N puts, then the median of $ROUNDS rounds)"
echo "# 2singles: a put to the single node while another thread puts to a second single node, timed until"
echo "#  both are stored: two durable copies on this machine without the cluster's code"
printf '%-8s %14s %14s %8s %14s %8s\n' size single_us cluster_us ratio 2singles_us ratio
for spec in "4096 300" "1048576 40"; do
    set -- $spec
    : >"$T/s" ; : >"$T/c" ; : >"$T/d"
    for _ in $(seq "$ROUNDS"); do
        "$BENCH" compare "$1" "$2" "$(url single)" "cluster:$T/c.json" "$(url single2)" >"$T/compare"
        field single_us <"$T/compare" >>"$T/s"
        field cluster_us <"$T/compare" >>"$T/c"
        field 2singles_us <"$T/compare" >>"$T/d"
    done
    s=$(median <"$T/s"); c=$(median <"$T/c"); d=$(median <"$T/d")
    printf '%-8s %14s %14s %8s %14s %8s   (rounds: single %s; cluster %s; 2singles %s)\n' "$1" "$s" "$c" \
        "$(ratio "$c" "$s")" "$d" "$(ratio "$d" "$s")" "$(tr '\n' ' ' <"$T/s")" "$(tr '\n' ' ' <"$T/c")" \
        "$(tr '\n' ' ' <"$T/d")"
done
fi

if want 2; then
echo
echo "## 2. get throughput (2 client threads, ${DUR} s; median of $ROUNDS rounds, alternating)"
printf '%-8s %14s %14s %8s\n' size single_get/s cluster_get/s ratio
for spec in "4096 2000" "1048576 100"; do
    set -- $spec
    : >"$T/s" ; : >"$T/c"
    for _ in $(seq "$ROUNDS"); do
        "$BENCH" get "$(url single)" "$1" "$2" 2 "$DUR" | sed -n 's/^get .*: \([0-9]*\) gets\/s$/\1/p' >>"$T/s"
        "$BENCH" get "cluster:$T/c.json" "$1" "$2" 2 "$DUR" | sed -n 's/^get .*: \([0-9]*\) gets\/s$/\1/p' >>"$T/c"
    done
    s=$(median <"$T/s"); c=$(median <"$T/c")
    printf '%-8s %14s %14s %8s   (rounds: single %s; cluster %s)\n' "$1" "$s" "$c" "$(ratio "$c" "$s")" \
        "$(tr '\n' ' ' <"$T/s")" "$(tr '\n' ' ' <"$T/c")"
done
fi

if want 3; then
echo
echo "## 3. 4 KiB gets with a node SIGKILLed after ${DUR} s (2 client threads)"
"$BENCH" get "cluster:$T/c.json" 4096 2000 2 "$DUR" "$(pid c1)" | grep -v ' second [0-9]'
fi

if want 4; then
echo
echo "## 4. gateway vs single node: 4 KiB GET, wrk -t2 -c64 -d${DUR}s (gateway --threads 16)"
head -c 4096 /dev/urandom >"$T/obj4k"
ID=$("$MDBX" -q -s "$(url single)" put "$T/obj4k")
wrk_rps() # NAME URL: requests/s of a wrk run, after a 1 s warm-up
{
    wrk -t2 -c64 -d1s "$2/v1/objects/$ID" >/dev/null
    wrk -t2 -c64 -d"${DUR}s" --latency "$2/v1/objects/$ID" >"$T/wrk.$1"
    echo "$1: $(awk '/Requests\/sec/ {print $2}' "$T/wrk.$1") req/s, p99 $(awk '/ 99%/ {print $2}' "$T/wrk.$1")" >&2
    awk '/Requests\/sec/ {print $2}' "$T/wrk.$1"
}
rps_single=$(wrk_rps single "$(url single)")
for cache in 1024 0; do
    cluster "g$cache" "$cache"
    "$MDBX" -s "cluster:$T/g$cache.json" serve --listen 127.0.0.1:0 --threads 16 >"$T/gw$cache.out" 2>"$T/gw$cache.err" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '^listening on ' "$T/gw$cache.out" 2>/dev/null && break; sleep 0.05; done
    gw=$(sed -n 's/^listening on //p' "$T/gw$cache.out")
    "$MDBX" -q -s "$gw" put "$T/obj4k" >/dev/null
    rps=$(wrk_rps "gateway(cache_objects=$cache)" "$gw")
    echo "gateway (cache_objects $cache) / single: $(ratio "$rps" "$rps_single")"
done
fi

if want 5; then
echo
echo "## 5. repair after an empty restart (3 nodes, R = 2)"
cluster r
"$BENCH" put "cluster:$T/r.json" 4096 3000 >/dev/null
"$BENCH" put "cluster:$T/r.json" 1048576 100 >/dev/null
port=$(url r1); port=${port##*:}
kill -9 "$(pid r1)"; sleep 0.2; rm -rf "$T/r1"
serve "$T/r1" r1 "$port"
start=$(date +%s.%N)
"$MDBX" -s "cluster:$T/r.json" --json repair | tail -1 >"$T/repair.json"
end=$(date +%s.%N)
cat "$T/repair.json"
bytes=$("$MDBX" -s "$(url r1)" --json info | sed 's/.*"bytes":\([0-9]*\).*/\1/')
objects=$("$MDBX" -s "$(url r1)" --json info | sed 's/.*"objects":\([0-9]*\).*/\1/')
awk -v s="$start" -v e="$end" -v b="$bytes" -v o="$objects" -v all=3100 'BEGIN {
    t = e - s
    printf "repair: %.1f s; %d objects checked (%.0f/s); %d copies (%.1f MB) made on the empty node: %.0f copies/s, %.1f MB/s\n",
        t, all, all / t, o, b / 1e6, o / t, b / 1e6 / t }'
fi
