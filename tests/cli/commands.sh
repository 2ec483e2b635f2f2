#!/bin/bash
# commands.sh - every mdbx command and flag, run for real on temporary
# stores: output (text and --json, parsed back with cJSON), exit statuses,
# binary data through pipes, bad arguments, broken pipes, signals.
#
# Environment: MDBX (the binary), JSONQ and GEN_BYTES (helpers from
# tests/cli), COMPLETION (the bash completion file).
. "$(dirname "$0")/lib.sh"

M=$MDBX
: "${JSONQ:?}" "${GEN_BYTES:?}" "${COMPLETION:?}"
cd "$T" || exit 99
ZERO_ID=0000000000000000000000000000000000000000000000000000000000000000
EMPTY_ID=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
COMMANDS="init put get exists rm stat ls names name verify gc info version help"

sha() { sha256sum "$1" | cut -c1-64; }
count_objects() { "$M" ls | wc -l; }

echo "# --- usage, help, version"
expect 2 "no command: usage" "$M"
check "  usage on stderr, nothing on stdout" eval 'err_has "usage: mdbx" && out_empty'
expect 2 "unknown command" "$M" frobnicate
check "  says which, with usage, on stderr" eval 'err_has "unknown command '"'frobnicate'"'" && err_has "usage:" && out_empty'
expect 2 "unknown global option" "$M" --frob ls
expect 2 "--store without its argument" "$M" ls --store
expect 0 "help" "$M" help
for cmd in $COMMANDS; do
    check "  help lists $cmd" grep -q "^  $cmd " "$T/out"
done
expect 0 "-h" "$M" -h
for cmd in $COMMANDS cat; do
    expect 0 "$cmd --help" "$M" "$cmd" --help
    check "  prints the usage of $cmd on stdout" eval 'out_has "usage: mdbx" && err_empty'
done
expect 0 "help put" "$M" help put
check "  describes -r and --name" eval 'out_has "--recursive" && out_has "--name"'
expect 2 "help of an unknown command" "$M" help frob
expect 2 "unknown option of a command" "$M" put --bogus x
check "  names the option and the command's usage" eval 'err_has "'"'--bogus'"'" && err_has "usage: mdbx put"'
expect 2 "option missing its argument" "$M" get -o
expect 2 "extra argument" "$M" info extra
expect 0 "version" "$M" version
check "  names mdbx and the library" eval 'out_has "mdbx " && out_has "libminidbx "'
expect 0 "--version" "$M" --version
expect 0 "--json version" "$M" --json version
VERSIONS=$("$M" version | cut -d" " -f2 | tr "\n" "\t")
check "  JSON has both versions" eval '[ "$(json mdbx libminidbx)	" = "$VERSIONS" ]'

echo "# --- a missing store"
for args in ls names info gc verify "stat $ZERO_ID" "get $ZERO_ID" "exists $ZERO_ID" \
            "rm $ZERO_ID" "name rm x" "name set x $ZERO_ID"; do
    # shellcheck disable=SC2086
    expect 1 "$args on a missing store" "$M" $args
    check "  says how to create it, creates nothing" eval 'err_has "no store at $T/store" && err_has "mdbx init" && [ ! -e "$T/store" ]'
done
expect 1 "-s names the store in the hint" "$M" -s "$T/other" ls
check "  hint has -s" err_has "mdbx -s $T/other init"
expect 1 "-s HOST:PORT without http:// (a missing store)" "$M" -s 127.0.0.1:1 ls
check "  suggests http://HOST:PORT, not init" eval 'err_has "for a node, write http://127.0.0.1:1" && ! err_has "init"'
expect 4 "init where no directory can be made: an error of its own, not \"not found\"" "$M" -s /proc/minidbx-nope init
check "  one clear sentence, no nested errno words" \
    eval 'err_has "cannot create a store at /proc/minidbx-nope: no directory can be made there" && ! err_has "("'
expect 0 "init" "$M" init
check "  says it created the store" out_has "created a store at $T/store"
expect 0 "init again is harmless" "$M" --json init
check "  JSON: created false, location" eval '[ "$(json created location)" = "false	$T/store" ]'
expect 0 "init -q prints nothing" "$M" -q -s "$T/quiet" init
check "  silent" eval 'out_empty && err_empty && [ -d "$T/quiet" ]'

