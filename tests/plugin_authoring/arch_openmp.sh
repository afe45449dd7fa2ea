#!/usr/bin/env bash
# contra_add_plugin's ARCH and OPENMP options, against the installed contra:
# a plugin compiled with ARCH native and OPENMP builds, links libgomp, records
# this CPU's extensions in its manifest's fingerprint, loads into contra, and
# its OpenMP loop runs in a pipeline.
# Usage: arch_openmp.sh PREFIX WORK_DIR GENERATOR CXX
set -euo pipefail
prefix=$1 work=$2 generator=$3 cxx=$4
rm -rf "$work"
mkdir -p "$work/src"
cat > "$work/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(squared_distance LANGUAGES CXX)
find_package(contra 0.5 REQUIRED)
contra_add_plugin(squared_distance SOURCES squared_distance.cpp ARCH native OPENMP)
CMAKE
cat > "$work/src/squared_distance.cpp" <<'CPP'
// Mean squared distance of the positive pairs of two views (no negatives):
// a loss small enough for a build test, its rows split by OpenMP.
#include <contra/plugin.hpp>

#include <omp.h>

class SquaredDistance final : public contra::Loss {
 public:
  static contra::Schema schema() { return contra::Schema("squared_distance", "mean squared distance of view pairs"); }
  explicit SquaredDistance(const contra::Params&) {}
  void compute(const contra::Embeddings& z, const contra::Pairs&, contra::LossResult& out) override {
    const std::int64_t rows = z.rows(), dim = z.z.dim(1), n = rows / 2;
    const float* x = z.z.data<float>();
    out.grad.ensure(z.z.shape(), contra::DType::f32);
    float* g = out.grad.data<float>();
    double total = 0;
    int threads = 1;
#pragma omp parallel for reduction(+ : total)
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == 0) threads = omp_get_num_threads();
      for (std::int64_t d = 0; d < dim; ++d) {
        const float diff = x[i * dim + d] - x[(i + n) * dim + d];
        total += static_cast<double>(diff) * diff;
        g[i * dim + d] = 2 * diff / n;
        g[(i + n) * dim + d] = -2 * diff / n;
      }
    }
    out.value = total / n;
    out.metrics = {{"openmp_threads", static_cast<double>(threads)}};
  }
};

CONTRA_PLUGIN_LIBRARY(CONTRA_LOSS(SquaredDistance))
CPP
cmake -S "$work/src" -B "$work/build" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log"
cmake --build "$work/build"
lib="$work/build/plugins/libsquared_distance.so"
# (Whole outputs first: with pipefail, grep -q or -m1 leaving a pipe early
# would fail the pipeline by its writer's SIGPIPE.)
deps=$(ldd "$lib")
grep -q libgomp <<< "$deps" || { echo "OPENMP: $lib is not linked to libgomp"; echo "$deps"; exit 1; }
# -march=native: the fingerprint names what the compiler was allowed to use.
text=$(strings "$lib")
fp=$(grep -m1 '^sdk=.*;isa=' <<< "$text") || { echo "no fingerprint with isa= in $lib"; exit 1; }
macros=$(echo | "$cxx" -march=native -dM -E -x c++ -)
native=$(grep -c '#define __AVX2__ 1' <<< "$macros" || true)
if [[ $native == 1 ]]; then
  [[ $fp == *",avx2,"* || $fp == *",avx2" ]] || { echo "ARCH native: fingerprint '$fp' does not name avx2"; exit 1; }
fi
echo "fingerprint: $fp"
described=$(CONTRA_PLUGIN_PATH="$work/build/plugins" "$prefix/bin/contra" plugins --describe squared_distance 2>&1)
grep -q "^  cpu build: $lib$" <<< "$described" || {
  echo "contra did not load the ARCH native plugin:"; echo "$described"; exit 1; }
cat > "$work/run.toml" <<TOML
[pipeline]
name = "arch_openmp"
[runtime]
compute_threads = 2
[train]
max_steps = 3
[source]
plugin = "synthetic"
size = 64
height = 8
width = 8
channels = 1
[sampler]
plugin = "random"
batch_size = 16
[encoder]
plugin = "mlp"
hidden = [16]
output = 8
[miner]
plugin = "all_pairs"
[loss]
plugin = "squared_distance"
[optimizer]
plugin = "sgd"
lr = 0.01
TOML
cd "$work"
out=$(CONTRA_PLUGIN_PATH="$work/build/plugins" "$prefix/bin/contra" run "$work/run.toml" 2>&1) || {
  echo "$out"; echo "contra run failed"; exit 1; }
grep -qE "^  openmp_threads +2" <<< "$out" || { echo "$out"; echo "the plugin's OpenMP loop did not run on 2 threads"; exit 1; }
echo "ARCH native and OPENMP OK"
