#!/bin/sh
# Install what is missing, build from scratch, and run the whole suite twice:
# a normal build and an AddressSanitizer + UndefinedBehaviorSanitizer build.
# The s3 suite (and the library suite on s3://) runs on one Ceph RGW that
# this script starts on 127.0.0.1 first and stops at the end (tests/s3).
# Ends with one summary line ("N passed, M failed, K skipped") and exits
# non-zero if anything failed.
# Usage: sh tests/run-all.sh [--torture] [--soak] [--valgrind] [--fuzz-long]
#   --torture    5,000 SIGKILL rounds in the crash test instead of 200, 5,000
#                SIGKILLs of a loaded mdbx serve instead of 20, and fault
#                sweeps that try every N of malloc in mdbx and mdbx serve
#   --soak       10,000,000 requests in the soak test instead of 20,000
#   --valgrind   also run the lib and cli suites under valgrind memcheck
#                (meson test --setup valgrind) in a build without big tests
#   --fuzz-long  run each libFuzzer target (tests/fuzz; by default 5 s each)
#                to 10,000,000 executions, one at a time, under nice;
#                prints executions and crashes per target (hours, not
#                minutes). MINIDBX_FUZZ_SKIP_KNOWN=1 steps around the
#                findings already in tests/fuzz/crashes/.
set -u
cd "$(dirname "$0")/.." || exit 2
top=$(pwd)

usage="usage: sh tests/run-all.sh [--torture] [--soak] [--valgrind] [--fuzz-long]"
crash_rounds=200
server_rounds=20
fault_full=false
soak_requests=20000
valgrind=no
fuzz_long=0
for arg in "$@"; do
    case $arg in
    --torture) crash_rounds=5000 server_rounds=5000 fault_full=true ;;
    --soak) soak_requests=10000000 ;;
    --valgrind) valgrind=yes ;;
    --fuzz-long) fuzz_long=1 ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done

sh tests/install-deps.sh || { echo "0 passed, 1 failed (dependencies could not be installed)"; exit 1; }

# One Ceph RGW (S3) on 127.0.0.1 for the whole run, stopped in a trap when
# it ends: the s3 suite and the library suite on s3:// (tests/s3) use it.
# Without Ceph each s3 test says so and counts as skipped.
# Only the s3 tests see its address and credentials (MINIDBX_TEST_RGW_ENV
# names a file of them that tests/s3/with-rgw.sh reads).
if [ -z "${MINIDBX_S3_ENDPOINT:-}" ] && [ -z "${MINIDBX_TEST_RGW_ENV:-}" ] &&
        command -v radosgw >/dev/null 2>&1; then
    exec bash tests/s3/with-rgw.sh --env-file sh tests/run-all.sh "$@"
fi

jobs=$(nproc 2>/dev/null || echo 2)
status=0

# build DIR [meson setup args...]: configure from scratch and compile.
build() {
    dir=$1; shift
    rm -rf "$dir"
    meson setup "$dir" -Dcrash_iterations="$crash_rounds" -Dserver_torture_rounds="$server_rounds" \
        -Dfault_full="$fault_full" -Dsoak_requests="$soak_requests" "$@" >"$dir.setup.log" 2>&1 ||
        { cat "$dir.setup.log"; return 1; }
    ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; return 1; }
}

# suite DIR LABEL: run meson's tests, keep the JSON log for the summary.
suite() {
    echo "== $2: meson test -C $1"
    meson test -C "$1" --print-errorlogs --num-processes "$jobs" --timeout-multiplier "${3:-1}" ||
        status=1
}

if build "$top/build-ci"; then
    suite "$top/build-ci" "normal build"
else
    echo "normal build failed"; status=1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if build "$top/build-ci-asan" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all -Dbuildtype=debug; then
    suite "$top/build-ci-asan" "ASan+UBSan build" 3
else
    echo "sanitizer build failed"; status=1
fi

# valgrind memcheck over the library and CLI suites (slow: no big tests).
logs="$top/build-ci $top/build-ci-asan"
if [ $valgrind = yes ]; then
    if build "$top/build-ci-valgrind" -Dbig_tests=false; then
        echo "== valgrind: meson test -C build-ci-valgrind --setup valgrind --suite lib --suite cli"
        meson test -C "$top/build-ci-valgrind" --setup valgrind --suite lib --suite cli \
            --print-errorlogs --num-processes "$jobs" || status=1
    else
        echo "valgrind build failed"; status=1
    fi
    logs="$logs $top/build-ci-valgrind/meson-logs/testlog-valgrind.json"
fi

# -Wall -Wextra -Werror must hold for clang too: a compile-only build.
clang_result=skipped
if command -v clang >/dev/null 2>&1; then
    echo "== clang build (-Werror)"
    if CC=clang build "$top/build-ci-clang"; then clang_result=passed; else clang_result=failed; status=1; fi
fi

# libFuzzer (clang, ASan+UBSan): every target of tests/fuzz for 5 seconds,
# or to 10,000,000 executions with --fuzz-long.
if command -v clang >/dev/null 2>&1; then
    if [ $fuzz_long -eq 1 ]; then fuzz_runs=10000000; else fuzz_runs=0; fi
    echo "== fuzz build (clang, libFuzzer, ASan+UBSan): $([ $fuzz_runs -eq 0 ] && echo "5 s" || echo "$fuzz_runs executions") per target"
    if CC=clang build "$top/build-ci-fuzz" -Dfuzzing=true -Dfuzz_runs=$fuzz_runs \
            -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all; then
        nice -n 10 meson test -C "$top/build-ci-fuzz" --suite fuzz --num-processes 1 --print-errorlogs ||
            status=1
        grep -h '^fuzz fuzz_' "$top/build-ci-fuzz/meson-logs/testlog.txt"
    else
        echo "fuzz build failed"; status=1
    fi
    logs="$logs $top/build-ci-fuzz"
fi

# shellcheck disable=SC2086 # $logs: build dirs (or JSON logs) without spaces
CLANG_RESULT=$clang_result python3 - $logs <<'PY'
import json, os, sys
passed = failed = skipped = 0
extra = os.environ.get("CLANG_RESULT", "skipped")
if extra == "passed":
    passed += 1
elif extra == "failed":
    failed += 1
    print("FAILED: clang build")
else:
    skipped += 1
    print("skipped: clang build (clang not found)")
for d in sys.argv[1:]:
    log = d if d.endswith(".json") else os.path.join(d, "meson-logs", "testlog.json")
    label = os.path.basename(d.split("/meson-logs/")[0])
    if not os.path.exists(log):
        failed += 1
        print(f"missing test log: {log}")
        continue
    for line in open(log):
        r = json.loads(line)
        res = r.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
            print(f"skipped: {label}: {r['name']}")
        else:
            failed += 1
            print(f"FAILED: {label}: {r['name']} ({res})")
            # what failed, where CI shows it: check's failure lines (file:line:F/E:...), else the tail
            out = [l for l in (r.get("stdout") or "").splitlines() if l.strip()]
            why = [l for l in out if ":F:" in l or ":E:" in l] or out[-6:]
            for l in why[:6]:
                print("    | " + l[:300])
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
summary=$?
[ $status -eq 0 ] && [ $summary -eq 0 ]
