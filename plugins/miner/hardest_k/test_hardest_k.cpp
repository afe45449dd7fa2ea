#include "hardest_k.hpp"

#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::HardestK;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;
using PairList = std::vector<std::pair<int, int>>;

HardestK make(Params p = {}) { return HardestK(HardestK::schema().bind(p)); }

// Row i at angle deg[i] on the circle of radius r[i] (2-D).
contra::Tensor on_circle(const std::vector<double>& deg, double radius = 1.0) {
  contra::Tensor t = contra::Tensor::empty({static_cast<std::int64_t>(deg.size()), 2}, contra::DType::f32);
  for (std::size_t i = 0; i < deg.size(); ++i) {
    const double a = deg[i] * 3.14159265358979323846 / 180.0;
    t.data<float>()[2 * i] = static_cast<float>(radius * std::cos(a));
    t.data<float>()[2 * i + 1] = static_cast<float>(radius * std::sin(a));
  }
  return t;
}

contra::Tensor random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed, bool normalise) {
  contra::Tensor t = contra::Tensor::empty({rows, cols}, contra::DType::f32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  float* p = t.data<float>();
  for (std::int64_t k = 0; k < t.numel(); ++k) p[k] = static_cast<float>(rng.normal());
  if (normalise)
    for (std::int64_t i = 0; i < rows; ++i) {
      double ss = 0;
      for (std::int64_t c = 0; c < cols; ++c) ss += static_cast<double>(p[i * cols + c]) * p[i * cols + c];
      for (std::int64_t c = 0; c < cols; ++c) p[i * cols + c] = static_cast<float>(p[i * cols + c] / std::sqrt(ss));
    }
  return t;
}

// Row r = v * n + i is view v of sample i.
std::vector<std::int64_t> samples(std::int64_t n, std::int64_t views) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = 0; v < views; ++v)
    for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

struct Mined {
  PairList pos, mem;  // as emitted (not sorted)
};

Mined mine(HardestK& miner, const contra::Embeddings& z) {
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK_FALSE(pairs.all);
  CHECK(pairs.triplets.empty());
  CHECK(pairs.negative.empty());
  return {PairList(pairs.positive.begin(), pairs.positive.end()),
          PairList(pairs.memory_negative.begin(), pairs.memory_negative.end())};
}

PairList sorted(PairList p) {
  std::sort(p.begin(), p.end());
  return p;
}

// Two samples (ids 5 and 7), two views each: rows 0 (s0) at 0°, 1 (s1) at 180°, 2 (s0) at 25°,
// 3 (s1) at 170°. Memory keys (angle, id):
//   0: 0° id 5 (sample 0 itself)   1: 10° id 20   2: 20° empty   3: 30° id 21   4: -15° id 22
//   5: 60° id 23   6: 180° id 7 (sample 1 itself)   7: 190° id 24   8: 160° id 25   9: 90° id 26
struct Fixture {
  std::vector<std::int64_t> sample = samples(2, 2);
  std::vector<std::int64_t> ids = {5, 7, 5, 7};
  std::vector<std::int64_t> key_ids = {5, 20, -1, 21, 22, 23, 7, 24, 25, 26};
  contra::MemoryView memory{on_circle({0, 10, 20, 30, -15, 60, 180, 190, 160, 90}), &key_ids, nullptr};
  contra::Embeddings z{on_circle({0, 180, 25, 170}, 3.0), &sample, nullptr, 2, &ids, {}, &memory};
};

}  // namespace

TEST_CASE("hardest_k: schema is well formed with its parameters and defaults", "[plugins][hardest_k]") {
  contra::Schema s = HardestK::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "hardest_k");
  contra::Params p = s.bind({});
  CHECK(p.get<std::int64_t>("k") == 16);
  CHECK(p.get<std::int64_t>("chunk") == 1024);
  CHECK_THROWS_AS(s.bind({{"k", std::int64_t(0)}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"chunk", std::int64_t(0)}}), contra::ConfigError);
}

