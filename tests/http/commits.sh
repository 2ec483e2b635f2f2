#!/bin/bash
# Durable writes on commit threads (server/commit.c, --commit-threads): a
# PUT's connection waits suspended while a commit thread commits it (small
# objects several at once in a batch, larger ones each on its thread),
# and its reply goes out only after the commit returned. The node's
# commits are held by another process that holds the store's write
# transaction (mdbx put -n, paused between its put and its name by
# MINIDBX_TEST_PAUSE=put-before-name) to look at the node in that window:
# its I/O thread is free, no reply has gone out, a kill -9 there loses
# nothing acknowledged, a client that goes away or a SIGTERM drain are
# handled, small puts queued meanwhile go in one batch, the queue's bound
# holds; then many concurrent writers are killed mid-load, and (as root)
# the disk fills.
. "$(dirname "$0")/lib.sh"

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
# waiting_queued W Q: W PUTs wait for their commits, Q of them not yet
# taken by a commit thread.
waiting_queued() { wait_metric minidbx_http_commits_waiting "$1" && wait_metric minidbx_http_commits_queued "$2"; }
# taken_alone: one PUT is in a commit thread's hands, none queued.
taken_alone() { waiting_queued 1 0; }
wait_for_file() { for _ in $(seq 400); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }

# hold STORE: another process takes the store's write transaction and
# keeps it (10 s at most, the pause's own bound) until release; every
# commit of the node waits for it meanwhile.
HOLDER=""
hold()
{
    echo "held $RANDOM" >"$T/held"
    MINIDBX_TEST_PAUSE="put-before-name:$T/hold" "$MDBX" -s "$1" put -n "held/$RANDOM" "$T/held" \
        >"$T/holder.out" 2>&1 &
    HOLDER=$!
    wait_for_file "$T/hold.put-before-name"
}
release() { rm -f "$T/hold.put-before-name"; [ -n "$HOLDER" ] && wait "$HOLDER"; HOLDER=""; }

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
said_draining() { for _ in $(seq 100); do grep -q draining "$T/server.err" && return 0; sleep 0.05; done; return 1; }

# --- the reply waits for the commit; the I/O thread does not -------------------------
start_server "$T/store" --threads 1 --commit-threads 4 || { not_ok "server starts"; finish; }
check "another process holds the store's write transaction" hold "$T/store"
put_bg 1
check "a PUT waits on a commit thread (commits_waiting 1)" wait_metric minidbx_http_commits_waiting 1
code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$URL/health")
check "  ... while the node's only I/O thread answers another request ($code)" test "$code" = 200
check "  ... and the PUT has no reply yet" kill -0 "${PUT_PID[1]}"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
wait "${PUT_PID[1]}"
release
check "a kill -9 before the commit: the client was told nothing ($(cat "$T/code.1"))" \
    not grep -q '^2' "$T/code.1"
start_server "$T/store" || { not_ok "server starts again"; finish; }
check "  ... and the object is not there (the commit never ran)" not_stored 1
stop_server

# --- small puts queued together: one batch; clients gone meanwhile -------------------
start_server "$T/store" --threads 2 --commit-threads 1 || { not_ok "server starts"; finish; }
hold "$T/store"
put_bg 2
taken_alone
for i in 3 4 5 6 7 8; do put_bg $i; done
check "one PUT in its commit, six queued behind it (commits_waiting 7, queued 6)" \
    waiting_queued 7 6
kill "${PUT_PID[7]}" "${PUT_PID[8]}"
wait "${PUT_PID[7]}" "${PUT_PID[8]}" 2>/dev/null
release
for i in 2 3 4 5 6; do wait "${PUT_PID[$i]}"; done
check "once the store is free, the five still waiting are answered 201" \
    test "$(cat "$T"/code.[2-6] | grep -c '^201$')" = 5
check "  ... the six queued went in one batch" \
    test "$(metric minidbx_http_commit_batches_total) $(metric minidbx_http_batched_commits_total)" = "1 6"
check "  ... the two whose clients went away were committed and let go (commits_waiting 0)" \
    wait_metric minidbx_http_commits_waiting 0
