#!/usr/bin/env bash
# Builds the CPU test suite with a sanitizer and runs it.
# Usage: tools/sanitize.sh [address|thread] [ctest arguments ...]
#   address (default): AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan
#   thread:            ThreadSanitizer, in build-tsan
# The GPU tests are left out (CONTRA_CUDA=OFF: a CPU build), and so are the
# tests of an installed SDK (label `install`). Optimised at -O1
# with line tables only (-g1): reports name files and lines, and the build
# stays well inside CI's time. Suppressions, each with its reason, are in
# tools/sanitizers/.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-address}
shift || true
case "$kind" in
  address) sanitize=address,undefined; build=build-asan ;;
  thread) sanitize=thread; build=build-tsan ;;
  *) echo "usage: tools/sanitize.sh [address|thread] [ctest arguments ...]" >&2; exit 2 ;;
esac
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCONTRA_CUDA=OFF -DCONTRA_BUILD_BENCHES=OFF -DCONTRA_SANITIZE="$sanitize"
cmake --build "$build"
supp=$PWD/tools/sanitizers
# Leaks at exit of plugins still mapped are not errors here; a finding stops the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp}
# The `install` tests build programs against the installed SDK without the
# sanitizer's runtime: they run in the plain build only.
ctest --test-dir "$build" --output-on-failure --timeout 900 -LE 'gpu|install' "$@"
