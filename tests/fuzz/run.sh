#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds the tgx fuzzer (fuzz_tgx.c) with clang, libFuzzer,
# AddressSanitizer and UBSan in build/fuzz, and runs it for SECONDS (default 60) on a working
# copy of the seed corpus tests/fuzz/corpus_tgx. Exits non-zero when it finds a crash, a leak
# or a timeout; the input that did it is left in build/fuzz/artifacts/ (turn it into a
# regression test in tests/test_expr.c). Without clang or libFuzzer it says so and exits 0.
set -euo pipefail

secs=${1:-60}
case "$secs" in
    '' | *[!0-9]*)
        echo "usage: tests/fuzz/run.sh [SECONDS]" >&2
        exit 2
        ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found; skipping the fuzzer"
    exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/p.c" <<'C'
int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }
C
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "fuzz: clang cannot link libFuzzer (install clang's compiler-rt); skipping"
    exit 0
fi

build=build/fuzz
jobs=$(nproc 2>/dev/null || echo 2)
echo "== configure ($build, clang, TG_FUZZ=ON)"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTG_FUZZ=ON -DTG_BUILD_TESTS=OFF -DTG_BUILD_EXAMPLES=OFF -DTG_BUILD_TOOLS=OFF \
    -DTG_GRAPHVIZ=OFF >/dev/null
echo "== build"
cmake --build "$build" --target fuzz_tgx -j "$jobs"

corpus=$build/corpus
mkdir -p "$corpus" "$build/artifacts"
cp -n tests/fuzz/corpus_tgx/* "$corpus/" 2>/dev/null || true
echo "== fuzz for ${secs}s"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$build/tests/fuzz/fuzz_tgx" -max_total_time="$secs" -max_len=1024 -timeout=25 \
    -dict=tests/fuzz/tgx.dict -artifact_prefix="$build/artifacts/" -print_final_stats=1 \
    "$corpus"
