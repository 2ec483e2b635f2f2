#!/bin/bash
# sync.sh - mdbx push, pull and sync between local stores: what is copied
# (objects and names, all or the ones given), that a re-run copies
# nothing, --dry-run, -j, the name rule (the source wins, never
# silently), a corrupt source object, the output (text, --json, progress
# only on a terminal) and the exit statuses. sync_http.sh does the same
# over real `mdbx serve` nodes.
#
# Environment: MDBX, JSONQ, GEN_BYTES.
. "$(dirname "$0")/lib.sh"

M=$MDBX
: "${JSONQ:?}" "${GEN_BYTES:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$T" || exit 99
. "$HERE/sync_lib.sh"

echo "# --- a source store: inline, file and empty objects, names"
make_source "$T/A"
check "the source has 6 objects and 4 names" eval '[ "$("$M" -s A ls | wc -l)" = 6 ] && [ "$("$M" -s A names | wc -l)" = 4 ]'

echo "# --- sync local -> local"
expect 0 "sync A B (B is created)" "$M" sync A B
check "  prints the names it set" eval 'out_has "named docs/readme $(sha readme)" && out_has "named big/one $(sha big1)"'
check "  and a summary: 6 objects, 4 names" out_has "copied 6 objects"
check "  nothing on stderr (not a terminal: no progress)" err_empty
check "  B has the objects and names of A" same_stores A B
check "  B's objects are whole (verify)" "$M" -s B verify
check "  B's names keep the times they were set in A" eval '[ "$("$M" -s A names -l)" = "$("$M" -s B names -l)" ]'
expect 0 "sync A B again" "$M" --json sync A B
check "  copies nothing: 0 objects, 0 bytes, 0 names set, 6 skipped, 4 unchanged" \
    eval '[ "$(json objects bytes names_set skipped names_unchanged errors)" = "0	0	0	6	4	0" ]'
check "  the summary is the only line" out_lines 1
expect 0 "text summary of a run that copies nothing" "$M" sync A B
check "  says 0 objects" out_has "copied 0 objects (0 B), 6 already there; set 0 names, 4 unchanged; 0 errors"

expect 0 "-q: nothing on stdout or stderr" "$M" -q sync A Q1
check "  silent, and copied" eval 'out_empty && err_empty && same_stores A Q1'

echo "# --- push and pull (-s is the local side)"
expect 0 "push to a new store" "$M" -s A --json push P
check "  JSON: 6 objects, their bytes, 4 names" \
    eval '[ "$(summary objects bytes names_set)" = "6	$(total_bytes A)	4" ]'
check "  one JSON line per name set, with previous null" \
    eval '[ "$(grep -c "\"event\":\"name\".*\"previous\":null" "$T/out")" = 4 ]'
check "  P equals A" same_stores A P
expect 0 "pull into a new store" "$M" -s Q pull A
check "  Q equals A" same_stores A Q
expect 0 "pull again copies nothing" "$M" -s Q --json pull A
check "  0 objects" eval '[ "$(json objects names_set)" = "0	0" ]'

echo "# --- only what is given"
expect 0 "push an id and a name" "$M" -s A --json push G "$(sha small1)" docs/readme
check "  copies those two objects and that one name" \
    eval '[ "$(summary objects names_set)" = "2	1" ]'
check "  G has them" eval '"$M" -s G exists "$(sha small1)" "$(sha readme)" && [ "$("$M" -s G names)" = docs/readme ]'
check "  and nothing else" eval '[ "$("$M" -s G ls | wc -l)" = 2 ]'
expect 1 "a name the source lacks" "$M" -s A push G no/such/name
check "  says so" err_has "no/such/name: name not copied (source: no such name in the source)"
expect 0 "an id given twice, by id and by name, is copied once" "$M" -s A --json push G2 "$(sha big1)" big/one "$(sha big1)"
check "  1 object, 1 name" eval '[ "$(summary objects names_set)" = "1	1" ]'
expect 1 "an id the source lacks" "$M" -s A push G "$ZERO_ID"
check "  says so" err_has "$ZERO_ID: object not copied (source:"

echo "# --- --dry-run"
"$M" -s D init >/dev/null
"$M" -s D put small1 >/dev/null
expect 0 "push --dry-run" "$M" -s A push --dry-run D
check "  lists the 5 objects D lacks and the 4 names" \
    eval '[ "$(grep -c "^would copy [0-9a-f]\{64\} [0-9]*$" "$T/out")" = 5 ] && [ "$(grep -c "^would name " "$T/out")" = 4 ]'
check "  D still has 1 object and no name" eval '[ "$("$M" -s D ls | wc -l)" = 1 ] && [ -z "$("$M" -s D names)" ]'
expect 0 "--json -n" "$M" -s A --json push -n D
check "  summary: dry_run, would copy 5 objects" eval '[ "$(summary dry_run objects skipped)" = "true	5	1" ]'
expect 1 "a dry run does not create the destination" "$M" -s A push -n "$T/none"
check "  no store made" test ! -e "$T/none"
expect 0 "pull --dry-run" "$M" -s D pull -n A
check "  D unchanged" eval '[ "$("$M" -s D ls | wc -l)" = 1 ]'

echo "# --- -j 1 and -j 8 give the same stores"
expect 0 "sync -j 1" "$M" sync -j 1 A J1
expect 0 "sync -j 8" "$M" sync --jobs 8 A J8
check "  J1 equals J8 equals A" eval 'same_stores J1 J8 && same_stores A J1'

