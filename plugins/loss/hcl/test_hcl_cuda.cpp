// hcl's cuda build against its CPU build (the oracle). Tolerances as
// test_info_nce_cuda.cpp: strict f32 1e-4 of the value and of the gradient's
// largest entry (the same terms summed in another order; the weights e^{βs}
// amplify rounding a little for large β/T); TF32 1e-2 and 5e-2 at T = 0.5.
#include "hcl.hpp"
#include "hcl_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <tuple>
#include <vector>

using contra::plugins::Hcl;
using contra::plugins::HclCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double t, double tau_plus, double beta, std::int64_t chunk = 1024) {
  return Hcl::schema().bind({{"temperature", t}, {"tau_plus", tau_plus}, {"beta", beta}, {"chunk", chunk}});
}

}  // namespace

TEST_CASE("hcl cuda: schema is the CPU build's", "[plugins][hcl][cuda]") {
  CHECK(HclCuda::schema().describe() == Hcl::schema().describe());
}

TEST_CASE("hcl cuda: refuses CPU embeddings and malformed pair lists with the CPU build's messages",
          "[plugins][hcl][cuda]") {
  // Every check comes before any GPU work, so this runs without a GPU too: the
  // "cuda" embeddings below are host memory labelled cuda, and never read.
  HclCuda loss(params(0.5, 0.1, 1.0));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "hcl: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings labelled = e;
  labelled.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  contra::Pairs listed;
  listed.negative = {{0, 1}, {3, -1}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out), "hcl: negative pair (3, -1) is outside the 4 rows");
  listed.negative = {{0, 1}};
  listed.memory_negative = {{0, 0}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out),
                    "hcl: Pairs::memory_negative lists memory keys, but the memory is absent");
}

TEST_CASE("hcl cuda: matches the CPU build over beta, tau+ and temperature", "[plugins][hcl][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(2 * 29, 24, 3);
  std::vector<std::int64_t> sample = samples(29, 2);
  contra::Embeddings e{z, &sample};
  for (auto [t, tau, beta] : {std::tuple<double, double, double>{0.5, 0.1, 1.0},
                              {0.2, 0.0, 0.0},
                              {0.1, 0.3, 2.0},
                              {0.05, 0.5, 0.5},   // low temperature: some terms clamp at N e^{-1/T}
                              {1.0, 0.9, 1.0}}) {
    INFO("T " << t << ", tau+ " << tau << ", beta " << beta);
    Hcl cpu(params(t, tau, beta));
    HclCuda gpu(params(t, tau, beta));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}

TEST_CASE("hcl cuda: memory keys, empty slots and the anchor's own id match the CPU build", "[plugins][hcl][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 17, k = 45;
  contra::Tensor z = random_matrix(3 * n, 16, 8);
  std::vector<std::int64_t> sample = samples(n, 3), ids, key_ids;
  for (std::int64_t s : sample) ids.push_back(500 + s);
  for (std::int64_t j = 0; j < k; ++j) key_ids.push_back(j % 6 == 1 ? -1 : j % 4 == 0 ? 500 + j % n : 900 + j);
  contra::MemoryView memory{random_matrix(k, 16, 9), &key_ids};
  contra::MemoryView anonymous{memory.keys};  // keys without ids: every key is a negative
  for (const contra::MemoryView* mv : {&memory, &anonymous})
    for (bool with_ids : {true, false})
      for (bool on_device : {false, true}) {
        INFO("key ids " << (mv->ids != nullptr) << ", row ids " << with_ids << ", keys on cuda " << on_device);
        contra::Embeddings e{z, &sample};
        e.views = 3;
        if (with_ids) e.ids = &ids;
        e.memory = mv;
        Hcl cpu(params(0.2, 0.1, 1.0));
        HclCuda gpu(params(0.2, 0.1, 1.0, 7));
        compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4, on_device);
      }
}

TEST_CASE("hcl cuda: chunks of 3 rows and one chunk give the same result", "[plugins][hcl][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(40, 32, 4);
  std::vector<std::int64_t> sample = samples(20, 2);
  contra::Embeddings e{z, &sample};
  Hcl cpu(params(0.3, 0.1, 1.0));
  HclCuda small(params(0.3, 0.1, 1.0, 3)), whole(params(0.3, 0.1, 1.0));
  contra::LossResult a = compare_loss(cpu, small, e, all_pairs(), 1e-4, 1e-4);
  contra::LossResult b = compare_loss(cpu, whole, e, all_pairs(), 1e-4, 1e-4);
  CHECK(value_difference(a.value, b.value) <= 1e-6);
  CHECK(relative_difference(b.grad, a.grad) <= 1e-5);
}

TEST_CASE("hcl cuda: TF32 products stay close to the CPU build", "[plugins][hcl][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::tf32);
  contra::Tensor z = random_matrix(256, 128, 5);
  std::vector<std::int64_t> sample = samples(128, 2);
  contra::Embeddings e{z, &sample};
  Hcl cpu(params(0.5, 0.1, 1.0));
  HclCuda gpu(params(0.5, 0.1, 1.0));
  compare_loss(cpu, gpu, e, all_pairs(), 1e-2, 5e-2);
}

TEST_CASE("hcl cuda: explicit negatives and positives match the CPU build", "[plugins][hcl][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 14, k = 25;
  contra::Tensor z = random_matrix(2 * n, 20, 31);
  std::vector<std::int64_t> sample = samples(n, 2), key_ids;
  for (std::int64_t j = 0; j < k; ++j) key_ids.push_back(j % 4 == 1 ? -1 : 300 + j);
  contra::MemoryView memory{random_matrix(k, 20, 32), &key_ids};
  contra::Pairs listed;
  for (std::int32_t a = 0; a < 2 * n; ++a)
    for (std::int32_t q = 1; q <= 5; ++q) listed.negative.push_back({a, (a + 2 * q + 1) % static_cast<std::int32_t>(2 * n)});
  listed.negative.push_back({3, 8});  // listed twice: counts twice
  for (std::int32_t a = 1; a < 2 * n; a += 3)
    for (std::int32_t j = 0; j < k; j += 3)
      if (key_ids[j] >= 0) listed.memory_negative.push_back({a, j});
  contra::Pairs with_positives = listed;
  for (std::int32_t a = 0; a + 1 < 2 * n; ++a) with_positives.positive.push_back({a, (a + static_cast<std::int32_t>(n)) % static_cast<std::int32_t>(2 * n)});
  for (const contra::Pairs* pairs : {&listed, &with_positives})
    for (bool on_device : {false, true}) {
      INFO("explicit positives " << (pairs == &with_positives) << ", keys on cuda " << on_device);
      contra::Embeddings e{z, &sample};
      e.memory = &memory;
      Hcl cpu(params(0.5, 0.1, 1.0));
      HclCuda gpu(params(0.5, 0.1, 1.0));
      compare_loss(cpu, gpu, e, *pairs, 1e-4, 1e-4, on_device);
    }
}

