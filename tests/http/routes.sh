#!/bin/bash
# Every route of `mdbx serve`: the /v1 API, the Go system's endpoints as its
# clients call them, object responses (ETag, 304, Range, HEAD), limits on
# bodies, wrong ids and traversal attempts.
. "$(dirname "$0")/lib.sh"

start_server "$T/store" --max-object-size 1M || { not_ok "server starts"; finish; }
ok "server starts on a free port ($URL)"

printf 'hello\n' >"$T/small"
head -c 300000 /dev/urandom >"$T/big"     # over the inline threshold: a blob file
head -c 2000000 /dev/urandom >"$T/huge"   # over --max-object-size
SMALL=$(sha "$T/small")
BIG=$(sha "$T/big")

# --- objects -------------------------------------------------------------
expect_code 200 "GET /health" "$URL/health"
check "health says OK" test "$(cat "$T/body")" = OK
expect_code 201 "PUT /v1/objects stores new bytes" -X PUT --data-binary @"$T/small" "$URL/v1/objects"
check "PUT /v1/objects answers the SHA-256 id" body_has "\"id\":\"$SMALL\""
expect_code 200 "PUT of the same bytes again: 200, stored once" -X PUT --data-binary @"$T/small" "$URL/v1/objects"
expect_code 201 "PUT /v1/objects/ID with the right id" -X PUT --data-binary @"$T/big" "$URL/v1/objects/$BIG"
expect_code 422 "PUT /v1/objects/ID with bytes of another id" -X PUT --data-binary @"$T/small" \
    "$URL/v1/objects/0000000000000000000000000000000000000000000000000000000000000000"
expect_code 404 "  ... and nothing was stored under it" \
    "$URL/v1/objects/0000000000000000000000000000000000000000000000000000000000000000"
expect_code 200 "chunked PUT (no Content-Length) of bytes already there" -X PUT -H "Transfer-Encoding: chunked" \
    --data-binary @"$T/big" "$URL/v1/objects/$BIG" -o /dev/null
printf 'chunked' >"$T/chunked"
expect_code 201 "chunked PUT of new bytes" -X PUT -H "Transfer-Encoding: chunked" --data-binary @"$T/chunked" "$URL/v1/objects"

expect_code 200 "GET /v1/objects/ID (a file)" "$URL/v1/objects/$BIG"
check "  ... gives the bytes" cmp -s "$T/body" "$T/big"
check "  ... with ETag = \"ID\"" header_has "^ETag: \"$BIG\""
check "  ... immutable caching" header_has "^Cache-Control: public, max-age=31536000, immutable"
check "  ... Content-Length" header_has "^Content-Length: 300000"
expect_code 200 "GET /v1/objects/ID (inline)" "$URL/v1/objects/$SMALL"
check "  ... gives the bytes" cmp -s "$T/body" "$T/small"
expect_code 304 "If-None-Match with the ETag" -H "If-None-Match: \"$BIG\"" "$URL/v1/objects/$BIG"
check "  ... and no body" test ! -s "$T/body"
expect_code 200 "If-None-Match with another ETag" -H "If-None-Match: \"$SMALL\"" "$URL/v1/objects/$BIG"
expect_code 206 "Range: bytes=10-19" -H "Range: bytes=10-19" "$URL/v1/objects/$BIG"
check "  ... the ten bytes" cmp -s "$T/body" <(tail -c +11 "$T/big" | head -c 10)
check "  ... Content-Range" header_has "^Content-Range: bytes 10-19/300000"
expect_code 206 "Range: bytes=-5 (the last five, inline object)" -H "Range: bytes=-5" "$URL/v1/objects/$SMALL"
check "  ... the last five bytes" cmp -s "$T/body" <(tail -c 5 "$T/small")
expect_code 206 "Range: bytes=299990- (open-ended)" -H "Range: bytes=299990-" "$URL/v1/objects/$BIG"
check "  ... ten bytes" test "$(stat -c %s "$T/body")" = 10
expect_code 416 "Range past the end" -H "Range: bytes=300000-" "$URL/v1/objects/$BIG"
check "  ... says the size" header_has "^Content-Range: bytes \*/300000"
req -I "$URL/v1/objects/$BIG"
check "HEAD: 200" test "$code" = 200
check "  ... without a body" test "$(curl -s -I -o /dev/null -w '%{size_download}' "$URL/v1/objects/$BIG")" = 0
check "  ... Content-Length is the object's size" header_has "^Content-Length: 300000"
check "  ... and the ETag" header_has "^ETag: \"$BIG\""
expect_code 404 "GET of a missing object" "$URL/v1/objects/$(printf 'x' | sha256sum | cut -c1-64)"

