#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS [FUZZER...]]: builds the libFuzzer harnesses with clang,
# AddressSanitizer and UBSan in build/fuzz, and runs each FUZZER (default: all three, one
# after the other) for SECONDS (default 60) on a working copy of its seed corpus:
#   tgx    fuzz_tgx.c    the tgx parser and evaluator   corpus_tgx/, tgx.dict + gen_tgx_dict
#   model  fuzz_model.c  the model- and tensor-file loaders  gen_model_seeds output, model.dict
#   csv    fuzz_csv.c    the CSV reader and data sets   corpus_csv/, csv.dict
# Exits non-zero when one finds a crash, a leak or a timeout; the input that did it is left
# in build/fuzz/artifacts/NAME-* (turn it into a regression test: test_expr.c,
# test_model_file.c, test_data.c or test_hostile.c). Without clang or libFuzzer it says so
# and exits 0. FUZZ_RUNS=N runs N inputs per fuzzer instead of a time limit.
set -euo pipefail

secs=${1:-60}
case "$secs" in
    '' | *[!0-9]*)
        echo "usage: tests/fuzz/run.sh [SECONDS [tgx|model|csv...]]" >&2
        exit 2
        ;;
esac
shift || true
fuzzers=("$@")
[ ${#fuzzers[@]} -gt 0 ] || fuzzers=(tgx model csv)
for f in "${fuzzers[@]}"; do
    case "$f" in
        tgx | model | csv) ;;
        *)
            echo "fuzz: unknown fuzzer '$f' (tgx, model or csv)" >&2
            exit 2
            ;;
    esac
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found; skipping the fuzzers"
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
targets=()
for f in "${fuzzers[@]}"; do targets+=(--target "fuzz_$f"); done
cmake --build "$build" "${targets[@]}" --target gen_model_seeds --target gen_tgx_dict -j "$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/artifacts"
for f in "${fuzzers[@]}"; do
    corpus=$build/corpus_$f
    mkdir -p "$corpus"
    dict=tests/fuzz/$f.dict
    case "$f" in
        tgx | csv) cp -n "tests/fuzz/corpus_$f"/* "$corpus/" 2>/dev/null || true ;;
        model) "$build/tests/fuzz/gen_model_seeds" "$corpus" ;;
    esac
    if [ "$f" = tgx ]; then # the tokens, then every function of the language
        dict=$build/tgx.dict
        { cat tests/fuzz/tgx.dict && "$build/tests/fuzz/gen_tgx_dict"; } >"$dict"
    fi
    # Programs stay short (evaluation is the costly part); files may hold a few tensors.
    max_len=4096
    [ "$f" = tgx ] && max_len=1024
    limit=(-max_total_time="$secs")
    [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
    echo "== fuzz_$f for ${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-${secs}s}"
    "$build/tests/fuzz/fuzz_$f" "${limit[@]}" -max_len="$max_len" -timeout=25 \
        -dict="$dict" -artifact_prefix="$build/artifacts/$f-" \
        -print_final_stats=1 "$corpus"
done
