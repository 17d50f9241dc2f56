#!/usr/bin/env bash
# tools/test.sh [--sanitize] [--tsan] [--no-graphviz] [--valgrind]: installs what is missing,
# builds tapegrad and runs every test with ctest. --sanitize builds in build/asan with
# ASan + UBSan (RelWithDebInfo, with assertions) and skips the slow install test (it builds
# its own, unsanitized, trees). --tsan builds in build/tsan with ThreadSanitizer
# (RelWithDebInfo), also without the install test. --no-graphviz builds in build/nogv with
# -DTG_GRAPHVIZ=OFF and -DTG_MPI=OFF (tg_dot_render and tg_dist_* must then say
# TG_ENOTSUP), also without the install test. --valgrind builds in build/valgrind
# (RelWithDebInfo) and runs only the tests labelled valgrind: a subset of the suite under
# valgrind memcheck, where any error or leak fails (tests/CMakeLists.txt, TG_VALGRIND).
# CI=true turns warnings into errors. Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sanitize=0
tsan=0
valgrind=0
graphviz=AUTO
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        --tsan) tsan=1 ;;
        --valgrind) valgrind=1 ;;
        --no-graphviz) graphviz=OFF ;;
        -h | --help)
            sed -n '2,11p' "$0"
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done
if [ $sanitize -eq 1 ] && [ $tsan -eq 1 ]; then
    echo "test.sh: --sanitize and --tsan cannot share a build; run them one after the other" >&2
    exit 2
fi

jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[ "${CI:-}" = true ] && werror=ON

./tools/setup.sh

ctest_args=(--output-on-failure -j "$jobs")
if [ $sanitize -eq 1 ]; then
    build=build/asan
    # With the library's internal assertions (TG_ASSERT) on: RelWithDebInfo without NDEBUG.
    config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_SANITIZE=ON "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g")
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ctest_args+=(--label-exclude slow)
elif [ $tsan -eq 1 ]; then
    build=build/tsan
    config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_SANITIZE=OFF -DTG_TSAN=ON)
    ctest_args+=(--label-exclude slow)
else
    build=build/release
    config=(-DCMAKE_BUILD_TYPE=Release -DTG_SANITIZE=OFF)
fi
if [ $valgrind -eq 1 ]; then
    if [ $sanitize -eq 1 ] || [ $tsan -eq 1 ]; then
        echo "test.sh: --valgrind excludes --sanitize and --tsan" >&2
        exit 2
    fi
    build=build/valgrind
    config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_SANITIZE=OFF -DTG_VALGRIND=ON)
    ctest_args+=(--label-regex valgrind)
fi
if [ "$graphviz" = OFF ]; then
    # A separate tree, so the default builds keep their Graphviz setting and their cache.
    if [ $sanitize -eq 1 ]; then build=build/asan-nogv; else build=build/nogv; fi
    [ $tsan -eq 0 ] || build=build/tsan-nogv
    [ $sanitize -eq 1 ] || ctest_args+=(--label-exclude slow)
fi
config+=(-DTG_GRAPHVIZ="$graphviz")
# The build without optional dependencies is also the one without MPI.
if [ "$graphviz" = OFF ]; then config+=(-DTG_MPI=OFF); fi

echo "== configure ($build, TG_WERROR=$werror, TG_GRAPHVIZ=$graphviz)"
cmake -S . -B "$build" "${config[@]}" -DTG_WERROR="$werror" -DTG_BUILD_TESTS=ON
echo "== build"
cmake --build "$build" -j "$jobs"
echo "== test"
ctest --test-dir "$build" "${ctest_args[@]}"
