#!/bin/bash
# repair.sh - `mdbx repair` and `mdbx verify --repair` while STORE/blobs is
# away for a moment (moved, or an empty mountpoint: the disk not mounted)
# report every object there missing and NOT repaired, exit 3, and keep
# every record and name; once blobs/ is back every name reads its bytes,
# verify is clean and `gc --older-than 0` removes nothing.
. "$(dirname "$0")/lib.sh"

M="$MDBX"
S="$T/store"
"$M" -s "$S" init >/dev/null
cd "$T" || exit 99

NAMES=3
for i in $(seq $NAMES); do
    "$GEN_BYTES" 100K "$i" >"f$i.bin" # over the inline threshold: blob files
    "$M" -s "$S" put -n "docs/f$i" "f$i.bin" >/dev/null || not_ok "put -n docs/f$i"
done

# away_and_back HOW CMD...: blobs/ away (HOW: moved | empty), CMD repairs.
away_and_back()
{
    local how=$1
    shift
    echo "# --- blobs/ $how, then: $*"
    mv "$S/blobs" "$T/blobs.away"
    [ "$how" = empty ] && mkdir "$S/blobs" # the mountpoint, nothing mounted
    expect 3 "$* with blobs/ $how: a problem remains" "$M" -s "$S" "$@"
    check "  every object missing, not repaired, saying why" eval \
        '[ "$(grep -c "^missing .*: blobs is missing: not repaired; is the disk mounted?$" "$T/out")" = $NAMES ] ||
         [ "$(grep -c "^missing .*: blobs/[0-9a-f]* is missing: not repaired; is the disk mounted?$" "$T/out")" = $NAMES ]'
    check "  nothing repaired, no name removed" eval '! out_has "(repaired)" && ! out_has "name removed"'
    if [ "$1" = repair ]; then # (verify's summary counts them: N problems, 0 repaired)
        check "  the summary counts them as not repaired" out_has "; $NAMES not repaired"
    fi
    check "  every name is still there" eval '[ "$("$M" -s "$S" names | grep -c "^docs/f")" = $NAMES ]'
    # Opening the store made an empty blobs/ if there was none: remove it
    # (rmdir: only if empty) as a mount would cover it.
    rmdir "$S/blobs" && mv "$T/blobs.away" "$S/blobs" || not_ok "  put blobs/ back"
    local i bad=0
    for i in $(seq $NAMES); do
        "$M" -s "$S" get "docs/f$i" -o "got$i.bin" && cmp -s "got$i.bin" "f$i.bin" || bad=$((bad + 1))
        rm -f "got$i.bin"
    done
    check "  blobs/ back: every name reads its bytes" [ $bad = 0 ]
    expect 0 "  verify is clean" "$M" -s "$S" verify
    expect 0 "  gc --older-than 0" "$M" -s "$S" gc --older-than 0
    check "  removes nothing, leaves every blob file" eval \
        'out_has "removed 0 objects" && [ "$(find "$S/blobs" -type f | wc -l)" = $NAMES ]'
}

away_and_back moved repair
away_and_back empty repair
away_and_back moved verify --repair
away_and_back empty verify --repair

finish
