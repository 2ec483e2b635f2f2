#!/bin/bash
# sync_http.sh - mdbx push, pull and sync with real `mdbx serve` nodes on
# 127.0.0.1: local -> http, http -> local, local -> http -> local giving
# identical stores, re-runs that copy nothing, a 20 MiB object in bounded
# memory, a corrupt source object, a read-only node, and a node killed in
# the middle of a sync (then a re-run that completes).
#
# Environment: MDBX, JSONQ, GEN_BYTES, RSS_RUN.
. "$(dirname "$0")/../http/lib.sh"

M=$MDBX
: "${JSONQ:?}" "${GEN_BYTES:?}" "${RSS_RUN:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$T" || exit 99
. "$HERE/sync_lib.sh"

# Sanitizers' shadow memory is no part of what a copy holds.
RSS_LIMIT_KIB=$((24 * 1024))
[ "${MINIDBX_SANITIZE:-none}" != none ] && RSS_LIMIT_KIB=$((400 * 1024))

# Several nodes at once: start_server keeps one in SERVER_PID and URL.
NODE_PIDS=()
start_node()
{
    start_server "$@" || return 1
    NODE_PIDS+=("$SERVER_PID")
    SERVER_PID=""
}
stop_nodes()
{
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    NODE_PIDS=()
    check_server_log
}
trap 'for pid in "${NODE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done; cleanup_server' EXIT

make_source "$T/A"

echo "# --- local -> http"
start_node "$T/H1" || { not_ok "a node starts"; finish; }
H1=$URL
expect 0 "push to a node" "$M" -s A --json push "$H1"
check "  6 objects, 4 names" eval '[ "$(summary objects bytes names_set errors)" = "6	$(total_bytes A)	4	0" ]'
check "  the node has the objects and names of A" same_stores A "$H1"
check "  the node's store is sound" "$M" -s "$H1" verify
check "  its names keep the times they were set in A" eval '[ "$("$M" -s A names -l)" = "$("$M" -s "$H1" names -l)" ]'
expect 0 "push again" "$M" -s A --json push "$H1"
check "  copies nothing" eval '[ "$(summary objects bytes names_set skipped names_unchanged)" = "0	0	0	6	4" ]'

echo "# --- http -> local"
expect 0 "pull from the node" "$M" -s L1 --json pull "$H1"
check "  6 objects, 4 names" eval '[ "$(summary objects names_set errors)" = "6	4	0" ]'
check "  L1 equals A" same_stores A L1
expect 0 "pull again" "$M" -s L1 --json pull "$H1"
check "  copies nothing" eval '[ "$(summary objects bytes names_set)" = "0	0	0" ]'
expect 0 "pull -j 1" "$M" -s J1 pull -j 1 "$H1"
expect 0 "pull -j 8" "$M" -s J8 pull -j 8 "$H1"
check "  the same stores" eval 'same_stores J1 J8 && same_stores A J1'
expect 0 "pull one name from the node" "$M" -s G --json pull "$H1" docs/readme
check "  that object and that name only" \
    eval '[ "$(summary objects names_set)" = "1	1" ] && [ "$("$M" -s G names)" = docs/readme ]'

echo "# --- local -> http -> local"
start_node "$T/H2" || { not_ok "a second node starts"; finish; }
H2=$URL
expect 0 "sync A -> node" "$M" sync A "$H2"
expect 0 "sync node -> B" "$M" sync "$H2" B
check "  mdbx ls of A and B are equal" eval '[ "$("$M" -s A ls)" = "$("$M" -s B ls)" ] && [ -n "$("$M" -s B ls)" ]'
check "  mdbx names of A and B are equal" eval '[ "$("$M" -s A names)" = "$("$M" -s B names)" ]'
check "  and the names point at the same objects" same_stores A B
expect 0 "sync A -> node again" "$M" --json sync A "$H2"
check "  copies nothing" eval '[ "$(summary objects bytes names_set)" = "0	0	0" ]'
expect 0 "sync node -> B again" "$M" --json sync "$H2" B
check "  copies nothing" eval '[ "$(summary objects bytes names_set)" = "0	0	0" ]'
expect 0 "--dry-run node -> a store with one object" "$M" --json sync -n "$H2" G
check "  would copy 5, copies nothing" \
    eval '[ "$(summary dry_run objects)" = "true	5" ] && [ "$("$M" -s G ls | wc -l)" = 1 ]'

