#!/bin/bash
# bench/http/run.sh - `mdbx serve` against nginx, in one run on 127.0.0.1,
# loaded by wrk. See bench/http/README.md.
#
#   bench/http/run.sh [BUILD_DIR]     (default: ./build)
#
# Environment: DURATION (seconds per load, default 10), THREADS (server
# worker threads, default 2), WRK_THREADS (default 2), KEEP=1 keeps the
# temp directory. Needs nginx (nginx-light), wrk and curl.
set -u

BUILD=${1:-build}
MDBX=${MDBX:-$BUILD/cli/mdbx}
DURATION=${DURATION:-10}
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
NGINX_PID=""
cleanup()
{
    [ -n "$MDBX_PID" ] && kill "$MDBX_PID" 2>/dev/null && wait "$MDBX_PID" 2>/dev/null
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
cp "$T/obj4k" "$T/www/v1/objects/$ID4K"
cp "$T/obj1m" "$T/www/v1/objects/$ID1M"
# nginx's workers run as another user when started by root
chmod a+rx "$T" && chmod -R a+rX "$T/www" && chmod a+w "$T/www/v1/objects"
cat "$T/obj4k" "$T/obj1m" >/dev/null # warm the page cache

# --- the servers ---------------------------------------------------------------------
"$MDBX" -s "$T/store" serve --listen 127.0.0.1:0 --threads "$THREADS" \
    --max-connections-per-ip 1000 --max-object-size 64M >"$T/mdbx.out" 2>"$T/mdbx.err" &
MDBX_PID=$!
for _ in $(seq 100); do grep -q listening "$T/mdbx.out" 2>/dev/null && break; sleep 0.05; done
MDBX_URL=$(sed -n 's/^listening on //p' "$T/mdbx.out")
[ -n "$MDBX_URL" ] || { echo "mdbx serve did not start:"; cat "$T/mdbx.err"; exit 1; }

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
    if [ "$1" = mdbx ]; then echo "$MDBX_PID"; else pgrep -P "$NGINX_PID"; echo "$NGINX_PID"; fi
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

# wrk's figures: req/s, p50 and p99 in ms.
wrk_figures()
{
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                         if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }'
}

declare -A RESULT
# load NAME SERVER CONNS URL [LUA]
load()
{
    local name=$1 server=$2 conns=$3 url=$4 lua=${5:-}
    local threads=$WRK_THREADS
    [ "$conns" -lt "$threads" ] && threads=$conns
    rss_reset "$server"
    BODY_FILE=${BODY_FILE:-} wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency ${lua:+-s "$lua"} "$url" \
        >"$T/wrk.out" 2>&1
    RESULT[$name/$server]="$(wrk_figures <"$T/wrk.out") $(rss_peak_kib "$server")"
}

echo "bench/http: mdbx serve ($THREADS threads) vs nginx ($THREADS workers), wrk -t$WRK_THREADS, ${DURATION}s each"
# Each load runs on both servers back to back, so that both see the same
# state of a shared machine.
url_of() { [ "$1" = nginx ] && echo "$NGINX_URL" || echo "$MDBX_URL"; }
for server in mdbx nginx; do load "get-4k-c64" "$server" 64 "$(url_of "$server")/v1/objects/$ID4K"; done
for server in mdbx nginx; do load "get-4k-c1" "$server" 1 "$(url_of "$server")/v1/objects/$ID4K"; done
for server in mdbx nginx; do load "get-1m-c64" "$server" 64 "$(url_of "$server")/v1/objects/$ID1M"; done
for server in mdbx nginx; do
    export UNIQUE_PATHS=$([ "$server" = nginx ] && echo 1 || echo 0)
    BODY_FILE=$T/obj4k load "put-4k-c64" "$server" 64 "$(url_of "$server")" "$HERE/put.lua"
done
for server in mdbx nginx; do
    export UNIQUE_PATHS=$([ "$server" = nginx ] && echo 1 || echo 0)
    BODY_FILE=$T/obj1m load "put-1m-c16" "$server" 16 "$(url_of "$server")" "$HERE/put.lua"
done

# 8 concurrent 50 MiB uploads (streamed: the server must not hold them).
rss_reset mdbx
for i in $(seq 8); do
    curl -s -o /dev/null -w '%{http_code}\n' -X PUT -H "Transfer-Encoding: chunked" \
        --data-binary @"$T/obj50m" "$MDBX_URL/v1/objects" >"$T/up.$i" &
done
wait $(jobs -p | grep -v "^$MDBX_PID$") 2>/dev/null
UPLOAD_RSS=$(rss_peak_kib mdbx)
UPLOAD_OK=$(cat "$T"/up.* | grep -c '^20[01]$')

# --- the report ----------------------------------------------------------------------
printf '\n%-12s %-6s %10s %9s %9s %9s %8s\n' load server "req/s" "p50 ms" "p99 ms" "RSS MiB" "non-2xx"
for name in get-4k-c64 get-4k-c1 get-1m-c64 put-4k-c64 put-1m-c16; do
    for server in mdbx nginx; do
        read -r rps p50 p99 bad rss <<<"${RESULT[$name/$server]}"
        printf '%-12s %-6s %10s %9s %9s %9.1f %8s\n' "$name" "$server" "$rps" "$p50" "$p99" \
            "$(echo "$rss / 1024" | bc -l)" "$bad"
    done
done
echo
goal()
{
    local name=$1 min=$2
    read -r m_rps _ m_p99 _ m_rss <<<"${RESULT[$name/mdbx]}"
    read -r n_rps _ n_p99 _ _ <<<"${RESULT[$name/nginx]}"
    local ratio
    ratio=$(echo "$m_rps / $n_rps" | bc -l)
    printf '%-12s mdbx/nginx req/s %.2fx (goal >= %s): %s; p99 %s vs %s ms; RSS %.1f MiB (goal <= 32): %s\n' \
        "$name" "$ratio" "$min" "$(echo "$ratio >= $min" | bc -l | sed 's/1/MET/;s/0/MISSED/')" \
        "$m_p99" "$n_p99" "$(echo "$m_rss / 1024" | bc -l)" \
        "$([ "$m_rss" -le 32768 ] && echo MET || echo MISSED)"
}
goal get-4k-c64 1.0
goal get-1m-c64 0.9
goal get-4k-c1 0.9
printf '8 x 50 MiB uploads: %d of 8 stored, server peak RSS %.1f MiB (goal <= 32): %s\n' "$UPLOAD_OK" \
    "$(echo "$UPLOAD_RSS / 1024" | bc -l)" "$([ "$UPLOAD_RSS" -le 32768 ] && echo MET || echo MISSED)"
echo "(PUTs to mdbx are durable: fsync per object on ext4 without a journal here; nginx's DAV PUT does not fsync.)"
