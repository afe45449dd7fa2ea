// info_nce's cuda build against its CPU build (the oracle). Tolerances: strict
// f32 1e-4 of the value (relative, at least absolute) and of the gradient's
// largest entry: both sum the same terms in another order, and the CPU's
// exp is a polynomial good to ~2e-7. TF32 and bf16 round the products' inputs
// (10 and 7 mantissa bits): 1e-2 and 4e-2 of the value at T = 0.5.
#include "info_nce.hpp"
#include "info_nce_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::InfoNce;
using contra::plugins::InfoNceCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double t, std::int64_t chunk = 1024, const std::string& batch_negatives = "auto") {
  return InfoNce::schema().bind({{"temperature", t}, {"chunk", chunk}, {"batch_negatives", batch_negatives}});
}

// A MoCo-like batch: V views of N samples with ids 100 + i, momentum keys, and
// a memory of K keys of which some are empty slots (id -1) and some belong to
// the batch's own samples.
struct MocoBatch {
  contra::Tensor z, keys;
  std::vector<std::int64_t> sample, ids, key_ids;
  contra::MemoryView memory;
  MocoBatch(std::int64_t n, std::int64_t views, std::int64_t d, std::int64_t k, std::uint64_t seed) {
    z = random_matrix(n * views, d, seed);
    keys = random_matrix(n * views, d, seed + 1);
    sample = samples(n, views);
    for (std::int64_t s : sample) ids.push_back(100 + s);
    for (std::int64_t j = 0; j < k; ++j) key_ids.push_back(j % 7 == 3 ? -1 : j % 5 == 0 ? 100 + j % n : 1000 + j);
    memory.keys = random_matrix(k, d, seed + 2);
    memory.ids = &key_ids;
  }
  contra::Embeddings embeddings(bool with_keys) const {
    contra::Embeddings e;
    e.z = z;
    e.sample = &sample;
    e.views = 2;
    e.ids = &ids;
    if (with_keys) e.keys = keys;
    e.memory = &memory;
    return e;
  }
};

}  // namespace

TEST_CASE("info_nce cuda: schema is the CPU build's", "[plugins][info_nce][cuda]") {
  CHECK(InfoNceCuda::schema().name() == InfoNce::schema().name());
  CHECK(InfoNceCuda::schema().describe() == InfoNce::schema().describe());
}

TEST_CASE("info_nce cuda: refuses CPU embeddings and malformed pair lists with the CPU build's messages",
          "[plugins][info_nce][cuda]") {
  // Every check comes before any GPU work, so this runs without a GPU too: the
  // "cuda" embeddings below are host memory labelled cuda, and never read.
  InfoNceCuda loss(params(0.5));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2);
  contra::Embeddings e{z, &sample};
  contra::LossResult out;
  CHECK_THROWS_WITH(loss.compute(e, all_pairs(), out),
                    "info_nce: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings labelled = e;
  labelled.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  contra::Pairs both = all_pairs();
  both.positive = {{0, 2}};
  CHECK_THROWS_WITH(loss.compute(labelled, both, out),
                    "info_nce: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the "
                    "other");
  contra::Pairs listed;
  listed.negative = {{0, 1}, {3, 4}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out), "info_nce: negative pair (3, 4) is outside the 4 rows");
  listed.negative = {{0, 1}};
  listed.positive = {{0, 7}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out), "info_nce: positive pair (0, 7) is outside the 4 rows");
  listed.positive.clear();
  listed.memory_negative = {{0, 0}};
  CHECK_THROWS_WITH(loss.compute(labelled, listed, out),
                    "info_nce: Pairs::memory_negative lists memory keys, but the memory is absent");
}

TEST_CASE("info_nce cuda: plain NT-Xent matches the CPU build", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (auto [n, views, d, t] : {std::tuple<std::int64_t, std::int64_t, std::int64_t, double>{37, 2, 19, 0.2},
                                {50, 3, 64, 0.07},
                                {8, 2, 130, 1.0}}) {
    INFO("N " << n << ", V " << views << ", D " << d << ", T " << t);
    contra::Tensor z = random_matrix(n * views, d, 7 + n);
    std::vector<std::int64_t> sample = samples(n, views);
    contra::Embeddings e{z, &sample};
    e.views = views;
    InfoNce cpu(params(t));
    InfoNceCuda gpu(params(t));
    compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
  }
}

TEST_CASE("info_nce cuda: rows without a positive are no anchors, as on the CPU", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(9, 16, 3);
  std::vector<std::int64_t> sample = {0, 1, 2, 3, 0, 1, 2, 4, 5};  // samples 3, 4, 5 have one view
  contra::Embeddings e{z, &sample};
  InfoNce cpu(params(0.3));
  InfoNceCuda gpu(params(0.3));
  compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
}