TEST_CASE("hardest_k: the k most similar keys, excluding the anchor's own id and empty slots",
          "[plugins][hardest_k]") {
  Fixture f;
  HardestK miner = make({{"k", std::int64_t(3)}});
  const Mined m = mine(miner, f.z);
  // Row 0 (0°): key 0 is its own sample, key 2 empty; then 10° (1), -15° (4), 30° (3).
  // Row 1 (180°): key 6 is its own sample; then 190° (7), 160° (8), 90° (9).
  // Row 2 (25°): 30° (3), 10° (1), 60° (5); key 2 (20°) is empty, key 0 (0°) its own sample.
  // Row 3 (170°): key 6 (180°) is its own sample; then 160° (8), 190° (7), 90° (9).
  // Within an anchor, the most similar first.
  CHECK(m.mem == PairList{{0, 1}, {0, 4}, {0, 3}, {1, 7}, {1, 8}, {1, 9},
                          {2, 3}, {2, 1}, {2, 5}, {3, 8}, {3, 7}, {3, 9}});
  CHECK(m.pos == PairList{{0, 2}, {1, 3}, {2, 0}, {3, 1}});
}

TEST_CASE("hardest_k: k beyond the valid keys takes them all", "[plugins][hardest_k]") {
  Fixture f;
  HardestK miner = make({{"k", std::int64_t(100)}});
  const Mined m = mine(miner, f.z);
  PairList want;
  for (int a = 0; a < 4; ++a)
    for (int j = 0; j < 10; ++j)
      if (f.key_ids[j] != -1 && f.key_ids[j] != f.ids[a]) want.emplace_back(a, j);
  CHECK(sorted(m.mem) == want);
  CHECK(m.mem.size() == 4u * 8u);
  // Row 0's list in order of decreasing similarity: 10, -15, 30, 60, 90, 160, 190, 180 degrees.
  CHECK(PairList(m.mem.begin(), m.mem.begin() + 8) ==
        PairList{{0, 1}, {0, 4}, {0, 3}, {0, 5}, {0, 9}, {0, 8}, {0, 7}, {0, 6}});
}

TEST_CASE("hardest_k: without Embeddings::ids only empty slots are excluded", "[plugins][hardest_k]") {
  Fixture f;
  f.z.ids = nullptr;
  HardestK miner = make({{"k", std::int64_t(3)}});
  const Mined m = mine(miner, f.z);
  CHECK(PairList(m.mem.begin(), m.mem.begin() + 3) == PairList{{0, 0}, {0, 1}, {0, 4}});
  CHECK(PairList(m.mem.begin() + 3, m.mem.begin() + 6) == PairList{{1, 6}, {1, 7}, {1, 8}});
}

TEST_CASE("hardest_k: an all-empty memory gives positives only", "[plugins][hardest_k]") {
  Fixture f;
  std::vector<std::int64_t> empty(10, -1);
  f.memory.ids = &empty;
  HardestK miner = make();
  const Mined m = mine(miner, f.z);
  CHECK(m.mem.empty());
  CHECK(m.pos == PairList{{0, 2}, {1, 3}, {2, 0}, {3, 1}});
}

TEST_CASE("hardest_k: without a memory is a UsageError", "[plugins][hardest_k]") {
  Fixture f;
  HardestK miner = make();
  contra::Pairs pairs;
  f.z.memory = nullptr;
  CHECK_THROWS_WITH(miner.mine(f.z, pairs), "hardest_k: needs a [memory] (queue or bank) to mine from");
  contra::MemoryView none;
  f.z.memory = &none;
  CHECK_THROWS_WITH(miner.mine(f.z, pairs), "hardest_k: needs a [memory] (queue or bank) to mine from");
}

