#!/usr/bin/env bash
# tools/demo.sh: installs what is missing, builds tapegrad (Release, in build/release) and runs
# the main demo from the repository root: `tapegrad train` on the handwritten digits with the
# default options, then the trained network's graph written as Graphviz dot (and drawn as SVG
# when Graphviz is built in) and the learning curves as SVG, under build/release/demo/.
# Arguments are passed to `tapegrad train` (e.g. --epochs 10 --layers 32).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=build/release
jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[ "${CI:-}" = true ] && werror=ON

./tools/setup.sh
echo "demo.sh: building tapegrad in $build ..." >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTG_SANITIZE=OFF -DTG_WERROR="$werror" >/dev/null
# The tools only: the demo does not wait for (or depend on) the tests compiling.
cmake --build "$build" -j "$jobs" --target tapegrad_tools >/dev/null || {
    echo "demo.sh: build failed (compiler messages above)" >&2
    exit 1
}
tapegrad=$build/tools/tapegrad
if [ ! -x "$tapegrad" ]; then
    echo "demo.sh: $tapegrad was not built (is tools/tapegrad.c there?)" >&2
    exit 1
fi

out=$build/demo
mkdir -p "$out"
graph=(--dot "$out/digits.dot")
# Draw the graph too when this build can render (Graphviz found at configure time): a
# one-op program rendered to a scratch file says so without guessing from the cache.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if "$tapegrad" grad --render "$probe/probe.svg" 'x*x' x=1 >/dev/null 2>&1; then
    graph+=(--render "$out/digits.svg")
else
    echo "demo.sh: this build has no Graphviz rendering; writing the dot text only" >&2
fi

args=(train examples/data/digits.csv --target digit "${graph[@]}" --plot "$out/digits-curves.svg"
    "$@")
echo "\$ tapegrad ${args[*]}" >&2
exec "$tapegrad" "${args[@]}"
