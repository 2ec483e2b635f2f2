#!/bin/sh
# mdbx.sh - $MDBX for test scripts under `meson test --setup valgrind`: the
# real mdbx ($MINIDBX_VALGRIND_MDBX) under memcheck (see valgrind.sh).
exec "$(dirname "$0")/valgrind.sh" "${MINIDBX_VALGRIND_MDBX:?set by valgrind.sh}" "$@"
