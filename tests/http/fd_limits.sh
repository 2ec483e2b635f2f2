#!/bin/bash
# The node and its open-file limit (RLIMIT_NOFILE). A GET of a blob file
# holds two descriptors (the socket, the file) for as long as its client
# takes to read it, so clients that never read (slow_readers) can hold
# 2 x --max-connections of them. The node raises its soft limit to the
# hard one, and lowers --max-connections to what the limit holds, saying
# so: whatever such clients do, it never runs out of descriptors, which
# would stop it accepting anyone at all.
. "$(dirname "$0")/lib.sh"

: "${SLOW_READERS:?set SLOW_READERS to the slow_readers binary}"
command -v prlimit >/dev/null || { not_ok "prlimit (util-linux) is there"; finish; }

ATTACKERS=240
# The node's soft and hard limits on open files: "SOFT HARD".
nofile_of() { awk '/^Max open files/ { print $4, $5 }' "/proc/$1/limits"; }
fds_of() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
metric() { curl -s -m 2 "$URL/metrics" | sed -n "s/^$1 //p"; }
# wait_for DESC CMD...: until CMD succeeds, 15 s at most.
wait_for()
{
    local desc=$1
    shift
    for _ in $(seq 150); do
        "$@" && return 0
        sleep 0.1
    done
    echo "# timed out waiting until $desc"
    return 1
}
connections_at_least() { [ "$(metric minidbx_http_connections_open)" -ge "$1" ] 2>/dev/null; }
fds_at_least() { [ "$(fds_of "$SERVER_PID")" -ge "$1" ]; }
out_of_fds() { grep -qi "too many open files\|resource limit" "$T/server.err"; }
# serves: a small GET and a PUT, each answered within 5 seconds.
serves()
{
    local got put
    got=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/v1/objects/$SMALL")
    put=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$T/new.$1" "$URL/v1/objects")
    echo "GET $got, PUT $put"
    [ "$got" = 200 ] && [ "$put" = 201 ]
}
# attack: ATTACKERS GETs of the big object that never read (a coprocess).
attack()
{
    coproc R { "$SLOW_READERS" "$PORT" "/v1/objects/$BIG" "$ATTACKERS"; }
    # bash forgets R once the coprocess is gone: keep what end_attack needs
    attack_in=${R[1]} attack_pid=$R_PID
    read -r -t 20 said <&"${R[0]}" || said=""
    check "$ATTACKERS slow readers connected ($said)" test "$said" = "opened $ATTACKERS"
}
# end_attack: the end of their stdin: they close their connections and exit.
end_attack()
{
    eval "exec $attack_in>&-" 2>/dev/null
    wait "$attack_pid" 2>/dev/null
}

# The objects: one large enough that a reply to a reader with a 4 KiB
# window stalls (a blob file: two descriptors while it is sent), one small.
head -c 5000000 /dev/urandom >"$T/big"
head -c 1000 /dev/urandom >"$T/small"
for i in 1 2 3; do head -c 2000 /dev/urandom >"$T/new.$i"; done
"$MDBX" -s "$T/store" init >/dev/null
BIG=$("$MDBX" -s "$T/store" put "$T/big")
SMALL=$("$MDBX" -s "$T/store" put "$T/small")
# Only the open-file limit binds: the connection limits are high, and the
# timeouts long enough that the node drops no client while the test runs
# (a GET that fails on EMFILE gets a 500 and then waits for the header
# deadline, which would free descriptors).
opts=(--max-connections 400 --max-connections-per-ip 400 --idle-timeout 120 --header-timeout 60)

# --- a soft limit below the hard one: raised, and the attack leaves room ---------------
SERVER_WRAP=(prlimit --nofile=256:1024)
start_server "$T/store" "${opts[@]}" || { not_ok "server starts"; finish; }
check "the soft limit is raised to the hard one ($(nofile_of "$SERVER_PID"))" \
    test "$(nofile_of "$SERVER_PID")" = "1024 1024"
check "  ... and 400 connections fit in it: no warning" sh -c "! grep -q 'max-connections' '$T/server.err'"
attack
check "  ... and the node still answers a GET and a PUT at once" serves 1
check "the node holds them all" wait_for "$ATTACKERS connections are open" connections_at_least "$ATTACKERS"
check "  ... never short of descriptors" sh -c "! grep -qi 'too many open files\|resource limit' '$T/server.err'"
end_attack
stop_server

# --- a hard limit too low for --max-connections: lowered, with a warning -------------
SERVER_WRAP=(prlimit --nofile=256:256)
start_server "$T/store" "${opts[@]}" || { not_ok "server starts"; finish; }
warning=$(grep "max-connections" "$T/server.err")
names_figures() { grep -q "max-connections 400 lowered to [0-9]*: .*open files.* 256" <<<"$warning"; }
check "a warning names the limit and both figures: $warning" names_figures
cap=$(echo "$warning" | sed -n 's/.*lowered to \([0-9]*\).*/\1/p')
cap=${cap:-400}
check "  ... to what 256 descriptors hold (2 x $cap plus a reserve)" test "$cap" -ge 1 -a $((2 * cap)) -le 200
before=$(fds_of "$SERVER_PID")
attack
# more attackers than the cap: the node takes cap of them, two descriptors each
check "the node takes as many as it can hold" \
    wait_for "$before + 2 x $cap descriptors are open" fds_at_least $((before + 2 * cap))
check "  ... and does not run out of descriptors" sh -c "! grep -qi 'too many open files\|resource limit' '$T/server.err'"
end_attack
check "  ... and serves again at once when they go" serves 2
check "  ... never short of descriptors" sh -c "! grep -qi 'too many open files\|resource limit' '$T/server.err'"
stop_server

# --- no room for a single connection: the node does not start -------------------------
SERVER_WRAP=(prlimit --nofile=40:40)
# (bounded: a node that starts anyway is killed after 10 s: exit 137)
run timeout -s KILL 10 "${SERVER_WRAP[@]}" "$MDBX" -s "$T/store" serve --listen 127.0.0.1:0
check "with 40 descriptors the node refuses to start (exit $status)" test "$status" -ne 0 -a "$status" -lt 124
check "  ... saying why" grep -q "open files" "$T/err"
finish