TEST_CASE("info_nce cuda: momentum keys and memory negatives match the CPU build", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  MocoBatch b(23, 2, 32, 61, 11);
  for (bool memory_on_device : {false, true}) {
    INFO("memory keys on " << (memory_on_device ? "cuda" : "cpu"));
    for (const char* bn : {"auto", "yes", "no"}) {
      for (bool keys : {false, true}) {
        if (!keys && std::string(bn) == "auto") continue;  // auto without keys is plain batch negatives + memory
        INFO("batch_negatives " << bn << ", momentum keys " << keys);
        InfoNce cpu(params(0.2, 1024, bn));
        InfoNceCuda gpu(params(0.2, 1024, bn));
        compare_loss(cpu, gpu, b.embeddings(keys), all_pairs(), 1e-4, 1e-4, memory_on_device);
      }
    }
  }
}

TEST_CASE("info_nce cuda: chunks of 5 rows and one chunk give the same result", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  MocoBatch b(19, 3, 24, 40, 5);
  for (bool keys : {false, true}) {
    INFO("momentum keys " << keys);
    InfoNce cpu(params(0.1, 1024, "yes"));
    InfoNceCuda small(params(0.1, 5, "yes"));
    InfoNceCuda whole(params(0.1, 1024, "yes"));
    contra::LossResult a = compare_loss(cpu, small, b.embeddings(keys), all_pairs(), 1e-4, 1e-4, true);
    contra::LossResult c = compare_loss(cpu, whole, b.embeddings(keys), all_pairs(), 1e-4, 1e-4, true);
    CHECK(value_difference(a.value, c.value) <= 1e-6);
    CHECK(relative_difference(c.grad, a.grad) <= 1e-5);
  }
}

TEST_CASE("info_nce cuda: 2N = 4096 in chunks of 512 matches the CPU build", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  contra::Tensor z = random_matrix(4096, 128, 21);
  std::vector<std::int64_t> sample = samples(2048, 2);
  contra::Embeddings e{z, &sample};
  InfoNce cpu(params(0.1));
  InfoNceCuda gpu(params(0.1, 512));
  compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
}

TEST_CASE("info_nce cuda: repeated calls give bit-identical results", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  MocoBatch b(31, 2, 48, 50, 9);
  contra::Embeddings e = b.embeddings(false);
  e.z = to_device(b.z);
  InfoNceCuda gpu(params(0.2, 16));
  contra::LossResult r1, r2;
  gpu.compute(e, all_pairs(), r1);
  contra::Tensor g1 = to_host(r1.grad);
  gpu.compute(e, all_pairs(), r2);
  contra::Tensor g2 = to_host(r2.grad);
  CHECK(r1.value == r2.value);
  CHECK(relative_difference(g1, g2) == 0.0);
}

TEST_CASE("info_nce cuda: TF32 and bf16 products stay close to the CPU build", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  MocoBatch b(64, 2, 128, 100, 13);
  for (auto [mode, value_tol, grad_tol] :
       {std::tuple<contra::cuda::MathMode, double, double>{contra::cuda::MathMode::tf32, 1e-2, 5e-2},
        {contra::cuda::MathMode::bf16, 4e-2, 2e-1}}) {
    INFO("math mode " << contra::cuda::math_mode_name(mode));
    contra::cuda::set_math_mode(mode);
    InfoNce cpu(params(0.5, 1024, "yes"));
    InfoNceCuda gpu(params(0.5, 1024, "yes"));
    compare_loss(cpu, gpu, b.embeddings(true), all_pairs(), value_tol, grad_tol, true);
  }
}

TEST_CASE("info_nce cuda: explicit negatives and positives match the CPU build", "[plugins][info_nce][gpu]") {
  CONTRA_REQUIRE_GPU();
  MocoBatch b(15, 2, 24, 33, 17);
  // Hard negatives listed per anchor (some twice), memory negatives (none an
  // empty slot), and for some calls explicit positives; row 29 lists
  // negatives but has no positive in the explicit case.
  contra::Pairs listed;
  for (std::int32_t a = 0; a < 30; ++a)
    for (std::int32_t k = 1; k <= 4; ++k) listed.negative.push_back({a, (a + 3 * k) % 30});
  listed.negative.push_back({5, 11});
  for (std::int32_t a = 0; a < 30; a += 2)
    for (std::int32_t k = 0; k < 33; k += 5)
      if (b.key_ids[k] != -1) listed.memory_negative.push_back({a, k});
  contra::Pairs with_positives = listed;
  for (std::int32_t a = 0; a < 29; ++a) with_positives.positive.push_back({a, (a + 15) % 30});
  with_positives.positive.push_back({0, 1});
  for (const contra::Pairs* pairs : {&listed, &with_positives})
    for (bool keys : {false, true})
      for (bool on_device : {false, true}) {
        INFO("explicit positives " << (pairs == &with_positives) << ", momentum keys " << keys << ", keys on cuda "
                                   << on_device);
        InfoNce cpu(params(0.2));
        InfoNceCuda gpu(params(0.2));
        compare_loss(cpu, gpu, b.embeddings(keys), *pairs, 1e-4, 1e-4, on_device);
      }
}

