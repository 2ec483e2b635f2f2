#!/bin/bash
# Requests that do not end well: a client killed mid-upload, and SIGTERM
# while requests are in flight.
. "$(dirname "$0")/lib.sh"

head -c 3000000 /dev/urandom >"$T/big"
BIG=$(sha "$T/big")

start_server "$T/store" || { not_ok "server starts"; finish; }

# --- a client killed mid-upload ------------------------------------------------
for mode in length chunked multipart; do
    upload_args "$mode" "$T/big"
    curl -s -o /dev/null --limit-rate 500k "${args[@]}" &
    client=$!
    # the metrics request is in flight too
    wait_in_flight 2
    check "$mode upload: in flight when the client is killed" test $? = 0
    sleep 0.3
    kill -KILL "$client"
    wait "$client" 2>/dev/null
    sleep 0.5
    check "  ... nothing is stored" test -z "$(listed_ids)"
    check "  ... no temp file is left" test -z "$(ls -A "$T/store/tmp" 2>/dev/null)"
done
# headers, a piece of the body and the end of the connection in one go
exec 3<>/dev/tcp/127.0.0.1/"$PORT"
printf 'PUT /v1/objects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n' >&3
exec 3>&-
sleep 0.3
check "a body cut short with the connection's end is dropped at once" test "$(in_flight)" = 1
check "  ... nothing is stored" test -z "$(listed_ids)"
req "$URL/metrics"
check "the dropped uploads are counted as 499" body_has 'status="499"'

# --- graceful shutdown --------------------------------------------------------
# larger than the socket buffers, so that the server is still sending it
head -c 20000000 /dev/urandom >"$T/big20"
expect_code 201 "store an object to download" -X PUT --data-binary @"$T/big20" "$URL/v1/objects"
# each takes about 5 s (the drain allows 10): long enough to be in flight
# together even if one curl starts late on a busy machine
curl -s -o "$T/slow-get" --limit-rate 4M "$URL/v1/objects/$(sha "$T/big20")" &
getter=$!
curl -s -o "$T/slow-put" --limit-rate 400k -X PUT -H "Transfer-Encoding: chunked" \
    --data-binary @<(head -c 2000000 "$T/big") "$URL/v1/objects" &
putter=$!
wait_in_flight 3
check "a download and an upload are in flight" test $? = 0
kill -TERM "$SERVER_PID"
sleep 0.3
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/health")
check "after SIGTERM no new request is accepted ($code)" test "$code" = 000
wait "$getter"
check "a download in flight at SIGTERM completes" cmp -s "$T/slow-get" "$T/big20"
wait "$putter"
check "an upload in flight at SIGTERM completes" grep -q '"created":true' "$T/slow-put"
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
check_server_log
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
wait_in_flight 2
check "a slow download is in flight" test $? = 0
start=$(date +%s%N)
stop_server
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check "a request slower than --drain-timeout 1 does not hold the stop ($elapsed_ms ms)" \
    test "$elapsed_ms" -ge 900 -a "$elapsed_ms" -lt 4000
check "  ... the server still exits 0" test "$server_status" = 0
kill "$getter" 2>/dev/null # it may still be reading what the socket buffers hold
wait "$getter"

# --- signals reach the server's own wait, never a library thread ------------------
# A cluster gateway's store starts threads of its own (a prober) when it is
# opened, before the server blocks SIGTERM and SIGHUP for its sigwait. Such
# a thread took a SIGHUP (logrotate's) whenever the main thread was not in
# sigwait, during a drain for one, and its default action ended the node.
mkdir -p "$T/cl"
printf '{"replicas": 1, "nodes": ["n0", "n1"]}\n' >"$T/cl/cluster.json"
start_server "cluster:$T/cl/cluster.json" --access-log "$T/cl/access.log" ||
    { not_ok "a cluster gateway starts"; finish; }
unblocked=0
for status in /proc/"$SERVER_PID"/task/*/status; do
    # not the main thread: in sigwait, the kernel shows those signals unblocked
    [ "$status" = /proc/"$SERVER_PID"/task/"$SERVER_PID"/status ] && continue
    mask=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$status" 2>/dev/null)
    [ -n "$mask" ] || continue
    # SIGHUP is bit 0, SIGTERM bit 14
    [ $((0x$mask & 0x4001)) = $((0x4001)) ] || unblocked=$((unblocked + 1))
done
check "every thread of a cluster gateway blocks SIGHUP and SIGTERM ($unblocked do not)" test "$unblocked" = 0
curl -s -o /dev/null --limit-rate 200k -X PUT --data-binary @"$T/big" "$URL/v1/objects" &
putter=$!
wait_in_flight 2
check "an upload to the gateway is in flight" test $? = 0
kill -TERM "$SERVER_PID"
sleep 0.3
kill -HUP "$SERVER_PID" # during the drain, as logrotate may
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
check "a SIGHUP during the drain does not end the gateway (exit $server_status)" test "$server_status" = 0
check "  ... it said it stopped" grep -q "stopped" "$T/server.err"
wait "$putter"
finish
