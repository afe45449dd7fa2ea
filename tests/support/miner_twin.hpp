#pragma once
// Runs a triplet miner's CPU build (the oracle) and its cuda build on the
// same embeddings (the cuda one on a device copy) and compares the triplets.

#include "cuda_twin.hpp"

#include <contra/roles/miner.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

namespace cuda_twin {

using Triple = std::tuple<int, int, int>;

template <class Miner>
std::vector<Triple> mined_triplets(Miner& miner, const contra::Embeddings& e) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(e, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.positive.empty());
  CHECK(pairs.negative.empty());
  std::vector<Triple> out;
  for (const auto& t : pairs.triplets) out.emplace_back(t.anchor, t.positive, t.negative);
  return out;
}

/// The CPU and cuda builds' triplets for `host`, in that order.
template <class CpuMiner, class GpuMiner>
std::pair<std::vector<Triple>, std::vector<Triple>> mine_both(CpuMiner& cpu, GpuMiner& gpu,
                                                              const contra::Embeddings& host) {
  contra::Embeddings dev = host;
  dev.z = to_device(host.z);
  return {mined_triplets(cpu, host), mined_triplets(gpu, dev)};
}

/// Points (x, 0) on a line: distances between dyadic xs are exact in f32.
inline contra::Tensor on_line(const std::vector<float>& xs) {
  contra::Tensor t = contra::Tensor::empty({static_cast<std::int64_t>(xs.size()), 2}, contra::DType::f32);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    t.data<float>()[2 * i] = xs[i];
    t.data<float>()[2 * i + 1] = 0.0f;
  }
  return t;
}

/// Euclidean or cosine distance of rows i and j, in double.
inline double row_distance(const contra::Tensor& z, std::int64_t i, std::int64_t j, bool cosine) {
  const std::int64_t d = z.dim(1);
  const float* a = z.data<float>() + i * d;
  const float* b = z.data<float>() + j * d;
  double s = 0.0, na = 0.0, nb = 0.0;
  for (std::int64_t k = 0; k < d; ++k) {
    if (cosine) {
      s += static_cast<double>(a[k]) * b[k];
      na += static_cast<double>(a[k]) * a[k];
      nb += static_cast<double>(b[k]) * b[k];
    } else {
      s += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    }
  }
  return cosine ? 1.0 - s / std::sqrt(na * nb) : std::sqrt(s);
}

/// Every list of a Pairs, comparable.
struct Mined {
  std::vector<std::pair<int, int>> positive, negative, memory_negative;
  std::vector<Triple> triplets;
  bool operator==(const Mined& o) const {
    return positive == o.positive && negative == o.negative && memory_negative == o.memory_negative &&
           triplets == o.triplets;
  }
};

template <class Miner>
Mined mined(Miner& miner, const contra::Embeddings& e) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(e, pairs);
  CHECK_FALSE(pairs.all);
  Mined out;
  for (const auto& [a, b] : pairs.positive) out.positive.emplace_back(a, b);
  for (const auto& [a, b] : pairs.negative) out.negative.emplace_back(a, b);
  for (const auto& [a, b] : pairs.memory_negative) out.memory_negative.emplace_back(a, b);
  for (const auto& t : pairs.triplets) out.triplets.emplace_back(t.anchor, t.positive, t.negative);
  return out;
}

/// What the CPU and cuda builds mine from `host`, in that order.
template <class CpuMiner, class GpuMiner>
std::pair<Mined, Mined> mine_both_lists(CpuMiner& cpu, GpuMiner& gpu, const contra::Embeddings& host) {
  contra::Embeddings dev = host;
  dev.z = to_device(host.z);
  return {mined(cpu, host), mined(gpu, dev)};
}

/// Rows of ±1 entries in dimension 4 (norm 2): normalised entries are ±0.5,
/// cosine similarities multiples of 0.25, and with 8 rows their column means
/// dyadic too, so every distance the miners compute is exact or correctly
/// rounded in f32 on both builds.
inline contra::Tensor sign_rows(std::int64_t rows, std::uint64_t seed) {
  contra::Tensor t = contra::Tensor::empty({rows, 4}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = rng.uniform() < 0.5 ? -1.0f : 1.0f;
  return t;
}

}  // namespace cuda_twin
