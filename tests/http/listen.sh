#!/bin/bash
# --listen as an operator writes it (HOST:PORT, a host name, [::1]:PORT,
# :PORT, PORT), and a port that is taken: one clear line, exit 4.
. "$(dirname "$0")/lib.sh"

start_server "$T/store" --listen localhost:0 || { not_ok "serve --listen localhost:0 starts"; finish; }
check "--listen localhost:0 listens on 127.0.0.1" eval '[[ "$URL" == http://127.0.0.1:* ]]'
expect_code 200 "  and answers" "$URL/health"
TAKEN=$PORT

expect 4 "a second node on the same port" "$MDBX" -s "$T/store2" serve --listen "127.0.0.1:$TAKEN"
check "  says which address is in use, in one line" \
    eval '[ "$(cat "$T/err")" = "mdbx serve: 127.0.0.1:$TAKEN is in use" ]'
# TLS clients on the plain port (each hello is random: libmicrohttpd
# answers most with 400 and says so, drops some without a word)
for _ in 1 2 3 4 5; do curl -sk --max-time 5 -o /dev/null "https://127.0.0.1:$TAKEN/health"; done
for _ in $(seq 20); do grep -q "malformed request" "$T/server.err" && break; sleep 0.1; done
check "TLS clients on the plain port: clear lines in the log, no HTML, no raw bytes" \
    eval '[ "$(grep -vc "^mdbx serve: a malformed request got 400 and its connection was closed (a TLS client on this plain HTTP port? use http://, or --tls-cert and --tls-key)$" "$T/server.err")" = 0 ] &&
          grep -q "malformed request" "$T/server.err" &&
          ! grep -qi "<html" "$T/server.err" && ! LC_ALL=C grep -q "[^[:print:][:space:]]" "$T/server.err" ||
          { echo "# the log:"; diag "$T/server.err"; false; }'
expect 4 "--listen PORT alone (127.0.0.1) on the same port" "$MDBX" -s "$T/store2" serve --listen "$TAKEN"
check "  says 127.0.0.1:PORT is in use" err_has "mdbx serve: 127.0.0.1:$TAKEN is in use"
stop_server

start_server "$T/store" --listen 0 || { not_ok "serve --listen 0 starts"; finish; }
check "--listen PORT listens on 127.0.0.1" eval '[[ "$URL" == http://127.0.0.1:* ]]'
expect_code 200 "  and answers" "$URL/health"
stop_server

if [ -r /proc/net/if_inet6 ] && grep -q " lo$" /proc/net/if_inet6; then
    start_server "$T/store" --listen "[::1]:0" || not_ok "serve --listen [::1]:0 starts"
    check "--listen [::1]:0 listens on [::1]" eval '[[ "$URL" == "http://[::1]:"* ]]'
    expect_code 200 "  and answers" -g "$URL/health"
    stop_server
else
    skip "--listen [::1]:0" "no IPv6 loopback here"
fi

# :PORT is every address of the machine: only inside a network namespace
# of our own, whose only interface is a loopback that is down.
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    run unshare -n timeout 2 "$MDBX" -s "$T/store" serve --listen :0
    check "--listen :0 listens on every address (0.0.0.0), in a namespace of its own" \
        eval 'grep -q "^listening on http://0.0.0.0:[1-9]" "$T/out"'
else
    skip "--listen :0" "needs root for a network namespace of its own"
fi

# --profile: presets, each setting given by itself winning, before or after
start_server "$T/store" --threads 3 --profile low-memory || not_ok "serve --profile low-memory starts"
check "--profile low-memory sets its settings; --threads given before it wins" \
    grep -qx "mdbx serve: profile low-memory: threads 3 (given), max-connections 64, max-connections-per-ip 16, verified-cache 64, body-cache 0" "$T/server.err"
expect_code 200 "  and the node answers" "$URL/health"
stop_server
start_server "$T/store" --profile large-files --body-cache 1M || not_ok "serve --profile large-files starts"
check "--profile large-files; --body-cache given after it wins" \
    grep -qx "mdbx serve: profile large-files: max-object-size 68719476736, idle-timeout 300, min-body-rate 16384, drain-timeout 300, body-cache 1048576 (given)" "$T/server.err"
stop_server
start_server "$T/store" --profile throughput || not_ok "serve --profile throughput starts"
check "--profile throughput" grep -q "mdbx serve: profile throughput: threads 8, max-connections 4000," "$T/server.err"
stop_server
expect 2 "--profile fast: unknown" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:0 --profile fast
check "  lists the profiles" err_has "throughput, low-memory or large-files"
check "mdbx serve --help shows the profiles" eval '"$MDBX" serve --help | grep -q "low-memory: --threads 1"'

expect 2 "--listen with a port over 65535" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:70000
check "  says what --listen takes" err_has "is not HOST:PORT, :PORT or PORT"
expect 2 "--listen with no port" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:
expect 2 "--listen with a host that does not resolve" "$MDBX" -s "$T/store" serve --listen no-such-host.invalid:8001
check "  names the host" err_has "cannot use host 'no-such-host.invalid'"
expect 4 "--listen on an address that is not this machine's" "$MDBX" -s "$T/store" serve --listen 192.0.2.1:8001
check "  says so" err_has "192.0.2.1:8001: not an address of this machine"

finish
