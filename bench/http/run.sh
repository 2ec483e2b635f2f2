#!/bin/bash
# bench/http/run.sh - `mdbx serve` against nginx, in one run on 127.0.0.1,
# loaded by wrk. See bench/http/README.md.
#
#   bench/http/run.sh [BUILD_DIR]     (default: ./build)
#
# Environment: DURATION (seconds per load, default 10), RUNS (rounds of
# every load, default 3: the report gives medians), THREADS (server worker
# threads, default 2), WRK_THREADS (default 2), KEEP=1 keeps the temp
# directory, ALT="OPTIONS" adds a second mdbx serve node (on a store of its
# own) with these options to every GET and PUT load, e.g. ALT="--io-model
# pool": a before/after in one run; ALT_MDBX=PATH runs that node from
# another build's mdbx (e.g. ALT_MDBX=../base/build/cli/mdbx ALT="--threads
# 2": the code before a change, same options). Needs nginx (nginx-light),
# wrk and curl.
set -u

BUILD=${1:-build}
MDBX=${MDBX:-$BUILD/cli/mdbx}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
WRK_THREADS=${WRK_THREADS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)

for tool in nginx wrk curl; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
    command -v "$tool" >/dev/null || { echo "bench/http: $tool is missing (apt-get install nginx-light wrk curl)" >&2; exit 2; }
done
[ -x "$MDBX" ] || { echo "bench/http: no mdbx at $MDBX (give the build directory)" >&2; exit 2; }

# A fresh directory per run (ext4 is slow to reuse freshly freed inodes).
T=$(mktemp -d /var/tmp/mdbx-bench-http.XXXXXX)
MDBX_PID=""
NOSYNC_PID=""
ALT_PID=""
NGINX_PID=""
cleanup()
{
    [ -n "$MDBX_PID" ] && kill "$MDBX_PID" 2>/dev/null && wait "$MDBX_PID" 2>/dev/null
    [ -n "$NOSYNC_PID" ] && kill "$NOSYNC_PID" 2>/dev/null && wait "$NOSYNC_PID" 2>/dev/null
    [ -n "$ALT_PID" ] && kill "$ALT_PID" 2>/dev/null && wait "$ALT_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null
    sleep 0.3
    [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

free_port()
{
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        ss -ltn | grep -q ":$port " || { echo "$port"; return; }
    done
}

# --- the data: the same objects for both servers --------------------------------
mkdir -p "$T/www/v1/objects" "$T/nginx"
head -c 4096 /dev/urandom >"$T/obj4k"
head -c 1048576 /dev/urandom >"$T/obj1m"
head -c $((50 << 20)) /dev/urandom >"$T/obj50m"
ID4K=$("$MDBX" -q -s "$T/store" put "$T/obj4k") || exit 1
ID1M=$("$MDBX" -q -s "$T/store" put "$T/obj1m") || exit 1
ALT=${ALT:-}
if [ -n "$ALT" ]; then
    "$MDBX" -q -s "$T/store-alt" put "$T/obj4k" "$T/obj1m" >/dev/null || exit 1
fi
cp "$T/obj4k" "$T/www/v1/objects/$ID4K"
cp "$T/obj1m" "$T/www/v1/objects/$ID1M"
# nginx's workers run as another user when started by root
chmod a+rx "$T" && chmod -R a+rX "$T/www" && chmod a+w "$T/www/v1/objects"
cat "$T/obj4k" "$T/obj1m" >/dev/null # warm the page cache

# --- the servers ---------------------------------------------------------------------
# start_mdbx STORE NAME [options]: start mdbx serve; sets START_PID and START_URL.
start_mdbx()
{
    local store=$1 name=$2 mdbx=$MDBX
    shift 2
    [ "$name" = alt ] && mdbx=${ALT_MDBX:-$MDBX}
    "$mdbx" -s "$store" serve --listen 127.0.0.1:0 --threads "$THREADS" \
        --max-connections-per-ip 1000 --max-object-size 64M "$@" >"$T/$name.out" 2>"$T/$name.err" &
    START_PID=$!
    for _ in $(seq 100); do grep -q listening "$T/$name.out" 2>/dev/null && break; sleep 0.05; done
    START_URL=$(sed -n 's/^listening on //p' "$T/$name.out")
    [ -n "$START_URL" ] || { echo "mdbx serve did not start:"; cat "$T/$name.err"; exit 1; }
}
start_mdbx "$T/store" mdbx
MDBX_PID=$START_PID MDBX_URL=$START_URL
# the same node with --sync none, on a store of its own: the durable PUT's peer
start_mdbx "$T/store-nosync" nosync --sync none
NOSYNC_PID=$START_PID NOSYNC_URL=$START_URL
if [ -n "$ALT" ]; then
    # shellcheck disable=SC2086 # the options, word by word
    start_mdbx "$T/store-alt" alt $ALT
    ALT_PID=$START_PID ALT_URL=$START_URL
fi

NGINX_PORT=$(free_port)
sed -e "s|@ROOT@|$T/www|g" -e "s|@DIR@|$T/nginx|g" -e "s|@PORT@|$NGINX_PORT|g" \
    -e "s|@WORKERS@|$THREADS|g" "$HERE/nginx.conf.in" >"$T/nginx/nginx.conf"
nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log" || exit 1
for _ in $(seq 100); do [ -s "$T/nginx/nginx.pid" ] && break; sleep 0.05; done
NGINX_PID=$(cat "$T/nginx/nginx.pid")
NGINX_URL=http://127.0.0.1:$NGINX_PORT

curl -sf -o /dev/null "$NGINX_URL/v1/objects/$ID4K" || { echo "nginx does not serve:"; cat "$T/nginx/error.log"; exit 1; }
curl -sf -o /dev/null "$MDBX_URL/v1/objects/$ID4K" || { echo "mdbx serve does not serve"; exit 1; }

# --- measuring ------------------------------------------------------------------------

# The server's processes: mdbx serve, or nginx's master and workers.
server_pids()
{
    case $1 in
    mdbx) echo "$MDBX_PID" ;;
    nosync) echo "$NOSYNC_PID" ;;
    alt) echo "$ALT_PID" ;;
    *) pgrep -P "$NGINX_PID"; echo "$NGINX_PID" ;;
    esac
}
url_of()
{
    case $1 in
    mdbx) echo "$MDBX_URL" ;;
    nosync) echo "$NOSYNC_URL" ;;
    alt) echo "$ALT_URL" ;;
    *) echo "$NGINX_URL" ;;
    esac
}