echo "# --- where the store is"
echo where >where.txt
expect 0 "XDG_DATA_HOME default (put creates parents)" env -u MINIDBX_STORE XDG_DATA_HOME="$T/xdg/data" "$M" put where.txt
check "  store in \$XDG_DATA_HOME/minidbx" eval '"$M" -s "$T/xdg/data/minidbx" exists "$(sha where.txt)"'
expect 0 "HOME default" env -u MINIDBX_STORE -u XDG_DATA_HOME HOME="$T/home" "$M" put where.txt
check "  store in ~/.local/share/minidbx" eval '"$M" -s "$T/home/.local/share/minidbx" exists "$(sha where.txt)"'
expect 0 "relative XDG_DATA_HOME is ignored" env -u MINIDBX_STORE XDG_DATA_HOME=rel HOME="$T/home2" "$M" put where.txt
check "  fell back to HOME" test -d "$T/home2/.local/share/minidbx"
expect 1 "MINIDBX_STORE beats XDG" env XDG_DATA_HOME="$T/xdg/data" "$M" exists "$(sha where.txt)"
expect 0 "--store beats MINIDBX_STORE" "$M" --store "$T/xdg/data/minidbx" exists "$(sha where.txt)"
expect 0 "--store after the command" "$M" exists "$(sha where.txt)" -s "$T/xdg/data/minidbx"

echo "# --- put"
printf 'hello\n' >hello.txt
printf 'world\n' >world.txt
expect 0 "put FILE" "$M" put hello.txt
check "  prints its SHA-256" out_is "$(sha hello.txt)"
HELLO=$(sha hello.txt)
WORLD=$(sha world.txt)
expect 0 "put FILE - FILE (stdin in the middle)" sh -c '"$0" put hello.txt - world.txt <world.txt' "$M"
check "  one id per line, in argument order" out_is "$(printf '%s\n%s\n%s' "$HELLO" "$WORLD" "$WORLD")"
expect 0 "put the same bytes again" "$M" put hello.txt
check "  same id (stored once)" eval 'out_is "$HELLO" && [ "$(count_objects)" = 2 ]'
expect 0 "put -n NAME" "$M" put -n greetings/hello.txt hello.txt
check "  prints the id" out_is "$HELLO"
expect 0 "put --name=NAME --json" "$M" put --json --name=greetings/world.txt world.txt
check "  JSON: file, id, size, name" eval '[ "$(json file id size name)" = "world.txt	$WORLD	6	greetings/world.txt" ]'
expect 4 "put -n NAME that points at other bytes" "$M" put -n greetings/hello.txt world.txt
check "  says where it points, suggests --force" \
    eval 'err_has "put world.txt: greetings/hello.txt already points at $HELLO; not moved" && err_has "--force"'
check "  the name is not moved" eval '[ "$("$M" get greetings/hello.txt)" = hello ]'
expect 4 "  --json: a record with code EEXISTS" "$M" --json put -n greetings/hello.txt world.txt
check "  (arg, code)" eval '[ "$(json arg code)" = "world.txt	EEXISTS" ]'
expect 0 "put -n NAME of the bytes it points at already" "$M" put -n greetings/hello.txt hello.txt
expect 4 "put -n NAME - (stdin cannot be hashed first)" sh -c '"$0" put -n greetings/hello.txt - <hello.txt' "$M"
expect 0 "put -f -n NAME moves it" "$M" put -f -n greetings/hello.txt world.txt
check "  now the other bytes" eval '[ "$("$M" get greetings/hello.txt)" = world ]'
expect 0 "put --force -n NAME - moves it back" sh -c '"$0" put --force -n greetings/hello.txt - <hello.txt' "$M"
check "  back" eval '[ "$("$M" get greetings/hello.txt)" = hello ]'
# The check and the put are one step: a name set by another writer after
# put -n looked (it found the name free) is not moved either. The put reads
# standard input from a pipe the test holds open: once it waits there, it
# has looked; then the name is set elsewhere, then the bytes come.
mkfifo "$T/slow-stdin"
exec 7<>"$T/slow-stdin"
"$M" put -n race/name - <"$T/slow-stdin" >"$T/race.out" 2>"$T/race.err" 7>&- &
racer=$!
for _ in $(seq 400); do # until it blocks reading standard input (20 s at most)
    case "$(cat /proc/$racer/wchan 2>/dev/null)" in *pipe_read*|*pipe_wait*) break ;; esac
    sleep 0.05
