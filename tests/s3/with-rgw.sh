#!/bin/bash
# with-rgw.sh CMD [ARGS...] - run CMD against a Ceph RADOS Gateway (S3) on
# 127.0.0.1, with MINIDBX_S3_ENDPOINT, AWS_* and MINIDBX_TEST_S3_BUCKET set
# and that bucket created.
#
# Which RGW: the one MINIDBX_S3_ENDPOINT names, if set (one you started);
# else the one whose export lines are in the file MINIDBX_TEST_RGW_ENV names
# (tests/run-all.sh starts one for the whole run: see --env-file); else a
# throw-away RGW (rgw-up-any: a free port of 7600, 7610, ... 7990),
# stopped when CMD ends (rgw-down, in a trap). Without the Ceph packages it
# says so loudly and exits 77, which meson counts as SKIPPED, never passed.
#
# with-rgw.sh --own CMD [ARGS...] always starts a throw-away RGW (rgw-up reads
# RGW_EXTRA_CONF: more radosgw configuration).
# with-rgw.sh --env-file CMD [ARGS...] starts an RGW and runs CMD with only
# MINIDBX_TEST_RGW_ENV set (a file of export lines), so that the
# credentials reach the s3 tests (through this script) and nothing else
# that CMD runs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bucket=${MINIDBX_TEST_S3_BUCKET:-minidbx-tests}
export MINIDBX_TEST_S3_BUCKET=$bucket

skip() {
    echo "########################################################################"
    echo "# SKIPPED: $*"
    echo "# The s3:// tests need a Ceph RGW: apt-get install -y --no-install-recommends"
    echo "#   ceph-mon ceph-osd radosgw   (sh tests/install-deps.sh installs them)"
    echo "########################################################################"
    exit 77
}

# make_bucket: create the test bucket (PUT on a bucket we own succeeds again).
make_bucket() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X PUT \
        --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "${MINIDBX_S3_ENDPOINT%/}/$bucket") || code=000
    [ "$code" = 200 ] || { echo "with-rgw.sh: creating bucket $bucket: HTTP $code" >&2; return 1; }
}

env_file=
if [ "${1:-}" = --own ]; then
    # a throw-away RGW of its own (e.g. configured by RGW_EXTRA_CONF)
    shift
    unset MINIDBX_S3_ENDPOINT MINIDBX_TEST_RGW_ENV
elif [ "${1:-}" = --env-file ]; then
    env_file=1
    shift
elif [ -z "${MINIDBX_S3_ENDPOINT:-}" ] && [ -n "${MINIDBX_TEST_RGW_ENV:-}" ]; then
    [ -r "$MINIDBX_TEST_RGW_ENV" ] || { echo "with-rgw.sh: cannot read $MINIDBX_TEST_RGW_ENV" >&2; exit 1; }
    . "$MINIDBX_TEST_RGW_ENV"
fi
if [ -n "${MINIDBX_S3_ENDPOINT:-}" ]; then
    make_bucket || exit 1
    exec "$@"
fi

for t in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl; do
    command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
done

# room for every s3 test of a run-all.sh run (two builds) in the OSD's RAM
export RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-$((4 << 30))}
dir=$(mktemp -d "${TMPDIR:-/tmp}/minidbx-rgw.XXXXXX")
trap '"$here/rgw-down" --rm "$dir" >/dev/null 2>&1' EXIT
env=$("$here/rgw-up-any" "$dir") || exit 1
if [ -n "$env_file" ]; then
    printf '%s\n' "$env" >"$dir/test-env"
    MINIDBX_TEST_RGW_ENV=$dir/test-env "$@"
    exit
fi
eval "$env"
make_bucket || exit 1
"$@"