expect_code 200 "GET /v1/objects lists" "$URL/v1/objects"
check "  ... all three objects" test "$(listed_ids | wc -l)" = 3
expect_code 200 "GET /v1/objects?limit=1 pages" "$URL/v1/objects?limit=1"
next=$(grep -o '"next":"[0-9a-f]*"' "$T/body" | cut -d'"' -f4)
check "  ... with a cursor" test -n "$next"
expect_code 200 "GET /v1/objects?after=CURSOR" "$URL/v1/objects?after=$next&limit=10"
check "  ... gives the other two" test "$(grep -o '"id":' "$T/body" | wc -l)" = 2
expect_code 400 "a bad cursor" "$URL/v1/objects?after=zz"
expect_code 400 "a bad limit" "$URL/v1/objects?limit=0"

MISSING=$(printf 'nope' | sha256sum | cut -c1-64)
expect_code 200 "POST /v1/missing" -X POST --data "[\"$SMALL\",\"$MISSING\",\"$BIG\"]" "$URL/v1/missing"
check "  ... names only the missing id" test "$(cat "$T/body")" = "{\"missing\":[\"$MISSING\"]}"
expect_code 400 "POST /v1/missing with a bad id" -X POST --data '["../x"]' "$URL/v1/missing"
expect_code 400 "POST /v1/missing that is not JSON" -X POST --data 'hello' "$URL/v1/missing"

# --- names ---------------------------------------------------------------
expect_code 200 "PUT /v1/names/NAME" -X PUT --data "{\"id\":\"$BIG\"}" "$URL/v1/names/photos/2024/cat.jpg"
check "  ... answers the name" body_has '"name":"photos/2024/cat.jpg"'
expect_code 200 "PUT /v1/names/ with a UTF-8 name (percent-encoded)" -X PUT --data "{\"id\":\"$SMALL\"}" \
    "$URL/v1/names/docs/caf%C3%A9.txt"
expect_code 200 "GET /v1/names/NAME" "$URL/v1/names/photos/2024/cat.jpg"
check "  ... points at the object" body_has "\"id\":\"$BIG\""
expect_code 200 "HEAD /v1/names/NAME" -I "$URL/v1/names/photos/2024/cat.jpg"
expect_code 404 "GET of a missing name" "$URL/v1/names/nope"
expect_code 404 "PUT of a name at a missing object" -X PUT --data "{\"id\":\"$MISSING\"}" "$URL/v1/names/x"
expect_code 400 "PUT of a name with '..'" -X PUT --data "{\"id\":\"$BIG\"}" "$URL/v1/names/a/%2E%2E/b"
expect_code 200 "GET /v1/names?prefix=photos/" "$URL/v1/names?prefix=photos/"
check "  ... one name" test "$(grep -o '"name":' "$T/body" | wc -l)" = 1
expect_code 200 "GET /v1/names" "$URL/v1/names"
check "  ... both names" test "$(grep -o '"name":' "$T/body" | wc -l)" = 2
expect_code 409 "DELETE of a named object is refused" -X DELETE "$URL/v1/objects/$BIG"
expect_code 204 "DELETE /v1/names/NAME" -X DELETE "$URL/v1/names/photos/2024/cat.jpg"
expect_code 204 "DELETE /v1/objects/ID" -X DELETE "$URL/v1/objects/$BIG"
expect_code 404 "  ... it is gone" "$URL/v1/objects/$BIG"
expect_code 204 "DELETE ?cascade=1 removes the names too" -X DELETE "$URL/v1/objects/$SMALL?cascade=1"
expect_code 404 "  ... the name is gone" "$URL/v1/names/docs/caf%C3%A9.txt"
expect_code 200 "GET /v1/info" "$URL/v1/info"
check "  ... counts the objects" body_has '"objects":1'

