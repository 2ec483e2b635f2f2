# sync_lib.sh - what the push/pull/sync tests share (sourced by sync.sh and
# sync_http.sh after lib.sh, in $T): test files, a source store, and store
# comparisons. Needs M (the mdbx binary) and GEN_BYTES.

ZERO_ID=0000000000000000000000000000000000000000000000000000000000000000

declare -F sha >/dev/null || sha() { sha256sum "$1" | cut -c1-64; }

# The files of the source store, in the current directory: inline objects
# (small1, small2, readme, empty), file objects (big1: 2 MiB, big2), and
# "other", kept out of the source for name conflicts.
"$GEN_BYTES" 100 1 >small1
"$GEN_BYTES" 4K 2 >small2
"$GEN_BYTES" 2M 3 >big1
"$GEN_BYTES" 300K 4 >big2
printf 'read me\n' >readme
: >empty
printf 'another object\n' >other

# make_source STORE: 6 objects, 4 names.
make_source()
{
    "$M" -s "$1" put small2 big2 >/dev/null &&
        "$M" -s "$1" put -n small/one small1 >/dev/null &&
        "$M" -s "$1" put -n docs/readme readme >/dev/null &&
        "$M" -s "$1" put -n big/one big1 >/dev/null &&
        "$M" -s "$1" put -n empty empty >/dev/null
}

# same_stores X Y: the same objects (ls: id and size) and the same names
# (name, id, size; a name's time is when it was set on its store).
same_stores()
{
    [ "$("$M" -s "$1" ls)" = "$("$M" -s "$2" ls)" ] &&
        [ "$("$M" -s "$1" names -l | cut -d' ' -f1,2,4-)" = "$("$M" -s "$2" names -l | cut -d' ' -f1,2,4-)" ] &&
        [ -n "$("$M" -s "$1" ls)" ]
}

# total_bytes STORE: the sum of its objects' sizes.
total_bytes() { "$M" -s "$1" ls | awk '{ n += $2 } END { print n }'; }

# corrupt FILE: overwrite 4 bytes at offset 1000 (in place: same size).
corrupt() { printf '\001\002\003\004' | dd of="$1" bs=1 seek=1000 conv=notrunc status=none; }

# summary KEY...: fields of the last line of the last output (the summary).
summary() { tail -n1 "$T/out" | "$JSONQ" "$@"; }
# events KIND KEY...: fields of the output's lines of that event.
events() { local kind=$1; shift; grep "\"event\":\"$kind\"" "$T/out" | "$JSONQ" "$@"; }

# wait_for_file FILE: until FILE exists (a MINIDBX_TEST_PAUSE point was
# reached), 10 s at most; fails if it never does.
wait_for_file()
{
    for _ in $(seq 200); do
        [ -e "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
