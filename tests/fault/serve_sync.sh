#!/bin/bash
# mdbx serve --sync full|none: what each mode flushes. The fault shim
# (LD_PRELOAD, here only counting: its fault is set past any call) tells
# how many fdatasyncs the node made on files while it took 20 uploads of
# small objects and 4 of large ones: some with --sync full (the default),
# none at all with --sync none, the Go system's way.
. "$(dirname "$0")/../http/lib.sh"

[ -n "${FAULT_SHIM:-}" ] || { echo "1..0 # SKIP FAULT_SHIM is not set"; exit 0; }

# count_flushes MODE: start a node over a new store with --sync MODE under
# the shim, upload, stop it; prints the fdatasyncs it counted.
count_flushes()
{
    local mode=$1 report="$T/report.$1"
    LD_PRELOAD=$FAULT_SHIM MINIDBX_FAULT=fdatasync:1000000000 MINIDBX_FAULT_SCOPE=files \
        MINIDBX_FAULT_REPORT=$report start_server "$T/store.$mode" --sync "$mode" ||
        { echo "-1"; return; }
    for i in $(seq 20); do
        printf 'small object %s %s' "$mode" "$i" | curl -s -o /dev/null -X PUT --data-binary @- "$URL/v1/objects"
    done
    for i in 1 2 3 4; do
        head -c 100000 /dev/urandom | curl -s -o /dev/null -X PUT --data-binary @- "$URL/v1/objects"
    done
    stop_server >/dev/null
    sed -n 's/^calls fdatasync \([0-9]*\) .*/\1/p' "$report" | tail -n 1
}

full=$(count_flushes full)
none=$(count_flushes none)
check "--sync full flushes (counted $full fdatasyncs for 24 uploads)" test "${full:-0}" -gt 0
check "--sync none flushes nothing (counted ${none:-?})" test "${none:-x}" = 0
check "  and stored all 24 objects" test "$("$MDBX" -s "$T/store.none" ls | wc -l)" = 24
"$MDBX" -s "$T/store.bad" serve --sync sometimes >/dev/null 2>"$T/bad.err"
bad=$?
check "--sync sometimes is a usage error (exit $bad)" test "$bad" = 2
check "  the message says full or none" grep -q "full or none" "$T/bad.err"
finish
