#!/bin/bash
# What keeps one client from hurting the others: slowloris, connection
# floods (total and per IP), the request rate, tokens and TLS.
. "$(dirname "$0")/lib.sh"

# open_conns N: open N raw connections on fds 60.. (bash /dev/tcp; bash
# keeps fds 10.. for itself).
open_conns()
{
    for i in $(seq 60 $((59 + $1))); do
        eval "exec $i<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || true
    done
}

close_conns()
{
    for i in $(seq 60 $((59 + $1))); do
        eval "exec $i>&-" 2>/dev/null || true
    done
}

# dropped_conns N: how many of them the server has closed (EOF on read).
dropped_conns()
{
    local n=0
    for i in $(seq 60 $((59 + $1))); do
        read -r -t 0.2 -u "$i" _ 2>/dev/null
        [ $? -le 128 ] && n=$((n + 1))
    done
    echo "$n"
}

# --- slowloris -------------------------------------------------------------
trap "" PIPE # a write to a dropped connection must fail, not kill the script
start_server "$T/store" --header-timeout 2 --idle-timeout 30 || { not_ok "server starts"; finish; }
exec 3<>/dev/tcp/127.0.0.1/"$PORT"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&3
dropped=no
for _ in $(seq 8); do
    sleep 0.5
    # a header line every half second: never idle, never complete
    printf 'X-Slow: 1\r\n' >&3 2>/dev/null || { dropped=yes; break; }
    req "$URL/health"
    [ "$code" = 200 ] || break
done
check "others are served while a slowloris client trickles headers" test "$code" = 200
if [ "$dropped" = no ]; then
    read -r -t 1 -u 3 _
    [ $? -le 128 ] && dropped=yes
fi
check "the slowloris client is dropped at the header deadline" test "$dropped" = yes
exec 3>&-
req "$URL/metrics"
check "  ... and counted" body_has 'minidbx_http_slow_clients_dropped_total 1'
stop_server

# --- a client that stops in the middle of its body ---------------------------------
start_server "$T/store" --idle-timeout 2 || { not_ok "server starts"; finish; }
exec 3<>/dev/tcp/127.0.0.1/"$PORT"
printf 'PUT /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789' >&3
dropped=no
for _ in $(seq 10); do
    sleep 0.5
    read -r -t 0.1 -u 3 _
    [ $? -le 128 ] && { dropped=yes; break; }
done
exec 3>&-
check "a client silent mid-body is dropped at --idle-timeout" test "$dropped" = yes
check "  ... nothing is stored" test -z "$(listed_ids)"
stop_server

# --- connection floods --------------------------------------------------------
# Over --max-connections the node stops accepting: new connections wait in
# the kernel's backlog. Idle ones are shed at the header deadline, so a
# flood cannot hold the node for longer than that.
start_server "$T/store" --max-connections 4 --max-connections-per-ip 100 --header-timeout 2 \
    || { not_ok "server starts"; finish; }
open_conns 12
sleep 0.3
code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL/health")
check "with 12 idle connections over a limit of 4, a request waits ($code)" test "$code" = 000
code=$(curl -s -o /dev/null -m 20 -w '%{http_code}' "$URL/health") # 12 shed 4 at a time every 2 s: ~6 s, more on a busy machine
check "  ... and is served once the flood is shed at the header deadline ($code)" test "$code" = 200
n=$(dropped_conns 12)
check "  ... the idle connections were dropped ($n of 12)" test "$n" -ge 4
close_conns 12
stop_server

start_server "$T/store" --max-connections 100 --max-connections-per-ip 3 \
    || { not_ok "server starts"; finish; }
open_conns 8
sleep 0.3
n=$(dropped_conns 8)
check "8 connections from one IP over a per-IP limit of 3: 5 or more dropped ($n)" test "$n" -ge 5
close_conns 8
sleep 0.3
expect_code 200 "after the flood, requests are served" "$URL/health"
stop_server

