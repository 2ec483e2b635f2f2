#!/bin/bash
# docs.sh - the manuals keep up with the code: every exported function of
# the public headers is in minidbx(3), every command of `mdbx help` in
# mdbx(1), and both pages format without warnings.
#
# Arguments: SOURCE_ROOT; environment: MDBX.
. "$(dirname "$0")/lib.sh"
SRC=$1

for fn in $(grep -ho 'MINIDBX_EXTERN[^(]*(' "$SRC/include/minidbx.h" "$SRC/include/minidbx/sys/backend.h" |
            grep -o 'minidbx_[a-z0-9_]*' | sort -u); do
    check "minidbx(3) lists $fn" grep -q "^\.BR $fn " "$SRC/man/minidbx.3"
done
for cmd in $("$MDBX" help | sed -n 's/^  \([a-z-]*\)  .*/\1/p'); do
    pattern=${cmd//-/'\\?-'}   # roff writes a hyphen as \-
    check "mdbx(1) documents the command $cmd" grep -Eq "^\.(B|BR|TP) \"?$pattern\b" "$SRC/man/mdbx.1"
done
for status in 0 1 2 3 4; do
    check "mdbx(1) documents exit status $status" grep -A1 '^\.TP' "$SRC/man/mdbx.1" | grep -qx "\.B $status"
done
if command -v groff >/dev/null 2>&1; then
    for page in mdbx.1 minidbx.3; do
        check "$page formats without warnings" eval '[ -z "$(groff -man -Tutf8 -ww -z "$SRC/man/$page" 2>&1)" ]'
    done
else
    skip "man pages format without warnings" "groff is not installed"
fi

finish
