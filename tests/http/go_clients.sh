#!/bin/bash
# The old Go system's clients, unchanged: their 32-hex MD5 ids on /upload,
# /retrieve, /register, /get and /list (MD5 aliases, on by default), the
# shapes they parse (/upload's size, /health's JSON), an MD5 that is never
# trusted for the bytes, an MD5 collision, and the node with aliases off.
. "$(dirname "$0")/lib.sh"

md5() { md5sum "$1" | cut -c1-32; }
unhex() { printf "$(sed 's/../\\x&/g')"; }   # hex digits on stdin to bytes
json_field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p" "$T/body"; }

start_server "$T/store" || { not_ok "server starts"; finish; }
ok "server starts on a free port ($URL)"

head -c 50000 /dev/urandom >"$T/photo.jpg"    # over the inline threshold: a blob file
PHOTO=$(sha "$T/photo.jpg")
PHOTO_MD5=$(md5 "$T/photo.jpg")
UNKNOWN_MD5=$(printf 'not stored' | md5sum | cut -c1-32)

echo "# --- /upload answers the old id"
expect_code 200 "POST /upload" -F "file=@$T/photo.jpg" "$URL/upload"
check "  hash is the MD5 the old clients know" test "$(json_field hash)" = "$PHOTO_MD5"
check "  id is the SHA-256, size the bytes" \
    eval '[ "$(json_field id)" = "$PHOTO" ] && [ "$(json_field size)" = 50000 ]'
expect_code 200 "POST /upload of the same bytes again" -F "file=@$T/photo.jpg" "$URL/upload"
check "  the same MD5, created false" eval '[ "$(json_field hash)" = "$PHOTO_MD5" ] && body_has "\"created\":false"'

echo "# --- /retrieve by MD5 or SHA-256"
expect_code 200 "GET /retrieve?hash=MD5" "$URL/retrieve?hash=$PHOTO_MD5"
check "  the bytes" cmp -s "$T/body" "$T/photo.jpg"
expect_code 200 "GET /retrieve?hash=MD5 in upper case" "$URL/retrieve?hash=${PHOTO_MD5^^}"
expect_code 200 "GET /retrieve?hash=SHA-256 still works" "$URL/retrieve?hash=$PHOTO"
expect_code 404 "GET /retrieve of an unknown MD5: 404, as before" "$URL/retrieve?hash=$UNKNOWN_MD5"
expect_code 400 "GET /retrieve of 31 hex digits" "$URL/retrieve?hash=${PHOTO_MD5:1}"
check "  says what a hash is" body_has "64 hex digits"

echo "# --- /register, /get, /list with the old ids"
record="{\"hash\":\"$PHOTO_MD5\",\"name\":\"photo.jpg\",\"size\":50000,\"replicas\":[\"node1:8001\"]}"
expect_code 200 "POST /register with the MD5" -X POST --data "$record" "$URL/register"
check "  answers with it" test "$(json_field hash)" = "$PHOTO_MD5"
expect_code 200 "GET /get?hash=MD5" "$URL/get?hash=$PHOTO_MD5"
check "  is the record as registered" test "$(cat "$T/body")" = "$record"
expect_code 200 "GET /list" "$URL/list"
check "  holds the record" test "$(cat "$T/body")" = "[$record]"
expect_code 200 "the registered name points at the object" "$URL/v1/names/photo.jpg"
check "  (the SHA-256)" body_has "\"id\":\"$PHOTO\""
expect_code 404 "GET /get of an unknown MD5" "$URL/get?hash=$UNKNOWN_MD5"
expect_code 200 "POST /register of an MD5 not uploaded here (the old master's way)" -X POST \
    --data "{\"hash\":\"$UNKNOWN_MD5\",\"name\":\"elsewhere.bin\",\"size\":3,\"replicas\":[\"node2:8002\"]}" \
    "$URL/register"
expect_code 200 "  GET /get?hash= of it" "$URL/get?hash=$UNKNOWN_MD5"
check "  the record" body_has '"replicas":["node2:8002"]'

echo "# --- the aliases are the node's own names"
check "mdbx names does not list them" eval '! "$MDBX" -s "$URL" names | grep -q "^_go/"'
check "mdbx names -a does" eval '"$MDBX" -s "$URL" names -a | grep -qx "_go/md5/$PHOTO_MD5"'