# --- request rate ---------------------------------------------------------------
start_server "$T/store" --rate-limit 5 || { not_ok "server starts"; finish; }
codes=$(for _ in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' "$URL/health"; done | sort | uniq -c)
check "20 quick requests at --rate-limit 5: some get 429" grep -q ' 429$' <<<"$codes"
check "  ... and the first ones 200" grep -q ' 200$' <<<"$codes"
sleep 1.2
expect_code 200 "after a pause, requests pass again" "$URL/health"
stop_server

# --- tokens --------------------------------------------------------------------
printf 'secret bytes' >"$T/obj"
OBJ=$(sha "$T/obj")
start_server "$T/store" --read-token r3ad --write-token wr1te || { not_ok "server starts"; finish; }
expect_code 401 "a write without a token" -X PUT --data-binary @"$T/obj" "$URL/v1/objects"
expect_code 403 "a write with the read token" -H "Authorization: Bearer r3ad" -X PUT \
    --data-binary @"$T/obj" "$URL/v1/objects"
expect_code 403 "a write with a wrong token" -H "Authorization: Bearer nope" -X PUT \
    --data-binary @"$T/obj" "$URL/v1/objects"
expect_code 201 "a write with the write token" -H "Authorization: Bearer wr1te" -X PUT \
    --data-binary @"$T/obj" "$URL/v1/objects"
expect_code 401 "a read without a token" "$URL/v1/objects/$OBJ"
expect_code 403 "a read with a wrong token" -H "Authorization: Bearer wr0ng" "$URL/v1/objects/$OBJ"
expect_code 200 "a read with the read token" -H "Authorization: Bearer r3ad" "$URL/v1/objects/$OBJ"
expect_code 200 "a read with the write token" -H "Authorization: Bearer wr1te" "$URL/v1/objects/$OBJ"
expect_code 401 "Go upload without a token" -F "file=@$T/obj" "$URL/upload"
expect_code 401 "Go retrieve without a token" "$URL/retrieve?hash=$OBJ"
expect_code 401 "metrics need the read token" "$URL/metrics"
expect_code 200 "health needs no token" "$URL/health"
if [ "${HTTP_CLIENT:-1}" = 1 ]; then
    run env MINIDBX_TOKEN=r3ad "$MDBX" -s "$URL" get "$OBJ"
    check "the library reads with \$MINIDBX_TOKEN" out_is "secret bytes"
    run env MINIDBX_TOKEN=r3ad "$MDBX" -s "$URL" put "$T/obj"
    check "  ... and a write with the read token fails" test "$status" != 0
    check "  ... saying why" err_has "HTTP 403"
else
    skip "the library with \$MINIDBX_TOKEN" "the http:// client is not built"
fi
expect_code 401 "verify without a token" -X POST "$URL/v1/verify"
expect_code 403 "verify with the read token (it is an admin call)" -H "Authorization: Bearer r3ad" \
    -X POST "$URL/v1/verify"
expect_code 200 "verify with the write token" -H "Authorization: Bearer wr1te" -X POST "$URL/v1/verify"
expect_code 403 "verify ?repair=1 with the read token" -H "Authorization: Bearer r3ad" -X POST \
    "$URL/v1/verify?repair=1"
expect_code 200 "verify ?repair=1 with the write token" -H "Authorization: Bearer wr1te" -X POST \
    "$URL/v1/verify?repair=1"
# a name keeps the object through gc: the TLS checks below read it
req -H "Authorization: Bearer wr1te" -X PUT --data "{\"id\":\"$OBJ\"}" "$URL/v1/names/keep"
expect_code 401 "gc without a token" -X POST "$URL/v1/gc"
expect_code 403 "gc with the read token" -H "Authorization: Bearer r3ad" -X POST "$URL/v1/gc"
expect_code 200 "gc with the write token" -H "Authorization: Bearer wr1te" -X POST "$URL/v1/gc"
stop_server

# --- TLS -------------------------------------------------------------------
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
    start_server "$T/store" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
        || { not_ok "TLS server starts"; finish; }
    check "with a certificate the node says https://" test "${URL%%:*}" = https
    expect_code 200 "GET over TLS, verified with the self-signed certificate" \
        --cacert "$T/cert.pem" "$URL/v1/objects/$OBJ"
    check "  ... gives the bytes" cmp -s "$T/body" "$T/obj"
    head -c 500000 /dev/urandom >"$T/tls-big"
    expect_code 201 "PUT of a file-sized object over TLS" --cacert "$T/cert.pem" -X PUT \
        --data-binary @"$T/tls-big" "$URL/v1/objects"
    expect_code 200 "  ... and GET of it (no sendfile under TLS)" --cacert "$T/cert.pem" \
        "$URL/v1/objects/$(sha "$T/tls-big")"
    check "  ... gives the bytes" cmp -s "$T/body" "$T/tls-big"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
    check "a client that does not trust the certificate is refused ($code)" test "$code" = 000
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
    check "plain HTTP on the TLS port gets no reply ($code)" test "$code" = 000
    stop_server
else
    skip "TLS" "no openssl command"
fi
# --- resident memory stays bounded however big the store grows --------------------
# LMDB reads its map of meta.lmdb through page faults, each of which maps
# the 64 KiB around the page: without server/memory.c, putting and getting
# 2,000 inline objects of 15 KB leaves all 30 MB of the map resident.
start_server "$T/memstore" --sync none || { not_ok "server starts"; finish; }
# kB of a line of the server's /proc/PID/status
status_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$SERVER_PID/status"; }
start_kb=$(status_kb VmRSS) start_file_kb=$(status_kb RssFile)
# 2,000 PUTs on one connection (a curl config), each body 15,000 hex digits
# made unique by its first six
base=$(head -c 7500 /dev/urandom | od -An -tx1 | tr -d ' \n')
# ("next" between requests only: one after the last is a request without a URL)
awk -v base="$base" -v url="$URL/v1/objects" 'BEGIN { for (i = 0; i < 2000; i++)
    printf "%surl = \"%s\"\nrequest = \"PUT\"\ndata-binary = \"%06d%s\"\n", (i ? "next\n" : ""), url, i, substr(base, 7) }' \
    >"$T/puts.curl"
