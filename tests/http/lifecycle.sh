#!/bin/bash
# Requests that do not end well: a client killed mid-upload, and SIGTERM
# while requests are in flight.
. "$(dirname "$0")/lib.sh"

head -c 3000000 /dev/urandom >"$T/big"
BIG=$(sha "$T/big")

start_server "$T/store" || { not_ok "server starts"; finish; }

# --- a client killed mid-upload ------------------------------------------------
for mode in length chunked multipart; do
    case $mode in
    length) args=(-X PUT --data-binary @"$T/big" "$URL/v1/objects") ;;
    chunked) args=(-X PUT -H "Transfer-Encoding: chunked" --data-binary @"$T/big" "$URL/v1/objects") ;;
    multipart) args=(-F "file=@$T/big" "$URL/upload") ;;
    esac
    curl -s -o /dev/null --limit-rate 500k "${args[@]}" &
    client=$!
    sleep 1
    in_flight=$(curl -s "$URL/metrics" | sed -n 's/^minidbx_http_requests_in_flight //p')
    kill -KILL "$client"
    wait "$client" 2>/dev/null
    # the metrics request is in flight too
    check "$mode upload: in flight when the client is killed ($in_flight)" test "${in_flight:-0}" -ge 2
    sleep 0.5
    check "  ... nothing is stored" test -z "$(listed_ids)"
    check "  ... no temp file is left" test -z "$(ls -A "$T/store/tmp" 2>/dev/null)"
done
req "$URL/metrics"
check "the dropped uploads are counted as 499" body_has 'status="499"'

# --- graceful shutdown --------------------------------------------------------
expect_code 201 "store an object to download" -X PUT --data-binary @"$T/big" "$URL/v1/objects"
curl -s -o "$T/slow-get" --limit-rate 1M "$URL/v1/objects/$BIG" &
getter=$!
curl -s -o "$T/slow-put" --limit-rate 1M -X PUT -H "Transfer-Encoding: chunked" \
    --data-binary @<(head -c 2000000 "$T/big") "$URL/v1/objects" &
putter=$!
sleep 0.7
kill -TERM "$SERVER_PID"
sleep 0.3
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/health")
check "after SIGTERM no new request is accepted ($code)" test "$code" = 000
wait "$getter"
check "a download in flight at SIGTERM completes" cmp -s "$T/slow-get" "$T/big"
wait "$putter"
check "an upload in flight at SIGTERM completes" grep -q '"created":true' "$T/slow-put"
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
check "the server exits 0 after draining" test "$server_status" = 0
check "  ... and said so" grep -q "stopped" "$T/server.err"
expect 0 "the store is consistent afterwards (verify)" "$MDBX" -s "$T/store" verify
expect 0 "  ... and holds the uploaded object" "$MDBX" -s "$T/store" exists "$(head -c 2000000 "$T/big" | sha256sum | cut -c1-64)"

# --- a drain is bounded ---------------------------------------------------------
start_server "$T/store" --drain-timeout 1 || { not_ok "server starts"; finish; }
# larger than what the socket buffers take at once
head -c 40000000 /dev/zero >"$T/zeros"
expect_code 201 "store a 40 MB object" -X PUT --data-binary @"$T/zeros" "$URL/v1/objects"
curl -s -o /dev/null --limit-rate 100k "$URL/v1/objects/$(sha "$T/zeros")" &
getter=$!
sleep 0.5
start=$(date +%s%N)
stop_server
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check "a request slower than --drain-timeout 1 does not hold the stop ($elapsed_ms ms)" \
    test "$elapsed_ms" -ge 900 -a "$elapsed_ms" -lt 4000
check "  ... the server still exits 0" test "$server_status" = 0
wait "$getter"
finish