done
expect 0 "  another writer sets the name meanwhile" "$M" name set race/name "$HELLO"
printf 'late bytes' >&7
exec 7>&-
wait "$racer"
racer_status=$?
check "put -n NAME - set meanwhile elsewhere: refused (exit $racer_status)" test "$racer_status" = 4
check "  says where it points" grep -qF "race/name already points at $HELLO; not moved" "$T/race.err"
check "  the name is not moved" eval '[ "$("$M" get race/name)" = hello ]'
check "  the bytes were not stored" eval '! "$M" exists "$(printf "late bytes" | sha256sum | cut -c1-64)" >/dev/null'
"$M" name rm race/name >/dev/null
expect 2 "put -n with two files" "$M" put -n x hello.txt world.txt
expect 2 "put -n with an invalid name" "$M" put -n ../up hello.txt
expect 2 "put with no FILE" "$M" put
expect 0 "put an empty stdin" sh -c '"$0" put - </dev/null' "$M"
check "  the id of no bytes" out_is "$EMPTY_ID"

echo "# --- binary data through pipes"
"$GEN_BYTES" 256 ramp >all256.bin
check "test data has all 256 byte values" eval '[ "$(od -An -v -tu1 all256.bin | tr -s " " "\n" | sed /^$/d | sort -un | wc -l)" = 256 ]'
expect 0 "put - (all 256 byte values on stdin)" sh -c '"$0" put - <all256.bin' "$M"
check "  id is their SHA-256" out_is "$(sha all256.bin)"
run sh -c '"$0" get "$1" >all256.out' "$M" "$(sha all256.bin)"
check "get to stdout gives the same 256 bytes" cmp all256.bin all256.out
"$GEN_BYTES" 3M ramp >ramp3m.bin
run sh -c '"$0" put - <ramp3m.bin' "$M"
RAMP=$(cat "$T/out")
check "3 MiB of all byte values through put - / get | (a file object)" \
    eval '[ "$RAMP" = "$(sha ramp3m.bin)" ] && "$M" get "$RAMP" | cmp - ramp3m.bin'
expect 0 "cat (alias of get) two objects" "$M" cat "$HELLO" greetings/world.txt
check "  concatenated in order" out_is "$(printf 'hello\nworld')"

echo "# --- get -o"
expect 0 "get -o FILE" "$M" get "$HELLO" -o got.txt
check "  the file has the bytes" cmp hello.txt got.txt
check "  mode from the umask (0666 & ~$(umask))" [ "$(stat -c %a got.txt)" = "$(printf '%o' $((0666 & ~$(umask))))" ]
expect 0 "get -o replaces a file" "$M" get greetings/world.txt --output got.txt
check "  with the new bytes" cmp world.txt got.txt
expect 1 "get -o of a missing object" "$M" get "$ZERO_ID" -o got.txt
check "  leaves the old file and no temp file" eval 'cmp -s world.txt got.txt && [ "$(ls -A | grep -c mdbx-)" = 0 ]'
expect 4 "get -o into a missing directory" "$M" get "$HELLO" -o nodir/x
check "  names the file" err_has "nodir/x"
expect 0 "get -o /dev/null (a device is written, not replaced)" "$M" get "$HELLO" -o /dev/null
check "  /dev/null is still a device" test -c /dev/null
expect 0 "get -o - is stdout" "$M" get "$HELLO" -o -
check "  the bytes" out_is hello
expect 0 "get --json -o" "$M" --json get "$HELLO" -o got.txt
check "  JSON: id size file" eval '[ "$(json id size file)" = "$HELLO	6	got.txt" ]'
expect 2 "get --json without -o" "$M" --json get "$HELLO"
expect 2 "get -o with two objects" "$M" get -o x "$HELLO" "$WORLD"
expect 2 "get with nothing" "$M" get

echo "# --- bad ids and names"
expect 1 "get an unknown id" "$M" get "$ZERO_ID"
check "  mdbx: get ID: object not found" err_has "mdbx: get $ZERO_ID: object not found"
expect 0 "an id in upper case" "$M" get "$(echo "$HELLO" | tr a-f A-F)"
expect 1 "63 hex digits are a name, not found" "$M" get "${HELLO:0:63}"
check "  says ids are 64 hex digits, this has 63" err_has "no such name, and not an id: ids are 64 hex digits, this has 63"
expect 1 "65 hex digits: a name, not found" "$M" stat "${HELLO}0"
check "  says this has 65" err_has "this has 65"
expect 1 "a short word of hex digits is only a name" "$M" get cafe
check "  name not found" err_has "name not found"
for bad in "../etc/passwd" "/abs/path" "a//b" "a/./b" "" "$(printf 'tab\there')" "$(head -c 600 /dev/zero | tr '\0' a)"; do
    expect 2 "not an id nor a valid name: '${bad:0:20}'" "$M" get "$bad"
    check "  says so" err_has "not an id (64 hex digits) or a valid name"
