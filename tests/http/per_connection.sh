#!/bin/bash
# mdbx serve --io-model per-connection (server/io.c): a thread per
# connection, kept bodies in sealed memfds sent by sendfile. What must hold
# as in a pool: a flipped byte in a blob file is never served as 200, the
# connections stay bounded, a verify runs (on the connection's thread),
# durable writes from many clients all land.
. "$(dirname "$0")/lib.sh"

trap "" PIPE # a write to a closed connection must fail, not kill the script

# refused DESC CURL-ARGS...: a kept body is read whole and hashed before
# anything is sent, so a corrupt file gets an error status, never a body.
refused()
{
    local desc=$1
    shift
    req "$@"
    check "$desc (HTTP $code)" test "$code" -ge 400
}
# sends COUNTER: the node's minidbx_http_verified_COUNTER_sends_total
sends() { curl -s "$URL/metrics" | sed -n "s/^minidbx_http_verified_$1_sends_total //p"; }
# memfds: how many sealed bodies the node holds open (cache.c names them)
memfds() { ls -l "/proc/$SERVER_PID/fd" 2>/dev/null | grep -c 'memfd:mdbx-body'; }

start_server "$T/store" --io-model per-connection --max-connections 8 --max-connections-per-ip 8 \
    --header-timeout 2 || { not_ok "server starts"; finish; }

# --- kept bodies: sealed memfds, sent by sendfile -----------------------------------
head -c 1048576 /dev/urandom >"$T/obj"
head -c 30000 /dev/urandom >"$T/small"
req -X PUT --data-binary @"$T/obj" "$URL/v1/objects"
req -X PUT --data-binary @"$T/small" "$URL/v1/objects"
OBJ=$(sha "$T/obj")
SMALL=$(sha "$T/small")
sleep 2.2 # let the files' ctime age past the cache's margin (cache.c)
expect_code 200 "a 1 MiB blob file is read, hashed and kept" "$URL/v1/objects/$OBJ"
check "  ... whole" cmp -s "$T/body" "$T/obj"
check "  ... in a sealed memfd" test "$(memfds)" -ge 1
fd=$(ls -l "/proc/$SERVER_PID/fd" | sed -n 's/.* \([0-9][0-9]*\) -> .memfd:mdbx-body.*/\1/p' | head -1)
printf 'X' | dd of="/proc/$SERVER_PID/fd/$fd" conv=notrunc status=none 2>/dev/null
check "  ... that no one can write to (a write through /proc fails)" test $? != 0
before=$(sends memory)
expect_code 200 "  ... and still serves the right bytes" "$URL/v1/objects/$OBJ"
check "  ... whole" cmp -s "$T/body" "$T/obj"
expect_code 200 "  ... and served again from it" "$URL/v1/objects/$OBJ"
check "  ... whole" cmp -s "$T/body" "$T/obj"
expect_code 206 "  ... a Range of it" -H "Range: bytes=1000-1999" "$URL/v1/objects/$OBJ"
check "  ... the right bytes" cmp -s "$T/body" <(tail -c +1001 "$T/obj" | head -c 1000)
expect_code 200 "a smaller blob file too" "$URL/v1/objects/$SMALL"
expect_code 200 "  ... and again" "$URL/v1/objects/$SMALL"
check "  ... whole" cmp -s "$T/body" "$T/small"
check "all four sent from the kept bytes" test "$(sends memory)" = $((before + 4))
check "the kept bytes are counted" \
    grep -q '^minidbx_http_verified_memory_bytes 1078576$' <(curl -s "$URL/metrics")

before=$(sends memory)
flip "$(blob_of "$OBJ")" 524288
refused "a byte flipped in the kept file after that is refused" "$URL/v1/objects/$OBJ"
refused "  ... and again" "$URL/v1/objects/$OBJ"
refused "  ... and a Range of it" -H "Range: bytes=0-99" "$URL/v1/objects/$OBJ"
check "  ... none of them sent from the kept bytes" test "$(sends memory)" = "$before"
flip "$(blob_of "$SMALL")" 0
refused "a flipped byte in a smaller kept file too" "$URL/v1/objects/$SMALL"
# the corrupt file put right (a new file renamed into place, as a repair does)
cp "$T/obj" "$T/store/tmp/replacement"
mv "$T/store/tmp/replacement" "$(blob_of "$OBJ")"
expect_code 200 "a blob file put right again is served" "$URL/v1/objects/$OBJ"
check "  ... whole" cmp -s "$T/body" "$T/obj"

# --- a verify runs on the connection's thread ------------------------------------------
expect_code 200 "POST /v1/verify answers" -X POST "$URL/v1/verify"
check "  ... and finds the flipped smaller file" body_has "\"id\":\"$SMALL\""
expect_code 200 "the node still serves" "$URL/health"

# --- many durable writers at once --------------------------------------------------------
# (fewer than --max-connections: one over it would be closed at once)
writers=""
for i in $(seq 4); do
    (for k in $(seq 20); do
        printf 'writer %d put %d\n' "$i" "$k" | curl -s -o /dev/null -w '%{http_code}\n' -X PUT \
            --data-binary @- "$URL/v1/objects"
    done >"$T/writer.$i") &
    writers="$writers $!"
done
wait $writers
check "4 clients x 20 durable PUTs: all 201" test "$(cat "$T"/writer.* | grep -c '^201$')" = 80
check "  ... and all stored" test "$(listed_ids | wc -l)" = 82

# --- bounded: --max-connections, the header deadline -----------------------------------
idle_threads=$(ls "/proc/$SERVER_PID/task" | wc -l)
for i in $(seq 60 71); do eval "exec $i<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || true; done
sleep 0.3
threads=$(ls "/proc/$SERVER_PID/task" | wc -l)
check "12 idle connections over a limit of 8: 8 connection threads at most ($((threads - idle_threads)))" \
    test $((threads - idle_threads)) -le 8
code=$(curl -s -o /dev/null -m 20 --retry 10 --retry-delay 1 --retry-all-errors -w '%{http_code}' "$URL/health")
check "  ... the idle ones are shed at the header deadline and a request is served ($code)" test "$code" = 200
for i in $(seq 60 71); do eval "exec $i>&-" 2>/dev/null || true; done

stop_server
check "SIGTERM: the server exits 0" test "$server_status" = 0
finish
