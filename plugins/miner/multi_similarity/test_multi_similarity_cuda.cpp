// multi_similarity's cuda build against its CPU build (the oracle). On rows
// of ±1 entries the similarities are exact in strict f32 on both, so the
// pairs are equal; on a random batch over two Gram blocks, a pair may only
// differ where its test is within 1e-5 of its threshold.
#include "multi_similarity.hpp"
#include "multi_similarity_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::MultiSimilarity;
using contra::plugins::MultiSimilarityCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return MultiSimilarity::schema().bind(p); }

}  // namespace

TEST_CASE("multi_similarity cuda: schema is the CPU build's, CPU embeddings are refused",
          "[plugins][multi_similarity][cuda]") {
  CHECK(MultiSimilarityCuda::schema().describe() == MultiSimilarity::schema().describe());
  // The check comes before any GPU work: this runs without a GPU too.
  MultiSimilarityCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "multi_similarity: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
}

TEST_CASE("multi_similarity cuda: pairs of exact similarities match the CPU build",
          "[plugins][multi_similarity][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  std::vector<std::int64_t> sample = samples(6, 2), label = {0, 1, 0, 1, 2, 2, 0, 1, 0, 1, 2, 2};
  contra::Embeddings e{sign_rows(12, 13), &sample, &label, 2};
  for (double epsilon : {0.0, 0.1, 0.3})
    for (bool labels : {false, true}) {
      INFO("epsilon " << epsilon << ", use_labels " << labels);
      MultiSimilarity cpu(params({{"epsilon", epsilon}, {"use_labels", labels}}));
      MultiSimilarityCuda gpu(params({{"epsilon", epsilon}, {"use_labels", labels}}));
      auto [want, got] = mine_both_lists(cpu, gpu, e);
      CHECK(got == want);
    }
}

TEST_CASE("multi_similarity cuda: a random batch over two Gram blocks matches the CPU build",
          "[plugins][multi_similarity][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  const std::int64_t n = 600, views = 2, m = n * views, dim = 32;  // 1200 rows: two blocks of 1024
  contra::Tensor z = random_matrix(m, dim, 9);
  std::vector<std::int64_t> sample = samples(n, views);
  std::vector<std::int64_t> label(m);
  for (std::int64_t r = 0; r < m; ++r) label[r] = sample[r] % 10;
  contra::Embeddings e{z, &sample, &label, views};
  MultiSimilarity cpu(params({{"use_labels", true}}));
  MultiSimilarityCuda gpu(params({{"use_labels", true}}));
  auto [want, got] = mine_both_lists(cpu, gpu, e);
  REQUIRE_FALSE(want.negative.empty());
  for (auto lists : {std::make_pair(&want.positive, &got.positive), std::make_pair(&want.negative, &got.negative)}) {
    std::vector<std::pair<int, int>> only;
    std::set_symmetric_difference(lists.first->begin(), lists.first->end(), lists.second->begin(),
                                  lists.second->end(), std::back_inserter(only));
    CHECK(only.size() <= lists.first->size() / 1000 + 2);
  }
}