curl -s -K "$T/puts.curl" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4 >"$T/mem.ids"
awk -v url="$URL" '{ printf "%surl = \"%s/v1/objects/%s\"\noutput = \"/dev/null\"\n", (NR > 1 ? "next\n" : ""), url, $0 }' \
    <"$T/mem.ids" >"$T/gets.curl"
curl -s -K "$T/gets.curl"
check "2,000 objects put and got" test "$(curl -s "$URL/metrics" | \
    sed -n 's/^minidbx_http_requests_total{route="object_get",status="200"} //p')" = 2000
file_kb=$(status_kb RssFile)
check "its file-backed RSS is $((file_kb / 1024)) MiB (at most $((start_file_kb / 1024 + 8)))" \
    test $((file_kb - start_file_kb)) -le $((8 * 1024))
check "  ... as it gives back the map's pages" \
    grep -q '^minidbx_http_memory_trims_total [1-9]' <(curl -s "$URL/metrics")
# The peak of all of it, unless ASan holds freed memory in its quarantine.
if ldd "$MDBX" 2>/dev/null | grep -q libasan; then
    skip "the node's peak RSS" "an ASan build (its quarantine keeps freed memory)"
else
    peak_kb=$(status_kb VmHWM)
    check "the node's peak RSS grew by $(( (peak_kb - start_kb) / 1024 )) MiB (at most 16)" \
        test $((peak_kb - start_kb)) -le $((16 * 1024))
fi
stop_server

# --- a config file, and the command line over it ---------------------------------
printf '{"max-object-size": "2K", "threads": 1, "rate-limit": 1000}' >"$T/config.json"
head -c 3000 /dev/urandom >"$T/3k"
start_server "$T/store" --config "$T/config.json" || { not_ok "server starts with --config"; finish; }
expect_code 413 "--config sets the object size limit" -X PUT --data-binary @"$T/3k" "$URL/v1/objects"
stop_server
start_server "$T/store" --config "$T/config.json" --max-object-size 4K || { not_ok "server starts"; finish; }
expect_code 201 "  ... and the command line wins over it" -X PUT --data-binary @"$T/3k" "$URL/v1/objects"
stop_server
printf '{"bogus": 1}' >"$T/bad.json"
expect 2 "an unknown setting in --config is a usage error" "$MDBX" -s "$T/store" serve --config "$T/bad.json"
expect 2 "--tls-cert without --tls-key is a usage error" "$MDBX" -s "$T/store" serve --tls-cert x
finish