check "  ... and ended (requests in flight: only this one)" wait_metric minidbx_http_requests_in_flight 1
check "  ... all seven are stored" all_stored 2 3 4 5 6 7 8
stop_server
check "  ... and the node stops cleanly (exit $server_status)" test "$server_status" = 0

# --- a batch with writes that fail on their own ---------------------------------------------
# Queued behind the held store, one batch: the same bytes twice (one
# creates, the other finds it), bytes that do not hash to the id they are
# PUT under (422, alone), and a plain one.
start_server "$T/store" --threads 2 --commit-threads 1 || { not_ok "server starts"; finish; }
hold "$T/store"
put_bg 50
taken_alone
body 51
body 52
id51=$(sha "$T/b.51")
MIXED=""
for k in a b; do
    curl -s -m 60 -o "$T/reply.51$k" -w '%{http_code}\n' -X PUT --data-binary @"$T/b.51" "$URL/v1/objects" \
        >"$T/code.51$k" &
    MIXED="$MIXED $!"
done
curl -s -m 60 -o "$T/reply.52" -w '%{http_code}\n' -X PUT --data-binary @"$T/b.52" "$URL/v1/objects/$id51" \
    >"$T/code.52" &
MIXED="$MIXED $!"
put_bg 53
check "four more PUTs queue behind the held one" waiting_queued 5 4
batches_before=$(metric minidbx_http_commit_batches_total)
release
# shellcheck disable=SC2086 # the pids
wait $MIXED "${PUT_PID[50]}" "${PUT_PID[53]}"
codes="$(cat "$T/code.50") $(sort "$T/code.51a" "$T/code.51b" | tr '\n' ' ')$(cat "$T/code.52") $(cat "$T/code.53")"
check "  ... answered each for itself: 201, the same bytes twice 200 and 201, wrong bytes 422, 201 ($codes)" \
    test "$codes" = "201 200 201 422 201"
check "  ... one batch took the four" \
    test "$(( $(metric minidbx_http_commit_batches_total) - batches_before ))" = 1
check "  ... and it counts the three stored, not the refused one" \
    test "$(metric minidbx_http_batched_commits_total)" = 3
check "  ... what was stored is there, byte for byte" all_stored 50 51 53
stop_server

# --- SIGTERM with commits queued ------------------------------------------------------
start_server "$T/store" --threads 2 --commit-threads 2 || { not_ok "server starts"; finish; }
hold "$T/store"
for i in 10 11 12 13 14 15; do put_bg $i; done
check "six PUTs wait for their commits (commits_waiting 6)" wait_metric minidbx_http_commits_waiting 6
kill -TERM "$SERVER_PID"
check "  ... SIGTERM: the node drains" said_draining
release
for i in 10 11 12 13 14 15; do wait "${PUT_PID[$i]}"; done
codes=$(cat "$T"/code.1[0-5] | sort | uniq -c | tr -s ' \n' ' ')
check "  ... every one is answered 201 ($codes)" test "$(cat "$T"/code.1[0-5] | grep -c '^201$')" = 6
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
check "  ... and the node exits 0 ($server_status)" test "$server_status" = 0
check_server_log
start_server "$T/store" || { not_ok "server starts again"; finish; }
check "  ... all six are stored" all_stored 10 11 12 13 14 15
stop_server

# --- a second SIGTERM while a commit waits for another process: exit now --------------
start_server "$T/store" --threads 2 --commit-threads 2 || { not_ok "server starts"; finish; }
hold "$T/store"
for i in 16 17; do put_bg $i; done
check "two PUTs wait for their commits" wait_metric minidbx_http_commits_waiting 2
kill -TERM "$SERVER_PID"
check "  ... SIGTERM: the node drains" said_draining
sleep 0.5
check "  ... and waits for the store" kill -0 "$SERVER_PID"
kill -TERM "$SERVER_PID"
gone_soon() { for _ in $(seq 60); do kill -0 "$SERVER_PID" 2>/dev/null || return 0; sleep 0.05; done; return 1; }
check "  ... a second SIGTERM: it exits within 3 s, the other process still holding the store" gone_soon
wait "$SERVER_PID"
server_status=$?
SERVER_PID=""
check "  ... with status 1 ($server_status)" test "$server_status" = 1
check "  ... saying why" grep -q "signalled again: exiting now" "$T/server.err"
for i in 16 17; do wait "${PUT_PID[$i]}"; done
check "  ... neither PUT was answered 201 ($(cat "$T"/code.1[67] | tr '\n' ' '))" \
    test "$(cat "$T"/code.1[67] | grep -c '^201$')" = 0
