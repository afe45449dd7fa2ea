// contrastive_margin's cuda build against its CPU build (the oracle). Strict
// f32: 1e-4 of the value and of the gradient's largest entry (the same Gram
// form, sums in another order; random inputs put no negative within 1e-6 of
// the margin).
#include "contrastive_margin.hpp"
#include "contrastive_margin_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::ContrastiveMargin;
using contra::plugins::ContrastiveMarginCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double margin, bool normalize, const char* reduction, std::int64_t chunk = 1024) {
  return ContrastiveMargin::schema().bind({{"margin", margin},
                                           {"normalize", normalize},
                                           {"reduction", std::string(reduction)},
                                           {"chunk", chunk}});
}

}  // namespace

TEST_CASE("contrastive_margin cuda: schema and parameter checks are the CPU build's",
          "[plugins][contrastive_margin][cuda]") {
  CHECK(ContrastiveMarginCuda::schema().describe() == ContrastiveMargin::schema().describe());
  CHECK_THROWS_AS(ContrastiveMarginCuda(params(0.0, false, "mean")), contra::ConfigError);
}

TEST_CASE("contrastive_margin cuda: refuses CPU embeddings and malformed pairs with the CPU build's messages",
          "[plugins][contrastive_margin][cuda]") {
  ContrastiveMarginCuda loss(params(1.0, false, "mean"));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "contrastive_margin: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings labelled = e;
  labelled.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  contra::Pairs listed;
  listed.positive = {{0, 2}};
  listed.negative = {{1, 9}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out),
                    "contrastive_margin: negative pair (1, 9) is outside the 4 rows");
}

TEST_CASE("contrastive_margin cuda: all pairs match the CPU build", "[plugins][contrastive_margin][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(2 * 23, 12, 51, 0.3);
  std::vector<std::int64_t> sample = samples(23, 2);
  contra::Embeddings e{z, &sample};
  for (auto [margin, normalize, reduction, chunk] :
       {std::tuple<double, bool, const char*, std::int64_t>{1.0, false, "mean", 1024},
        {1.5, false, "sum", 6},
        {0.8, true, "mean", 1},
        {1.2, true, "sum", 1024}}) {
    INFO("margin " << margin << ", normalize " << normalize << ", reduction " << reduction << ", chunk " << chunk);
    ContrastiveMargin cpu(params(margin, normalize, reduction));
    ContrastiveMarginCuda gpu(params(margin, normalize, reduction, chunk));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}

TEST_CASE("contrastive_margin cuda: listed pairs match the CPU build", "[plugins][contrastive_margin][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int32_t n = 16;
  contra::Tensor z = random_matrix(2 * n, 20, 52, 0.3);
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Embeddings e{z, &sample};
  contra::Pairs listed;
  for (std::int32_t a = 0; a < n; ++a) listed.positive.push_back({a, a + n});
  for (std::int32_t a = 0; a < 2 * n; ++a)
    for (std::int32_t k = 1; k <= 3; ++k) listed.negative.push_back({a, (a + 3 * k) % (2 * n)});
  listed.negative.push_back({2, 5});  // repeated: counts twice
  for (bool normalize : {false, true}) {
    INFO("normalize " << normalize);
    ContrastiveMargin cpu(params(1.0, normalize, "mean"));
    ContrastiveMarginCuda gpu(params(1.0, normalize, "mean"));
    compare_loss(cpu, gpu, e, listed, 1e-4, 1e-4);
  }
}

TEST_CASE("contrastive_margin cuda: near pairs get the CPU build's exact gradient",
          "[plugins][contrastive_margin][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  // Sample pairs 1e-5 apart: negatives far inside the margin, whose
  // coefficient −2(m − d)/d is about 10⁵. Through the Gram form their
  // gradient would be off by about 1e-2 of the largest entry; added
  // directly, as on the CPU, it agrees to 1e-4.
  const std::int64_t n = 12;
  contra::Tensor z = near_rows(n, 2, 16, 1e-5, 0.3, 61);
  std::vector<std::int64_t> sample = samples(n, 2);
  contra::Embeddings e{z, &sample};
  for (std::int64_t chunk : {1024, 5}) {
    INFO("chunk " << chunk);
    ContrastiveMargin cpu(params(1.0, false, "mean"));
    ContrastiveMarginCuda gpu(params(1.0, false, "mean", chunk));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}