# Reset the peak RSS (VmHWM) of a server's processes, then read its sum in KiB.
rss_reset() { for p in $(server_pids "$1"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null; done; }
rss_peak_kib()
{
    local sum=0 kib
    for p in $(server_pids "$1"); do
        kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$p/status" 2>/dev/null)
        sum=$((sum + ${kib:-0}))
    done
    echo "$sum"
}
# CPU time (user + system) of a server's processes, in clock ticks.
cpu_ticks()
{
    local sum=0
    for p in $(server_pids "$1"); do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# wrk's figures: req/s, p50 and p99 in ms, non-2xx replies, requests.
wrk_figures()
{
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                         if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        / requests in / { n = $1 }
        /Non-2xx/ { bad = $NF }
        END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, bad, n }'
}

# RESULT[run/load/server] = "req/s p50 p99 non-2xx RSS-KiB CPU-us/req"
declare -A RESULT
# load RUN NAME SERVER CONNS URL [LUA]
load()
{
    local run=$1 name=$2 server=$3 conns=$4 url=$5 lua=${6:-}
    local threads=$WRK_THREADS ticks rps p50 p99 bad n
    [ "$conns" -lt "$threads" ] && threads=$conns
    rss_reset "$server"
    ticks=$(cpu_ticks "$server")
    BODY_FILE=${BODY_FILE:-} wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency ${lua:+-s "$lua"} "$url" \
        >"$T/wrk.out" 2>&1
    ticks=$(($(cpu_ticks "$server") - ticks))
    read -r rps p50 p99 bad n <<<"$(wrk_figures <"$T/wrk.out")"
    RESULT[$run/$name/$server]="$rps $p50 $p99 $bad $(rss_peak_kib "$server") $((n > 0 ? ticks * TICK_US / n : 0))"
}

# 8 concurrent 50 MiB uploads (streamed: the server must not hold them).
uploads()
{
    local run=$1
    rss_reset mdbx
    for i in $(seq 8); do
        curl -s -o /dev/null -w '%{http_code}\n' -X PUT -H "Transfer-Encoding: chunked" \
            --data-binary @"$T/obj50m" "$MDBX_URL/v1/objects" >"$T/up.$i" &
    done
    wait $(jobs -p | grep -v "^$MDBX_PID$" | grep -v "^$NOSYNC_PID$" | grep -v "^${ALT_PID:-none}$") 2>/dev/null
    UPLOAD_RSS[$run]=$(rss_peak_kib mdbx)
    UPLOAD_OK[$run]=$(cat "$T"/up.* | grep -c '^20[01]$')
    UPLOAD_CODES[$run]=$(cat "$T"/up.* | sort | uniq -c | awk '{ printf "%s%sx%s", (NR > 1 ? " " : ""), $1, $2 }')
}

declare -A UPLOAD_RSS UPLOAD_OK UPLOAD_CODES
echo "bench/http: mdbx serve ($THREADS threads) vs nginx ($THREADS workers), wrk -t$WRK_THREADS," \
     "${DURATION}s per load, $RUNS runs${ALT:+; alt: ${ALT_MDBX:-mdbx} serve $ALT}"
# the mdbx nodes a GET or PUT load runs on
NODES="mdbx${ALT:+ alt}"
# Each load runs on every server back to back, so that they see the same
# state of a shared machine.
for run in $(seq "$RUNS"); do
    for server in $NODES nginx; do load "$run" get-4k-c64 "$server" 64 "$(url_of "$server")/v1/objects/$ID4K"; done
    for server in $NODES nginx; do load "$run" get-4k-c1 "$server" 1 "$(url_of "$server")/v1/objects/$ID4K"; done
    for server in $NODES nginx; do load "$run" get-1m-c64 "$server" 64 "$(url_of "$server")/v1/objects/$ID1M"; done
    for server in $NODES nosync nginx; do
        export UNIQUE_PATHS=$([ "$server" = nginx ] && echo 1 || echo 0)
        BODY_FILE=$T/obj4k load "$run" put-4k-c64 "$server" 64 "$(url_of "$server")" "$HERE/put.lua"
    done
    for server in $NODES nginx; do
        export UNIQUE_PATHS=$([ "$server" = nginx ] && echo 1 || echo 0)
        BODY_FILE=$T/obj1m load "$run" put-1m-c16 "$server" 16 "$(url_of "$server")" "$HERE/put.lua"
    done
    uploads "$run"
    echo "run $run of $RUNS done"
done

# --- the report ----------------------------------------------------------------------
LOADS="get-4k-c64 get-4k-c1 get-1m-c64 put-4k-c64 put-1m-c16"
servers_of() { [ "$1" = put-4k-c64 ] && echo "$NODES nosync nginx" || echo "$NODES nginx"; }
# median of the numbers given (the middle one; of an even count, the lower middle)
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# field LOAD SERVER INDEX: that figure (1-based, as in RESULT) of every run
field() { for run in $(seq "$RUNS"); do read -r -a f <<<"${RESULT[$run/$1/$2]}"; echo "${f[$(($3 - 1))]}"; done; }
# ratio LOAD A B: A's req/s over B's, of every run
ratio()
{
    for run in $(seq "$RUNS"); do
        read -r a _ <<<"${RESULT[$run/$1/$2]}"
        read -r b _ <<<"${RESULT[$run/$1/$3]}"
        echo "$a $b" | awk '{ printf "%.2f\n", ($2 > 0 ? $1 / $2 : 0) }'
    done
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

printf '\nmedians of %d runs (nosync: mdbx serve --sync none; mdbx PUTs are durable%s)\n' "$RUNS" \
    "${ALT:+; alt: mdbx serve $ALT}"
printf '%-12s %-7s %10s %9s %9s %9s %11s %8s\n' load server "req/s" "p50 ms" "p99 ms" \
    "RSS MiB" "CPU us/req" "non-2xx"
for name in $LOADS; do
    for server in $(servers_of "$name"); do
        printf '%-12s %-7s %10s %9s %9s %9s %11s %8s\n' "$name" "$server" \
            "$(median $(field "$name" "$server" 1))" "$(median $(field "$name" "$server" 2))" \
            "$(median $(field "$name" "$server" 3))" "$(mib "$(median $(field "$name" "$server" 5))")" \
            "$(median $(field "$name" "$server" 6))" "$(median $(field "$name" "$server" 4))"
    done
done

# verdict TEXT CONDITION: MET if the awk condition holds, else MISSED
verdict() { awk "BEGIN { exit !($1) }" && echo MET || echo MISSED; }
# every_run LIST: "a, b, c" for the per-run figures
every_run() { echo "$*" | sed 's/ /, /g'; }
printf '\ngoals (issue 12; per-run figures in run order, then the median)\n'
# req/s ratio to nginx: LOAD GOAL [every]: the median must meet it, or with
# "every" each run
ratio_goal()
{
    local name=$1 min=$2 rule=${3:-median} ratios med ok=1
    ratios=$(ratio "$name" mdbx nginx)
    med=$(median $ratios)
    if [ "$rule" = every ]; then
        for r in $ratios; do [ "$(verdict "$r >= $min")" = MET ] || ok=0; done
    else
        [ "$(verdict "$med >= $min")" = MET ] || ok=0
    fi
    printf '%-12s mdbx/nginx req/s %s -> %.2fx (goal >= %s%s): %s\n' "$name" "$(every_run $ratios)" \
        "$med" "$min" "$([ "$rule" = every ] && echo ' in every run')" \
        "$([ $ok = 1 ] && echo MET || echo MISSED)"
}
ratio_goal get-4k-c64 1.0 every
ratio_goal get-1m-c64 0.9
ratio_goal get-4k-c1 0.9
m=$(median $(field get-1m-c64 mdbx 3)) n=$(median $(field get-1m-c64 nginx 3))
printf '%-12s p99 mdbx %s ms vs nginx %s ms (goal <= nginx): %s\n' get-1m-c64 "$m" "$n" \
    "$(verdict "$m <= $n")"
ratios=$(ratio put-4k-c64 mdbx nosync)
printf '%-12s durable / --sync none req/s %s -> %.2fx (goal >= 0.8): %s\n' put-4k-c64 \
    "$(every_run $ratios)" "$(median $ratios)" "$(verdict "$(median $ratios) >= 0.8")"
ratio_goal put-4k-c64 1.0
# peak RSS (KiB per run): LABEL GOAL-MIB KIB...: every run must be under it
rss_goal()
{
    local label=$1 max=$2 ok=1 list=""
    shift 2
    for k in "$@"; do
        list="$list $(mib "$k")"
        [ "$k" -le $((max * 1024)) ] || ok=0
    done
    printf '%-24s server peak RSS MiB %s (goal <= %s in every run): %s\n' "$label" \
        "$(every_run $list | sed 's/^, //')" "$max" "$([ $ok = 1 ] && echo MET || echo MISSED)"
}
rss_goal "put-4k-c64" 32 $(field put-4k-c64 mdbx 5)
rss_goal "8 x 50 MiB uploads" 32 $(for run in $(seq "$RUNS"); do echo "${UPLOAD_RSS[$run]}"; done)
for name in get-4k-c64 get-1m-c64 put-1m-c16; do
    rss_goal "$name" 32 $(field "$name" mdbx 5)
done
stored=""
for run in $(seq "$RUNS"); do stored="$stored ${UPLOAD_OK[$run]}/8 (HTTP ${UPLOAD_CODES[$run]})"; done
echo "8 x 50 MiB uploads stored per run:$stored"
echo "(PUTs to mdbx are durable: fsync per object on ext4 without a journal here; nginx's DAV PUT does not fsync.)"
if [ -n "$ALT" ]; then
    printf '\nalt (mdbx serve %s) in the same runs: req/s ratios per run, then the median\n' "$ALT"
    for name in $LOADS; do
        a=$(ratio "$name" alt nginx) b=$(ratio "$name" mdbx alt)
        printf '%-12s alt/nginx %s -> %.2fx   mdbx/alt %s -> %.2fx\n' "$name" "$(every_run $a)" \
            "$(median $a)" "$(every_run $b)" "$(median $b)"
    done
    rss_goal "put-4k-c64 (alt)" 32 $(field put-4k-c64 alt 5)
fi
