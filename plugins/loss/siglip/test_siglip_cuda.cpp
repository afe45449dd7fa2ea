// siglip's cuda build against its CPU build (the oracle). Tolerances as
// info_nce's: strict f32 1e-4 of the value, of every metric and of dL/dt and
// dL/db (relative, at least absolute) and of dL/dz's largest entry: both sum
// the same terms in another order, with the GPU's and the CPU's exp and
// log1p. TF32 and bf16 (TF32 products for a loss) round the products' inputs
// to 10 mantissa bits: 1e-2 of the value and 5e-2 of dL/dz at s = 2, on
// batches whose matching pairs stand out (so that no retrieval tally flips
// on a rounding).
#include "siglip.hpp"
#include "siglip_cuda.hpp"

#include "../test_two_tower.hpp"
#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::Siglip;
using contra::plugins::SiglipCuda;
using namespace cuda_twin;
namespace tt = contra::test::two_tower;

namespace {

contra::Params params(double init_scale = 10.0, double init_bias = -10.0, bool learn_scale = true,
                      bool learn_bias = true, std::int64_t chunk = 1024) {
  return Siglip::schema().bind({{"init_scale", init_scale},
                                {"init_bias", init_bias},
                                {"learn_scale", learn_scale},
                                {"learn_bias", learn_bias},
                                {"chunk", chunk}});
}

// Uncorrelated rows (no pair stands out: the tallies see every kind of row),
// laid out as two views of n samples.
tt::Batch uncorrelated(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  tt::Batch b;
  b.z = random_matrix(2 * n, d, seed);
  b.sample = tt::row_samples(n, 2);
  return b;
}

float grad_of(const contra::Parameter& p) {
  return p.grad.device() == contra::Device::cuda ? to_host(p.grad).data<float>()[0] : p.grad.data<float>()[0];
}

void zero_grads(contra::Loss& loss) {
  for (contra::Parameter* p : loss.parameters()) {
    if (p->grad.device() == contra::Device::cuda) {
      contra::cuda::copy_to_device(p->grad, contra::Tensor::zeros({1}, contra::DType::f32),
                                   contra::cuda::current_stream());
      contra::cuda::synchronize(contra::cuda::current_stream());
    } else {
      p->grad.zero();
    }
  }
}

// compare_loss (value, metrics, dL/dz) and the parameters' gradients, each
// added into a zeroed grad by one call.
contra::LossResult compare(Siglip& cpu, SiglipCuda& gpu, const tt::Batch& b, double value_tol = 1e-4,
                           double grad_tol = 1e-4) {
  zero_grads(cpu);
  zero_grads(gpu);
  contra::LossResult got = compare_loss(cpu, gpu, b.embeddings(), all_pairs(), value_tol, grad_tol);
  const std::vector<contra::Parameter*> want = cpu.parameters(), have = gpu.parameters();
  REQUIRE(want.size() == have.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    REQUIRE(have[k]->grad.device() == contra::Device::cuda);
    const double a = grad_of(*want[k]), g = grad_of(*have[k]);
    INFO("dL/d" << want[k]->name << ": cpu " << a << ", cuda " << g);
    CHECK(want[k]->name == have[k]->name);
    CHECK(value_difference(a, g) <= value_tol);
  }
  return got;
}

}  // namespace

TEST_CASE("siglip cuda: schema is the CPU build's", "[plugins][siglip][cuda]") {
  CHECK(SiglipCuda::schema().name() == Siglip::schema().name());
  CHECK(SiglipCuda::schema().describe() == Siglip::schema().describe());
}

TEST_CASE("siglip cuda: without a GPU, no usable GPU", "[plugins][siglip][cuda]") {
  if (!contra::cuda::available()) {
    SiglipCuda loss(params());  // the plugin checks create it with no GPU
    CHECK_THROWS_WITH(loss.parameters(),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by siglip (cuda))");
  }
}

