#!/bin/bash
# cli.sh - mdbx with -s s3://BUCKET/PREFIX: put, get, ls, name, names, stat,
# verify, gc, info, rm (run under with-rgw.sh; MDBX is the mdbx binary).
# TAP output. No secret may appear in anything mdbx prints.
set -u
: "${MDBX:?}" "${MINIDBX_TEST_S3_BUCKET:?run under tests/s3/with-rgw.sh}"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
S=s3://$MINIDBX_TEST_S3_BUCKET/cli-$$-$RANDOM
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
m() { "$MDBX" -s "$S" "$@" 2>>"$t/stderr" | tee -a "$t/stdout"; return "${PIPESTATUS[0]}"; }

head -c 4096 /dev/urandom >"$t/small"
head -c $((7 << 20)) /dev/urandom >"$t/big"     # a multipart upload
small=$(m put "$t/small") && big=$(m put "$t/big")
check "put small and big" [ ${#small} = 64 ] && [ ${#big} = 64 ]
check "put prints the sha256" [ "$small" = "$(sha256sum <"$t/small" | cut -d' ' -f1)" ]
check "get small" cmp -s <(m get "$small") "$t/small"
m get "$big" -o "$t/big.out"
check "get big -o" cmp -s "$t/big.out" "$t/big"
check "ls lists both" [ "$(m ls | sort)" = "$(printf '%s 7340032\n%s 4096\n' "$big" "$small" | sort)" ]
check "name set" m name set docs/big "$big"
check "names" [ "$(m names docs/)" = docs/big ]
check "get by name" cmp -s <(m get docs/big) "$t/big"
check "stat refs 1" grep -q "refs: *1" <(m stat "$big")
check "exists" m exists "$small" "$big"
check "verify" grep -q "checked 2 objects.*0 problems" <(m verify)
check "info" grep -q "objects: *2" <(m info)
check "info names" grep -q "names: *1" <(m info)
check "info json backend" grep -q '"backend":"s3"' <(m --json info)
# gc keeps what was put in the second it began (the engine's Last-Modified
# has whole seconds): wait for the clock's next second (not a sync, a tick)
t0=$(date +%s); for ((i = 0; i < 30 && $(date +%s) == t0; i++)); do sleep 0.05; done
check "gc keeps the unnamed just put (14-day grace)" grep -q "removed 0 objects" <(m gc)
check "gc --dry-run --older-than 0 lists it" grep -q "^would remove $small " <(m gc --dry-run --older-than 0)
check "gc --older-than 0 removes it" grep -q "^removed 1 object" <(m gc --older-than 0)
check "small is gone" [ "$(m ls)" = "$big 7340032" ]
check "rm refused while named" bash -c '! "$0" -s "$1" rm "$2" 2>/dev/null' "$MDBX" "$S" "$big"
check "name rm" m name rm docs/big
check "rm" m rm "$big"
check "empty" [ -z "$(m ls)" ]
"$MDBX" -s "$S" get "$big" >/dev/null 2>>"$t/stderr"
check "get of a removed object: exit 1" [ $? = 1 ]
AWS_SECRET_ACCESS_KEY=wrongSecretCli0123456789 "$MDBX" -s "$S" ls >/dev/null 2>"$t/wrong"
check "wrong secret: exit 4, SignatureDoesNotMatch" grep -q SignatureDoesNotMatch "$t/wrong"
cat "$t/wrong" >>"$t/stderr"
check "no secret in any output" bash -c '! grep -qF -e "$0" -e wrongSecretCli "$1" "$2"' \
    "$AWS_SECRET_ACCESS_KEY" "$t/stdout" "$t/stderr"
echo "1..$n"
exit $failed