echo "# --- names: the source wins, and says so"
"$M" -s N init >/dev/null
"$M" -s N put -n docs/readme other >/dev/null
"$M" -s N put -n only/in/dest other >/dev/null
expect 0 "sync onto a store whose docs/readme points elsewhere" "$M" sync A N
check "  prints the name with what it pointed at" \
    out_has "named docs/readme $(sha readme) (was $(sha other))"
check "  docs/readme now points at the source's object" \
    eval '[ "$("$M" -s N stat docs/readme | head -n1)" = "$("$M" -s A stat docs/readme | head -n1)" ]'
check "  a name only the destination has stays" eval '"$M" -s N names | grep -qx only/in/dest'
"$M" -s N name set -f docs/readme "$(sha other)" >/dev/null
expect 0 "--json shows previous" "$M" --json sync A N
check "  one name line with previous = the old id" \
    eval '[ "$(events name name previous)" = "docs/readme	$(sha other)" ]'
check "  summary: 1 set, 3 unchanged" eval '[ "$(summary names_set names_unchanged)" = "1	3" ]'

echo "# --- a cluster: store of three local nodes (2 copies of each object)"
mkdir -p cl
echo '{"replicas": 2, "nodes": ["n1", "n2", "n3"]}' >cl/c.json
expect 0 "sync A -> cluster" "$M" --json sync A cluster:cl/c.json
check "  6 objects, 4 names" eval '[ "$(summary objects names_set errors)" = "6	4	0" ]'
expect 0 "sync cluster -> a new store" "$M" sync cluster:cl/c.json CL
check "  it equals A, name times too" eval 'same_stores A CL && [ "$("$M" -s A names -l)" = "$("$M" -s CL names -l)" ]'
expect 0 "sync A -> cluster again" "$M" --json sync A cluster:cl/c.json
check "  copies nothing" eval '[ "$(summary objects names_set skipped names_unchanged)" = "0	0	6	4" ]'

echo "# --- a corrupt source object"
make_source "$T/C"
BIG1=$(sha big1)
corrupt "$T/C/blobs/${BIG1:0:2}/${BIG1:2:2}/$BIG1"
expect 3 "sync from a store with a corrupt object" "$M" --json sync C E
check "  the object is reported, from the source, as corrupt" \
    eval 'err_has "$BIG1: object not copied (source: object ${BIG1:0:12}" && err_has "failed verification"'
check "  JSON error line names it" \
    eval '[ "$(events error id error side | head -n1)" = "$BIG1	ECORRUPT	source" ]'
check "  it is not copied" eval '! "$M" -s E exists "$BIG1"'
check "  nor its name, which is reported too" \
    eval '! "$M" -s E names | grep -q big/one && err_has "big/one: name not copied"'
check "  the others are" eval '[ "$("$M" -s E ls | wc -l)" = 5 ] && [ "$("$M" -s E names | wc -l)" = 3 ]'
check "  summary: 2 errors" eval '[ "$(summary objects errors)" = "5	2" ]'
check "  E is sound" "$M" -s E verify

echo "# --- interrupted"
# The copy stops in its first file put (MINIDBX_TEST_PAUSE: the blob
# renamed, its record not yet committed) and gets SIGTERM there (a
# background job of a script ignores SIGINT). Later puts that reach the
# point are let through at once.
MINIDBX_TEST_PAUSE=put-renamed:"$T/pause" "$M" sync A INT >"$T/out" 2>"$T/err" &
copier=$!
check "the copy is paused in a put" wait_for_file "$T/pause.put-renamed"
kill -TERM "$copier"
for _ in $(seq 200); do
    rm -f "$T/pause.put-renamed"
    kill -0 "$copier" 2>/dev/null || break
    sleep 0.05
done
wait "$copier"
status=$?
check "  it dies of the signal, as the shell expects (status $status)" test "$status" = 143
check "  and says it was interrupted" err_has "sync: interrupted;"
check "  what it copied is whole" "$M" -s INT verify
check "  and not all of it" eval '[ "$("$M" -s INT ls | wc -l)" -lt 6 ] || [ -z "$("$M" -s INT names)" ]'
expect 0 "a re-run completes it" "$M" sync A INT
check "  INT equals A" same_stores A INT

echo "# --- progress on a terminal only"
if command -v script >/dev/null 2>&1; then
    expect 0 "sync with stderr on a terminal (script)" \
        script -qec "$M sync A TTY >/dev/null" /dev/null
    check "  draws objects, bytes, rate and ETA" eval 'out_has "objects 6/6" && out_has "/s" && out_has "ETA"'
    expect 0 "-q: no progress even on a terminal" script -qec "$M -q sync A TTY2 >/dev/null" /dev/null
    check "  nothing drawn" eval '! out_has objects'
else
    skip "progress on a terminal" "script(1) is missing"
fi

echo "# --- usage"
expect 2 "sync with one store" "$M" sync A
expect 2 "sync with three" "$M" sync A B C
expect 2 "sync A A" "$M" sync A A
expect 2 "push without a store" "$M" -s A push
expect 2 "-j 0" "$M" sync -j 0 A B
expect 2 "-j 65" "$M" sync -j 65 A B
expect 2 "-j x" "$M" sync -j x A B
expect 2 "a bad id or name" "$M" -s A push B /abs
expect 1 "a missing source" "$M" sync "$T/nothing" B
check "  says where" err_has "no store at $T/nothing"
expect 0 "help sync" "$M" help sync
check "  states the name rule" out_has "the source wins"
for cmd in push pull sync; do
    expect 0 "$cmd --help" "$M" "$cmd" --help
done

finish
