# lib.sh - helpers for the HTTP integration tests (sourced by bash): the
# TAP helpers of tests/cli/lib.sh, plus real `mdbx serve` processes on free
# 127.0.0.1 ports and curl.

. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"

command -v curl >/dev/null || { echo "1..0 # SKIP the curl command is missing"; exit 0; }

SERVER_PID=""
URL=""
PORT=""
# A command (and its arguments) that start_server runs the node through,
# e.g. SERVER_WRAP=(prlimit --nofile=256:1024): it must exec the node, so
# that SERVER_PID is the node's. Empty: the node itself.
SERVER_WRAP=()

# start_server STORE [serve options...]: start `mdbx serve` on a free port
# (port 0: the kernel picks it) and wait until it says where it listens.
# Sets SERVER_PID, URL and PORT; its stderr goes to $T/server.err.
start_server()
{
    local store=$1
    shift
    rm -f "$T/server.out"
    "${SERVER_WRAP[@]}" "$MDBX" -s "$store" serve --listen 127.0.0.1:0 "$@" >"$T/server.out" 2>"$T/server.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        URL=$(sed -n 's/^listening on //p' "$T/server.out" 2>/dev/null)
        [ -n "$URL" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    PORT=${URL##*:}
    [ -n "$URL" ] || { echo "# the server did not start:"; diag "$T/server.err"; return 1; }
}

# stop_server: SIGTERM, then wait; the exit status goes to $server_status.
stop_server()
{
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID"
    server_status=$?
    SERVER_PID=""
    check_server_log
}

# Under ASan/UBSan, what the sanitizers said is a failure.
check_server_log()
{
    if grep -q "Sanitizer\|runtime error:" "$T/server.err"; then
        not_ok "the server ran clean under the sanitizers"
        head -c 3000 "$T/server.err" | diag
    fi
}

cleanup_server()
{
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup_server EXIT

# req CURL-ARGS...: one request; the status code in $code, the body in
# $T/body, the headers in $T/headers.
req()
{
    : >"$T/body"
    code=$(curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@")
}

# expect_code WANT DESC CURL-ARGS...
expect_code()
{
    local want=$1 desc=$2
    shift 2
    req "$@"
    if [ "$code" = "$want" ]; then
        ok "$desc ($want)"
    else
        not_ok "$desc: HTTP $code, expected $want"
        echo "# body: $(head -c 500 "$T/body")"
    fi
}

# in_flight: the node's requests in flight (counting this one).
in_flight() { curl -s "$URL/metrics" | sed -n 's/^minidbx_http_requests_in_flight //p'; }

# wait_in_flight N: until N requests are in flight, this one included (20 s at
# most: a curl started in the background may start late on a loaded machine).
wait_in_flight()
{
    for _ in $(seq 400); do
        [ "$(in_flight)" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# upload_args MODE FILE: set args to the curl arguments that upload FILE
# as MODE: length (PUT with a Content-Length), chunked (PUT, chunked) or
# multipart (POST /upload, field "file").
upload_args()
{
    case $1 in
    length) args=(-X PUT --data-binary @"$2" "$URL/v1/objects") ;;
    chunked) args=(-X PUT -H "Transfer-Encoding: chunked" --data-binary @"$2" "$URL/v1/objects") ;;
    multipart) args=(-F "file=@$2" "$URL/upload") ;;
    esac
}

# flip FILE OFFSET: change one byte of FILE in place.
flip()
{
    local byte
    byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "\\$(printf %o $((255 - byte)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# blob_of ID: the blob file of ID in the store $T/store.
blob_of() { echo "$T/store/blobs/${1:0:2}/${1:2:2}/$1"; }

body_has() { grep -qF -- "$1" "$T/body"; }
header_has() { grep -qi -- "$1" "$T/headers"; }
sha() { sha256sum "$1" | cut -c1-64; }
# The ids the node lists (GET /v1/objects), one per line.
listed_ids() { curl -s "$URL/v1/objects" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4; }

# Does the node remember verified blob files on DIR's filesystem
# (server/cache.c: only where a write through a mapping moves ctime:
# ext2/3/4, XFS, Btrfs; on tmpfs every GET hashes)?
remembers_files() { case $(stat -f -c %T "$1") in ext2/ext3 | xfs | btrfs) return 0 ;; *) return 1 ;; esac; }
