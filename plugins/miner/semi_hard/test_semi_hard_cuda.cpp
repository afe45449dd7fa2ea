// semi_hard's cuda build against its CPU build (the oracle). On dyadic points
// (four rows: the centring is exact) the distances are exact in strict f32 on
// both, so the triplets are equal, window edges and ties included; on a
// random batch of more rows than one Gram block, the same (anchor, positive)
// pairs in the same order and at least 99% the same negatives (float
// distances from a Gram product in a different order may move a negative
// across the window's edge).
#include "semi_hard.hpp"
#include "semi_hard_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::SemiHard;
using contra::plugins::SemiHardCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return SemiHard::schema().bind(p); }

}  // namespace

TEST_CASE("semi_hard cuda: schema is the CPU build's, CPU embeddings are refused", "[plugins][semi_hard][cuda]") {
  CHECK(SemiHardCuda::schema().describe() == SemiHard::schema().describe());
  SemiHardCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "semi_hard: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
}

TEST_CASE("semi_hard cuda: the CPU tests' hand-worked batches give the same triplets", "[plugins][semi_hard][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  std::vector<std::int64_t> sample = samples(2, 2);
  // Rows 0 and 1 one class, rows 2 and 3 alone (labels), or 2 samples x 2 views.
  std::vector<std::int64_t> label = {0, 0, 2, 3};
  for (const std::vector<float>& xs : std::vector<std::vector<float>>{
           {0, 3, 1, 1.125f}, {0, 1, -1, 1.5f}, {0, 1, 1.125f, -1.125f}, {0, 1, 0.5f, 0.5f}})
    for (bool labels : {false, true})
      for (const char* fallback : {"tfa", "skip"})
        for (double margin : {0.2, 1.5}) {
          INFO("points " << xs[0] << " " << xs[1] << " " << xs[2] << " " << xs[3] << ", use_labels " << labels
                         << ", fallback " << fallback << ", margin " << margin);
          contra::Embeddings e{on_line(xs), &sample, &label, 2};
          Params p = {{"use_labels", labels}, {"fallback", std::string(fallback)}, {"margin", margin}};
          SemiHard cpu(params(p));
          SemiHardCuda gpu(params(p));
          auto [want, got] = mine_both(cpu, gpu, e);
          CHECK(got == want);
        }
}

TEST_CASE("semi_hard cuda: a random batch over two Gram blocks matches the CPU build", "[plugins][semi_hard][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 367, views = 3, m = n * views, dim = 8;  // 1101 rows: two blocks of 1024
  contra::Tensor z = random_matrix(m, dim, 9);
  std::vector<std::int64_t> sample = samples(n, views);
  std::vector<std::int64_t> label(m);
  for (std::int64_t r = 0; r < m; ++r) label[r] = sample[r] % 7;
  contra::Embeddings e{z, &sample, &label, views};
  for (const char* distance : {"euclidean", "cosine"})
    for (bool labels : {false, true})
      for (const char* fallback : {"tfa", "skip"}) {
        INFO(distance << ", use_labels " << labels << ", fallback " << fallback);
        Params p = {{"distance", std::string(distance)}, {"use_labels", labels}, {"fallback", std::string(fallback)}};
        SemiHard cpu(params(p));
        SemiHardCuda gpu(params(p));
        auto [want, got] = mine_both(cpu, gpu, e);
        if (std::string(fallback) == "tfa") {
          REQUIRE(got.size() == want.size());
          std::size_t same = 0;
          for (std::size_t k = 0; k < want.size(); ++k) {
            REQUIRE(std::get<0>(got[k]) == std::get<0>(want[k]));
            REQUIRE(std::get<1>(got[k]) == std::get<1>(want[k]));
            same += got[k] == want[k];
          }
          CHECK(same >= want.size() * 99 / 100);
        } else {
          // skip drops pairs whose negative left the window: the counts may differ by those.
          const double diff = std::fabs(static_cast<double>(got.size()) - static_cast<double>(want.size()));
          CHECK(diff <= 0.01 * static_cast<double>(want.size()));
        }
      }
}
