#!/bin/bash
# Durable writes on commit threads (server/commit.c, --commit-threads): a
# PUT's connection waits suspended while a commit thread commits it, and
# its reply goes out only after the commit returned. The commit is held
# where it is about to flush (MINIDBX_TEST_PAUSE=group-commit: the library
# creates $T/pause.group-commit and waits until it is removed) to look at
# the node in that window: its I/O thread is free, no reply has gone out,
# a kill -9 there loses nothing acknowledged, a client that goes away or a
# SIGTERM drain are handled; then many concurrent writers are killed
# mid-load, the queue's bound is exceeded, and (as root) the disk fills.
. "$(dirname "$0")/lib.sh"

PAUSE=$T/pause
MARK=$PAUSE.group-commit

metric() { curl -s -m 5 "$URL/metrics" | sed -n "s/^$1 //p"; }
# wait_metric NAME N: until the node's metric NAME is N (20 s at most).
wait_metric()
{
    for _ in $(seq 400); do
        [ "$(metric "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}
not() { ! "$@"; }
wait_for_file() { for _ in $(seq 400); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
# Let held commits go: the point pauses every group commit while the
# marker is made again, so a background loop removes it until stopped.
RELEASER=""
release_start()
{
    (for _ in $(seq 6000); do rm -f "$MARK"; sleep 0.01; done) &
    RELEASER=$!
}
release_stop() { [ -n "$RELEASER" ] && kill "$RELEASER" 2>/dev/null; wait "$RELEASER" 2>/dev/null; RELEASER=""; }

# body N: a file of unique bytes, $T/b.N (4 KiB: an inline object).
body() { { echo "object $1 $RANDOM $RANDOM"; head -c 4000 /dev/urandom; } >"$T/b.$1"; }
# put_bg N: PUT $T/b.N in the background; its status goes to $T/code.N,
# its pid to PUT_PID[N].
declare -A PUT_PID
put_bg()
{
    body "$1"
    curl -s -m 60 -o "$T/reply.$1" -w '%{http_code}\n' -X PUT --data-binary @"$T/b.$1" \
        "$URL/v1/objects" >"$T/code.$1" &
    PUT_PID[$1]=$!
}
# stored N: the node has b.N, byte for byte.
stored()
{
    curl -s -f -o "$T/got.$1" "$URL/v1/objects/$(sha "$T/b.$1")" && cmp -s "$T/b.$1" "$T/got.$1"
}
not_stored() { ! stored "$1"; }
all_stored() { for i; do stored "$i" || return 1; done; }
held_server() { MINIDBX_TEST_PAUSE="group-commit:$PAUSE" start_server "$@"; }
said_draining() { for _ in $(seq 100); do grep -q draining "$T/server.err" && return 0; sleep 0.05; done; return 1; }

# --- the reply waits for the commit; the I/O thread does not -------------------------
held_server "$T/store" --threads 1 --commit-threads 4 || { not_ok "server starts"; finish; }
put_bg 1
check "the commit of a PUT is held in the group commit" wait_for_file "$MARK"
code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$URL/health")
check "  ... and the node's only I/O thread answers another request meanwhile ($code)" test "$code" = 200
check "  ... the PUT waits on a commit thread (commits_waiting 1)" test "$(metric minidbx_http_commits_waiting)" = 1
check "  ... and has no reply yet" kill -0 "${PUT_PID[1]}"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
wait "${PUT_PID[1]}"
check "a kill -9 in the commit: the client was told nothing ($(cat "$T/code.1"))" \
    not grep -q '^2' "$T/code.1"
rm -f "$MARK"
start_server "$T/store" || { not_ok "server starts again"; finish; }
check "  ... and the object is not there (the commit never ran)" not_stored 1
stop_server

# --- a client gone while its commit is queued --------------------------------------
held_server "$T/store" --threads 2 --commit-threads 1 || { not_ok "server starts"; finish; }
put_bg 2
wait_for_file "$MARK"
put_bg 3
put_bg 4
check "one PUT held in its commit, two queued behind it (commits_waiting 3)" \
    wait_metric minidbx_http_commits_waiting 3
kill "${PUT_PID[3]}" "${PUT_PID[4]}"
wait "${PUT_PID[3]}" "${PUT_PID[4]}" 2>/dev/null
release_start
wait "${PUT_PID[2]}"
check "the held PUT is answered once its commit returned ($(cat "$T/code.2"))" grep -q '^201$' "$T/code.2"
check "  ... the queued ones, whose clients went away, were committed and let go (commits_waiting 0)" \
    wait_metric minidbx_http_commits_waiting 0
check "  ... and ended (requests in flight: only this one)" wait_metric minidbx_http_requests_in_flight 1
check "  ... their objects were stored all the same" all_stored 3 4
release_stop
stop_server
check "  ... and the node stops cleanly (exit $server_status)" test "$server_status" = 0

# --- SIGTERM with commits queued ------------------------------------------------------
held_server "$T/store" --threads 2 --commit-threads 2 || { not_ok "server starts"; finish; }
for i in 10 11 12 13 14 15; do put_bg $i; done
check "six PUTs wait for their commits (commits_waiting 6)" wait_metric minidbx_http_commits_waiting 6
kill -TERM "$SERVER_PID"
check "  ... SIGTERM: the node drains" said_draining
release_start
for i in 10 11 12 13 14 15; do wait "${PUT_PID[$i]}"; done
codes=$(cat "$T"/code.1[0-5] | sort | uniq -c | tr -s ' \n' ' ')
check "  ... every one is answered 201 ($codes)" test "$(cat "$T"/code.1[0-5] | grep -c '^201$')" = 6
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
release_stop
check "  ... and the node exits 0 ($server_status)" test "$server_status" = 0
check_server_log
start_server "$T/store" || { not_ok "server starts again"; finish; }
check "  ... all six are stored" all_stored 10 11 12 13 14 15
stop_server

# --- the queue's bound: beyond it, commits on the I/O threads --------------------------
# --commit-threads 1: one commit at a time, 8 queued at most.
held_server "$T/store" --threads 4 --commit-threads 1 || { not_ok "server starts"; finish; }
put_bg 20
wait_for_file "$MARK"
for i in $(seq 21 30); do put_bg "$i"; done
check "one PUT in its commit and 8 queued (commits_waiting 9): the bound" \
    wait_metric minidbx_http_commits_waiting 9
check "  ... the two over it are committed on their I/O threads" \
    wait_metric minidbx_http_commits_on_io_threads_total 2
release_start
for i in $(seq 20 30); do wait "${PUT_PID[$i]}"; done
check "  ... and all 11 are answered 201" test "$(cat "$T"/code.2[0-9] "$T/code.30" | grep -c '^201$')" = 11
release_stop
stop_server

# --- many durable writers, then kill -9 -----------------------------------------------------
start_server "$T/store" --threads 2 || { not_ok "server starts"; finish; }
# writer NAME COUNT SIZE...: COUNT PUTs of new bytes, sizes taken in turn
# from SIZE..., one line "status id file" each on stdout; stops at the
# first failure (the node is gone, or the disk full).
writer()
{
    local name=$1 count=$2 i f code
    shift 2
    local sizes=("$@")
    for i in $(seq "$count"); do
        f=$T/w.$name.$i
        { echo "writer $name put $i $RANDOM"; head -c "${sizes[i % ${#sizes[@]}]}" /dev/urandom; } >"$f"
        code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$f" "$URL/v1/objects")
        echo "$code $(sha "$f") $f"
        case $code in 2*) ;; *) return ;; esac
    done
}
# missing_acked FILE...: how many objects the writers' lines say were
# acknowledged are not on the node byte for byte.
missing_acked()
{
    local code id file missing=0
    while read -r code id file; do
        case $code in 2*) ;; *) continue ;; esac
        curl -s -f -o "$T/got" "$URL/v1/objects/$id" && cmp -s "$file" "$T/got" || missing=$((missing + 1))
    done < <(cat "$@")
    echo "$missing"
}
WRITERS=""
for w in $(seq 16); do
    # every fourth a 100 KB blob file
    writer "$w" 40 4000 4000 4000 100000 >"$T/writer.$w" &
    WRITERS="$WRITERS $!"