echo "# --- an alias is set only as /upload sets it, even through /v1/names (a gateway's copies)"
printf 'other bytes\n' >"$T/other"
OTHER=$(sha "$T/other")
expect_code 201 "PUT /v1/objects of other bytes" -X PUT --data-binary @"$T/other" "$URL/v1/objects"
expect_code 400 "PUT /v1/names/_go/md5/MD5 of the photo to other bytes, with a later mtime" -X PUT \
    --data "{\"id\":\"$OTHER\",\"mtime_ns\":\"9000000000000000000\"}" "$URL/v1/names/_go/md5/$PHOTO_MD5"
expect_code 200 "  the alias still gives the photo" "$URL/retrieve?hash=$PHOTO_MD5"
check "  (its bytes)" cmp -s "$T/body" "$T/photo.jpg"
expect_code 400 "PUT /v1/names/_go/md5/MD5 to an object without that MD5" -X PUT \
    --data "{\"id\":\"$PHOTO\",\"mtime_ns\":\"1\"}" "$URL/v1/names/_go/md5/$(md5 "$T/other")"
check "  says the object's MD5" body_has "the object's MD5 is $PHOTO_MD5"
expect_code 200 "PUT /v1/names/_go/md5/MD5 with the object's own MD5 (a copy)" -X PUT \
    --data "{\"id\":\"$OTHER\",\"mtime_ns\":\"1\"}" "$URL/v1/names/_go/md5/$(md5 "$T/other")"
expect_code 200 "  the old id now finds it" "$URL/retrieve?hash=$(md5 "$T/other")"
expect_code 400 "PUT /v1/names/_go/md5/ without an mtime: the node's own" -X PUT \
    --data "{\"id\":\"$OTHER\"}" "$URL/v1/names/_go/md5/$(md5 "$T/other")"

echo "# --- an MD5 is never trusted for the bytes"
cp "$(blob_of "$PHOTO")" "$T/photo.saved"
flip "$(blob_of "$PHOTO")" 100
run curl -s -f -o "$T/body" "$URL/retrieve?hash=$PHOTO_MD5"
check "GET /retrieve?hash=MD5 of a corrupt copy does not complete" eval '[ "$status" != 0 ] && ! cmp -s "$T/body" "$T/photo.jpg"'
cp "$T/photo.saved" "$(blob_of "$PHOTO")"

echo "# --- an MD5 collision: the alias does not move"
# Two 128-byte blocks with one MD5 (Wang and Yu, 2004) and two SHA-256s.
printf '%s' d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70 | unhex >"$T/c1"
printf '%s' d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f8955ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5bd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70 | unhex >"$T/c2"
check "the two blocks share an MD5, not a SHA-256" \
    eval '[ "$(md5 "$T/c1")" = "$(md5 "$T/c2")" ] && [ "$(sha "$T/c1")" != "$(sha "$T/c2")" ]'
expect_code 200 "POST /upload of the first" -F "file=@$T/c1" "$URL/upload"
expect_code 409 "POST /upload of the second: 409" -F "file=@$T/c2" "$URL/upload"
check "  says why, gives its SHA-256" eval 'body_has "collision" && body_has "$(sha "$T/c2")"'
expect_code 409 "PUT /v1/names/_go/md5/MD5 to the second, with a later mtime: 409, an alias never moves" -X PUT \
    --data "{\"id\":\"$(sha "$T/c2")\",\"mtime_ns\":\"9000000000000000000\"}" "$URL/v1/names/_go/md5/$(md5 "$T/c1")"
expect_code 200 "GET /retrieve?hash=MD5 still gives the first" "$URL/retrieve?hash=$(md5 "$T/c1")"
check "  (its bytes)" cmp -s "$T/body" "$T/c1"

echo "# --- /health"
expect_code 200 "GET /health" "$URL/health"
check "  OK, as the Go nodes said it" test "$(cat "$T/body")" = OK
expect_code 200 "GET /health, Accept: application/json" -H "Accept: application/json" "$URL/health"
check "  the Go system's JSON" body_has '"status":"healthy"'
check "  as JSON" header_has "^Content-Type: application/json"
check "curl -f on /health succeeds" curl -sf -o /dev/null "$URL/health"
stop_server

