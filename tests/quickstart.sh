#!/bin/sh
# The quick start: install what is missing, build, and round-trip an object
# through the default local store with the mdbx command.
set -eu
cd "$(dirname "$0")/.."
sh tests/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
mdbx=./build/cli/mdbx
id=$(echo "hello, minidbx" | $mdbx put -)
echo "stored: $id"
echo "read back: $($mdbx get "$id")"
$mdbx info
