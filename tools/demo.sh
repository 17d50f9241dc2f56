#!/usr/bin/env bash
# tools/demo.sh: installs what is missing, builds tapegrad (Release, in build/release) and
# runs the main demo program from the repository root. Arguments are passed to the demo.
set -euo pipefail

# The program to show, relative to the build directory (an example or a tool).
DEMO=examples/backprop_222

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=build/release
jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[ "${CI:-}" = true ] && werror=ON

./tools/setup.sh
echo "demo.sh: building tapegrad in $build ..." >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTG_SANITIZE=OFF -DTG_WERROR="$werror" >/dev/null
# Examples and tools only: the demo does not wait for (or depend on) the tests compiling.
cmake --build "$build" -j "$jobs" --target tapegrad_examples tapegrad_tools >/dev/null || {
    echo "demo.sh: build failed (compiler messages above)" >&2
    exit 1
}
if [ ! -x "$build/$DEMO" ]; then
    echo "demo.sh: $build/$DEMO was not built (is its source there?)" >&2
    exit 1
fi
exec "$build/$DEMO" "$@"
