# lib.sh - TAP helpers for the mdbx integration tests (sourced by bash).
#
# Every check prints "ok N - what it checks" or "not ok N - ...", with
# diagnostics (the command's stderr) as "# " lines; the plan comes last.
# Each test script runs the real mdbx on stores in a temporary directory
# that is removed at exit.

set -u

: "${MDBX:?set MDBX to the mdbx binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/mdbx-cli-test.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
export MINIDBX_STORE="$T/store"
unset XDG_DATA_HOME MINIDBX_TOKEN

tests_run=0
tests_failed=0
status=0

ok() { tests_run=$((tests_run + 1)); echo "ok $tests_run - $1"; }

not_ok()
{
    tests_run=$((tests_run + 1))
    tests_failed=$((tests_failed + 1))
    echo "not ok $tests_run - $1"
}

skip() { tests_run=$((tests_run + 1)); echo "ok $tests_run - $1 # SKIP $2"; }

diag() { sed 's/^/# /' "$@"; }

# Show the last command's output when a check about it fails.
diag_last()
{
    echo "# exit status: $status"
    [ -s "$T/err" ] && { echo "# stderr:"; head -c 2000 "$T/err" | diag; }
    [ -s "$T/out" ] && { echo "# stdout:"; head -c 2000 "$T/out" | diag; }
    return 0
}

# run CMD...: run it, stdout in $T/out, stderr in $T/err, exit status in $status.
run() { "$@" >"$T/out" 2>"$T/err"; status=$?; }

# check DESC CMD...: passes when CMD succeeds. What CMD prints goes to
# $T/check.out (shown on failure), never into the TAP stream.
check()
{
    local desc=$1
    shift
    if "$@" >"$T/check.out" 2>&1; then
        ok "$desc"
    else
        not_ok "$desc"
        diag_last
        [ -s "$T/check.out" ] && { echo "# the check printed:"; head -c 2000 "$T/check.out" | diag; }
    fi
    return 0
}

# expect STATUS DESC CMD...: run CMD and check its exit status.
expect()
{
    local want=$1 desc=$2
    shift 2
    run "$@"
    if [ "$status" = "$want" ]; then
        ok "$desc (exit $want)"
    else
        not_ok "$desc: exit $status, expected $want"
        diag_last
    fi
}

# Checks on the output of the last `run` / `expect`.
out_is() { [ "$(cat "$T/out")" = "$1" ]; }
out_has() { grep -qF -- "$1" "$T/out"; }
err_has() { grep -qF -- "$1" "$T/err"; }
err_empty() { [ ! -s "$T/err" ]; }
out_empty() { [ ! -s "$T/out" ]; }
out_lines() { [ "$(wc -l <"$T/out")" -eq "$1" ]; }

# JSON field(s) of every line of the last output, through jsonq (cJSON).
json() { "$JSONQ" "$@" <"$T/out"; }

finish()
{
    echo "1..$tests_run"
    if [ "$tests_failed" -ne 0 ]; then
        echo "# $tests_failed of $tests_run checks failed"
        exit 1
    fi
    exit 0
}
