#!/bin/bash
# /health says whether the node can still read its store. One failed
# write of LMDB's meta page (an EIO from the fault shim) leaves the
# environment failed for the rest of the process (MDB_PANIC): every read
# and write answers 500, and a node that still said 200 on /health would
# keep getting traffic from a load balancer. It must say 503, and why.
. "$(dirname "$0")/lib.sh"

: "${FAULT_SHIM:?set FAULT_SHIM to the fault shim (tests/fault/fault_shim.c)}"

"$MDBX" -s "$T/store" init >/dev/null
printf 'first object' >"$T/first"
FIRST=$(sha "$T/first")

# The shim counts pwrite calls on files from the first connection on and
# fails the third: a commit's meta page, after the data pages of the first
# PUTs (which of them depends on LMDB's writes: the loop finds out).
SERVER_WRAP=(env MINIDBX_FAULT=pwrite:3:EIO MINIDBX_FAULT_ARM=accept MINIDBX_FAULT_SCOPE=files
             LD_PRELOAD="$FAULT_SHIM")
start_server "$T/store" || { not_ok "server starts"; finish; }
expect_code 200 "/health of a node whose store works" "$URL/health"
check "  ... says OK" body_has "OK"
expect_code 201 "a PUT is stored" -X PUT --data-binary @"$T/first" "$URL/v1/objects"

failed=""
for i in $(seq 10); do
    head -c 5000 /dev/urandom >"$T/more"
    req -m 10 -X PUT --data-binary @"$T/more" "$URL/v1/objects"
    [ "$code" = 500 ] && { failed=$i; break; }
done
check "a PUT fails when its commit cannot write (PUT $failed of 10)" test -n "$failed"
# what the probe found: from then on every read fails, the store is fine on disk
expect_code 500 "  ... and from then on reads fail" "$URL/v1/objects/$FIRST"
check "  ... for LMDB has marked the store failed (MDB_PANIC)" body_has "MDB_PANIC"
expect_code 503 "/health says the node cannot serve" "$URL/health"
check "  ... and why" body_has "the store cannot be read"
check "  ... naming the error" header_has "^X-Minidbx-Error: EIO"
expect_code 503 "  ... to a client that asks for JSON too" -H "Accept: application/json" "$URL/health"
stop_server

# opened again, the store is whole: the node is healthy and serves it
SERVER_WRAP=()
start_server "$T/store" || { not_ok "server starts again"; finish; }
expect_code 200 "a node started again on the store is healthy" "$URL/health"
expect_code 200 "  ... and serves what was stored before the failure" "$URL/v1/objects/$FIRST"
stop_server
finish
