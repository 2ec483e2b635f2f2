#!/bin/sh
# test_symbols.sh LIBMINIDBX_SO - the shared library exports only minidbx_*
# symbols (functions and data), and has a SONAME.
set -u
lib=${1:?usage: test_symbols.sh path/to/libminidbx.so}
status=0

if [ ! -f "$lib" ]; then
    echo "FAIL: no such library: $lib"
    exit 1
fi

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWiu]$/ { print $3 }')
count=$(printf '%s\n' "$exported" | grep -c .)
if [ "$count" -eq 0 ]; then
    echo "FAIL: $lib exports nothing"
    status=1
fi
stray=$(printf '%s\n' "$exported" | grep -v '^minidbx_' | grep -v '^$')
if [ -n "$stray" ]; then
    echo "FAIL: exported symbols without the minidbx_ prefix:"
    printf '  %s\n' $stray
    status=1
fi
echo "exported: $count symbols, all minidbx_*: $([ -z "$stray" ] && echo yes || echo no)"

for needed in minidbx_open minidbx_close minidbx_put minidbx_get minidbx_strerror \
              minidbx_register_scheme minidbx_open_backend minidbx_error_set; do
    if ! printf '%s\n' "$exported" | grep -qx "$needed"; then
        echo "FAIL: $needed is not exported"
        status=1
    fi
done

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ -z "$soname" ]; then
    echo "FAIL: $lib has no SONAME"
    status=1
else
    echo "SONAME: $soname"
    case "$soname" in
        libminidbx.so.[0-9]*) ;;
        *) echo "FAIL: unexpected SONAME $soname"; status=1 ;;
    esac
fi
exit $status
