// batch_all's cuda build against its CPU build (the oracle). On rows of ±1
// entries the distances are exact (or correctly rounded) in strict f32 on
// both, so the violating triplets are equal; on a random batch over two Gram
// blocks, a triplet may only differ where d(a,p) − d(a,n) + margin is within
// 1e-5 of 0.
#include "batch_all.hpp"
#include "batch_all_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::BatchAll;
using contra::plugins::BatchAllCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return BatchAll::schema().bind(p); }

}  // namespace

TEST_CASE("batch_all cuda: schema is the CPU build's, CPU embeddings are refused", "[plugins][batch_all][cuda]") {
  CHECK(BatchAllCuda::schema().describe() == BatchAll::schema().describe());
  // The check comes before any GPU work: this runs without a GPU too.
  BatchAllCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "batch_all: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  BatchAllCuda labelled(params({{"use_labels", true}}));
  contra::Embeddings dev = e;
  dev.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  CHECK_THROWS_WITH(labelled.mine(dev, out),
                    "batch_all: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}

TEST_CASE("batch_all cuda: without only_violating the triplets need no GPU work",
          "[plugins][batch_all][cuda]") {
  // The embeddings are never read: a device tensor that wraps host memory
  // stands in for them, and the listing equals the CPU build's.
  std::vector<std::int64_t> sample = samples(3, 2), label = {0, 0, 1, 0, 0, 1};
  contra::Tensor z = random_matrix(6, 5, 3);
  for (bool labels : {false, true}) {
    INFO("use_labels " << labels);
    BatchAll cpu(params({{"use_labels", labels}}));
    BatchAllCuda gpu(params({{"use_labels", labels}}));
    contra::Embeddings host{z, &sample, &label, 2};
    contra::Embeddings dev = host;
    dev.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
    CHECK(mined(gpu, dev) == mined(cpu, host));
  }
}

TEST_CASE("batch_all cuda: violating triplets of exact distances match the CPU build",
          "[plugins][batch_all][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Embeddings e{sign_rows(8, 11), &sample, nullptr, 2};
  for (const char* distance : {"euclidean", "cosine"})
    for (double margin : {0.0, 0.5, 1.0}) {
      INFO(distance << ", margin " << margin);
      BatchAll cpu(params({{"distance", std::string(distance)}, {"margin", margin}, {"only_violating", true}}));
      BatchAllCuda gpu(params({{"distance", std::string(distance)}, {"margin", margin}, {"only_violating", true}}));
      auto [want, got] = mine_both_lists(cpu, gpu, e);
      CHECK(got == want);
    }
}

TEST_CASE("batch_all cuda: a random batch over two Gram blocks matches the CPU build",
          "[plugins][batch_all][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  const std::int64_t n = 520, views = 2, m = n * views, dim = 16;  // 1040 rows: two blocks of 1024
  contra::Tensor z = random_matrix(m, dim, 5);
  std::vector<std::int64_t> sample = samples(n, views);
  std::vector<std::int64_t> label(m);
  for (std::int64_t r = 0; r < m; ++r) label[r] = sample[r] % 40;
  contra::Embeddings e{z, &sample, &label, views};
  for (const char* distance : {"euclidean", "cosine"}) {
    INFO(distance);
    const bool cosine = std::string(distance) == "cosine";
    const double margin = cosine ? 0.05 : 0.2;
    auto bind = [&] {
      return params({{"distance", std::string(distance)}, {"margin", margin}, {"only_violating", true},
                     {"use_labels", true}});
    };
    BatchAll cpu(bind());
    BatchAllCuda gpu(bind());
    auto [want, got] = mine_both_lists(cpu, gpu, e);
    REQUIRE_FALSE(want.triplets.empty());
    // Triplets in one list and not the other sit on the margin's edge.
    std::vector<Triple> only;
    std::set_symmetric_difference(want.triplets.begin(), want.triplets.end(), got.triplets.begin(),
                                  got.triplets.end(), std::back_inserter(only));
    for (const auto& [a, p, q] : only)
      CHECK(std::fabs(row_distance(z, a, p, cosine) - row_distance(z, a, q, cosine) + margin) < 1e-5);
    CHECK(only.size() <= want.triplets.size() / 1000);
  }
}