# --- verify and gc ---------------------------------------------------------
expect_code 200 "POST /v1/verify" -X POST "$URL/v1/verify"
check "  ... reports what it checked" body_has '"objects_checked":1'
check "  ... and lists the problems (none)" body_has '"problem_list":[]'
CHUNKED=$(sha "$T/chunked")
expect_code 200 "POST /v1/verify?id=ID" -X POST "$URL/v1/verify?id=$CHUNKED"
expect_code 404 "POST /v1/verify of a missing id" -X POST "$URL/v1/verify?id=$MISSING"
expect_code 400 "POST /v1/verify with a bad id" -X POST "$URL/v1/verify?id=../meta"
expect_code 405 "GET /v1/verify" "$URL/v1/verify"
# a problem has one shape: in /v1/verify, through the http:// client, and
# in `mdbx --json verify` on the store itself
head -c 100000 /dev/urandom >"$T/flipped"
FLIPPED=$(sha "$T/flipped")
req -X PUT --data-binary @"$T/flipped" "$URL/v1/objects"
flip "$(blob_of "$FLIPPED")" 5000
expect_code 200 "POST /v1/verify with a flipped byte" -X POST "$URL/v1/verify"
grep -o '{"problem":[^}]*}' "$T/body" >"$T/problem.node"
check "  ... lists it by name" grep -q "^{\"problem\":\"corrupt\",\"id\":\"$FLIPPED\"" "$T/problem.node"
run "$MDBX" -s "$T/store" --json verify
check "  ... as \`mdbx --json verify\` prints it" test "$(grep '"problem"' "$T/out")" = "$(cat "$T/problem.node")"
if [ "${HTTP_CLIENT:-1}" = 1 ]; then
    run "$MDBX" -s "$URL" --json verify
    check "  ... and as the http:// client hands it on" \
        test "$(grep '"problem"' "$T/out")" = "$(cat "$T/problem.node")"
else
    skip "verify through the http:// client" "the http:// client is not built"
fi
req -X PUT --data "{\"id\":\"$FLIPPED\"}" "$URL/v1/names/flipped"
expect_code 200 "  ... repaired" -X POST "$URL/v1/verify?repair=1"
check "  ... and gone" body_has '"repaired":true'
check "  ... its name too, not listed without names=1 (older clients fail on new kinds)" \
    eval '! body_has name_removed && [ "$(curl -s -o /dev/null -w "%{http_code}" "$URL/v1/names/flipped")" = 404 ]'
req -X PUT --data-binary @"$T/flipped" "$URL/v1/objects"
req -X PUT --data "{\"id\":\"$FLIPPED\"}" "$URL/v1/names/flipped"
flip "$(blob_of "$FLIPPED")" 5000
expect_code 200 "POST /v1/verify?repair=1&names=1" -X POST "$URL/v1/verify?repair=1&names=1"
check "  ... lists the name removed with it, not as a problem" eval \
    'body_has "{\"problem\":\"name_removed\",\"name\":\"flipped\",\"id\":\"$FLIPPED\",\"detail\":\"flipped\",\"repaired\":true}" && body_has "\"problems\":1,"'
if [ "${HTTP_CLIENT:-1}" = 1 ]; then
    req -X PUT --data-binary @"$T/flipped" "$URL/v1/objects"
    req -X PUT --data "{\"id\":\"$FLIPPED\"}" "$URL/v1/names/flipped"
    flip "$(blob_of "$FLIPPED")" 5000
    run "$MDBX" -s "$URL" verify --repair
    check "  ... \`mdbx verify --repair\` through the http:// client names it" eval \
        '[ "$status" = 0 ] && out_has "name removed  flipped  (pointed at $FLIPPED)" && out_has ", 1 names removed"'
else
    skip "verify --repair through the http:// client" "the http:// client is not built"
