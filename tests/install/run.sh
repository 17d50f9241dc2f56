#!/usr/bin/env bash
# tests/install/run.sh SOURCE_DIR WORK_DIR
# Installs the tapegrad tree at SOURCE_DIR twice (static, then shared) into prefixes under
# WORK_DIR, then builds tests/install/consumer against each install through find_package and
# through pkg-config, runs it and checks its answer (y = x^2 at 3: y=9, dy/dx=6). For the
# shared library it also checks that only public tg_ symbols are exported. Everything it
# writes is under WORK_DIR, which it recreates.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR WORK_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
work=$2
case "$work" in /*) ;; *) work="$PWD/$work" ;; esac
consumer_src="$src/tests/install/consumer"
cc=${CC:-cc}
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
# run DESCRIPTION CMD...: runs CMD with its output in the log; fails with the log on error.
run() {
    local what=$1
    shift
    echo "+ $*" >>"$log"
    "$@" >>"$log" 2>&1 || fail "$what"
}
check_output() { # WHAT PROGRAM [env...]
    local what=$1 prog=$2 out
    shift 2
    out=$(env "$@" "$prog" 2>&1) || fail "$what: $prog exited non-zero: $out"
    case "$out" in
        *"$expect"*) say "$what: ok ($out)" ;;
        *) fail "$what: expected '$expect' in output, got: $out" ;;
    esac
}

for kind in static shared; do
    if [ "$kind" = shared ]; then shared=ON; else shared=OFF; fi
    build="$work/build-$kind"
    prefix="$work/prefix-$kind"

    run "$kind: configure tapegrad" cmake -S "$src" -B "$build" \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=$shared \
        -DTG_BUILD_TESTS=OFF -DTG_BUILD_EXAMPLES=OFF -DTG_BUILD_TOOLS=OFF \
        -DTG_WERROR="$werror" -DCMAKE_INSTALL_PREFIX="$prefix"
    run "$kind: build tapegrad" cmake --build "$build" -j "$jobs"
    run "$kind: install tapegrad" cmake --install "$build"

    pc=$(find "$prefix" -name tapegrad.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || fail "$kind: no tapegrad.pc installed under $prefix"
    pcdir=$(dirname "$pc")
    libdir=$(dirname "$pcdir")
    [ -f "$libdir/cmake/tapegrad/tapegradConfig.cmake" ] || fail "$kind: no tapegradConfig.cmake"
    [ -f "$prefix/include/tapegrad.h" ] || fail "$kind: tapegrad.h not installed"

    # 1. CMake: find_package(tapegrad CONFIG) through CMAKE_PREFIX_PATH.
    cbuild="$work/consumer-cmake-$kind"
    run "$kind: configure consumer (find_package)" cmake -S "$consumer_src" -B "$cbuild" \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    found=$(sed -n 's/^tapegrad_DIR:PATH=//p' "$cbuild/CMakeCache.txt")
    case "$found" in
        "$prefix"/*) ;;
        *) fail "$kind: find_package found tapegrad at '$found', not under $prefix" ;;
    esac
    run "$kind: build consumer (find_package)" cmake --build "$cbuild"
    check_output "$kind: find_package consumer" "$cbuild/consumer"

    # 2. pkg-config: a plain compiler line.
    export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    cflags=$(pkg-config --cflags tapegrad) || fail "$kind: pkg-config --cflags tapegrad"
    if [ "$kind" = static ]; then
        case "$cflags" in *-DTG_STATIC_DEFINE*) ;; *) fail "static: Cflags lack -DTG_STATIC_DEFINE: $cflags" ;; esac
        libs=$(pkg-config --libs --static tapegrad) || fail "static: pkg-config --libs --static"
        rpath=()
    else
        case "$cflags" in *-DTG_STATIC_DEFINE*) fail "shared: Cflags have -DTG_STATIC_DEFINE" ;; esac
        libs=$(pkg-config --libs tapegrad) || fail "shared: pkg-config --libs"
        rpath=("-Wl,-rpath,$libdir")
    fi
    pbin="$work/consumer-pc-$kind"
    # shellcheck disable=SC2086 # pkg-config output is meant to be split
    run "$kind: build consumer (pkg-config)" "$cc" -std=c11 -Wall -Wextra \
        "$consumer_src/main.c" -o "$pbin" $cflags $libs "${rpath[@]}"
    check_output "$kind: pkg-config consumer" "$pbin"
    unset PKG_CONFIG_PATH

    # 3. The shared library exports only the public API: tg_* without a double underscore
    #    (internal cross-module functions are tg_<module>__<verb> and must stay hidden).
    if [ "$kind" = shared ]; then
        so=$(find "$libdir" -maxdepth 1 -name 'libtapegrad.so.*' -type f | head -n 1)
        [ -n "$so" ] || fail "shared: no libtapegrad.so.* in $libdir"
        syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//')
        bad=$(printf '%s\n' "$syms" | grep -v -E '^tg_[A-Za-z0-9]' || true)
        bad+=$(printf '%s\n' "$syms" | grep -E '__' || true)
        [ -z "$bad" ] || fail "shared: exported symbols outside the public API: $(echo $bad)"
        printf '%s\n' "$syms" | grep -qx tg_version || fail "shared: tg_version not exported"
        say "shared: $(printf '%s\n' "$syms" | wc -l) exported symbols, all public tg_*"
    fi
done

say "all checks passed"
