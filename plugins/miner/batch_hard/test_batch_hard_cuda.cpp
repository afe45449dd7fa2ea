// batch_hard's cuda build against its CPU build (the oracle). On dyadic points
// the distances are exact in strict f32 on both, so the triplets are equal,
// ties included; on a random batch of more rows than one Gram block, the same
// anchors, and each chosen row at the oracle's distance within 1e-5 (float
// distances from a Gram product in a different order may swap near-ties).
#include "batch_hard.hpp"
#include "batch_hard_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::BatchHard;
using contra::plugins::BatchHardCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return BatchHard::schema().bind(p); }

}  // namespace

TEST_CASE("batch_hard cuda: schema is the CPU build's, CPU embeddings are refused", "[plugins][batch_hard][cuda]") {
  CHECK(BatchHardCuda::schema().describe() == BatchHard::schema().describe());
  // The check comes before any GPU work: this runs without a GPU too.
  BatchHardCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "batch_hard: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  BatchHardCuda labelled(params({{"use_labels", true}}));
  contra::Embeddings dev = e;
  dev.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  CHECK_THROWS_WITH(labelled.mine(dev, out),
                    "batch_hard: use_labels = true, but the batch has no labels (Embeddings::label is null)");
}

TEST_CASE("batch_hard cuda: hand-worked batches and ties match the CPU build exactly", "[plugins][batch_hard][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  // 8 rows: the column mean (centred rows) is exact too. From row 0 the
  // negatives 1, 2 and 5 are all 1 away: the lowest row wins, as on the CPU.
  std::vector<std::int64_t> sample = samples(4, 2);
  contra::Embeddings e{on_line({0, 1, -1, 4, 1, -1, 2, 6}), &sample, nullptr, 2};
  for (const char* distance : {"euclidean", "cosine"}) {
    INFO(distance);
    BatchHard cpu(params({{"distance", std::string(distance)}}));
    BatchHardCuda gpu(params({{"distance", std::string(distance)}}));
    auto [want, got] = mine_both(cpu, gpu, e);
    CHECK(got == want);
  }
}

TEST_CASE("batch_hard cuda: a random batch over two Gram blocks matches the CPU build", "[plugins][batch_hard][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 550, views = 2, m = n * views, dim = 16;  // 1100 rows: two blocks of 1024
  contra::Tensor z = random_matrix(m, dim, 7);
  std::vector<std::int64_t> sample = samples(n, views);
  std::vector<std::int64_t> label(m);
  for (std::int64_t r = 0; r < m; ++r) label[r] = sample[r] % 9;
  contra::Embeddings e{z, &sample, &label, views};
  for (const char* distance : {"euclidean", "cosine"})
    for (bool labels : {false, true}) {
      INFO(distance << ", use_labels " << labels);
      const bool cosine = std::string(distance) == "cosine";
      BatchHard cpu(params({{"distance", std::string(distance)}, {"use_labels", labels}}));
      BatchHardCuda gpu(params({{"distance", std::string(distance)}, {"use_labels", labels}}));
      auto [want, got] = mine_both(cpu, gpu, e);
      REQUIRE(got.size() == want.size());
      std::size_t same = 0;
      for (std::size_t k = 0; k < want.size(); ++k) {
        const auto [a, p, q] = want[k];
        const auto [ga, gp, gq] = got[k];
        REQUIRE(ga == a);
        CHECK(std::fabs(row_distance(z, a, gp, cosine) - row_distance(z, a, p, cosine)) < 1e-5);
        CHECK(std::fabs(row_distance(z, a, gq, cosine) - row_distance(z, a, q, cosine)) < 1e-5);
        same += got[k] == want[k];
      }
      CHECK(same >= want.size() * 99 / 100);
    }
}
