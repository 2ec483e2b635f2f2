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

expect 2 "--listen with a port over 65535" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:70000
check "  says what --listen takes" err_has "is not HOST:PORT, :PORT or PORT"
expect 2 "--listen with no port" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:
expect 2 "--listen with a host that does not resolve" "$MDBX" -s "$T/store" serve --listen no-such-host.invalid:8001
check "  names the host" err_has "cannot use host 'no-such-host.invalid'"
expect 4 "--listen on an address that is not this machine's" "$MDBX" -s "$T/store" serve --listen 192.0.2.1:8001
check "  says so" err_has "192.0.2.1:8001: not an address of this machine"

finish
