// hardest_k's cuda build against its CPU build (the oracle). On rows and keys
// of ±0.5 entries the similarities are multiples of 0.25, exact in strict f32
// on both, with many ties: the choices and their order are equal, ties going
// to the lower key on both. On a random batch over two chunks against 5000
// keys, each anchor gets as many keys, each at the oracle's similarity of its
// rank within 1e-5, nearly all the same keys.
#include "hardest_k.hpp"
#include "hardest_k_cuda.hpp"

#include "gpu_test.hpp"
#include "miner_twin.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::HardestK;
using contra::plugins::HardestKCuda;
using namespace cuda_twin;

namespace {

using Params = std::initializer_list<std::pair<std::string, contra::Value>>;

contra::Params params(Params p) { return HardestK::schema().bind(p); }

/// sign_rows scaled to unit rows: entries ±0.5.
contra::Tensor unit_sign_rows(std::int64_t rows, std::uint64_t seed) {
  contra::Tensor t = sign_rows(rows, seed);
  for (std::int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] *= 0.5f;
  return t;
}

double cosine(const contra::Tensor& z, std::int64_t i, const contra::Tensor& keys, std::int64_t j) {
  const std::int64_t d = z.dim(1);
  double s = 0.0, n = 0.0;
  for (std::int64_t c = 0; c < d; ++c) {
    s += static_cast<double>(z.data<float>()[i * d + c]) * keys.data<float>()[j * d + c];
    n += static_cast<double>(z.data<float>()[i * d + c]) * z.data<float>()[i * d + c];
  }
  return s / std::sqrt(n);
}

}  // namespace

TEST_CASE("hardest_k cuda: schema is the CPU build's, inputs are checked before any GPU work",
          "[plugins][hardest_k][cuda]") {
  CHECK(HardestKCuda::schema().describe() == HardestK::schema().describe());
  HardestKCuda miner(params({}));
  contra::Tensor z = random_matrix(4, 3, 1);
  std::vector<std::int64_t> sample = samples(2, 2), key_ids = {0, 1, -1};
  contra::Tensor keys = random_matrix(3, 3, 2);
  contra::MemoryView memory{keys, &key_ids, nullptr};
  contra::Embeddings e{z, &sample, nullptr, 2, nullptr, contra::Tensor(), &memory};
  contra::Pairs out;
  CHECK_THROWS_WITH(miner.mine(e, out),
                    "hardest_k: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings dev = e;
  dev.z = contra::Tensor::wrap(z.raw(), z.shape(), contra::DType::f32, contra::Device::cuda);
  dev.memory = nullptr;
  CHECK_THROWS_WITH(miner.mine(dev, out), "hardest_k: needs a [memory] (queue or bank) to mine from");
  // Keys on the host are taken (copied to the GPU), but not of another width.
  contra::MemoryView wide{random_matrix(3, 5, 3), &key_ids, nullptr};
  dev.memory = &wide;
  CHECK_THROWS_WITH(miner.mine(dev, out),
                    "hardest_k: expected memory keys as an f32 [K, 3] tensor, got f32 [3, 5] on cpu");
}

TEST_CASE("hardest_k cuda: exact similarities with ties match the CPU build", "[plugins][hardest_k][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  const std::int64_t n = 6, views = 2, m = n * views, K = 40;
  contra::Tensor z = sign_rows(m, 31);  // norm 2: normalised to ±0.5 by both builds
  contra::Tensor keys = unit_sign_rows(K, 32);
  std::vector<std::int64_t> sample = samples(n, views), ids(m), key_ids(K);
  for (std::int64_t r = 0; r < m; ++r) ids[r] = 100 + sample[r];
  for (std::int64_t j = 0; j < K; ++j) key_ids[j] = j % 7 == 3 ? -1 : 100 + j % 9;  // empty slots, own samples
  contra::MemoryView host_memory{keys, &key_ids, nullptr};
  contra::MemoryView device_memory{to_device(keys), &key_ids, nullptr};
  for (std::int64_t k : {1, 5, 16, 100})
    for (bool with_ids : {true, false})
      for (bool keys_on_device : {true, false}) {
        INFO("k " << k << ", ids " << with_ids << ", keys on device " << keys_on_device);
        HardestK cpu(params({{"k", k}, {"chunk", std::int64_t{5}}}));
        HardestKCuda gpu(params({{"k", k}, {"chunk", std::int64_t{5}}}));  // 3 chunks, the last short
        contra::Embeddings host{z, &sample, nullptr, views, with_ids ? &ids : nullptr, contra::Tensor(), &host_memory};
        contra::Embeddings dev = host;
        dev.z = to_device(z);
        dev.memory = keys_on_device ? &device_memory : &host_memory;
        const Mined want = mined(cpu, host), got = mined(gpu, dev);
        REQUIRE_FALSE(want.memory_negative.empty());
        CHECK(got == want);
      }
}

TEST_CASE("hardest_k cuda: a random batch over two chunks matches the CPU build", "[plugins][hardest_k][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  contra::cuda::set_math_mode(contra::cuda::MathMode::strict_f32);
  const std::int64_t n = 550, views = 2, m = n * views, K = 5000, dim = 32, k = 16;
  contra::Tensor z = random_matrix(m, dim, 41);
  contra::Tensor keys = random_matrix(K, dim, 42);
  for (std::int64_t j = 0; j < K; ++j) {  // unit keys, as a memory holds them
    double ss = 0.0;
    for (std::int64_t c = 0; c < dim; ++c) ss += std::pow(keys.data<float>()[j * dim + c], 2.0);
    for (std::int64_t c = 0; c < dim; ++c) keys.data<float>()[j * dim + c] /= static_cast<float>(std::sqrt(ss));
  }
  std::vector<std::int64_t> sample = samples(n, views), ids(m), key_ids(K);
  for (std::int64_t r = 0; r < m; ++r) ids[r] = sample[r];
  for (std::int64_t j = 0; j < K; ++j) key_ids[j] = j < 100 ? -1 : j % 600;
  contra::MemoryView memory{to_device(keys), &key_ids, nullptr};
  contra::MemoryView host_memory{keys, &key_ids, nullptr};
  HardestK cpu(params({{"k", k}}));
  HardestKCuda gpu(params({{"k", k}}));
  contra::Embeddings host{z, &sample, nullptr, views, &ids, contra::Tensor(), &host_memory};
  contra::Embeddings dev = host;
  dev.z = to_device(z);
  dev.memory = &memory;
  const Mined want = mined(cpu, host), got = mined(gpu, dev);
  CHECK(got.positive == want.positive);
  REQUIRE(got.memory_negative.size() == want.memory_negative.size());
  REQUIRE(want.memory_negative.size() == static_cast<std::size_t>(m * k));
  std::size_t same = 0;
  for (std::size_t q = 0; q < want.memory_negative.size(); ++q) {
    const auto [a, j] = want.memory_negative[q];
    const auto [ga, gj] = got.memory_negative[q];
    REQUIRE(ga == a);
    CHECK(key_ids[gj] != -1);
    CHECK(key_ids[gj] != ids[a]);
    CHECK(std::fabs(cosine(z, a, keys, gj) - cosine(z, a, keys, j)) < 1e-5);
    same += gj == j;
  }
  CHECK(same >= want.memory_negative.size() * 99 / 100);
}
