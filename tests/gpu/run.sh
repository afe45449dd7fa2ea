#!/usr/bin/env bash
# The GPU checks in one go, for a machine with an NVIDIA GPU (H200, sm_90):
# configure with CONTRA_CUDA=ON, build, run every test labelled `gpu` (the
# [gpu] Catch2 cases: libcontra_cuda, the copy stage, each *_cuda plugin
# against its CPU build, the train step on the device), then the GPU
# benchmarks (build/bench/*cuda*, *gpu*: ntxent_cuda, and gpu_train_step,
# the SimCLR step and epoch against PyTorch, which runs with $PYTHON or
# python3), printing their figures. A [gpu] test that skips here is a
# failure: on this machine the GPU must be usable.
#
# Usage: tests/gpu/run.sh [BUILD_DIR]   (default: build-gpu beside this repo's root)
# Takes a few minutes on 16 cores; the longest part is the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
jobs=$(nproc)
mkdir -p "$build"

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "(nvidia-smi not available)"

echo "== configure ($build)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONTRA_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" >"$build/gpu-configure.log" 2>&1 || {
  cat "$build/gpu-configure.log"; exit 1; }
grep "^-- contra:" "$build/gpu-configure.log" || true

echo "== build"
start=$(date +%s)
# Keep going past a target that fails: one device session should report
# every test and benchmark that did build, and the errors of the rest.
status=0
if ! cmake --build "$build" -j "$jobs" -- -k 0 >"$build/gpu-build.log" 2>&1; then
  echo "error: the build failed; the errors (the rest of what built still runs):"
  # grep -m, not `| head`: under pipefail head's early exit would end the script.
  grep -m 40 -E "error|FAILED" "$build/gpu-build.log" || true
  status=1
fi
echo "built in $(( $(date +%s) - start )) s"

echo "== [gpu] tests"
log=$build/gpu-tests.log
# One GPU: a few test processes at once (each holds a CUDA context; an
# exclusive-process GPU takes one), and the tests that time overlap alone
# (RUN_SERIAL).
ctest --test-dir "$build" -L gpu -j 4 --timeout 300 --output-on-failure 2>&1 | tee "$log" || status=1
# ctest reports skipped tests as not run: with a GPU present, none may skip.
if grep -q "(Skipped)" "$log"; then
  echo "error: [gpu] tests skipped on a machine that should have a usable GPU:"
  grep "(Skipped)" "$log"
  out=$("$build/bin/test_gpu" "cuda: without a usable GPU, require() and cuda tensors say why" -s 2>&1 || true)
  grep -m 5 -i "reason\|GPU" <<< "$out" || true
  status=1
fi

echo "== GPU benchmarks"
shopt -s nullglob
benches=("$build"/bench/*cuda* "$build"/bench/*gpu*)
if (( ${#benches[@]} == 0 )); then
  echo "(none built)"
fi
for b in "${benches[@]}"; do
  [[ -x $b ]] || continue
  echo "-- $(basename "$b")"
  timeout 240 "$b" || { echo "error: $(basename "$b") failed"; status=1; }
done
exit $status
