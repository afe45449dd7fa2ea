// debiased's cuda build against its CPU build (the oracle): strict f32 1e-4
// of the value and of the gradient's largest entry (see test_info_nce_cuda.cpp).
#include "debiased.hpp"
#include "debiased_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <tuple>
#include <vector>

using contra::plugins::Debiased;
using contra::plugins::DebiasedCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double t, double tau_plus, std::int64_t chunk = 1024) {
  return Debiased::schema().bind({{"temperature", t}, {"tau_plus", tau_plus}, {"chunk", chunk}});
}

}  // namespace

TEST_CASE("debiased cuda: schema is the CPU build's", "[plugins][debiased][cuda]") {
  CHECK(DebiasedCuda::schema().describe() == Debiased::schema().describe());
}

TEST_CASE("debiased cuda: refuses CPU embeddings and malformed pair lists with the CPU build's messages",
          "[plugins][debiased][cuda]") {
  // Every check comes before any GPU work, so this runs without a GPU too: the
  // "cuda" embeddings below are host memory labelled cuda, and never read.
  DebiasedCuda loss(params(0.5, 0.1));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "debiased: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings labelled = e;
  labelled.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  contra::Pairs listed;
  listed.negative = {{0, 1}, {3, -1}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out), "debiased: negative pair (3, -1) is outside the 4 rows");
  listed.negative = {{0, 1}};
  listed.memory_negative = {{0, 0}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out),
                    "debiased: Pairs::memory_negative lists memory keys, but the memory is absent");
}

TEST_CASE("debiased cuda: matches the CPU build over tau+ and temperature", "[plugins][debiased][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(3 * 21, 40, 6);
  std::vector<std::int64_t> sample = samples(21, 3);
  contra::Embeddings e{z, &sample};
  e.views = 3;
  for (auto [t, tau, chunk] : {std::tuple<double, double, std::int64_t>{0.5, 0.1, 1024},
                               {0.1, 0.0, 10},
                               {0.05, 0.4, 1},
                               {2.0, 0.99, 1024}}) {
    INFO("T " << t << ", tau+ " << tau << ", chunk " << chunk);
    Debiased cpu(params(t, tau));
    DebiasedCuda gpu(params(t, tau, chunk));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}

TEST_CASE("debiased cuda: memory keys are negatives, as on the CPU", "[plugins][debiased][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 12, k = 30;
  contra::Tensor z = random_matrix(2 * n, 20, 2);
  std::vector<std::int64_t> sample = samples(n, 2), ids, key_ids;
  for (std::int64_t s : sample) ids.push_back(s);
  for (std::int64_t j = 0; j < k; ++j) key_ids.push_back(j % 5 == 2 ? -1 : j);  // ids 0..11 are the batch's
  contra::MemoryView memory{random_matrix(k, 20, 3), &key_ids};
  contra::Embeddings e{z, &sample};
  e.ids = &ids;
  e.memory = &memory;
  Debiased cpu(params(0.2, 0.1));
  DebiasedCuda gpu(params(0.2, 0.1, 5));
  compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4, false);
  compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4, true);
}

TEST_CASE("debiased cuda: explicit negatives and positives match the CPU build", "[plugins][debiased][gpu]") {
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
      Debiased cpu(params(0.5, 0.1));
      DebiasedCuda gpu(params(0.5, 0.1));
      compare_loss(cpu, gpu, e, *pairs, 1e-4, 1e-4, on_device);
    }
}

