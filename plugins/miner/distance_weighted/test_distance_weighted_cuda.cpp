// distance_weighted's cuda build against its CPU build (the oracle): both
// draw with the same sampler and Rng streams, so on rows of ±1 entries
// (similarities exact in strict f32) the triplets are equal, call after call;
// on a random batch over two Gram blocks, similarities a few ulps apart move
// a cumulative weight by as little, and nearly every draw is the same.
#include "distance_weighted.hpp"
#include "distance_weighted_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::DistanceWeighted;
using contra::plugins::DistanceWeightedCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return DistanceWeighted::schema().bind(p); }

}  // namespace

TEST_CASE("distance_weighted cuda: schema is the CPU build's, CPU embeddings are refused",
          "[plugins][distance_weighted][cuda]") {
  CHECK(DistanceWeightedCuda::schema().describe() == DistanceWeighted::schema().describe());
  // The check comes before any GPU work: this runs without a GPU too.
  DistanceWeightedCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "distance_weighted: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
}

TEST_CASE("distance_weighted cuda: draws from exact similarities match the CPU build",
          "[plugins][distance_weighted][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  std::vector<std::int64_t> sample = samples(8, 2);
  contra::Embeddings e{sign_rows(16, 17), &sample, nullptr, 2};
  auto bind = [] { return params({{"negatives_per_anchor", std::int64_t{3}}, {"seed", std::int64_t{5}},
                                  {"nonzero_loss_cutoff", 1.9}}); };
  DistanceWeighted cpu(bind());
  DistanceWeightedCuda gpu(bind());
  for (int call = 0; call < 3; ++call) {  // the Rng epoch moves on with each call on both
    INFO("call " << call);
    auto [want, got] = mine_both_lists(cpu, gpu, e);
    REQUIRE_FALSE(want.triplets.empty());
    CHECK(got == want);
  }
}

TEST_CASE("distance_weighted cuda: a random batch over two Gram blocks matches the CPU build",
          "[plugins][distance_weighted][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  const std::int64_t n = 540, views = 2, m = n * views, dim = 24;  // 1080 rows: two blocks of 1024
  contra::Tensor z = random_matrix(m, dim, 21);
  std::vector<std::int64_t> sample = samples(n, views);
  contra::Embeddings e{z, &sample, nullptr, views};
  DistanceWeighted cpu(params({}));
  DistanceWeightedCuda gpu(params({}));
  auto [want, got] = mine_both_lists(cpu, gpu, e);
  REQUIRE(got.triplets.size() == want.triplets.size());
  std::size_t same = 0;
  for (std::size_t k = 0; k < want.triplets.size(); ++k) {
    REQUIRE(std::get<0>(got.triplets[k]) == std::get<0>(want.triplets[k]));
    REQUIRE(std::get<1>(got.triplets[k]) == std::get<1>(want.triplets[k]));
    same += got.triplets[k] == want.triplets[k];
  }
  CHECK(same >= want.triplets.size() * 99 / 100);
}
