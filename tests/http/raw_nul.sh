#!/bin/bash
# A raw NUL byte (0x00, not %00) in the request line or in a header value
# gets 400: a C string stops at it, so the node would act on a cut name or
# token while a proxy in front saw the whole. Requests of the same shapes
# without it are served as before (escapes, empty and repeated query
# arguments, bare LF line ends, white space in header values).
. "$(dirname "$0")/lib.sh"

# raw FORMAT: send printf FORMAT on a new connection to the node; the reply's
# status code in $code ("" when it sent none).
raw()
{
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || { code=""; return; }
    # shellcheck disable=SC2059
    printf "$1" >&3
    code=$(timeout 10 head -c 12 <&3 | cut -c10-12)
    exec 3<&- 3>&-
}
# expect_raw WANT DESC FORMAT
expect_raw()
{
    raw "$3"
    if [ "$code" = "$1" ]; then ok "$2 ($1)"; else not_ok "$2: HTTP '$code', expected $1"; fi
}

printf 'hello\n' >"$T/hello"
ID=$(sha "$T/hello")
BODY="{\"id\":\"$ID\"}"
LEN=${#BODY}
start_server "$T/store" --write-token WTOK || { not_ok "server starts"; finish; }
ok "server starts ($URL)"
AUTH='Authorization: Bearer WTOK\r\n'
expect_code 201 "PUT the object" -H "Authorization: Bearer WTOK" -X PUT --data-binary @"$T/hello" "$URL/v1/objects"
for name in x a/b.txt; do
    expect_code 200 "name $name" -H "Authorization: Bearer WTOK" -X PUT --data "$BODY" "$URL/v1/names/$name"
done

echo "# --- a NUL in the request target"
expect_raw 400 "PUT /v1/names/nulprobe<NUL>/../../evil" \
    "PUT /v1/names/nulprobe\x00/../../evil HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: $LEN\r\nConnection: close\r\n\r\n$BODY"
expect_code 404 "  nulprobe was not set" "$URL/v1/names/nulprobe"
expect_raw 400 "GET /v1/names/a/b.txt<NUL>junk" "GET /v1/names/a/b.txt\x00junk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 400 "DELETE /v1/names/x<NUL>anything" \
    "DELETE /v1/names/x\x00anything HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n"
expect_code 200 "  x is still there" "$URL/v1/names/x"
expect_raw 400 "GET /v1/names/a<NUL>/b.txt?x=1 (before a query)" "GET /v1/names/a\x00/b.txt?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 400 "GET /v1/names/x<NUL><NUL>junk" "GET /v1/names/x\x00\x00junk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 400 "GET /v1/objects?limit=1<NUL>0 (in a query value)" "GET /v1/objects?limit=1\x00000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 400 "GET /v1/objects?a<NUL>&limit=1 (in a query key)" "GET /v1/objects?a\x00&limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

echo "# --- a NUL in a header value"
expect_raw 400 "Authorization: Bearer WTOK<NUL>junk" \
    "PUT /v1/names/tok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer WTOK\x00junk\r\nContent-Length: $LEN\r\nConnection: close\r\n\r\n$BODY"
expect_code 404 "  tok was not set" "$URL/v1/names/tok"
expect_raw 400 "the last header: Connection: close<NUL>junk" "GET /v1/names/x HTTP/1.1\r\nHost: x\r\nConnection: close\x00junk\r\n\r\n"
expect_raw 400 "with bare LF line ends: X-A: 1<NUL>junk" "GET /v1/names/x HTTP/1.1\nHost: x\nX-A: 1\x00junk\nConnection: close\n\n"

expect_raw 400 "a header line folded onto the next (obs-fold, RFC 9112: 400 or a space)" \
    "GET /v1/names/x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\nConnection: close\r\n\r\n"

echo "# --- the same shapes without a NUL"
expect_raw 200 "PUT /v1/names/nulprobe" \
    "PUT /v1/names/nulprobe HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: $LEN\r\nConnection: close\r\n\r\n$BODY"
expect_raw 200 "GET /v1/names/a%2Fb%2etxt (escapes)" "GET /v1/names/a%%2Fb%%2etxt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 200 "GET /v1/objects?a&&limit=%31&b=&c=d=e& (empty, repeated, escaped arguments)" \
    "GET /v1/objects?a&&limit=%%31&b=&c=d=e& HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 200 "GET /v1/objects? (an empty query)" "GET /v1/objects? HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_raw 200 "bare LF line ends, white space and empty values" \
    "GET /v1/names/x HTTP/1.1\nHost: x\nX-A:   1 2  \nX-B:\nX-C: \t\nConnection: close\n\n"
expect_raw 200 "HTTP/1.0 without headers" "GET /v1/names/x HTTP/1.0\r\n\r\n"
expect_raw 200 "PUT with the token" \
    "PUT /v1/names/tok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer WTOK\r\nContent-Length: $LEN\r\nConnection: close\r\n\r\n$BODY"
expect_code 200 "curl with many headers and a cookie" -H "X-1: a" -H "X-2: b c" -H "Cookie: a=b; c=d" \
    "$URL/v1/names/x?q=%20&r"
stop_server
check "the server exits 0" test "$server_status" = 0
finish