done
expect 2 "name set with a bad name" "$M" name set "../x" "$HELLO"
expect 2 "name rm with a bad name" "$M" name rm "/x"
expect 2 "rm with a bad argument" "$M" rm "a//b"

echo "# --- exists"
expect 0 "exists ID NAME" "$M" exists "$HELLO" greetings/hello.txt
check "  prints nothing" out_empty
expect 1 "exists with missing ones" "$M" exists "$HELLO" "$ZERO_ID" no/such greetings/world.txt
check "  prints the missing, in order" out_is "$(printf '%s\nno/such' "$ZERO_ID")"
expect 1 "exists --json" "$M" exists --json "$HELLO" no/such
check "  JSON: one record per argument" eval '[ "$(json arg id exists | tr "\t\n" "  ")" = "$HELLO $HELLO true no/such null false " ]'
expect 2 "exists with a bad argument" "$M" exists "$HELLO" "../x"
expect 2 "exists with nothing" "$M" exists

echo "# --- stat"
expect 0 "stat ID" "$M" stat "$HELLO"
check "  id, size, inline storage, refs" eval 'out_has "id:      $HELLO" && out_has "size:    6" && out_has "storage: inline" && out_has "refs:    1" && out_has "created: "'
expect 0 "stat NAME" "$M" stat greetings/world.txt
check "  with the name" eval 'out_has "id:      $WORLD" && out_has "name:    greetings/world.txt"'
expect 0 "stat --json (a file object)" "$M" stat --json "$RAMP"
check "  JSON: size, inline false, refs 0" eval '[ "$(json id size inline refs)" = "$RAMP	3145728	false	0" ]'
expect 0 "stat --json NAME" "$M" --json stat greetings/hello.txt
check "  JSON: name" eval '[ "$(json name)" = greetings/hello.txt ]'
expect 1 "stat a missing object" "$M" stat "$ZERO_ID"
check "  mdbx: stat ID: object not found" err_has "mdbx: stat $ZERO_ID: object not found"

echo "# --- ls"
for i in $(seq 1 300); do echo "small $i" >"small.$i"; done
expect 0 "put 300 files at once" "$M" put small.*
check "  300 ids" out_lines 300
OBJECTS=$(count_objects)
expect 0 "ls (more than one page)" "$M" ls
check "  every object once, sorted, ID SIZE" eval '[ "$(wc -l <"$T/out")" = 305 ] && [ "$(cut -d" " -f1 "$T/out" | sort -u | wc -l)" = 305 ] && sort -c "$T/out" && grep -q "^$HELLO 6$" "$T/out"'
expect 0 "ls -l" "$M" ls -l
check "  ID SIZE REFS STORAGE CREATED" grep -Eq "^$RAMP 3145728 0 file [0-9]{4}-[0-9]{2}-[0-9]{2}T" "$T/out"
expect 0 "ls --json" "$M" ls --json
check "  305 JSON objects with the sizes" eval '[ "$(json id size | grep -c .)" = 305 ] && json id size | grep -qx "$HELLO	6"'
expect 2 "ls with an argument" "$M" ls extra