TEST_CASE("siglip cuda: logit_scale and logit_bias are the CPU build's, on cuda", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (auto [scale, bias] : {std::pair<double, double>{10.0, -10.0}, {1.0, 0.0}, {0.37, 3.3}}) {
    INFO("init_scale " << scale << ", init_bias " << bias);
    Siglip cpu(params(scale, bias));
    SiglipCuda gpu(params(scale, bias));
    const std::vector<contra::Parameter*> want = cpu.parameters(), have = gpu.parameters();
    REQUIRE(have.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) {
      const contra::Parameter& p = *have[k];
      INFO(p.name);
      CHECK(p.name == want[k]->name);
      CHECK(p.decay == want[k]->decay);
      CHECK(p.value.device() == contra::Device::cuda);
      CHECK(p.grad.device() == contra::Device::cuda);
      CHECK(p.value.dtype() == contra::DType::f32);
      CHECK(p.grad.dtype() == contra::DType::f32);
      CHECK(p.value.shape() == contra::Shape({1}));
      CHECK(p.grad.shape() == contra::Shape({1}));
      CHECK(to_host(p.value).data<float>()[0] == want[k]->value.data<float>()[0]);
      CHECK(to_host(p.grad).data<float>()[0] == 0.0f);
      CHECK(gpu.parameters()[k] == have[k]);  // the same address each call
    }
  }
  for (auto [learn_scale, learn_bias] : {std::pair<bool, bool>{true, false}, {false, true}, {false, false}}) {
    Siglip cpu(params(10.0, -10.0, learn_scale, learn_bias));
    SiglipCuda gpu(params(10.0, -10.0, learn_scale, learn_bias));
    REQUIRE(gpu.parameters().size() == cpu.parameters().size());
    for (std::size_t k = 0; k < cpu.parameters().size(); ++k)
      CHECK(gpu.parameters()[k]->name == cpu.parameters()[k]->name);
  }
}

TEST_CASE("siglip cuda: value, metrics, dL/dz, dL/dt and dL/db match the CPU build", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (auto [n, d, scale, bias, chunk] :
       {std::tuple<std::int64_t, std::int64_t, double, double, std::int64_t>{37, 19, 10.0, -10.0, 1024},
        {50, 64, 2.0, 0.0, 7},
        {8, 130, 1.0, 1.5, 3},
        {1, 5, 10.0, -10.0, 1024},
        {2, 3, 5.0, -2.0, 1},
        {300, 32, 100.0, -30.0, 64}}) {
    for (int layout = 0; layout < 4; ++layout) {
      // 0: towers {0, 1}; 1: towers {1, 0} (view 1 is the image); 2: no
      // view_tower; 3: correlated views (the matching pairs stand out), with labels.
      INFO("N " << n << ", D " << d << ", scale " << scale << ", bias " << bias << ", chunk " << chunk
                << ", layout " << layout);
      tt::Batch b = layout == 3 ? tt::random_batch(n, d, 17 + n) : uncorrelated(n, d, 7 + n + layout);
      if (layout == 1) b.towers = {1, 0};
      if (layout == 2) b.with_towers = false;
      std::vector<std::int64_t> labels(static_cast<std::size_t>(2 * n));
      for (std::size_t k = 0; k < labels.size(); ++k) labels[k] = static_cast<std::int64_t>(k % 3);
      Siglip cpu(params(scale, bias, true, true, chunk));
      SiglipCuda gpu(params(scale, bias, true, true, chunk));
      if (layout == 3) {
        // Labels are no business of siglip's: the same result with them.
        zero_grads(cpu);
        zero_grads(gpu);
        contra::Embeddings e = b.embeddings();
        e.label = &labels;
        compare_loss(cpu, gpu, e, all_pairs(), 1e-4, 1e-4);
      }
      compare(cpu, gpu, b);
    }
  }
}

