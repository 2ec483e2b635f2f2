#!/bin/sh
# Run one libFuzzer target from its seed corpus and print one summary line:
#   fuzz NAME: N executions in S s (R exec/s), C crashes
# (and ", U slow units" when libFuzzer saved inputs that took over
# -report_slow_units seconds, 10 by default: slow, not findings).
# Usage: run-fuzzer.sh FUZZER SEED_CORPUS WORKDIR [libFuzzer options...]
# New inputs go to WORKDIR/corpus (never into the seed corpus in the tree),
# crashes, leaks and timeouts to WORKDIR/artifacts/. Exits as the fuzzer
# did: 0 when it found nothing.
set -u
[ $# -ge 3 ] || { echo "usage: run-fuzzer.sh FUZZER SEED_CORPUS WORKDIR [options...]" >&2; exit 2; }
fuzzer=$1 seeds=$2 work=$3
shift 3
name=$(basename "$fuzzer")
rm -rf "$work/artifacts"
mkdir -p "$work/corpus" "$work/artifacts" || exit 2
# absolute: a target may change its working directory (fuzz_open does)
work=$(cd "$work" && pwd) && seeds=$(cd "$seeds" && pwd) || exit 2
log=$work/fuzz.log
# -close_fd_mask=3: the server's and the library's messages go nowhere;
# libFuzzer's own output and sanitizer reports still come through.
"$fuzzer" -artifact_prefix="$work/artifacts/" -close_fd_mask=3 -timeout=30 \
    -print_final_stats=1 "$@" "$work/corpus" "$seeds" >"$log" 2>&1
status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
crashes=$(find "$work/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
slow=$(find "$work/artifacts" -type f -name 'slow-unit-*' | wc -l)
if [ $status -ne 0 ]; then
    tail -n 80 "$log"
fi
echo "fuzz $name: ${runs:-?} executions in ${secs:-?} s (${rate:-?} exec/s), $crashes crashes$([ "$slow" -eq 0 ] || echo ", $slow slow units") (exit $status)"
exit $status