release
start_server "$T/store" || { not_ok "server starts again"; finish; }
check "  ... the store opens and serves what was stored before" all_stored 10 11 12 13 14 15
stop_server

# --- the queue's bound: beyond it, commits on the I/O threads --------------------------
# --commit-threads 1: one commit at a time, 8 queued at most. An I/O thread
# that commits one over the bound waits for the store too, and reads none
# of its other connections meanwhile: how many of the last PUTs reach the
# queue or an I/O thread's commit depends on which thread took them.
start_server "$T/store" --threads 4 --commit-threads 1 || { not_ok "server starts"; finish; }
hold "$T/store"
put_bg 20
taken_alone
for i in $(seq 21 30); do put_bg "$i"; done
check "one PUT in its commit and 8 queued (commits_waiting 9, queued 8): the bound, with 11 sent" \
    waiting_queued 9 8
sleep 0.5 # more would show now: the PUTs were all sent long ago
waiting=$(curl -s -m 2 "$URL/metrics" | sed -n 's/^minidbx_http_commits_waiting //p')
check "  ... and no more than that ($waiting)" test "${waiting:-9}" -le 9
release
for i in $(seq 20 30); do wait "${PUT_PID[$i]}"; done
codes=$(cat "$T"/code.2[0-9] "$T/code.30" | sort | uniq -c | tr -s ' \n' ' ')
check "  ... all 11 are answered 201 ($codes)" test "$(cat "$T"/code.2[0-9] "$T/code.30" | grep -c '^201$')" = 11
check "  ... at least one of them committed on its I/O thread" \
    test "$(metric minidbx_http_commits_on_io_threads_total)" -ge 1
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
# A 4 MiB tmpfs (root only); 8 writers until it is full.
mkdir -p "$T/full"
if mount -t tmpfs -o size=4m tmpfs "$T/full" 2>/dev/null; then
    trap 'umount "$T/full" 2>/dev/null; cleanup_server' EXIT
    "$MDBX" -q -s "$T/full/store" info >/dev/null 2>&1
    start_server "$T/full/store" --threads 2 || { not_ok "server starts on the tmpfs"; finish; }
    FILLERS=""
    for w in $(seq 8); do
        # blob files (each on its commit thread) and small ones (batched)
        writer "f$w" 200 65536 4000 4000 >"$T/filler.$w" &
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
    # a whole batch that cannot be stored: six small PUTs queued behind
    # the held store, then the disk fills before their commit
    rm -rf "$T/full"/*
    "$MDBX" -q -s "$T/full/store" info >/dev/null 2>&1
    start_server "$T/full/store" --threads 2 --commit-threads 1 || { not_ok "server starts on the tmpfs"; finish; }
    hold "$T/full/store"
    put_bg 60
    taken_alone
    for i in 61 62 63 64 65 66; do put_bg $i; done
    waiting_queued 7 6
    dd if=/dev/zero of="$T/full/filler" bs=64k 2>/dev/null
    release
    for i in 60 61 62 63 64 65 66; do wait "${PUT_PID[$i]}"; done
    codes=$(cat "$T"/code.6[0-6] | sort | uniq -c | tr -s ' \n' ' ')
    check "a batch on a full disk: no PUT of it is acknowledged ($codes)" \
        test "$(cat "$T"/code.6[0-6] | grep -c '^2')" = 0
    rm -f "$T/full/filler"
    stored_any=""
    for i in 61 62 63 64 65 66; do stored "$i" && stored_any="$stored_any $i"; done
    check "  ... and none of the batch is stored (stored:$stored_any)" test -z "$stored_any"
    body 67
    expect_code 201 "  ... with room again, the node stores a PUT" -X PUT --data-binary @"$T/b.67" "$URL/v1/objects"
    stop_server
    umount "$T/full"
else
    skip "a full disk under commit threads" "cannot mount a tmpfs (not root)"
fi

finish
