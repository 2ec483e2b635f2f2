#!/bin/bash
# What a hostile client or a damaged store must not get away with (issue 8):
# wrong bytes served as 200, a crash from one multipart part, request
# smuggling, slow bodies, NUL bytes that cut ids and names short, a poisoned
# Go registry, verify on the I/O threads, ranges of the empty object, and
# a chunked upload far over the limit.
. "$(dirname "$0")/lib.sh"

trap "" PIPE # a write to a closed connection must fail, not kill the script

# raw REQUEST: send REQUEST (a printf format) on a new connection and read
# what comes back until the server closes it (3 s at most): the reply in
# $T/raw, $closed = yes when the server closed the connection.
raw()
{
    exec 5<>/dev/tcp/127.0.0.1/"$PORT"
    printf "$1" >&5
    timeout 3 cat <&5 >"$T/raw"
    [ $? = 124 ] && closed=no || closed=yes
    exec 5>&-
}
raw_has() { grep -qF -- "$1" "$T/raw"; }
replies() { grep -o 'HTTP/1.1 [0-9][0-9][0-9]' "$T/raw" | wc -l; }

# get_fails DESC CURL-ARGS...: the GET must not succeed with a full body:
# an error status, or a transfer that curl reports as cut short.
get_fails()
{
    local desc=$1 rc
    shift
    code=$(curl -s -o "$T/body" -w '%{http_code}' "$@")
    rc=$?
    if [ "$rc" != 0 ] || { [ "$code" != 200 ] && [ "$code" != 206 ]; }; then
        ok "$desc (HTTP $code, curl exit $rc)"
    else
        not_ok "$desc: HTTP $code with a complete body of $(stat -c %s "$T/body") bytes"
    fi
}

start_server "$T/store" || { not_ok "server starts"; finish; }

# --- corrupt objects are never served as complete ----------------------------------
head -c 300000 /dev/urandom >"$T/big"    # a blob file, streamed
head -c 30000 /dev/urandom >"$T/mid"     # a blob file, sent from one buffer
{ printf 'inline-marker-'; head -c 40 /dev/urandom | od -An -tx1 | tr -d ' \n'; } >"$T/small"
for f in big mid small; do
    req -X PUT --data-binary @"$T/$f" "$URL/v1/objects"
done
BIG=$(sha "$T/big")
MID=$(sha "$T/mid")
SMALL=$(sha "$T/small")
expect_code 200 "a sound blob file is served" "$URL/v1/objects/$BIG"
check "  ... whole" cmp -s "$T/body" "$T/big"

flip "$(blob_of "$BIG")" 123456
get_fails "GET of a blob file with one byte flipped" "$URL/v1/objects/$BIG"
get_fails "  ... nor through /retrieve" "$URL/retrieve?hash=$BIG"
get_fails "  ... nor a Range of it (bytes=0-9)" -H "Range: bytes=0-9" "$URL/v1/objects/$BIG"
get_fails "  ... nor a Range far from the flipped byte" -H "Range: bytes=299990-" "$URL/v1/objects/$BIG"
flip "$(blob_of "$MID")" 29999
get_fails "GET of a smaller blob file with its last byte flipped" "$URL/v1/objects/$MID"
check "  ... refused before any byte (an error status)" test "$code" -ge 400
get_fails "  ... nor a Range of it" -H "Range: bytes=0-0" "$URL/v1/objects/$MID"
offset=$(grep -obUa "inline-marker-" "$T/store/meta.lmdb" | head -1 | cut -d: -f1)
if [ -n "$offset" ]; then
    flip "$T/store/meta.lmdb" $((offset + 20))
    get_fails "GET of an inline object with one byte flipped in the LMDB file" "$URL/v1/objects/$SMALL"
    get_fails "  ... nor through /retrieve" "$URL/retrieve?hash=$SMALL"
    get_fails "  ... nor a Range of it" -H "Range: bytes=-5" "$URL/v1/objects/$SMALL"
else
    not_ok "the inline object's bytes are in meta.lmdb"