TEST_CASE("hardest_k: rejects keys of another width or without ids", "[plugins][hardest_k]") {
  Fixture f;
  HardestK miner = make();
  contra::Pairs pairs;
  contra::MemoryView wide{contra::Tensor::zeros({10, 3}, contra::DType::f32), &f.key_ids, nullptr};
  f.z.memory = &wide;
  CHECK_THROWS_WITH(miner.mine(f.z, pairs),
                    "hardest_k: expected memory keys as an f32 [K, 2] CPU tensor, got f32 [10, 3] on cpu");
  contra::MemoryView no_ids{f.memory.keys, nullptr, nullptr};
  f.z.memory = &no_ids;
  CHECK_THROWS_WITH(miner.mine(f.z, pairs),
                    "hardest_k: the memory must give the sample id of each of its 10 keys (MemoryView::ids)");
}

TEST_CASE("hardest_k: chunk = 1 gives what chunk = 1024 does, and matches a reference",
          "[plugins][hardest_k]") {
  // 3 views of 50 samples, 700 keys in 8-D; ids 0..49 for the batch, keys with ids in 0..399
  // (so some are the anchor's own sample) and every 9th slot empty.
  const int n = 50, v = 3, m = n * v, kk = 700, dim = 8, k = 16;
  std::vector<std::int64_t> sample = samples(n, v), ids(m), key_ids(kk);
  for (int r = 0; r < m; ++r) ids[r] = sample[r];
  contra::Rng rng(99, 0, 0, 0, 0);
  for (int j = 0; j < kk; ++j) key_ids[j] = j % 9 == 0 ? -1 : rng.integer(0, 399);
  contra::MemoryView memory{random_matrix(kk, dim, 2, true), &key_ids, nullptr};
  contra::Embeddings z{random_matrix(m, dim, 3, false), &sample, nullptr, v, &ids, {}, &memory};
  HardestK one = make({{"chunk", std::int64_t(1)}});
  HardestK seven = make({{"chunk", std::int64_t(7)}});
  HardestK big = make();
  const Mined a = mine(one, z), b = mine(big, z), c = mine(seven, z);
  CHECK(a.mem == b.mem);
  CHECK(c.mem == b.mem);
  CHECK(a.pos == b.pos);
  CHECK(b.mem.size() == static_cast<std::size_t>(m * k));
  CHECK(b.pos.size() == static_cast<std::size_t>(m * (v - 1)));
  // Reference in double: the k-th largest similarity over the valid keys; every pick is at least
  // that (up to rounding) and valid.
  const float* x = z.z.data<float>();
  const float* keys = memory.keys.data<float>();
  int bad = 0;
  for (int r = 0; r < m; ++r) {
    std::vector<double> s;
    std::vector<double> s_of(kk, 0.0);
    double xx = 0;
    for (int c2 = 0; c2 < dim; ++c2) xx += static_cast<double>(x[r * dim + c2]) * x[r * dim + c2];
    for (int j = 0; j < kk; ++j) {
      double dot = 0;
      for (int c2 = 0; c2 < dim; ++c2) dot += static_cast<double>(x[r * dim + c2]) * keys[j * dim + c2];
      s_of[j] = dot / std::sqrt(xx);
      if (key_ids[j] != -1 && key_ids[j] != ids[r]) s.push_back(s_of[j]);
    }
    std::sort(s.rbegin(), s.rend());
    const double kth = s[k - 1];
    double prev = 2.0;
    for (int t = 0; t < k; ++t) {
      auto [ar, j] = b.mem[static_cast<std::size_t>(r * k + t)];
      bad += ar != r || key_ids[j] == -1 || key_ids[j] == ids[r] || s_of[j] < kth - 1e-6 || s_of[j] > prev + 1e-6;
      prev = s_of[j];
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("hardest_k: equally similar keys go to the lower index", "[plugins][hardest_k]") {
  std::vector<std::int64_t> sample = samples(1, 2), ids = {3, 3}, key_ids = {20, 21, 22};
  contra::MemoryView memory{on_circle({40, 10, 10}), &key_ids, nullptr};
  contra::Embeddings z{on_circle({0, 5}), &sample, nullptr, 2, &ids, {}, &memory};
  HardestK miner = make({{"k", std::int64_t(1)}});
  CHECK(mine(miner, z).mem == PairList{{0, 1}, {1, 1}});
}