TEST_CASE("siglip cuda: fixed scale or bias match the CPU build", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(33, 16, 5);
  for (auto [learn_scale, learn_bias] : {std::pair<bool, bool>{true, false}, {false, true}, {false, false}}) {
    INFO("learn_scale " << learn_scale << ", learn_bias " << learn_bias);
    Siglip cpu(params(4.0, -3.0, learn_scale, learn_bias));
    SiglipCuda gpu(params(4.0, -3.0, learn_scale, learn_bias));
    compare(cpu, gpu, b);
  }
}

TEST_CASE("siglip cuda: parameters the optimizer moved are read on the device", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(29, 24, 23);
  Siglip cpu(params());
  SiglipCuda gpu(params());
  for (auto [t, bias] : {std::pair<float, float>{0.5f, 2.0f}, {4.0f, -12.5f}}) {
    INFO("t " << t << ", b " << bias);
    contra::Tensor host = contra::Tensor::empty({1}, contra::DType::f32);
    for (std::size_t k = 0; k < 2; ++k) {
      const float v = k == 0 ? t : bias;
      cpu.parameters()[k]->value.data<float>()[0] = v;
      host.data<float>()[0] = v;
      contra::cuda::copy_to_device(gpu.parameters()[k]->value, host, contra::cuda::current_stream());
      contra::cuda::synchronize(contra::cuda::current_stream());
    }
    const contra::LossResult got = compare(cpu, gpu, b);
    CHECK(value_difference(tt::metric(got, "logit_scale"), std::exp(static_cast<double>(t))) <= 1e-15);
    CHECK(tt::metric(got, "logit_bias") == static_cast<double>(bias));
  }
}

TEST_CASE("siglip cuda: compute() adds dL/dt and dL/db into the parameters' gradients", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(20, 12, 9);
  contra::Embeddings e = b.embeddings();
  e.z = to_device(b.z);
  SiglipCuda gpu(params(3.0, -1.0));
  contra::LossResult out;
  gpu.compute(e, all_pairs(), out);
  const float dt = grad_of(*gpu.parameters()[0]), db = grad_of(*gpu.parameters()[1]);
  CHECK(dt != 0.0f);
  CHECK(db != 0.0f);
  gpu.compute(e, all_pairs(), out);
  CHECK(grad_of(*gpu.parameters()[0]) == 2.0f * dt);
  CHECK(grad_of(*gpu.parameters()[1]) == 2.0f * db);
}

TEST_CASE("siglip cuda: chunks of 5 rows and one chunk give the same result", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(53, 40, 11);
  Siglip cpu(params());
  SiglipCuda small(params(10.0, -10.0, true, true, 5));
  SiglipCuda whole(params());
  const contra::LossResult a = compare(cpu, small, b);
  const float dt_small = grad_of(*small.parameters()[0]), db_small = grad_of(*small.parameters()[1]);
  const contra::LossResult c = compare(cpu, whole, b);
  CHECK(value_difference(a.value, c.value) <= 1e-6);
  CHECK(relative_difference(c.grad, a.grad) <= 1e-5);
  CHECK(value_difference(dt_small, grad_of(*whole.parameters()[0])) <= 1e-5);
  CHECK(value_difference(db_small, grad_of(*whole.parameters()[1])) <= 1e-5);
}

TEST_CASE("siglip cuda: 2N = 4096 in chunks of 512 matches the CPU build", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(2048, 128, 21);
  Siglip cpu(params());
  SiglipCuda gpu(params(10.0, -10.0, true, true, 512));
  compare(cpu, gpu, b);
}

