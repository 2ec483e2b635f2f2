#!/bin/bash
# A damaged store under a running node: a FIFO where a blob file should be,
# a tmp/ that cannot be written, the store directory deleted. The node
# must answer at once, with a 5xx (or 422 for bad bytes) that names the
# error, keep serving, and never claim to have stored what it did not.
. "$(dirname "$0")/lib.sh"

blob_of() { echo "$T/store/blobs/${1:0:2}/${1:2:2}/$1"; }

start_server "$T/store" --threads 2 || { not_ok "server starts"; finish; }

# --- a FIFO in place of a blob file --------------------------------------------------
head -c 300000 /dev/urandom >"$T/big"
req -X PUT --data-binary @"$T/big" "$URL/v1/objects"
BIG=$(sha "$T/big")
rm "$(blob_of "$BIG")"
mkfifo "$(blob_of "$BIG")"
# more GETs than the node has I/O threads: were one to block, all would
for i in 1 2 3 4; do
    code=$(curl -s -m 5 -o "$T/fifo.$i" -w '%{http_code}' "$URL/v1/objects/$BIG")
    echo "$code" >"$T/fifo.code.$i"
done
check "GETs of a blob that is a FIFO are answered at once, not 200 ($(cat "$T"/fifo.code.* | sort -u | tr '\n' ' '))" \
    test -z "$(grep -v '^[45][0-9][0-9]$' "$T"/fifo.code.*)"
check "  ... saying why" grep -q "not a regular file" "$T/fifo.1"
expect_code 200 "  ... and the node still serves" -m 5 "$URL/health"
rm -f "$(blob_of "$BIG")"

# --- tmp/ cannot be written ----------------------------------------------------------
# chattr +i stops root too (chmod does not); without it, chmod for a user.
if chattr +i "$T/store/tmp" 2>/dev/null; then
    locked="chattr -i $T/store/tmp"
elif [ "$(id -u)" != 0 ]; then
    chmod a-w "$T/store/tmp"
    locked="chmod u+w $T/store/tmp"
else
    locked=""
    not_ok "tmp/ can be made unwritable (chattr +i, or chmod as a user)"
fi
if [ -n "$locked" ]; then
    head -c 300000 /dev/urandom >"$T/new"
    NEW=$(sha "$T/new")
    expect_code 500 "PUT with tmp/ unwritable" -X PUT --data-binary @"$T/new" "$URL/v1/objects"
    check "  ... names the error (EIO)" header_has "^X-Minidbx-Error: EIO"
    expect_code 500 "  ... chunked too" -X PUT -H "Transfer-Encoding: chunked" --data-binary @"$T/new" \
        "$URL/v1/objects"
    expect_code 500 "  ... and the Go upload" -F file=@"$T/new" "$URL/upload"
    $locked
    expect_code 404 "  ... nothing was stored" "$URL/v1/objects/$NEW"
fi

# --- the store directory deleted -------------------------------------------------------
printf 'after the store went' >"$T/late"
rm -rf "$T/store"
req -X PUT --data-binary @"$T/late" "$URL/v1/objects"
check "PUT into a deleted store: 5xx ($code)" test "$code" -ge 500
check "  ... names the error (EIO)" header_has "^X-Minidbx-Error: EIO"
check "  ... and does not claim the object" sh -c "! grep -q '\"created\"' '$T/body'"
req -X POST "$URL/v1/gc"
check "gc of a deleted store: 5xx ($code)" test "$code" -ge 500
expect_code 200 "the node still answers" "$URL/health"
stop_server
finish
