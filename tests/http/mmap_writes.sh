#!/bin/bash
# Blob files changed through shared mappings, by a tool that can write the
# store's files: no GET completes with the changed bytes. Such a store
# changes the bytes without moving the file's ctime (the page stays dirty
# and writable until writeback), so the node must not take a file it
# remembers as verified (--verified-cache) for unchanged because its
# ctime is: while a writer has the file open it is not remembered at all.
. "$(dirname "$0")/lib.sh"
: "${MMAP_WRITER:?set MMAP_WRITER to the mmap_writer binary}"

file_sends() { curl -s "$URL/metrics" | sed -n 's/^minidbx_http_verified_file_sends_total //p'; }

# Only where a write through a mapping moves ctime (ext4, XFS, Btrfs) does
# the node remember files at all; on tmpfs (the test's TMPDIR may be one:
# meson runs this script on /dev/shm too) it hashes every GET.
FS=$(stat -f -c %T "$T")
if remembers_files "$T"; then REMEMBERS=1; else REMEMBERS=0; fi
echo "# the store is on $FS: files are $([ $REMEMBERS = 1 ] || echo "not ")remembered"

head -c 50000 /dev/urandom >"$T/small"     # read whole, hashed or not (no --body-cache)
head -c 5000000 /dev/urandom >"$T/big"     # streamed, or sent with sendfile
SMALL=$("$MDBX" -s "$T/store" put "$T/small") && BIG=$("$MDBX" -s "$T/store" put "$T/big") ||
    { not_ok "put the objects"; finish; }
start_server "$T/store" --body-cache 0 || { not_ok "server starts"; finish; }
ok "server starts with --body-cache 0 ($URL)"

# get NAME: GET it ($SMALL or $BIG); $status is curl's (-f: an error status fails).
get()
{
    local id=$SMALL
    [ "$1" = big ] && id=$BIG
    run curl -s -f -o "$T/$1.got" "$URL/v1/objects/$id"
}
got_right() { [ "$status" = 0 ] && cmp -s "$T/$1.got" "$T/$1"; }
# get_both_twice: each object twice (the second GET may use what the first remembered).
get_both_twice()
{
    for name in small big; do
        get $name
        check "$name: GET, the right bytes" got_right $name
        get $name
        check "$name: GET again, the right bytes" got_right $name
    done
}
# writer CMD: send CMD to the writer, its answer in $said.
writer() { echo "$1" >&"${W[1]}" && read -r said <&"${W[0]}"; }
# writer_stop: the writer unmaps the files and exits.
writer_stop() { local pid=$W_PID; exec {W[1]}>&-; wait "$pid"; }

echo "# --- a writer maps the files and makes their pages dirty (their ctime: now)"
coproc W { "$MMAP_WRITER" 100 "$(blob_of "$SMALL")" "$(blob_of "$BIG")"; }
read -r said <&"${W[0]}"
check "mapped" test "$said" = mapped
# The node remembers only files whose ctime is 2 s older than the GET that
# hashes them: the time, not an event, is the condition here.
sleep 2.5
get_both_twice

echo "# --- the writer changes a byte of each through its mapping (no fault, the same ctime)"
writer ctime && ctime_before=$said
writer flip
check "flipped" test "$said" = flipped
writer ctime
echo "# small: ctime $ctime_before before the flip, $said after"
for name in small big; do
    get $name
    check "$name: GET does not complete with the changed bytes" eval '[ "$status" != 0 ]'
done
check "  (big: it has fewer bytes)" eval '[ "$(wc -c <"$T/big.got")" -lt 5000000 ]'

echo "# --- the writer puts the bytes back and goes: the files are remembered again"
writer flip
check "flipped back" test "$said" = flipped
writer_stop
sends=$(file_sends)
get_both_twice
if [ $REMEMBERS = 1 ]; then
    check "both were sent from a remembered file (verified_file_sends +2 at least)" \
        eval '[ "$(file_sends)" -ge $((sends + 2)) ]'
else
    check "none was sent from a remembered file on $FS (verified_file_sends +0)" \
        eval '[ "$(file_sends)" -eq "$sends" ]'
fi

echo "# --- a writer that comes after the node remembered the files"
coproc W { "$MMAP_WRITER" 100 "$(blob_of "$SMALL")" "$(blob_of "$BIG")"; }
read -r said <&"${W[0]}"
writer flip
check "mapped and flipped" test "$said" = flipped
for name in small big; do
    get $name
    check "$name: GET does not complete with the changed bytes" eval '[ "$status" != 0 ]'
done
writer flip
writer_stop
for name in small big; do
    get $name
    check "$name: put back, GET gives the right bytes" got_right $name
done

stop_server
check "the server exits 0" test "$server_status" = 0
finish