echo "# --- --md5-aliases off"
start_server "$T/store2" --md5-aliases off || { not_ok "server starts with --md5-aliases off"; finish; }
expect_code 200 "POST /upload" -F "file=@$T/photo.jpg" "$URL/upload"
check "  hash is the SHA-256" test "$(json_field hash)" = "$PHOTO"
expect_code 400 "GET /retrieve?hash=MD5: not an id here" "$URL/retrieve?hash=$PHOTO_MD5"
check "  no alias was kept" eval '! "$MDBX" -s "$URL" names -a | grep -q "^_go/md5/"'
stop_server
expect 2 "--md5-aliases maybe: a usage error" "$MDBX" -s "$T/store2" serve --listen 127.0.0.1:0 --md5-aliases maybe
check "  names the option" err_has "md5-aliases"

echo "# --- mdbx import-go: an old node's data directory, its links kept"
OLD="$T/old-node"
mkdir -p "$OLD/sub"
for i in 1 2 3; do
    head -c $((i * 9000)) /dev/urandom >"$T/f$i"
    cp "$T/f$i" "$OLD/$(md5 "$T/f$i")"
done
mv "$OLD/$(md5 "$T/f3")" "$OLD/sub/$(md5 "$T/f3" | tr a-f A-F)"   # below DIR, in upper case
printf 'damaged' >"$OLD/$(printf 'the real bytes' | md5sum | cut -c1-32)"
printf 'notes' >"$OLD/README"
expect 3 "import-go of a directory with a damaged file" "$MDBX" -s "$T/imported" import-go "$OLD"
check "  one line per file imported: ID  MD5" eval '[ "$(wc -l <"$T/out")" = 3 ] &&
    out_has "$(sha "$T/f1")  $(md5 "$T/f1")" && out_has "$(sha "$T/f3")  $(md5 "$T/f3")"'
check "  says which file is damaged, and skips README" \
    eval 'err_has "its bytes have the MD5 $(printf damaged | md5sum | cut -c1-32), not the one it is named by" && err_has "README: not a file named by an MD5; skipped"'
check "  summary" err_has "3 imported, 0 already there, 1 skipped, 1 corrupt, 0 collisions, 0 failed"
check "  the damaged bytes were not stored" eval '! "$MDBX" -s "$T/imported" exists "$(sha256sum <<<"" | cut -c1-64)" >/dev/null &&
    [ "$("$MDBX" -s "$T/imported" ls | wc -l)" = 3 ]'
expect 3 "import-go again (--json)" "$MDBX" -s "$T/imported" --json import-go "$OLD"
check "  imports nothing twice: already, already, already" \
    eval '[ "$(grep -c "\"result\":\"already\"" "$T/out")" = 3 ] && out_has "\"imported\":0,\"already\":3"'
printf '%s' d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70 | unhex >"$T/c1"
mkdir -p "$T/old2" "$T/old3" && cp "$T/c1" "$T/old2/$(md5 "$T/c1")" && cp "$T/c2" "$T/old3/$(md5 "$T/c2")"
"$MDBX" -s "$T/imported" import-go "$T/old2" >/dev/null 2>&1
expect 4 "import-go of an MD5 collision" "$MDBX" -s "$T/imported" import-go "$T/old3"
check "  says so; the alias still names the first" \
    eval 'err_has "has this MD5 already (a collision)" && [ "$("$MDBX" -s "$T/imported" get "_go/md5/$(md5 "$T/c1")" | sha256sum | cut -c1-64)" = "$(sha "$T/c1")" ]'
expect 2 "import-go without DIR" "$MDBX" -s "$T/imported" import-go
expect 2 "import-go of a file" "$MDBX" -s "$T/imported" import-go "$T/f1"
expect 4 "import-go of a missing directory" "$MDBX" -s "$T/imported" import-go "$T/nosuch"
start_server "$T/imported" || { not_ok "server starts on the imported store"; finish; }
expect_code 200 "GET /retrieve?hash=MD5 of an imported file" "$URL/retrieve?hash=$(md5 "$T/f2")"
check "  its bytes" cmp -s "$T/body" "$T/f2"
expect_code 200 "  and of the one that was below DIR, in upper case" "$URL/retrieve?hash=$(md5 "$T/f3")"
check "  its bytes" cmp -s "$T/body" "$T/f3"
expect 2 "import-go into an http:// store is refused" "$MDBX" -s "$URL" import-go "$OLD"
check "  says to import into a local store" err_has "import into a local store (then serve it)"
stop_server

finish
