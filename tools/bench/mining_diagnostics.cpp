// The host cost of the per-step mining diagnostics (runtime/train/
// mining_diagnostics.hpp) with all pairs: what the train step spends on them
// each step. On the GPU the step computes them while the backward pass runs,
// so this is time the GPU must cover, not time it waits.
//
//   build/bench/mining_diagnostics [--rows M] [--dim D] [--reps R]
#include "train/mining_diagnostics.hpp"

#include <contra/cpu.hpp>
#include <contra/rng.hpp>
#include <contra/tensor.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::int64_t rows = 1024, dim = 128, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::int64_t v = std::atoll(argv[i + 1]);
    if (a == "--rows") rows = v;
    else if (a == "--dim") dim = v;
    else if (a == "--reps") reps = v;
    else {
      std::fprintf(stderr, "usage: %s [--rows M] [--dim D] [--reps R]\n", argv[0]);
      return 2;
    }
  }
  if (rows < 4 || rows % 2 != 0 || dim < 1 || reps < 1) {
    std::fprintf(stderr, "--rows must be an even number >= 4, --dim and --reps >= 1\n");
    return 2;
  }
  const std::int64_t n = rows / 2;  // two views of n samples
  contra::Tensor z = contra::Tensor::empty({rows, dim}, contra::DType::f32);
  contra::Rng rng(1, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < z.numel(); ++k) z.data<float>()[k] = static_cast<float>(rng.normal());
  std::vector<std::int64_t> sample(rows), label(rows);
  for (std::int64_t r = 0; r < rows; ++r) sample[r] = r % n, label[r] = r % 10;
  contra::Embeddings e{z, &sample, &label, 2};
  contra::Pairs pairs;
  pairs.all = true;
  std::vector<double> ms;
  for (std::int64_t rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const contra::runtime::MiningDiagnostics d = contra::runtime::diagnose_mining(e, pairs, rep);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (d.negative_pairs <= 0) return 1;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("mining diagnostics, all pairs, M = %lld rows, D = %lld: median %.2f ms per step (%lld runs)\n"
              "cpu: %s\n",
              static_cast<long long>(rows), static_cast<long long>(dim), ms[ms.size() / 2],
              static_cast<long long>(reps), contra::cpu_capabilities().summary().c_str());
  return 0;
}