fi
expect_code 200 "GET /v1/info says gc takes older_than and dry_run" "$URL/v1/info"
check "  ... gc_grace" body_has '"gc_grace":true'
expect_code 200 "POST /v1/gc (the node's default grace: 14 days)" -X POST "$URL/v1/gc"
check "  ... keeps the unnamed object put just now" body_has '"objects_removed":0,"bytes_removed":0,"older_than":1209600,"dry_run":false'
expect_code 200 "POST /v1/gc?older_than=0&dry_run=1" -X POST "$URL/v1/gc?older_than=0&dry_run=1"
check "  ... lists it, removes nothing" eval 'body_has "\"objects_removed\":1" && body_has "\"dry_run\":true" && body_has "{\"id\":\"$CHUNKED\",\"size\":"'
expect_code 200 "  ... still there" "$URL/v1/objects/$CHUNKED"
for bad in -1 x 1.5 99999999999 ""; do
    expect_code 400 "POST /v1/gc?older_than=$bad" -X POST "$URL/v1/gc?older_than=$bad"
done
expect_code 200 "POST /v1/gc?older_than=0" -X POST "$URL/v1/gc?older_than=0"
check "  ... removed the unnamed object" body_has '"objects_removed":1'
expect_code 404 "  ... which is gone" "$URL/v1/objects/$CHUNKED"
expect_code 201 "  ... and can be put again" -X PUT --data-binary @"$T/chunked" "$URL/v1/objects"

# --- limits --------------------------------------------------------------
before=$(listed_ids | sort)
expect_code 413 "a body over --max-object-size" -X PUT --data-binary @"$T/huge" "$URL/v1/objects"
expect_code 413 "  ... also when chunked (no Content-Length)" -X PUT -H "Transfer-Encoding: chunked" \
    --data-binary @"$T/huge" "$URL/v1/objects"
expect_code 413 "  ... also as a multipart upload" -F file=@"$T/huge" "$URL/upload"
check "  ... nothing was stored" test "$(listed_ids | sort)" = "$before"
check "  ... no temp file left behind" test -z "$(ls -A "$T/store/tmp" 2>/dev/null)"
{ printf 'X-Big: '; head -c 200000 /dev/zero | tr '\0' a; echo; } >"$T/header"
expect_code 431 "headers over the memory limit" -H @"$T/header" "$URL/health"

# --- traversal -----------------------------------------------------------
for path in "/retrieve?hash=../../../../etc/passwd" \
            "/retrieve?hash=..%2F..%2F..%2F..%2Fetc%2Fpasswd" \
            "/retrieve?hash=%2e%2e%2f%2e%2e%2fetc%2fpasswd" \
            "/get?hash=../../etc/passwd" \
            "/v1/objects/..%2F..%2F..%2Fetc%2Fpasswd" \
            "/v1/objects/$SMALL%2F..%2F..%2Fmeta" \
            "/v1/objects/${SMALL}00"; do
    expect_code 400 "traversal attempt $path" --path-as-is "$URL$path"
done
expect_code 400 "an id behind a NUL (%00) is refused" --path-as-is "$URL/v1/objects/%00$SMALL"
expect_code 400 "DELETE with a traversal id" -X DELETE --path-as-is "$URL/v1/objects/..%2F..%2Fetc"
expect_code 404 "an unknown route" "$URL/etc/passwd"
expect_code 405 "a known path with the wrong method" -X POST "$URL/v1/objects/$SMALL"

