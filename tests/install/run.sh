#!/usr/bin/env bash
# tests/install/run.sh SOURCE_DIR WORK_DIR BUILD_DIR KIND: installs tapegrad as a user would, for
# both library kinds, and builds tests/install/consumer/prog.c (a program that calls into every
# module) against each install. BUILD_DIR is the build tree the test belongs to, already built,
# of KIND (shared or static); the other kind is configured and built under WORK_DIR, with a
# configure-time prefix that is never used, so nothing can depend on it. For each kind:
#   1. README.md's install blocks (marked "<!-- install-test: ... -->"), run as written, with
#      HOME in WORK_DIR (so ~/tg is there) and build/release pointing at the kind's tree:
#      `cmake --install --prefix ~/tg`, the pkg-config compile line, and the CMake project;
#   2. a DESTDIR install to /opt/tg, moved elsewhere, then pkg-config and find_package again
#      (the .pc and the CMake package find everything relative to where they are);
#   3. tapegrad.pc names only pkg-config modules and flags, no absolute path;
#   4. shared: the SONAME, and that only public tg_ symbols are exported.
# Step 2 also builds tests/install/consumer_cxx, a C++-only CMake project, against the moved tree.
# Everything it writes is under WORK_DIR, which it recreates.
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 SOURCE_DIR WORK_DIR BUILD_DIR shared|static" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
work=$2
main_build=$(cd "$3" && pwd)
main_kind=$4
case "$work" in /*) ;; *) work="$PWD/$work" ;; esac
consumer_src="$src/tests/install/consumer"
cc=${CC:-cc}
cxx=${CXX:-c++}
werror=${TG_WERROR:-OFF}
jobs=$(nproc 2>/dev/null || echo 2)
expect='y=9 dy/dx=6'

rm -rf "$work"
mkdir -p "$work"
log="$work/log.txt"
: >"$log"

say() { echo "install_consumer: $*"; }
fail() {
    echo "install_consumer: FAILED: $*" >&2
    echo "---- last lines of $log ----" >&2
    tail -n 60 "$log" >&2
    exit 1
}
run() { # WHAT CMD...: CMD's output goes to the log; fails with the log on error.
    local what=$1
    shift
    echo "+ $*" >>"$log"
    "$@" >>"$log" 2>&1 || fail "$what"
}
expect_output() { # WHAT OUTPUT
    case "$2" in
        *"$expect"*) say "$1: ok (${2##*$'\n'})" ;;
        *) fail "$1: expected '$expect' in the output, got: $2" ;;
    esac
}
# readme_block NAME: the shell block after "<!-- install-test: NAME" in README.md.
readme_block() {
    awk -v tag="<!-- install-test: $1" '
        index($0, tag) == 1 { on = 1; next }
        on == 1 && /^```/ { on = 2; next }
        on == 2 && /^```/ { exit }
        on == 2 { print }' "$src/README.md"
}
# run_block WHAT DIR HOME NAME: runs README's block NAME in DIR with that HOME, as written.
run_block() {
    local what=$1 dir=$2 home=$3 block out
    block=$(readme_block "$4")
    [ -n "$block" ] || fail "README.md has no '<!-- install-test: $4' block"
    echo "+ (in $dir, HOME=$home) $block" >>"$log"
    out=$(cd "$dir" && env -u PKG_CONFIG_PATH HOME="$home" bash -euo pipefail -c "$block" 2>&1) ||
        fail "$what: README's $4 lines failed: $out"
    echo "$out" >>"$log"
    expect_output "$what" "$out"
}

for kind in shared static; do
    if [ "$kind" = "$main_kind" ]; then
        build=$main_build
    else
        build="$work/build-$kind"
        if [ "$kind" = shared ]; then shared=ON; else shared=OFF; fi
        run "$kind: configure tapegrad" cmake -S "$src" -B "$build" \
            -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=$shared \
            -DTG_BUILD_TESTS=OFF -DTG_BUILD_EXAMPLES=OFF -DTG_BUILD_TOOLS=OFF \
            -DTG_WERROR="$werror" -DCMAKE_INSTALL_PREFIX=/nonexistent/configured-prefix
        run "$kind: build tapegrad" cmake --build "$build" -j "$jobs"
    fi
    kwork="$work/$kind"
    home="$kwork/home"
    mkdir -p "$home" "$kwork/pc/build" "$kwork/cmake"
    ln -s "$build" "$kwork/pc/build/release"
    cp "$consumer_src/prog.c" "$kwork/pc/"
    cp "$consumer_src/prog.c" "$consumer_src/CMakeLists.txt" "$kwork/cmake/"

    # 1. README's lines, as written.
    run_block "$kind: README pkg-config" "$kwork/pc" "$home" pkg-config
    run_block "$kind: README cmake" "$kwork/cmake" "$home" cmake
    found=$(sed -n 's/^tapegrad_DIR:PATH=//p' "$kwork/cmake/build/CMakeCache.txt")
    case "$found" in "$home"/tg/*) ;; *) fail "$kind: find_package found '$found', not ~/tg" ;; esac
    pc=$(find "$home/tg" -name tapegrad.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || fail "$kind: no tapegrad.pc under ~/tg"
    if [ -x "$home/tg/bin/tapegrad" ]; then
        "$home/tg/bin/tapegrad" --version >>"$log" 2>&1 || fail "$kind: installed tapegrad --version"
        [ -f "$home/tg/share/man/man1/tapegrad.1.gz" ] || fail "$kind: no man page installed"
        say "$kind: the tapegrad command and its man page are installed"
    fi

    # 2. A staged install (DESTDIR), moved: pkg-config and find_package still find it.
    run "$kind: DESTDIR install" env DESTDIR="$kwork/stage" cmake --install "$build" --prefix /opt/tg
    mv "$kwork/stage/opt/tg" "$kwork/moved"
    moved_pc=$(dirname "$(find "$kwork/moved" -name tapegrad.pc | head -n 1)")
    moved_lib=$(dirname "$moved_pc")
    cflags=$(PKG_CONFIG_PATH="$moved_pc" pkg-config --cflags tapegrad) || fail "$kind: pkg-config"
    libs=$(PKG_CONFIG_PATH="$moved_pc" pkg-config --libs tapegrad) || fail "$kind: pkg-config"
    case "$cflags" in *"$kwork/moved"*) ;; *) fail "$kind: moved tree: Cflags '$cflags' do not point into it" ;; esac
    # shellcheck disable=SC2086 # pkg-config output is meant to be split
    run "$kind: build against the moved tree (pkg-config)" "$cc" -std=c11 -Wall -Wextra \
        "$kwork/pc/prog.c" -o "$kwork/prog-moved" $cflags $libs
    out=$(cd "$kwork" && LD_LIBRARY_PATH="$moved_lib" ./prog-moved 2>&1) || fail "$kind: $out"
    expect_output "$kind: moved tree, pkg-config" "$out"
    run "$kind: configure against the moved tree (find_package)" cmake -S "$kwork/cmake" \
        -B "$kwork/cmake-moved" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$kwork/moved" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    run "$kind: build against the moved tree (find_package)" cmake --build "$kwork/cmake-moved"
    out=$(cd "$kwork" && ./cmake-moved/prog 2>&1) || fail "$kind: $out"
    expect_output "$kind: moved tree, find_package" "$out"
    # A C++-only project (no C enabled) finds it too, and the headers compile as C++.
    run "$kind: configure a C++ project against the moved tree" cmake \
        -S "$src/tests/install/consumer_cxx" -B "$kwork/cxx" -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_PREFIX_PATH="$kwork/moved" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
        -DCMAKE_CXX_FLAGS="-Wall -Wextra -pedantic -Werror"
    run "$kind: build the C++ project" cmake --build "$kwork/cxx"
    out=$(cd "$kwork" && ./cxx/prog 2>&1) || fail "$kind: $out"
    expect_output "$kind: moved tree, C++ project" "$out"

    # A static build's missing dependency is a plain message naming it (not a CMake list).
    if [ "$kind" = static ]; then
        echo "+ (PKG_CONFIG_LIBDIR=/nonexistent) configure against the moved tree" >>"$log"
        if out=$(PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH='' cmake -S "$kwork/cmake" \
            -B "$kwork/cmake-nodeps" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$kwork/moved" \
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF 2>&1); then
            fail "static: found without libxxhash: $out"
        fi
        echo "$out" >>"$log"
        msg=$(printf '%s\n' "$out" | tr -s ' \n' '  ')
        msg=${msg#*Reason given by package: }
        msg=${msg%%-- Configuring incomplete*}
        case "$msg" in
            *";"*) fail "static: the not-found message has a ';': $msg" ;;
            *"needs libxxhash, which pkg-config could not find"*) ;;
            *) fail "static: no message naming libxxhash: $msg" ;;
        esac
        say "static: without libxxhash, find_package says so"
    fi

    # 3. The pkg-config file: relocatable, no absolute paths, the right flags for the kind.
    if grep -E '^(prefix|libdir|includedir)=/|^(Libs|Cflags|Requires).*[ :]/' "$pc" >/dev/null; then
        fail "$kind: absolute path in tapegrad.pc: $(grep -E '/' "$pc" | grep -v '^#')"
    fi
    grep -q '^prefix=${pcfiledir}/' "$pc" || fail "$kind: tapegrad.pc's prefix is not relative"
    if [ "$kind" = static ]; then
        case "$cflags" in *-DTG_STATIC_DEFINE*) ;; *) fail "static: Cflags lack -DTG_STATIC_DEFINE" ;; esac
        grep -q '^Requires:.*libxxhash' "$pc" || fail "static: libxxhash not in Requires"
    else
        case "$cflags" in *-DTG_STATIC_DEFINE*) fail "shared: Cflags have -DTG_STATIC_DEFINE" ;; esac
    fi

    # 4. The shared library: SONAME, and only the public API exported (tg_* without a double
    #    underscore: internal cross-module functions are tg_<module>__<verb>).
    if [ "$kind" = shared ]; then
        so=$(find "$moved_lib" -maxdepth 1 -name 'libtapegrad.so.*.*' -type f | head -n 1)
        [ -n "$so" ] || fail "shared: no libtapegrad.so.* in $moved_lib"
        soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
        [ "$soname" = libtapegrad.so.0 ] || fail "shared: SONAME is '$soname'"
        syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//')
        bad=$(printf '%s\n' "$syms" | grep -v -E '^tg_[A-Za-z0-9]' || true)
        bad+=$(printf '%s\n' "$syms" | grep -E '__' || true)
        [ -z "$bad" ] || fail "shared: exported symbols outside the public API: $(echo $bad)"
        printf '%s\n' "$syms" | grep -qx tg_version || fail "shared: tg_version not exported"
        say "shared: $soname, $(printf '%s\n' "$syms" | wc -l) exported symbols, all public tg_*"
    fi
done

say "all checks passed"