fi
req "$URL/metrics"
check "the refusals are counted" grep -q '^minidbx_http_corrupt_objects_refused_total [1-9]' "$T/body"
expect_code 200 "the node still serves" "$URL/health"

# The verified caches (server/cache.c): a blob file hashed once is sent
# without hashing while it is unchanged: from the bytes the node hashed,
# kept in its memory, when it is at most a quarter of --body-cache (8M),
# else with sendfile from the file; a change to the file (a new ctime) is
# seen at once. Files are only remembered when their ctime is 2 s older
# than the hashing.
head -c 200000 /dev/urandom >"$T/cached"     # kept in memory
head -c 2200000 /dev/urandom >"$T/cached_big" # over 2M: remembered, sent from the file
req -X PUT --data-binary @"$T/cached" "$URL/v1/objects"
req -X PUT --data-binary @"$T/cached_big" "$URL/v1/objects"
CACHED=$(sha "$T/cached")
CACHED_BIG=$(sha "$T/cached_big")
sleep 2.2 # let the files' ctime age past the cache's margin
# sends COUNTER: the node's minidbx_http_verified_COUNTER_sends_total
sends() { curl -s "$URL/metrics" | sed -n "s/^minidbx_http_verified_$1_sends_total //p"; }
for f in cached:memory cached_big:file; do
    counter=${f#*:} f=${f%:*}
    id=$(sha "$T/$f")
    expect_code 200 "$f: a blob file is hashed and remembered" "$URL/v1/objects/$id"
    before=$(sends "$counter")
    expect_code 200 "  ... and served again from the cache" "$URL/v1/objects/$id"
    check "  ... whole" cmp -s "$T/body" "$T/$f"
    expect_code 206 "  ... a Range of it from the cache" -H "Range: bytes=100-199999" "$URL/v1/objects/$id"
    check "  ... the right bytes" cmp -s "$T/body" <(tail -c +101 "$T/$f" | head -c 199900)
    if [ "$counter" = memory ] || remembers_files "$T"; then
        check "  ... both sent from the $counter without hashing" test "$(sends "$counter")" = $((before + 2))
    else # tmpfs: a write through a mapping never moves ctime there, so files are not remembered
        check "  ... both hashed again ($(stat -f -c %T "$T") files are not remembered)" \
            test "$(sends "$counter")" = "$before"
    fi
done
check "the kept bytes are counted" \
    grep -q '^minidbx_http_verified_memory_bytes 200000$' <(curl -s "$URL/metrics")
before=$(sends memory)
flip "$(blob_of "$CACHED")" 5
get_fails "cached: a byte flipped after that is still caught" "$URL/v1/objects/$CACHED"
get_fails "  ... and again" "$URL/v1/objects/$CACHED"
get_fails "  ... nor a Range of it" -H "Range: bytes=100-199" "$URL/v1/objects/$CACHED"
check "  ... none of them sent from memory" test "$(sends memory)" = "$before"
before=$(sends file)
flip "$(blob_of "$CACHED_BIG")" 2100000
get_fails "cached_big: a byte flipped after that is still caught" "$URL/v1/objects/$CACHED_BIG"
check "  ... not sent as remembered" test "$(sends file)" = "$before"
# the corrupt file replaced by one with the right bytes (as a repair does:
# a new file renamed into place)
cp "$T/cached" "$T/store/tmp/replacement"
mv "$T/store/tmp/replacement" "$(blob_of "$CACHED")"
expect_code 200 "a blob file put right again is served" "$URL/v1/objects/$CACHED"
check "  ... whole" cmp -s "$T/body" "$T/cached"

# --- ranges ------------------------------------------------------------------------
: >"$T/empty"
req -X PUT --data-binary @"$T/empty" "$URL/v1/objects"
EMPTY=$(sha "$T/empty")
expect_code 416 "Range: bytes=-5 of the empty object" -H "Range: bytes=-5" "$URL/v1/objects/$EMPTY"
expect_code 416 "Range: bytes=0- of the empty object" -H "Range: bytes=0-" "$URL/v1/objects/$EMPTY"
expect_code 200 "the empty object without a Range" "$URL/v1/objects/$EMPTY"

# --- a multipart part without name= -------------------------------------------------
body=$'--XX\r\nContent-Disposition: form-data; filename="a.txt"\r\n\r\nhello\r\n--XX--\r\n'
raw "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: ${#body}\r\n\r\n${body//%/%%}"
check "a multipart part without a name gets an answer" raw_has "HTTP/1.1 400"
expect_code 200 "  ... and the node lives on" "$URL/health"
stop_server # (a node that died would take the checks below with it)
start_server "$T/store" || { not_ok "server starts"; finish; }

# --- request smuggling ----------------------------------------------------------------
expect_code 200 "the object a smuggled DELETE would remove is there" "$URL/v1/objects/$EMPTY"
hidden="DELETE /v1/objects/$EMPTY HTTP/1.1\r\nHost: x\r\n\r\n"
raw "POST /v1/missing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 60\r\n\r\n[]$hidden"
check "two Content-Length headers: 400" raw_has "HTTP/1.1 400"
check "  ... one reply only (the hidden request did not run)" test "$(replies)" = 1
check "  ... and the connection closed" test "$closed" = yes
raw "POST /v1/missing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n[]$hidden"
check "two equal Content-Length headers: 400 too" raw_has "HTTP/1.1 400"
raw "POST /v1/missing HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n$hidden"
check "Content-Length with Transfer-Encoding: chunked: 400" raw_has "HTTP/1.1 400"
check "  ... one reply only" test "$(replies)" = 1
check "  ... and the connection closed" test "$closed" = yes
raw "POST /v1/missing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n$hidden"
check "a Transfer-Encoding other than chunked: 400" raw_has "HTTP/1.1 400"
raw "POST /v1/missing HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n[]$hidden"
check "a space before the colon of a header name: 400" raw_has "HTTP/1.1 400"
check "  ... one reply only" test "$(replies)" = 1
check "  ... and the connection closed" test "$closed" = yes
expect_code 200 "no smuggled DELETE ran" "$URL/v1/objects/$EMPTY"
raw "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
check "a clean connection still carries two requests" test "$(replies)" = 2

# --- NUL bytes in ids and names -----------------------------------------------------
printf 'one' >"$T/one"
printf 'two' >"$T/two"
req -X PUT --data-binary @"$T/one" "$URL/v1/objects"
req -X PUT --data-binary @"$T/two" "$URL/v1/objects"
ONE=$(sha "$T/one")
TWO=$(sha "$T/two")
req -X PUT --data "{\"id\":\"$ONE\"}" "$URL/v1/names/foo"
expect_code 400 "GET /v1/objects/ID%00junk" "$URL/v1/objects/$ONE%00junk"
expect_code 400 "DELETE /v1/objects/ID%00junk" -X DELETE "$URL/v1/objects/$TWO%00junk"
expect_code 200 "  ... removed nothing" "$URL/v1/objects/$TWO"
expect_code 400 "GET /retrieve?hash=ID%00junk" "$URL/retrieve?hash=$ONE%00junk"
raw "GET /health HTTP/1.1\r\n\r\n"
check "HTTP/1.1 without Host: 400" raw_has "HTTP/1.1 400"
raw "GET /health HTTP/1.7\r\nHost: x\r\n\r\n"
check "a request line with another HTTP version: 400" raw_has "HTTP/1.1 400"
expect_code 400 "PUT /v1/names/foo%00bar" -X PUT --data "{\"id\":\"$TWO\"}" "$URL/v1/names/foo%00bar"
req "$URL/v1/names/foo"
check "  ... foo still points where it did" body_has "\"id\":\"$ONE\""
expect_code 400 "an id with \\u0000 in a JSON body" -X POST --data "[\"$ONE\\u0000junk\"]" "$URL/v1/missing"
expect_code 400 "a name with \\u0000 in /register" -X POST \
    --data "{\"hash\":\"$TWO\",\"name\":\"foo\\u0000bar\",\"size\":3}" "$URL/register"
req "$URL/v1/names/foo"
check "  ... foo still points where it did" body_has "\"id\":\"$ONE\""
expect_code 200 "an escaped backslash before u0000 is no NUL" -X POST \
    --data "{\"hash\":\"$TWO\",\"name\":\"a\\\\u0000b\",\"size\":3}" "$URL/register"

# --- the Go registry -------------------------------------------------------------------
expect_code 200 "/register of a record" -X POST --data "{\"hash\":\"$ONE\",\"name\":\"one.txt\",\"size\":3}" "$URL/register"
expect_code 400 "/register of a name under the registry's prefix" -X POST \
    --data "{\"hash\":\"$ONE\",\"name\":\"_go/register/$TWO\",\"size\":3}" "$URL/register"
expect_code 400 "PUT /v1/names/ under the registry's prefix" -X PUT --data "{\"id\":\"$ONE\"}" \
    "$URL/v1/names/_go/register/$TWO"
expect_code 200 "  ... /list still answers" "$URL/list"
expect_code 200 "  ... and /get" "$URL/get?hash=$ONE"
for size in 1e300 18446744073709551616 -1 1.5 '"3"'; do
    expect_code 400 "/register with size $size" -X POST \
        --data "{\"hash\":\"$TWO\",\"name\":\"two.txt\",\"size\":$size}" "$URL/register"
done
many=$(printf '"n%d",' $(seq 65))
expect_code 400 "/register with 65 replicas" -X POST \
    --data "{\"hash\":\"$TWO\",\"name\":\"two.txt\",\"size\":3,\"replicas\":[${many%,}]}" "$URL/register"
long=$(head -c 256 /dev/zero | tr '\0' a)
expect_code 400 "/register with a replica of 256 bytes" -X POST \
    --data "{\"hash\":\"$TWO\",\"name\":\"two.txt\",\"size\":3,\"replicas\":[\"$long\"]}" "$URL/register"
expect_code 200 "/register with size 2^53" -X POST \
    --data "{\"hash\":\"$TWO\",\"name\":\"two.txt\",\"size\":9007199254740992}" "$URL/register"
req "$URL/get?hash=$TWO"
check "  ... kept exactly" body_has '"size":9007199254740992'
# /list holds at most 8 MiB of records: 600 records of 56 long replicas
# (15 KiB each, inline) are more. One curl, many requests (a config file).
replicas=$(for i in $(seq 56); do printf '"%s%02d",' "$(head -c 250 /dev/zero | tr '\0' r)" "$i"; done)
escaped=$(sed 's/"/\\"/g' <<<"${replicas%,}")
for i in $(seq 600); do
    [ "$i" = 1 ] || echo next
    hash=$(printf 'record %d' "$i" | sha256sum | cut -c1-64)
    printf 'url = "%s/register"\ndata = "{\\"hash\\":\\"%s\\",\\"name\\":\\"r/%d\\",\\"size\\":1,\\"replicas\\":[%s]}"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' \
        "$URL" "$hash" "$i" "$escaped"
done >"$T/register.curl"
curl -s -K "$T/register.curl" | sort | uniq -c >"$T/register.codes"
check "600 big records registered" grep -q '^ *600 200$' "$T/register.codes"
expect_code 200 "/list of more than 8 MiB of records" "$URL/list"
check "  ... says it is truncated" header_has "^X-Minidbx-Truncated: 1"
check "  ... and stops near 8 MiB ($(stat -c %s "$T/body") bytes)" \
    test "$(stat -c %s "$T/body")" -lt $((9 << 20))
stop_server

# --- verify and gc: one at a time, off the I/O threads ------------------------------
# One I/O thread: were verify run on it, /metrics would wait for it.
start_server "$T/store2" --threads 1 --max-object-size 1G || { not_ok "server starts"; finish; }
head -c $((256 << 20)) /dev/urandom >"$T/verify-big"
req -X PUT --data-binary @"$T/verify-big" "$URL/v1/objects"
rm -f "$T/verify-big"
pids=""
for i in 1 2 3 4; do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "$URL/v1/verify" >"$T/verify.$i" &
    pids="$pids $!"
done
wait_in_flight 2
check "while verify runs, the one I/O thread still answers" test "$?" = 0
wait $pids
codes=$(cat "$T"/verify.* | sort | uniq -c)
check "four verifies at once: one runs ($(echo $codes))" grep -q ' 200$' <<<"$codes"
check "  ... the others get 503" grep -q ' 503$' <<<"$codes"
check "  ... and nothing else" test -z "$(grep -v ' 200$\| 503$' <<<"$codes")"
pids=""
for i in 1 2 3 4; do
    curl -s -D "$T/verify.h$i" -o /dev/null -X POST "$URL/v1/verify" &
    pids="$pids $!"
done
wait $pids
check "  ... 503 says ESTATE and Retry-After" sh -c "grep -l 'X-Minidbx-Error: ESTATE' '$T'/verify.h* | xargs grep -l 'Retry-After: 5'"
expect_code 200 "after it, verify runs again" -X POST "$URL/v1/verify"
expect_code 200 "gc runs as a job too" -X POST "$URL/v1/gc"
stop_server
# Verify is an admin call, not a write: a read-only node still runs it.
start_server "$T/store2" --read-only --read-token r --write-token w || { not_ok "server starts"; finish; }
expect_code 403 "verify with the read token" -H "Authorization: Bearer r" -X POST "$URL/v1/verify"
expect_code 200 "verify with the write token on a read-only node" -H "Authorization: Bearer w" \
    -X POST "$URL/v1/verify"
expect_code 403 "  ... but not a repair" -H "Authorization: Bearer w" -X POST "$URL/v1/verify?repair=1"
check "  ... (EREADONLY)" header_has "^X-Minidbx-Error: EREADONLY"
stop_server

# --- bodies: too slow, too big ----------------------------------------------------------
start_server "$T/store" --max-object-size 1M || { not_ok "server starts"; finish; }
head -c 5000000 /dev/urandom >"$T/5m"
expect_code 413 "a chunked upload of 5 times the limit gets 413, not a reset" -X PUT \
    -H "Transfer-Encoding: chunked" --data-binary @"$T/5m" "$URL/v1/objects"
stop_server
start_server "$T/store" --header-timeout 1 --min-body-rate 100 || { not_ok "server starts"; finish; }
exec 3<>/dev/tcp/127.0.0.1/"$PORT"
printf 'PUT /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n' >&3
dropped=no
for _ in $(seq 12); do
    sleep 0.5
    # one byte every half second: never idle, never done
    printf 'x' >&3 2>/dev/null || { dropped=yes; break; }
    read -r -t 0.05 -u 3 _
    [ $? -le 128 ] && { dropped=yes; break; }
done
exec 3>&-
check "a body trickling in below --min-body-rate is dropped" test "$dropped" = yes
req "$URL/metrics"
check "  ... and counted" body_has 'minidbx_http_slow_bodies_dropped_total 1'
stop_server

# A reply read slowly: 40 MB must go within 1 s + 40 MB / 10 MB/s = 5 s;
# read at 1 MB/s it would take 40 s (more than the socket buffers hold).
start_server "$T/store" --header-timeout 1 --min-body-rate 10M --max-object-size 64M \
    || { not_ok "server starts"; finish; }
head -c 40000000 /dev/urandom >"$T/40m"
req -X PUT --data-binary @"$T/40m" "$URL/v1/objects"
start=$(date +%s)
curl -s -m 38 --limit-rate 1M -o "$T/body" "$URL/v1/objects/$(sha "$T/40m")"
rc=$?
took=$(($(date +%s) - start))
check "a reply read below --min-body-rate is cut (curl exit $rc after ${took}s)" \
    test "$rc" != 0 -a "$took" -lt 30
req "$URL/metrics"
check "  ... and counted" body_has 'minidbx_http_slow_readers_dropped_total 1'
stop_server
finish
