#!/usr/bin/env bash
# The native core under AddressSanitizer and UBSan: builds csrc with both (CMake option
# SCURATE_SANITIZE) into a scratch folder, then runs tests/native against that build.
#
# Python is not instrumented, so libasan is preloaded; leak detection is off (the interpreter
# keeps memory on purpose at exit) and any finding stops the run with a non-zero exit.
# Usage: tools/sanitize.sh [PYTHON]   PYTHON: a venv's python with the test extra (default
# .venv/bin/python). The build folder build/sanitize is kept so that a rerun compiles only what
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
bin=$(cd "$(dirname "$PY")" && pwd)  # not resolved further: a venv's python is a symlink
PY="$bin/$(basename "$PY")"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT

# RelWithDebInfo: pybind11 strips Release modules, and reports need file:line
"$PY" -m pip install -q --no-deps --target "$site" -C cmake.define.SCURATE_SANITIZE=ON \
  -C cmake.build-type=RelWithDebInfo -C install.strip=false -C build-dir=build/sanitize . 2>&1 |
  { grep -v "is ignored" || true; }
rm -rf "$site"/*.dist-info  # its entry points would register the plugins a second time
core=$(ls "$site"/scurate/_core*.so)
asan=$(ldd "$core" | awk '/libasan/ {print $3}')
cxx=$(ldd "$core" | awk '/libstdc\+\+/ {print $3}')
test -n "$asan" || { echo "sanitize: $core is not linked against libasan" >&2; exit 1; }

# libstdc++ too: python does not link it, and ASan's __cxa_throw interceptor must find it
export LD_PRELOAD="$asan $cxx"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer)}
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
# from elsewhere than the source tree, whose scurate/ has no _core and would come first
(cd "$site" && "$PY" -c "import scurate._core as c; assert c.__file__.startswith('$site')")
# the CLI determinism test runs whole jobs: it belongs to the normal run, not this one
# -s: a sanitizer writes its report to stderr and exits, which pytest's capture would swallow
# -n 0: in one process, as -s needs (pytest-xdist's workers, in addopts, capture their output)
"$bin/pytest" -q -s -n 0 -p no:cacheprovider tests/native --ignore tests/native/test_determinism.py
