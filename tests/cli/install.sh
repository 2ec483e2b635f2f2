#!/bin/bash
# install.sh - `meson install` into a temporary DESTDIR, then check what a
# C programmer expects there (library with soname, static library,
# headers, pkg-config file, mdbx, man pages, bash completion), compile each
# example with `cc $(pkg-config --cflags --libs minidbx)` against that
# installed copy and run it.
#
# Arguments: BUILD_DIR EXAMPLE.c... ; environment: MDBX (unused here).
MDBX=${MDBX:-unused}
. "$(dirname "$0")/lib.sh"

BUILD=$1
shift
D="$T/destdir"
: "${CC:=cc}"
# A sanitized library can only be loaded by a sanitized program.
SANITIZE_FLAGS=""
[ -n "${MINIDBX_SANITIZE:-}" ] && [ "$MINIDBX_SANITIZE" != none ] && SANITIZE_FLAGS="-fsanitize=$MINIDBX_SANITIZE"

expect 0 "meson install --destdir" meson install -C "$BUILD" --destdir "$D" --no-rebuild --quiet
PC=$(find "$D" -name minidbx.pc | head -1)
LIBSO=$(find "$D" -name 'libminidbx.so.*' -type f | head -1)
check "minidbx.pc installed" test -n "$PC"
check "libminidbx.so installed" test -n "$LIBSO"
check "  with soname libminidbx.so.0" eval 'objdump -p "$LIBSO" 2>/dev/null | grep -q "SONAME *libminidbx.so.0" || readelf -d "$LIBSO" | grep -q "libminidbx.so.0"'
check "libminidbx.a installed" test -n "$(find "$D" -name libminidbx.a)"
check "include/minidbx.h installed" test -n "$(find "$D" -path '*/include/minidbx.h')"
check "include/minidbx/sys/backend.h installed" test -n "$(find "$D" -path '*/include/minidbx/sys/backend.h')"
check "bin/mdbx installed" test -x "$(find "$D" -path '*/bin/mdbx' | head -1)"
check "man page mdbx(1) installed" test -n "$(find "$D" -path '*/man1/mdbx.1*')"
check "man page minidbx(3) installed" test -n "$(find "$D" -path '*/man3/minidbx.3*')"
MAN3=$(dirname "$(find "$D" -path '*/man3/minidbx.3*' | head -1)")
for fn in $(grep -ho 'MINIDBX_EXTERN[^(]*(' "$(dirname "$0")/../../include/minidbx.h" \
            "$(dirname "$0")/../../include/minidbx/sys/backend.h" | grep -o 'minidbx_[a-z0-9_]*' | sort -u); do
    check "man page $fn(3) installed, opening minidbx(3)" grep -qx '.so man3/minidbx.3' "$MAN3/$fn.3"
done
if command -v man >/dev/null 2>&1; then
    check "  man minidbx_put shows minidbx(3)" \
        eval 'MANPATH="$(dirname "$MAN3")" man -P cat minidbx_put 2>/dev/null | grep -q minidbx_put'
fi
check "bash completion installed" test -f "$(find "$D" -path '*/bash-completion/completions/mdbx' | head -1)"

if [ -z "$PC" ] || [ -z "$LIBSO" ]; then
    finish
fi
# The .pc file says prefix=/usr/local (or so); the sysroot maps it into D.
export PKG_CONFIG_PATH="$(dirname "$PC")" PKG_CONFIG_SYSROOT_DIR="$D"
export LD_LIBRARY_PATH="$(dirname "$LIBSO")"
check "pkg-config finds minidbx in the destdir" eval 'pkg-config --cflags --libs minidbx | grep -qF -- "-L$D"'
INSTALLED_MDBX=$(find "$D" -path '*/bin/mdbx' | head -1)
expect 0 "installed mdbx runs with the installed library" "$INSTALLED_MDBX" version
check "  and loads it from the destdir" eval 'ldd "$INSTALLED_MDBX" | grep -q "libminidbx.so.0 => $D"'

for src in "$@"; do
    name=$(basename "$src" .c)
    # shellcheck disable=SC2046
    expect 0 "cc $name.c \$(pkg-config --cflags --libs minidbx)" \
        "$CC" -std=c11 -Wall -Wextra -Werror $SANITIZE_FLAGS -o "$T/$name" "$src" $(pkg-config --cflags --libs minidbx)
    check "  $name links the installed library" eval 'ldd "$T/$name" | grep -q "libminidbx.so.0 => $D"'
done

# Static linking: libminidbx.a inside the program (minidbx-static.pc), and
# what `pkg-config --static` lists links too (README: Linking).
check "minidbx-static.pc installed" test -n "$(find "$D" -name minidbx-static.pc)"
expect 0 "cc roundtrip.c \$(pkg-config --libs minidbx-static)" \
    "$CC" -std=c11 -Wall -Wextra -Werror $SANITIZE_FLAGS -o "$T/roundtrip-static" \
    "$(dirname "$0")/../../examples/roundtrip.c" $(pkg-config --cflags --libs minidbx-static)
check "  needs no libminidbx.so" eval '! ldd "$T/roundtrip-static" | grep -q libminidbx'
expect 0 "  and runs" env LD_LIBRARY_PATH= "$T/roundtrip-static" "$T/ex-static"
check "  prints the id and the bytes" grep -q "hello, minidbx" "$T/out"
expect 0 "cc roundtrip.c \$(pkg-config --static --libs minidbx)" \
    "$CC" -std=c11 -Wall -Wextra -Werror $SANITIZE_FLAGS -o "$T/roundtrip-pcstatic" \
    "$(dirname "$0")/../../examples/roundtrip.c" $(pkg-config --cflags --static --libs minidbx)

echo "example input" >"$T/input.txt"
"$GEN_BYTES" 5M 11 >"$T/input.bin" 2>/dev/null || head -c 5000000 /dev/urandom >"$T/input.bin"
expect 0 "roundtrip STORE" "$T/roundtrip" "$T/ex1"
check "  prints the id and the bytes" grep -q "hello, minidbx" "$T/out"
expect 0 "stream STORE IN OUT (5 MB)" "$T/stream" "$T/ex2" "$T/input.bin" "$T/output.bin"
check "  same bytes out" cmp "$T/input.bin" "$T/output.bin"
check "  prints the SHA-256" out_has "$(sha256sum "$T/input.bin" | cut -c1-64)"
expect 0 "names STORE" "$T/names" "$T/ex3"
check "  lists the names, paged" eval 'out_has docs/a.txt && out_has docs/c.txt && out_has img/d.png'
expect 0 "the examples' stores are ordinary stores for mdbx" "$INSTALLED_MDBX" -s "$T/ex3" names docs/
check "  docs/a.txt docs/c.txt" out_is "$(printf 'docs/a.txt\ndocs/c.txt')"

finish