echo "# --- put -r and names"
mkdir -p tree/sub/deep tree/empty
echo one >tree/one
echo two >tree/sub/two
echo three >tree/sub/deep/three
ln -s one tree/link
mkfifo tree/fifo
expect 2 "put a directory without -r" "$M" put tree
check "  says to use -r" err_has "is a directory (use -r"
expect 0 "put -r DIR/" "$M" put -r tree/
check "  ID  NAME lines, relative names, sorted" out_is "$(printf '%s  one\n%s  sub/deep/three\n%s  sub/two' "$(sha tree/one)" "$(sha tree/sub/deep/three)" "$(sha tree/sub/two)")"
check "  symlink and fifo skipped with a warning" eval 'err_has "tree/link: not a regular file; skipped" && err_has "tree/fifo: not a regular file; skipped"'
expect 0 "put -r -q -n PREFIX --json" "$M" put -r -q -n backup/t --json tree
check "  names under the prefix; no warnings" eval '[ "$(json name | tr "\n" " ")" = "backup/t/one backup/t/sub/deep/three backup/t/sub/two " ] && err_empty'
touch "tree/$(printf 'bad\001name')"
expect 2 "put -r with a file that cannot be a name" "$M" put -r tree
check "  the others are still stored" eval 'out_lines 3 && err_has "not a valid name"'
rm -f tree/*name
mkdir many
for i in $(seq 1 200); do echo "n $i" >"many/f$i"; done
run "$M" put -q -r -n many many
expect 0 "names (more than one page)" "$M" names
check "  all names, sorted" eval '[ "$(wc -l <"$T/out")" = "$(( 200 + 3 + 3 + 2 ))" ] && LC_ALL=C sort -c "$T/out" && out_has sub/deep/three && out_has greetings/hello.txt'
expect 0 "names PREFIX" "$M" names backup/
check "  only those" out_is "$(printf 'backup/t/one\nbackup/t/sub/deep/three\nbackup/t/sub/two')"
expect 0 "names -l PREFIX" "$M" names -l greetings/h
check "  ID SIZE TIME NAME" grep -Eq "^$HELLO 6 [0-9]{4}-[0-9-]+T[0-9:.]+Z greetings/hello.txt$" "$T/out"
expect 0 "names --json" "$M" names --json greetings/
check "  JSON: name id size" eval '[ "$(json name id size | head -1)" = "greetings/hello.txt	$HELLO	6" ]'
expect 0 "names with no match" "$M" names nothing/
check "  prints nothing" out_empty
expect 2 "names with two prefixes" "$M" names a b

echo "# --- name set / name rm"
expect 0 "name set NAME ID" "$M" name set alias/h "$HELLO"
check "  points at it" eval '[ "$("$M" get alias/h)" = hello ]'
expect 0 "name set NAME NAME (target by name), --json" "$M" --json name set alias/w greetings/world.txt
check "  JSON: name id" eval '[ "$(json name id)" = "alias/w	$WORLD" ]'
expect 4 "name set does not move a name" "$M" name set alias/h "$WORLD"
check "  says where it points, suggests --force" \
    eval 'err_has "mdbx: name alias/h: already points at $HELLO; not moved (use --force to move it)"'
check "  unchanged" eval '[ "$("$M" get alias/h)" = hello ]'
expect 0 "name set to the object it points at already" "$M" name set alias/h "$HELLO"
expect 0 "name set --force moves it" "$M" name set --force alias/h "$WORLD"
check "  now the other object" eval '[ "$("$M" get alias/h)" = world ]'
expect 1 "name set to a missing object" "$M" name set alias/x "$ZERO_ID"
expect 2 "name set with one argument" "$M" name set alias/x
expect 0 "name rm NAME NAME --json" "$M" name rm --json alias/h alias/w
check "  JSON and names gone" eval '[ "$(json removed | tr "\n" " ")" = "true true " ] && [ -z "$("$M" names alias/)" ]'
expect 1 "name rm a missing name" "$M" name rm alias/h
check "  says name not found" err_has "mdbx: name alias/h: name not found"
expect 0 "the object stays" "$M" exists "$WORLD"
expect 2 "name without subcommand" "$M" name
expect 2 "name with an unknown subcommand" "$M" name frob x

echo "# --- rm"
"$M" name set keep/hello "$HELLO" >/dev/null
expect 4 "rm ID of an object names point at" "$M" rm "$HELLO"
check "  lists the names, suggests --cascade" \
    eval 'err_has "not deleted: greetings/hello.txt, keep/hello point at it" && err_has "--cascade"'
check "  still there" "$M" exists "$HELLO"
expect 0 "rm NAME while another name holds its object" "$M" rm greetings/hello.txt
check "  the name is gone" eval '[ -z "$("$M" names greetings/hello)" ]'
check "  the object stays, and rm says which name holds it" \
    eval '"$M" exists "$HELLO" && err_has "mdbx: rm greetings/hello.txt: name removed; the object stays: keep/hello points at it"'
expect 0 "rm NAME, the object's last name, --json" "$M" --json rm keep/hello
check "  JSON: id, deleted, name_removed" eval '[ "$(json id deleted name_removed)" = "$HELLO	true	keep/hello" ]'
check "  name and object gone" eval '! "$M" exists "$HELLO" && [ -z "$("$M" names keep/)" ]'
"$M" put -n greetings/hello.txt hello.txt >/dev/null && "$M" name set keep/hello "$HELLO" >/dev/null
expect 0 "rm --cascade NAME" "$M" rm --cascade greetings/hello.txt
check "  object and all its names gone" \
    eval '! "$M" exists "$HELLO" && [ -z "$("$M" names greetings/hello)" ] && [ -z "$("$M" names keep/)" ]'
expect 0 "rm ID (no names), --json" "$M" rm --json "$RAMP"
check "  JSON: deleted" eval '[ "$(json id deleted)" = "$RAMP	true" ]'
expect 1 "rm it again" "$M" rm "$RAMP"
check "  mdbx: rm ID: object not found" err_has "mdbx: rm $RAMP: object not found"
expect 2 "rm with nothing" "$M" rm

echo "# --- binary bytes and a terminal (script(1) gives mdbx one)"
printf 'zq\000xv' >binary.dat
BINARY=$("$M" put binary.dat)
on_tty() { script -qec "$*" /dev/null >"$T/out" 2>&1; status=$?; }
on_tty "$M" get "$BINARY"
check "get of binary bytes to a terminal is refused (exit 2)" eval '[ "$status" = 2 ]'
check "  says what to do, writes none of them" \
    eval 'out_has "binary output can mess up your terminal: use -o FILE, redirect it, or --force" && ! out_has zq'
on_tty "$M" get -f "$BINARY"
check "get -f writes them (exit 0)" eval '[ "$status" = 0 ] && out_has zq'
on_tty "$M" get -o - "$BINARY"
check "get -o - writes them (exit 0)" eval '[ "$status" = 0 ] && out_has zq'
on_tty "$M" get "$WORLD"
check "get of text to a terminal is fine" eval '[ "$status" = 0 ] && out_has world'
check "get of binary bytes into a pipe is not refused" eval '"$M" get "$BINARY" | cmp -s - binary.dat'

echo "# --- names hides the old system's records"
"$M" name set _go/register/x "$WORLD" >/dev/null
check "names does not list _go/ records" eval '"$M" names >"$T/out" && [ -s "$T/out" ] && ! grep -q "^_go/" "$T/out"'
check "names -a lists them" eval '"$M" names -a | grep -qx "_go/register/x"'
check "names _go/ lists them" eval '"$M" names _go/ | grep -qx "_go/register/x"'
"$M" name rm _go/register/x >/dev/null

echo "# --- gc, info"
expect 0 "info" "$M" info
check "  location, backend, counts" eval 'out_has "location:         $T/store" && out_has "backend:          local" && out_has "objects:" && out_has "inline threshold:"'
expect 0 "info --json" "$M" --json info
check "  JSON objects = ls, names = names" eval '[ "$(json objects)" = "$(count_objects)" ] && [ "$(json names)" = "$("$M" names | wc -l)" ] && [ "$(json backend)" = local ]'
BEFORE=$(count_objects)
UNNAMED=$(( BEFORE - $("$M" names -l | cut -d" " -f1 | sort -u | wc -l) ))
expect 0 "gc --json (default grace: keeps what was just put)" "$M" gc --json
check "  removed nothing" eval '[ "$(json objects_removed)" = 0 ] && [ "$(count_objects)" = "$BEFORE" ]'
expect 0 "gc --older-than 0 --json" "$M" gc --older-than 0 --json
check "  removed the $UNNAMED unnamed objects, one record each" eval '[ "$(tail -n1 "$T/out" | "$JSONQ" objects_removed)" = "$UNNAMED" ] && [ "$(count_objects)" = $(( BEFORE - UNNAMED )) ] && [ "$(wc -l <"$T/out")" = $(( UNNAMED + 1 )) ]'
check "  named ones stay" eval '"$M" exists greetings/world.txt many/f1'
expect 0 "gc again" "$M" gc --older-than 0
check "  removed 0 objects" out_has "removed 0 objects"

echo "# --- verify"
expect 0 "verify a clean store" "$M" verify
check "  summary with 0 problems" out_has ": 0 problems, 0 repaired"
"$GEN_BYTES" 1M 7 >blob.bin
BLOB=$("$M" put -n blob blob.bin)
expect 0 "verify --json ID" "$M" verify --json "$BLOB"
check "  JSON summary: 1 object, 1 MiB" eval '[ "$(json objects_checked bytes_checked problems)" = "1	1048576	0" ]'
BLOB_FILE=$(find "$T/store" -type f -name "$BLOB*" | head -1)
if [ -n "$BLOB_FILE" ]; then
    printf 'X' | dd of="$BLOB_FILE" bs=1 seek=1000 conv=notrunc status=none
    expect 3 "get a corrupted object" "$M" get blob -o blob.out
    check "  no output file left" eval '[ ! -e blob.out ] && [ "$(ls -A | grep -c mdbx-)" = 0 ]'
    expect 3 "verify finds the corruption" "$M" verify
    check "  corrupt ID line" out_has "corrupt $BLOB"
    expect 0 "verify --repair" "$M" verify --repair
    check "  repaired" out_has "(repaired)"
    check "  says which name it removed" out_has "name removed  blob  (pointed at $BLOB)"
    check "  and counts it" out_has " 1 repaired, 1 names removed"
    expect 0 "verify after repair" "$M" verify
    expect 1 "the corrupt object is gone" "$M" exists "$BLOB"
    "$M" put -n blob blob.bin >/dev/null && "$M" name set blob2 "$BLOB" >/dev/null
    printf 'X' | dd of="$BLOB_FILE" bs=1 seek=1000 conv=notrunc status=none
    expect 0 "verify --repair --json" "$M" verify --repair --json
    check "  one name_removed record per name" eval '[ "$(grep name_removed "$T/out" | "$JSONQ" name id repaired | sort | tr "\t\n" ",;")" = "blob,$BLOB,true;blob2,$BLOB,true;" ]'
    check "  summary: 1 problem, 2 names removed" eval '[ "$(tail -n1 "$T/out" | "$JSONQ" problems names_removed)" = "1	2" ]'
else
    not_ok "find the blob file of a 1 MiB object under $T/store"
fi
expect 2 "verify a bad argument" "$M" verify "../x"
STALE="$T/store/tmp/999999999-1-1.tmp" # no such pid: a writer that died
echo partial >"$STALE"
expect 3 "verify (read-only) reports a dead writer's temp file" "$M" verify
check "  a temp line, the file left alone" eval 'out_has "temp -: $STALE" && [ -e "$STALE" ]'
expect 0 "verify --repair removes it" "$M" verify --repair
check "  gone" eval '[ ! -e "$STALE" ]'

echo "# --- put -n while gc runs (held at the library's test-only pause point)"
# Poll (bounded) for a condition; 1 when it never held.
await() { for _ in $(seq 1000); do eval "$1" && return 0; sleep 0.01; done; return 1; }
echo "held $$ $RANDOM" >held.txt
MINIDBX_TEST_PAUSE="put-before-name:$T/pause" "$M" put -n held/name held.txt >"$T/held.out" 2>&1 &
PUT_PID=$!
check "put -n stops between its put and its name" await '[ -e "$T/pause.put-before-name" ]'
"$M" gc --older-than 0 >"$T/gc.out" 2>&1 &
GC_PID=$!
check "  a gc started meanwhile waits for it" await 'grep -q -- "-> FLOCK *[A-Z]* *[A-Z]* $GC_PID " /proc/locks'
rm -f "$T/pause.put-before-name"
wait $PUT_PID
PUT_STATUS=$?
wait $GC_PID
GC_STATUS=$?
check "  put -n succeeded, gc too" eval '[ "$PUT_STATUS" = 0 ] && [ "$GC_STATUS" = 0 ]'
expect 0 "  the name resolves to the bytes" "$M" get held/name
check "  the same bytes" eval 'cmp -s "$T/out" held.txt'

echo "# --- unreadable input files"
echo secret >secret.txt
chmod 000 secret.txt
if [ "$(id -u)" = 0 ]; then
    skip "put a file without read permission" "running as root, chmod 000 does not stop reads"
else
    expect 4 "put a file without read permission" "$M" put secret.txt
    check "  names the file and the reason" err_has "mdbx: put secret.txt: Permission denied"
fi
N=$(count_objects)
expect 4 "put a file whose read fails (/proc/self/mem: EIO, even for root)" "$M" put /proc/self/mem
check "  names it, stores nothing" eval 'err_has "put /proc/self/mem: Input/output error" && [ "$(count_objects)" = "$N" ]'
expect 4 "put a missing file" "$M" put hello.txt nosuch.txt world.txt
check "  the others still stored, in order" eval 'out_is "$(printf "%s\n%s" "$HELLO" "$WORLD")" && err_has "put nosuch.txt: No such file or directory"'
expect 4 "put --json with a missing file" "$M" --json put hello.txt nosuch.txt world.txt
check "  a record per argument, in order: the failure's names it and its code" \
    eval '[ "$(json file arg code | sed "s/<missing>//g" | tr -d "\t")" = "$(printf "hello.txt\nnosuch.txtENOTFOUND\nworld.txt")" ]'
expect 4 "put a path through a file" "$M" put hello.txt/x
check "  Not a directory" err_has "Not a directory"

echo "# --- unwritable stores"
echo x >plainfile
expect 2 "a store below a regular file" "$M" -s "$T/plainfile/store" put hello.txt
check "  names the store" err_has "$T/plainfile/store"
check "  in one plain line, no brackets" eval '[ "$(cat "$T/err")" = "mdbx: put $T/plainfile/store: Not a directory" ]'
expect 2 "a store that is a regular file" "$M" -s "$T/plainfile" ls
check "  says what it is, the path once, no brackets" \
    eval '[ "$(cat "$T/err")" = "mdbx: ls $T/plainfile: exists and is not a minidbx store: not a directory" ]'
run "$M" -s /proc/mdbx-cli-test put hello.txt
check "a store in /proc cannot be created (status $status)" eval '[ "$status" = 1 ] || [ "$status" = 4 ]'
check "  names it" err_has "/proc/mdbx-cli-test"
mkdir notastore && echo x >notastore/file
expect 2 "a non-empty directory that is not a store" "$M" -s notastore put hello.txt
check "  left untouched" eval '[ "$(ls -A notastore)" = file ]'
"$M" -q -s "$T/ro" put hello.txt >/dev/null
chmod -R a-w "$T/ro"
if [ "$(id -u)" = 0 ]; then
    skip "put into a read-only store directory" "running as root, file modes do not stop writes"
else
    expect 4 "put into a read-only store directory" "$M" -s "$T/ro" put world.txt
    check "  names the store or the object" eval 'err_has "$T/ro" || err_has world.txt'
    expect 0 "reads still work on it" "$M" -s "$T/ro" get "$HELLO"
fi
chmod -R u+w "$T/ro"

echo "# --- closed and full stdout"
"$GEN_BYTES" 20M 3 >big20.bin
BIG=$("$M" put -n big20 big20.bin)
"$M" get "$BIG" 2>"$T/err" | head -c1 >/dev/null
st=${PIPESTATUS[0]}
check "get BIG | head -c1: quiet exit 0 (got $st)" eval '[ "$st" = 0 ] && err_empty'
"$M" ls 2>"$T/err" | head -n1 >/dev/null
st=${PIPESTATUS[0]}
check "ls | head -n1: exit 0, nothing on stderr (got $st)" eval '[ "$st" = 0 ] && err_empty'
expect 4 "get > /dev/full" sh -c '"$0" get "$1" >/dev/full' "$M" "$BIG"
check "  says no space" err_has "No space left on device"
expect 4 "ls > /dev/full" sh -c '"$0" ls >/dev/full' "$M"

echo "# --- progress"
expect 0 "put 20 MiB with stderr not a terminal" "$M" put big20.bin
check "  no progress on stderr" err_empty
if command -v script >/dev/null 2>&1; then
    script -qec "'$M' put big20.bin" /dev/null >"$T/tty" 2>&1
    check "put 20 MiB on a terminal shows progress (bytes, rate)" grep -q "put big20.bin: .*MiB.*/s" "$T/tty"
    script -qec "'$M' -q put big20.bin" /dev/null >"$T/tty" 2>&1
    check "  not with -q" eval '! grep -q "MiB/s" "$T/tty"'
    script -qec "'$M' put hello.txt" /dev/null >"$T/tty" 2>&1
    check "  not for a small file" eval '! grep -q "/s" "$T/tty"'
