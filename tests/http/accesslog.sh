#!/bin/bash
# The access log: one line per request (Common Log Format with the duration,
# or JSON lines), bytes a client sends cannot forge a line, reopened on
# SIGHUP for rotation; --log-level.
. "$(dirname "$0")/lib.sh"

LOG="$T/access.log"
start_server "$T/store" --access-log "$LOG" || { not_ok "server starts with --access-log"; finish; }
ok "server starts with --access-log FILE"
printf 'hello\n' >"$T/small"
expect_code 200 "GET /health" "$URL/health"
expect_code 201 "PUT /v1/objects" -X PUT --data-binary @"$T/small" "$URL/v1/objects"
expect_code 404 "GET of a missing object" "$URL/v1/objects/$(printf x | sha256sum | cut -c1-64)"
# a raw request with a quote and a control byte in its path
printf 'GET /v1/names/a"b\001c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    curl -s --max-time 5 telnet://127.0.0.1:"$PORT" >/dev/null 2>&1
sleep 0.2
check "one line per request" test "$(wc -l <"$LOG")" = 4
check "  GET /health: client, time, request, status, bytes, duration" \
    grep -Eq '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} \+0000\] "GET /health HTTP/1\.1" 200 2 [0-9]+\.[0-9]{6}$' "$LOG"
check "  the PUT: 201" grep -q '"PUT /v1/objects HTTP/1.1" 201 ' "$LOG"
check "  the missing object: 404" grep -q '" 404 ' "$LOG"
check "  a quote and a control byte in the path are escaped" grep -qF '/v1/names/a\x22b\x01c' "$LOG"
check "  no line holds a raw control byte" eval '! LC_ALL=C grep -q "[[:cntrl:]]" <(tr -d "\n" <"$LOG")'

mv "$LOG" "$LOG.1"
kill -HUP "$SERVER_PID"
sleep 0.3
expect_code 200 "after SIGHUP (the log moved away, as logrotate does)" "$URL/health"
check "  the node opened the log again: a new file with the new line" eval '[ "$(wc -l <"$LOG")" = 1 ] && grep -q "GET /health" "$LOG"'
check "  the old file kept its lines" test "$(wc -l <"$LOG.1")" = 4
check "  and the node still runs" kill -0 "$SERVER_PID"
stop_server

start_server "$T/store" --access-log "$T/json.log" --access-log-format json || { not_ok "server starts with json"; finish; }
expect_code 200 "GET /health (JSON lines)" "$URL/health"
printf 'GET /v1/names/q"\001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    curl -s --max-time 5 telnet://127.0.0.1:"$PORT" >/dev/null 2>&1
sleep 0.2
# a path of 2,000 control bytes: 12,000 bytes escaped, more than a line holds
{ printf 'GET /v1/names/'; head -c 2000 /dev/zero | tr '\0' '\001'; printf ' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; } |
    curl -s --max-time 5 telnet://127.0.0.1:"$PORT" >/dev/null 2>&1
sleep 0.2
stop_server
head -n 1 "$T/json.log" >"$T/out"
check "  a JSON object per line: time, client, method, path, status, bytes, duration_ms" \
    eval '[ "$("$JSONQ" client method path status bytes <"$T/out")" = "127.0.0.1	GET	/health	200	2" ] &&
          "$JSONQ" time duration_ms <"$T/out" | grep -Eq "^[0-9-]{10}T[0-9:.]{12}Z	[0-9.]+$"'
sed -n 2p "$T/json.log" >"$T/out"
check "  a quote and a control byte are JSON escapes" eval '[ "$("$JSONQ" path <"$T/out")" = "/v1/names/q\"$(printf "\001")" ]'
sed -n 3p "$T/json.log" >"$T/out"
check "  a path too long for a line is cut, and the line is still JSON (its status read back)" \
    eval '"$JSONQ" status <"$T/out" | grep -Eq "^[0-9]{3}$" && [ "$(wc -c <"$T/out")" -le 4096 ]'

start_server "$T/store" --log-level info || { not_ok "server starts with --log-level info"; finish; }
expect_code 200 "--log-level info: GET /health" "$URL/health"
sleep 0.2
check "  the access log goes to stderr" grep -q '"GET /health HTTP/1.1" 200 ' "$T/server.err"
stop_server
expect 2 "--log-level loud: a usage error" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:0 --log-level loud
check "  names the option" err_has "--log-level"
expect 4 "--access-log in a missing directory" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:0 --access-log "$T/no/such/dir/log"
check "  says which file" err_has "$T/no/such/dir/log"

finish
