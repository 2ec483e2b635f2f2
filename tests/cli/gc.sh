#!/bin/bash
# gc.sh - `mdbx gc` cannot surprise: what was just put survives the default
# grace (14 days), --older-than 0 removes it, --dry-run removes nothing and
# lists exactly what the real run then removes, a re-put makes an old object
# young (the library's test clock, MINIDBX_TEST_CLOCK_SHIFT, puts objects
# 15 days back), and bad durations are usage errors. Over a real
# `mdbx serve` too, when it is built (argument "http").
. "$(dirname "$0")/../http/lib.sh"

M="$MDBX"
S="$T/store"
"$M" -s "$S" init >/dev/null
cd "$T" || exit 99

gc_suite() # LOCATION
{
    local L=$1
    echo "photo $RANDOM $$" >photo.jpg
    echo "named $RANDOM $$" >named.txt
    PHOTO=$("$M" -s "$L" put photo.jpg)
    "$M" -s "$L" put -n keep named.txt >/dev/null

    expect 0 "gc right after put (default grace)" "$M" -s "$L" gc
    check "  removed nothing, says the grace" eval 'out_has "removed 0 objects" && out_has "put in the last 14d"'
    expect 0 "  the photo is still there" "$M" -s "$L" exists "$PHOTO"

    expect 0 "gc --dry-run --older-than 0" "$M" -s "$L" gc --dry-run --older-than 0
    check "  lists the photo, and only it" eval 'out_has "would remove $PHOTO " && [ "$(grep -c "^would remove " "$T/out")" = 1 ]'
    check "  summary" out_has "dry run: would remove 1 objects"
    grep "^would remove " "$T/out" | sed 's/^would remove //' | sort >"$T/dry"
    expect 0 "  removed nothing" "$M" -s "$L" exists "$PHOTO"

    expect 0 "gc --older-than 0" "$M" -s "$L" gc --older-than 0
    grep "^removed [0-9a-f]\{64\} " "$T/out" | sed 's/^removed //' | sort >"$T/real"
    check "  removed exactly what the dry run listed" eval 'cmp -s "$T/dry" "$T/real" && [ -s "$T/real" ]'
    check "  summary: 1 object, no grace" eval 'out_has "removed 1 objects" && out_has "no grace period"'
    expect 1 "  the photo is gone" "$M" -s "$L" exists "$PHOTO"
    expect 0 "  the named object stays" "$M" -s "$L" exists keep

    expect 0 "gc --json --older-than 10m" "$M" -s "$L" --json gc --older-than 10m
    check "  summary record" eval '[ "$(json objects_removed older_than_s dry_run)" = "0	600	false" ]'
}

echo "# --- local store"
gc_suite "$S"

echo "# --- a re-put makes an old object young"
echo "old $RANDOM $$" >old.txt
echo "loose $RANDOM $$" >loose.txt
OLD=$(MINIDBX_TEST_CLOCK_SHIFT=-1300000 "$M" -s "$S" put old.txt)
LOOSE=$(MINIDBX_TEST_CLOCK_SHIFT=-1300000 "$M" -s "$S" put loose.txt)
expect 0 "both are 15 days old: a dry run lists them" "$M" -s "$S" gc --dry-run
check "  both" eval 'out_has "would remove $OLD " && out_has "would remove $LOOSE "'
"$M" -s "$S" put old.txt >/dev/null
expect 0 "put one again, then gc" "$M" -s "$S" gc
check "  only the other goes" eval 'out_has "removed $LOOSE " && ! out_has "$OLD"'
expect 0 "  the re-put one stays" "$M" -s "$S" exists "$OLD"

echo "# --- bad durations"
for bad in -1 x 10y 1.5h "" 99999999999d; do
    expect 2 "gc --older-than '$bad'" "$M" -s "$S" gc --older-than "$bad"
    check "  says what a duration is" err_has "a duration such as"
done
expect 0 "gc --help states the default" "$M" gc --help
check "  14d" out_has "default: 14d"

if [ "${1:-local}" = http ]; then
    echo "# --- over a real mdbx serve"
    "$M" -s "$T/served" init >/dev/null
    if start_server "$T/served"; then
        gc_suite "$URL"
        stop_server
    else
        not_ok "mdbx serve starts"
    fi
fi
finish