else
    skip "progress on a terminal" "script(1) is not installed"
fi

echo "# --- signals during put"
N=$(count_objects)
set -m # own process group, so SIGINT is not ignored in the background
for sig in INT TERM; do
    rm -f fifo
    mkfifo fifo
    "$M" put - <fifo 2>"$T/err" &
    pid=$!
    exec 7>fifo
    "$GEN_BYTES" 3M 9 >&7
    sleep 0.5
    kill -"$sig" "$pid"
    wait "$pid"
    st=$?
    exec 7>&-
    check "SIG$sig during put: dies by it (status $st), says nothing was stored" \
        eval '[ "$st" = $((128 + $(kill -l "$sig"))) ] && err_has "interrupted; nothing was stored"'
    check "  no object added, nothing left over" eval '[ "$(count_objects)" = "$N" ] && "$M" verify >/dev/null'
done
set +m

echo "# --- bash completion"
complete_words() { PATH="$(dirname "$M"):$PATH" bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _mdbx; echo "${COMPREPLY[*]}"' _ "$COMPLETION" "$@"; }
check "completion file parses" bash -n "$COMPLETION"
check "completes commands" eval '[ "$(complete_words mdbx ge)" = get ]'
check "completes options of put" eval 'complete_words mdbx put --r | grep -q -- --recursive'
check "completes names from the store given with -s" eval 'complete_words mdbx -s "$T/store" get greetings/ | grep -q greetings/world.txt'
check "completes name subcommands" eval '[ "$(complete_words mdbx name s)" = set ]'

finish
