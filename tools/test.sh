#!/usr/bin/env bash
# Installs what is needed, builds contra and runs the whole test suite.
# Usage: tools/test.sh [build-dir]   (default: build)
#
# oneDNN picks its kernels by the CPU's instruction set, so on a CPU above
# AVX2 (AVX-512) the suite runs twice: at the CPU's own ISA, then with
# oneDNN capped at AVX2 (DNNL_MAX_CPU_ISA=AVX2), the kernels an AVX2-only
# machine runs, where bf16 is refused. The GPU tests run (or skip) once.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tools/install-deps.sh --test
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONTRA_ARCH=native
cmake --build "$build"
"$build/bin/contra" --version
# The autograd oracle (python3-torch, installed above) must run: its tests
# fail rather than skip.
export CONTRA_REQUIRE_TORCH=1
ctest --test-dir "$build" --output-on-failure --timeout 600
if grep -qw avx512f /proc/cpuinfo; then
  echo "test.sh: this CPU has AVX-512; the suite again with oneDNN capped at AVX2"
  DNNL_MAX_CPU_ISA=AVX2 "$build/bin/contra" --version
  DNNL_MAX_CPU_ISA=AVX2 ctest --test-dir "$build" --output-on-failure --timeout 600 -LE gpu
else
  echo "test.sh: this CPU has no AVX-512: the suite above ran oneDNN's AVX2 (or older) kernels"
fi