echo "# --- a 20 MiB object streams (bounded memory)"
"$GEN_BYTES" 20M 20 >big20
BIG20=$(sha big20)
"$M" -s BIG put -n big/20 big20 >/dev/null
expect 0 "local -> http, peak RSS <= $((RSS_LIMIT_KIB / 1024)) MiB" "$RSS_RUN" "$RSS_LIMIT_KIB" "$M" sync BIG "$H2"
diag "$T/err"
check "  the node has it, whole" "$M" -s "$H2" verify "$BIG20"
expect 0 "http -> local, peak RSS <= $((RSS_LIMIT_KIB / 1024)) MiB" "$RSS_RUN" "$RSS_LIMIT_KIB" "$M" -s BIG2 pull "$H2" big/20
diag "$T/err"
check "  the same bytes" eval '"$M" -s BIG2 get big/20 | cmp -s - big20'
expect 98 "rss_run catches a process of 40 MiB" "$RSS_RUN" $((24 * 1024)) \
    bash -c 'x=$(head -c 41943040 /dev/zero | tr "\\0" a); echo ${#x}'

echo "# --- a corrupt source object"
make_source "$T/C"
BIG1=$(sha big1)
corrupt "$T/C/blobs/${BIG1:0:2}/${BIG1:2:2}/$BIG1"
start_node "$T/H3" || { not_ok "a third node starts"; finish; }
H3=$URL
expect 3 "push a store with a corrupt object to a node" "$M" -s C --json push "$H3"
check "  reported as corrupt, from the source" \
    eval '[ "$(events error id error side | head -n1)" = "$BIG1	ECORRUPT	source" ]'
check "  not on the node" eval '! "$M" -s "$H3" exists "$BIG1"'
check "  the others are" eval '[ "$("$M" -s "$H3" ls | wc -l)" = 5 ]'
start_node "$T/C" || { not_ok "a node over the corrupt store starts"; finish; }
# The node finds out at the end of the GET and cuts it: the client takes a
# 2xx reply cut short for a corrupt copy (ECORRUPT, exit 3), and never
# stores wrong bytes.
expect 3 "pull from a node whose copy is corrupt" "$M" -s CL pull "$URL"
check "  reports the object" err_has "$BIG1: object not copied (source: GET"
check "  and does not store it" eval '! "$M" -s CL exists "$BIG1" && [ "$("$M" -s CL ls | wc -l)" = 5 ]'

echo "# --- a read-only node"
"$M" -s RO init >/dev/null
start_node "$T/RO" --read-only || { not_ok "a read-only node starts"; finish; }
expect 4 "push to a read-only node" "$M" -s A push -j 2 "$URL"
# A streamed upload the node refuses before reading its body may end in
# "connection reset" (EIO) rather than its 403: up to 3 of those, then the
# 403 or a 4th EIO stops the copy, before all 6 objects.
check "  says the destination is read-only, and stops" \
    eval 'err_has "the destination is unusable" && err_has "read-only" && [ "$(grep -c "object not copied" "$T/err")" -le 4 ]'
check "  nothing was stored" eval '[ -z "$("$M" -s "$URL" ls)" ]'

echo "# --- the destination node killed in the middle of a sync"
# The node stops in its first file put (MINIDBX_TEST_PAUSE, between the
# blob's rename and its record) and is killed there.
MINIDBX_TEST_PAUSE=put-renamed:"$T/pause" start_server "$T/K"
KILLED_PID=$SERVER_PID KILLED_URL=$URL
SERVER_PID=""
"$M" -s A --json push "$KILLED_URL" >"$T/kill.out" 2>"$T/kill.err" &
client=$!
check "the node is paused in a put" wait_for_file "$T/pause.put-renamed"
kill -KILL "$KILLED_PID"
wait "$KILLED_PID" 2>/dev/null
wait "$client"
status=$?
cp "$T/kill.out" "$T/out"
cp "$T/kill.err" "$T/err"
check "  the push fails (exit $status)" test "$status" = 4
check "  and says what failed" eval 'err_has "object not copied (destination:" || err_has "the destination is unusable"'
check "  its summary counts errors" eval '[ "$(summary errors)" -ge 1 ]'
rm -f "$T/pause.put-renamed"
start_node "$T/K" || { not_ok "the node starts again"; finish; }
expect 0 "a re-run completes" "$M" -s A --json push "$URL"
check "  the node equals A" same_stores A "$URL"
expect 0 "another re-run" "$M" -s A --json push "$URL"
check "  copies nothing" eval '[ "$(summary objects names_set)" = "0	0" ]'

stop_nodes
finish