TEST_CASE("siglip cuda: repeated calls give bit-identical results", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(31, 48, 19);
  contra::Embeddings e = b.embeddings();
  e.z = to_device(b.z);
  SiglipCuda gpu(params(10.0, -10.0, true, true, 8));
  contra::LossResult r1, r2;
  gpu.compute(e, all_pairs(), r1);
  const contra::Tensor g1 = to_host(r1.grad);
  const float dt1 = grad_of(*gpu.parameters()[0]), db1 = grad_of(*gpu.parameters()[1]);
  zero_grads(gpu);
  gpu.compute(e, all_pairs(), r2);
  const contra::Tensor g2 = to_host(r2.grad);
  CHECK(r1.value == r2.value);
  CHECK(relative_difference(g1, g2) == 0.0);
  CHECK(dt1 == grad_of(*gpu.parameters()[0]));
  CHECK(db1 == grad_of(*gpu.parameters()[1]));
  CHECK(r1.metrics == r2.metrics);
}

TEST_CASE("siglip cuda: TF32 and bf16 products stay close to the CPU build", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  const tt::Batch b = tt::random_batch(64, 128, 13);
  for (auto mode : {contra::cuda::MathMode::tf32, contra::cuda::MathMode::bf16}) {
    INFO("math mode " << contra::cuda::math_mode_name(mode));
    contra::cuda::set_math_mode(mode);
    Siglip cpu(params(2.0, -1.0));
    SiglipCuda gpu(params(2.0, -1.0));
    compare(cpu, gpu, b, 1e-2, 5e-2);
  }
}

TEST_CASE("siglip cuda: refuses what the CPU build refuses, with its messages", "[plugins][siglip][gpu]") {
  CONTRA_REQUIRE_GPU();
  Siglip cpu(params());
  SiglipCuda gpu(params());
  auto same_refusal = [&](const contra::Embeddings& host, const contra::Pairs& pairs) {
    std::string want;
    try {
      contra::LossResult out;
      cpu.compute(host, pairs, out);
    } catch (const contra::UsageError& e) {
      want = e.what();
    }
    REQUIRE_FALSE(want.empty());
    contra::Embeddings dev = host;
    dev.z = to_device(host.z);
    if (host.keys.defined()) dev.keys = to_device(host.keys);
    contra::LossResult out;
    CHECK_THROWS_AS(gpu.compute(dev, pairs, out), contra::UsageError);
    CHECK_THROWS_WITH(gpu.compute(dev, pairs, out), want);
  };
  const tt::Batch three = tt::with_views(3, {0, 0, 1});
  same_refusal(three.embeddings(), all_pairs());
  const tt::Batch one = tt::with_views(1, {0});
  same_refusal(one.embeddings(), all_pairs());
  const tt::Batch same_tower = tt::with_views(2, {1, 1});
  same_refusal(same_tower.embeddings(), all_pairs());
  const tt::Batch three_towers = tt::with_views(2, {0, 1, 2});
  same_refusal(three_towers.embeddings(), all_pairs());
  tt::Batch shuffled = tt::with_views(2, {0, 1});
  std::swap(shuffled.sample[4], shuffled.sample[5]);
  same_refusal(shuffled.embeddings(), all_pairs());
  const tt::Batch ok = tt::with_views(2, {0, 1});
  contra::MemoryView memory;
  contra::Embeddings with_memory = ok.embeddings();
  with_memory.memory = &memory;
  same_refusal(with_memory, all_pairs());
  contra::Embeddings with_keys = ok.embeddings();
  with_keys.keys = ok.z;
  same_refusal(with_keys, all_pairs());
  contra::Pairs triplets;
  triplets.triplets.push_back({0, 3, 1});
  same_refusal(ok.embeddings(), triplets);
  same_refusal(ok.embeddings(), contra::Pairs{});
  contra::Embeddings odd = ok.embeddings();
  odd.z = random_matrix(5, 4, 1);
  std::vector<std::int64_t> five = {0, 1, 2, 0, 1};
  odd.sample = &five;
  same_refusal(odd, all_pairs());

  // Embeddings on the CPU: the cuda build's own message, as info_nce's.
  contra::LossResult out;
  CHECK_THROWS_WITH(gpu.compute(ok.embeddings(), all_pairs(), out),
                    "siglip: expected embeddings as an f32 [M, D] cuda tensor, got f32 [6, 4] on cpu");
}
