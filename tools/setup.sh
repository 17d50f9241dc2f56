#!/usr/bin/env bash
# tools/setup.sh [--blas] [--bench]: makes sure the Debian packages tapegrad needs to build and
# test are installed, installing only the missing ones (apt-get, with sudo when not root).
# Prints nothing when everything is already there, so it works offline on a prepared machine.
# --blas (or TG_BLAS=openblas in the environment) adds libopenblas-dev, for -DTG_BLAS=openblas.
# --bench adds what `tapegrad bench` compares against when it finds it, and never needs to
# build: libopenblas-dev (gemm beside cblas_sgemm, loaded at run time) and python3-torch
# (Debian's PyTorch, W3 beside it, run by /usr/bin/python3).
set -euo pipefail

# libgraphviz-dev: in-process rendering (tg_dot_render; optional, TG_GRAPHVIZ=AUTO uses it when
# present); graphviz: the `dot` command, to view the dot text by hand.
# clang + libclang-rt-dev: the libFuzzer harnesses CI runs (tests/fuzz/run.sh).
# libopenmpi-dev + openmpi-bin: distributed training (tapegrad/dist.h; optional, TG_MPI=AUTO)
# and mpirun for its tests.
# valgrind: the memcheck run CI makes (tools/test.sh --valgrind).
# doxygen: the API reference from the public headers (the api_reference test, docs/Doxyfile.in).
# dpkg-dev: dpkg-shlibdeps, which gives the Debian package its dependencies (cpack -G DEB).
PACKAGES=(cmake pkg-config gcc make libxxhash-dev libcriterion-dev libgraphviz-dev graphviz clang
    libclang-rt-dev libopenmpi-dev openmpi-bin valgrind doxygen dpkg-dev)
[ "${TG_BLAS:-}" = openblas ] && PACKAGES+=(libopenblas-dev)
for arg in "$@"; do
    case "$arg" in
    --blas) PACKAGES+=(libopenblas-dev) ;;
    --bench) PACKAGES+=(libopenblas-dev python3-torch) ;;
    *)
        echo "setup.sh: unknown option '$arg' (expected --blas or --bench)" >&2
        exit 2
        ;;
    esac
done

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: nothing we can install; say what is needed and go on if the basics exist.
    for tool in cmake pkg-config cc make; do
        command -v "$tool" >/dev/null 2>&1 || die "not a Debian system and '$tool' is missing; install: ${PACKAGES[*]} (or your distribution's equivalents)"
    done
    for mod in libxxhash criterion; do
        pkg-config --exists "$mod" || die "not a Debian system and pkg-config cannot find '$mod'; install the xxHash and Criterion development packages"
    done
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup.sh: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    die "missing packages (${missing[*]}) and not root, and sudo is not available; as root run: apt-get install ${missing[*]}"
fi

log=$(mktemp "${TMPDIR:-/tmp}/tapegrad-setup.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get update failed (no network or no package sources?)"
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get install ${missing[*]} failed"
fi
echo "setup.sh: installed ${missing[*]}"