# --- the Go system's endpoints, as its clients call them ------------------
head -c 50000 /dev/urandom >"$T/photo.jpg"
PHOTO=$(sha "$T/photo.jpg")
run curl -s -F "file=@$T/photo.jpg" "$URL/upload"
check "POST /upload (multipart, field file)" out_has "{\"success\":true,\"hash\":\"$(md5sum "$T/photo.jpg" | cut -c1-32)\",\"message\":"
check "  ... with the SHA-256 id and the size" out_has "\"id\":\"$PHOTO\",\"size\":50000,"
expect_code 400 "POST /upload without a file field" -F "other=@$T/photo.jpg" "$URL/upload"
check "  ... says success false" body_has '"success":false'
expect_code 400 "POST /upload that is not multipart" -X POST --data 'x=1' "$URL/upload"
expect_code 200 "GET /retrieve?hash=ID" "$URL/retrieve?hash=$PHOTO"
check "  ... gives the bytes" cmp -s "$T/body" "$T/photo.jpg"
expect_code 404 "GET /retrieve of a missing hash" "$URL/retrieve?hash=$MISSING"
expect_code 400 "GET /retrieve without hash" "$URL/retrieve"
record="{\"hash\":\"$PHOTO\",\"name\":\"photo.jpg\",\"size\":50000,\"replicas\":[\"node1:8001\",\"node2:8002\"]}"
expect_code 200 "POST /register" -X POST -H 'Content-Type: application/json' --data "$record" "$URL/register"
expect_code 400 "POST /register with bad JSON" -X POST --data '{"hash":' "$URL/register"
expect_code 400 "POST /register without a name" -X POST --data "{\"hash\":\"$PHOTO\",\"size\":1}" "$URL/register"
expect_code 400 "POST /register with a bad hash" -X POST --data '{"hash":"../x","name":"a","size":1}' "$URL/register"
expect_code 200 "GET /get?hash=ID" "$URL/get?hash=$PHOTO"
check "  ... is the record" test "$(cat "$T/body")" = "$record"
expect_code 404 "GET /get of an unregistered hash" "$URL/get?hash=$MISSING"
expect_code 200 "GET /list" "$URL/list"
check "  ... a JSON array of the records" test "$(cat "$T/body")" = "[$record]"
expect_code 200 "the registered name points at the object" "$URL/v1/names/photo.jpg"

# --- errors on the wire: the exact code in X-Minidbx-Error, a JSON message --
expect_code 400 "an error reply: a bad id" "$URL/v1/objects/zz"
check "  ... X-Minidbx-Error: EINVAL" header_has "^X-Minidbx-Error: EINVAL"
check "  ... a message in the body" body_has '"error":"an id is 64 hex digits'
check "  ... and the code" body_has '"code":"EINVAL"'
expect_code 404 "an error reply: a missing object" "$URL/v1/objects/$MISSING"
check "  ... X-Minidbx-Error: ENOTFOUND" header_has "^X-Minidbx-Error: ENOTFOUND"
req -I "$URL/v1/objects/$MISSING"
check "  ... also on HEAD, which has no body" header_has "^X-Minidbx-Error: ENOTFOUND"
expect_code 409 "an error reply: deleting a named object" -X DELETE "$URL/v1/objects/$PHOTO"
check "  ... X-Minidbx-Error: EREFERENCED" header_has "^X-Minidbx-Error: EREFERENCED"

# --- metrics -------------------------------------------------------------
expect_code 200 "GET /metrics" "$URL/metrics"
check "  ... requests by route and status" body_has 'minidbx_http_requests_total{route="object_put",status="201"}'
# PUT /v1/objects and PUT /v1/objects/ID are two rows of one label: one
# series, counting both (three new objects above: two by one, one by the other)
object_put_201=$(grep -F 'minidbx_http_requests_total{route="object_put",status="201"}' "$T/body")
check "  ... the rows of one route label make one series" test "$(printf '%s\n' "$object_put_201" | wc -l)" = 1
check "  ... that counts the requests of both (${object_put_201##* })" test "${object_put_201##* }" -ge 3
check "  ... a latency histogram" body_has 'minidbx_http_request_duration_seconds_bucket{le="+Inf"}'
check "  ... bytes in and out" body_has 'minidbx_http_received_bytes_total'
check "  ... the store's objects" body_has 'minidbx_store_objects'
check "  ... open connections" body_has 'minidbx_http_connections_open'

stop_server
check "SIGTERM: the server exits 0" test "$server_status" = 0

# --- IPv6, where the machine has ::1 ----------------------------------------------
if start_server "$T/store" --listen '[::1]:0' 2>/dev/null; then
    expect_code 200 "listening on [::1]" -g "$URL/health"
    stop_server
else
    skip "listening on [::1]" "no IPv6 loopback here"
fi
finish
