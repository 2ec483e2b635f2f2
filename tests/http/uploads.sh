#!/bin/bash
# Uploads: whether an upload created its object comes from the store's own
# commit, so of many clients uploading the same new bytes at once exactly
# one hears 201 and all hear 2xx; a claimed id that the bytes do not hash to
# is ECORRUPT; the object size limit is the library's, named ETOOBIG.
. "$(dirname "$0")/lib.sh"

CLIENTS=16
ROUNDS=5

# race_uploads CURL-ARGS...: CLIENTS curl processes send the same request
# at once (a FIFO holds them until all are started); one status per line
# in $T/codes, the replies in $T/reply.N.
race_uploads()
{
    local i pids=()
    rm -f "$T/go" "$T/code".* "$T/reply".*
    mkfifo "$T/go"
    # held open (read-write: no wait) until every client has its line, so
    # that a client that opens the FIFO late still finds a writer and its
    # line, instead of waiting forever for a writer that has come and gone
    exec 9<>"$T/go"
    for i in $(seq "$CLIENTS"); do
        (read -r _ <"$T/go"
         curl -s -o "$T/reply.$i" -w '%{http_code}\n' "$@" >"$T/code.$i") 9>&- &
        pids+=($!)
    done
    # one line per client releases them all at once
    printf '%*s' "$CLIENTS" "" | tr ' ' '\n' >&9
    wait "${pids[@]}" # not the server, also a child of this shell
    exec 9>&-
    cat "$T/code".* >"$T/codes"
}

# check_race ROUND WHAT [CREATED_STATUS]: exactly one CREATED_STATUS (201)
# and one "created":true, the others 200 and "created":false.
check_race()
{
    local created ok_200 all said_created said_not
    created=$(grep -c "^${3:-201}\$" "$T/codes")
    ok_200=$(grep -c '^200$' "$T/codes")
    all=$(wc -l <"$T/codes")
    said_created=$(grep -l '"created":true' "$T/reply".* | wc -l)
    said_not=$(grep -l '"created":false' "$T/reply".* | wc -l)
    if [ "${3:-201}" = 200 ]; then
        check "$2, round $1: $CLIENTS clients, all 200 ($ok_200 of $all)" test "$ok_200" = "$CLIENTS"
    else
        check "$2, round $1: $CLIENTS clients, one 201 ($created), the rest 200 ($ok_200 of $all)" \
            test "$created" = 1 -a "$ok_200" = $((CLIENTS - 1)) -a "$all" = "$CLIENTS"
    fi
    check "  ... one reply says created ($said_created), the others not ($said_not)" \
        test "$said_created" = 1 -a "$said_not" = $((CLIENTS - 1))
}

start_server "$T/store" --threads 4 || { not_ok "server starts"; finish; }
for round in $(seq "$ROUNDS"); do
    # new bytes each round, some inline, some in a blob file
    head -c $((round % 2 ? 300 : 200000)) /dev/urandom >"$T/same"
    race_uploads -X PUT --data-binary @"$T/same" "$URL/v1/objects"
    check_race "$round" "PUT /v1/objects"
    expect_code 200 "  ... and the object is there" "$URL/v1/objects/$(sha "$T/same")"
    check "  ... with its bytes" cmp -s "$T/body" "$T/same"

    head -c $((round % 2 ? 200000 : 300)) /dev/urandom >"$T/same"
    race_uploads -X PUT --data-binary @"$T/same" "$URL/v1/objects/$(sha "$T/same")"
    check_race "$round" "PUT /v1/objects/ID"

    head -c $((round % 2 ? 500 : 100000)) /dev/urandom >"$T/same"
    race_uploads -F "file=@$T/same" "$URL/upload"
    check_race "$round" "POST /upload (the Go system's 200 for all)" 200
done

# --- a claimed id the bytes do not hash to ---------------------------------
printf 'these bytes' >"$T/claimed"
printf 'other bytes' >"$T/other"
expect_code 422 "PUT /v1/objects/ID with other bytes" -X PUT --data-binary @"$T/claimed" \
    "$URL/v1/objects/$(sha "$T/other")"
check "  ... says ECORRUPT in X-Minidbx-Error" header_has "^X-Minidbx-Error: ECORRUPT"
check "  ... and in the body" body_has '"code":"ECORRUPT"'
expect_code 404 "  ... and stores nothing" "$URL/v1/objects/$(sha "$T/claimed")"
stop_server

# --- one size limit, the library's ------------------------------------------------
head -c 3000 /dev/urandom >"$T/3k"
head -c 2048 /dev/urandom >"$T/2k"
start_server "$T/store" --max-object-size 2K || { not_ok "server starts"; finish; }
expect_code 201 "an object of exactly --max-object-size" -X PUT --data-binary @"$T/2k" "$URL/v1/objects"
for mode in length chunked multipart; do
    upload_args "$mode" "$T/3k"
    expect_code 413 "an object over the limit ($mode)" "${args[@]}"
    check "  ... says ETOOBIG in X-Minidbx-Error" header_has "^X-Minidbx-Error: ETOOBIG"
done
expect_code 404 "  ... and none of them is stored" "$URL/v1/objects/$(sha "$T/3k")"
check "  ... nor left a temp file" test -z "$(ls "$T/store/tmp")"
stop_server
finish