done
acked() { cat "$T"/writer.* 2>/dev/null | grep -c '^20[01] '; }
for _ in $(seq 400); do [ "$(acked)" -ge 150 ] && break; sleep 0.05; done
io_commits=$(metric minidbx_http_commits_on_io_threads_total)
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
# shellcheck disable=SC2086 # the pids
wait $WRITERS
check "16 writers at once: $(acked) PUTs acknowledged before the kill -9, all committed on commit threads (on I/O threads: $io_commits)" \
    test "$(acked)" -ge 150 -a "$io_commits" = 0
start_server "$T/store" || { not_ok "server starts again"; finish; }
missing=$(missing_acked "$T"/writer.*)
check "  ... and after it every acknowledged object is there, byte for byte (missing: $missing)" test "$missing" = 0
stop_server

# --- a client that may half-close: its commit on the I/O thread -------------------------
start_server "$T/store" --threads 2 || { not_ok "server starts"; finish; }
body 40
expect_code 201 "a PUT with Connection: close is answered" -H "Connection: close" -X PUT --data-binary @"$T/b.40" \
    "$URL/v1/objects"
check "  ... committed on its I/O thread (0.9.75 would close it on resume)" \
    test "$(metric minidbx_http_commits_on_io_threads_total)" = 1
stop_server

# --- a full disk ---------------------------------------------------------------------------
# A 4 MiB tmpfs (root only); 8 writers of 64 KiB blob files until it is full.
mkdir -p "$T/full"
if mount -t tmpfs -o size=4m tmpfs "$T/full" 2>/dev/null; then
    trap 'umount "$T/full" 2>/dev/null; cleanup_server' EXIT
    "$MDBX" -q -s "$T/full/store" info >/dev/null 2>&1
    start_server "$T/full/store" --threads 2 || { not_ok "server starts on the tmpfs"; finish; }
    FILLERS=""
    for w in $(seq 8); do
        writer "f$w" 100 65536 >"$T/filler.$w" &
        FILLERS="$FILLERS $!"
    done
    # shellcheck disable=SC2086 # the pids
    wait $FILLERS
    failed=$(cat "$T"/filler.* | grep -v '^2' | cut -d' ' -f1 | sort | uniq -c | tr -s ' \n' ' ')
    check "8 writers fill the disk: each stops with 507 or 500 ($failed)" \
        test "$(cat "$T"/filler.* | grep -v '^2' | grep -cv '^50[07] ')" = 0 -a -n "$failed"
    missing=$(missing_acked "$T"/filler.*)
    check "  ... every acknowledged one is readable (missing: $missing)" test "$missing" = 0
    expect_code 200 "  ... and the node still serves" -m 5 "$URL/health"
    stop_server
    umount "$T/full"
else
    skip "a full disk under commit threads" "cannot mount a tmpfs (not root)"
fi

finish
