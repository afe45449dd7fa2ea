#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-15 in build-fuzz and
# runs each for a while; exits non-zero when any of them found something.
# Usage: tools/fuzz.sh [seconds per target, default 30] [target ...]
# Each target starts from tests/fuzz/corpus/<target>, copied into
# build-fuzz/fuzz/<target>/corpus (which keeps what earlier runs found);
# findings are written beside it as crash-*, leak-*, oom-* or timeout-*.
# tests/fuzz/README.md says how to run one target by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
case "$seconds" in
  ''|*[!0-9]*) echo "usage: tools/fuzz.sh [seconds] [target ...]" >&2; exit 2 ;;
esac
build=build-fuzz
# No MPI backend: it reads no outside bytes, and its library (linked with
# --no-undefined) would need the sanitizer runtimes only the fuzz executables carry.
CC=${CC:-clang-15} CXX=${CXX:-clang++-15} cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCONTRA_CUDA=OFF -DCONTRA_MPI=OFF -DCONTRA_BUILD_BENCHES=OFF -DCONTRA_BUILD_TESTS=OFF -DCONTRA_FUZZ=ON > /dev/null
cmake --build "$build" --target fuzz_targets

targets=("$@")
named=$#
if [ ${#targets[@]} -eq 0 ]; then
  for dir in tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi
# A finding stops the target at once, with its stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

dict_of() {
  case "$1" in
    fuzz_pipeline) echo tests/fuzz/dict/toml.dict ;;
    fuzz_safetensors|fuzz_run_json) echo tests/fuzz/dict/json.dict ;;
    fuzz_npy) echo tests/fuzz/dict/npy.dict ;;
    fuzz_image) echo tests/fuzz/dict/image.dict ;;
  esac
}

failed=0
summary=()
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/$t
  if [ ! -x "$exe" ]; then
    [ "$named" -gt 0 ] && { echo "fuzz.sh: no fuzz target $exe" >&2; exit 2; }
    # A plugin whose library configure did not find is not built, nor its target.
    summary+=("$(printf '%-24s %10s executions  not built (see tests/fuzz/CMakeLists.txt)' "$t" -)")
    continue
  fi
  work=$build/fuzz/$t
  mkdir -p "$work/corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null || true
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        -artifact_prefix="$work/")
  dict=$(dict_of "$t")
  [ -n "$dict" ] && args+=(-dict="$dict")
  echo "== $t: ${seconds}s, log $work/log.txt"
  rc=0
  "$exe" "${args[@]}" "$work/corpus" > "$work/log.txt" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -n 1)
  # slow-unit-* files are kept for a look, not findings.
  artifact=$(sed -n 's/.*Test unit written to \(.*\/\(crash\|leak\|oom\|timeout\)-[0-9a-f]*\)$/\1/p' "$work/log.txt" |
             tail -n 1)
  if [ $rc -eq 0 ] && [ -z "$artifact" ]; then
    summary+=("$(printf '%-24s %10s executions  clean' "$t" "${runs:-?}")")
  else
    failed=1
    tail -n 40 "$work/log.txt"
    summary+=("$(printf '%-24s %10s executions  FOUND (exit %d): %s' "$t" "${runs:-?}" "$rc" "${artifact:-see $work/log.txt}")")
  fi
done

echo
echo "fuzz.sh: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "fuzz.sh: findings above; reproduce one with: $build/tests/fuzz/<target> <file>" >&2
  exit 1
fi
