#!/bin/sh
# valgrind.sh - the exe_wrapper of `meson test --setup valgrind`: memcheck on
# a test program and on every program it starts (except system ones: bash,
# curl, cc...), failing the test on any error or definite leak.
#
# A test that is a shell script is not run under valgrind (the shell's own
# leaks are not ours); instead $MDBX, the mdbx the scripts run, is pointed at
# mdbx.sh, which runs the real one under memcheck through this file.
#   MAPSIZE_SHIM  the preload that fits LMDB's map into valgrind's address
#                 space (see mapsize_shim.c); meson's setup sets it.
# check's per-test timeouts scale with CK_TIMEOUT_MULTIPLIER, which a test's
# own environment would otherwise set back to 1.
here=$(cd "$(dirname "$0")" && pwd)
case $1 in
*/bash | */sh | */dash)
    if [ -n "${MDBX:-}" ] && [ -z "${MINIDBX_VALGRIND_MDBX:-}" ]; then
        export MINIDBX_VALGRIND_MDBX="$MDBX" MDBX="$here/mdbx.sh"
    fi
    exec "$@" ;;
esac
export CK_TIMEOUT_MULTIPLIER=30
export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}${MAPSIZE_SHIM:?set by meson test --setup valgrind}"
exec valgrind --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --trace-children=yes --trace-children-skip='/usr/*,/bin/*,/sbin/*' \
    --num-callers=30 --quiet "$@"
