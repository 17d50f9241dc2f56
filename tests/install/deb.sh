#!/usr/bin/env bash
# tests/install/deb.sh SOURCE_DIR BUILD_DIR WORK_DIR: builds the Debian package of the (built)
# tree BUILD_DIR with `cpack -G DEB` into WORK_DIR and checks it with dpkg-deb: the library
# with its SONAME link, the headers, the CMake and pkg-config files, the tapegrad command and
# its man page; Depends names libxxhash0, and libgvc6 / libopenmpi exactly when the build has
# Graphviz / MPI (as `tapegrad --version` says). Then it unpacks the package into a throwaway
# root (dpkg -x, never installed on this system), builds tests/install/consumer/prog.c against
# the unpacked tree with pkg-config, runs it and the unpacked command, and formats the man
# page. Everything it writes is under WORK_DIR, which it recreates.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 SOURCE_DIR BUILD_DIR WORK_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$3
cc=${CC:-cc}
rm -rf "$work"
mkdir -p "$work"
log="$work/log.txt"
: >"$log"
say() { echo "deb_package: $*"; }
fail() {
    echo "deb_package: FAILED: $*" >&2
    tail -n 40 "$log" >&2
    exit 1
}
for tool in cpack dpkg-deb dpkg; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (tools/setup.sh installs it)"
done

(cd "$work" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/out") >>"$log" 2>&1 ||
    fail "cpack -G DEB"
deb=$(find "$work/out" -maxdepth 1 -name 'tapegrad_*.deb' | head -n 1)
[ -n "$deb" ] || fail "cpack made no tapegrad_*.deb"
say "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# Contents.
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$work/contents"
# The library as this tree builds it: shared (the default) or static (BUILD_SHARED_LIBS=OFF,
# which a build directory configured before the default changed may still have).
if grep -q '^BUILD_SHARED_LIBS:BOOL=OFF' "$build/CMakeCache.txt"; then
    lib=('^/usr/lib/(.*/)?libtapegrad\.a$')
else
    lib=('^/usr/lib/(.*/)?libtapegrad\.so\.0$'
        '^/usr/lib/(.*/)?libtapegrad\.so\.0\.[0-9]+\.[0-9]+$'
        '^/usr/lib/(.*/)?libtapegrad\.so$')
fi
want=(
    "${lib[@]}"
    '^/usr/include/tapegrad\.h$'
    '^/usr/include/tapegrad/tape\.h$'
    '^/usr/lib/(.*/)?cmake/tapegrad/tapegradConfig\.cmake$'
    '^/usr/lib/(.*/)?cmake/tapegrad/tapegradTargets\.cmake$'
    '^/usr/lib/(.*/)?pkgconfig/tapegrad\.pc$'
    '^/usr/bin/tapegrad$'
    '^/usr/share/man/man1/tapegrad\.1\.gz$'
)
for re in "${want[@]}"; do
    grep -Eq "$re" "$work/contents" || fail "the package lacks $re; it holds: $(cat "$work/contents")"
done

# Dependencies, against what the build has.
depends=$(dpkg-deb -f "$deb" Depends)
say "Depends: $depends"
version=$("$build/tools/tapegrad" --version)
has() { printf '%s\n' "$depends" | grep -Eq "(^|, )$1"; }
has 'libxxhash0' || fail "Depends lacks libxxhash0"
if printf '%s\n' "$version" | grep -q '^graphviz: yes'; then
    has 'libgvc6' || fail "built with Graphviz, Depends lacks libgvc6"
else
    ! has 'libgvc' || fail "built without Graphviz, Depends has libgvc"
fi
if printf '%s\n' "$version" | grep -q '^mpi: yes'; then
    has 'libopenmpi|libmpich' || fail "built with MPI, Depends lacks the MPI library"
else
    ! has 'libopenmpi|libmpich' || fail "built without MPI, Depends has an MPI library"
fi

# Unpacked in a throwaway root: a program builds and runs against it, so does the command.
root="$work/root"
dpkg -x "$deb" "$root" || fail "dpkg -x"
pcdir=$(dirname "$(find "$root" -name tapegrad.pc | head -n 1)")
libdir=$(dirname "$pcdir")
cflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags tapegrad) || fail "pkg-config --cflags"
libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config --libs tapegrad) || fail "pkg-config --libs"
# shellcheck disable=SC2086 # pkg-config output is meant to be split
"$cc" -std=c11 -Wall -Wextra "$src/tests/install/consumer/prog.c" -o "$work/prog" $cflags $libs \
    >>"$log" 2>&1 || fail "building against the unpacked package"
out=$(cd "$work" && LD_LIBRARY_PATH="$libdir" ./prog 2>&1) || fail "prog: $out"
case "$out" in *'y=9 dy/dx=6'*) say "a program built against the package: $out" ;;
    *) fail "prog printed: $out" ;; esac
"$root/usr/bin/tapegrad" --version >>"$log" 2>&1 || fail "the packaged tapegrad --version"
if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man -l "$root/usr/share/man/man1/tapegrad.1.gz" 2>"$work/man.err" |
        grep -q 'tapegrad train' || fail "man -l on the packaged page: $(cat "$work/man.err")"
fi
say "ok"
