// clip's cuda build against its CPU build (the oracle). Tolerances as
// info_nce's: strict f32 1e-4 of the value, of every metric and of dL/dt
// (relative, at least absolute) and of dL/dz's largest entry: both sum the
// same terms in another order, with the GPU's and the CPU's exp. TF32 and
// bf16 (TF32 products for a loss) round the products' inputs to 10 mantissa
// bits: 1e-2 of the value and 5e-2 of dL/dz at T = 0.5, on batches whose
// matching pairs stand out (so that no retrieval tally flips on a rounding).
#include "clip.hpp"
#include "clip_cuda.hpp"

#include "../test_two_tower.hpp"
#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

using contra::plugins::Clip;
using contra::plugins::ClipCuda;
using namespace cuda_twin;
namespace tt = contra::test::two_tower;

namespace {

contra::Params params(double init_temperature = 0.07, bool learn = true, std::int64_t chunk = 1024,
                      double max_scale = 100.0) {
  return Clip::schema().bind({{"init_temperature", init_temperature},
                              {"learn_temperature", learn},
                              {"chunk", chunk},
                              {"max_scale", max_scale}});
}

// Uncorrelated rows (no pair stands out: the tallies see every kind of row),
// laid out as two views of n samples.
tt::Batch uncorrelated(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  tt::Batch b;
  b.z = random_matrix(2 * n, d, seed);
  b.sample = tt::row_samples(n, 2);
  return b;
}

void set_scalar(contra::Parameter& p, float value) {
  contra::Tensor host = contra::Tensor::empty({1}, contra::DType::f32);
  host.data<float>()[0] = value;
  if (p.value.device() == contra::Device::cuda) {
    contra::cuda::copy_to_device(p.value, host, contra::cuda::current_stream());
    contra::cuda::synchronize(contra::cuda::current_stream());
  } else {
    p.value.data<float>()[0] = value;
  }
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
contra::LossResult compare(Clip& cpu, ClipCuda& gpu, const tt::Batch& b, double value_tol = 1e-4,
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

TEST_CASE("clip cuda: schema is the CPU build's", "[plugins][clip][cuda]") {
  CHECK(ClipCuda::schema().name() == Clip::schema().name());
  CHECK(ClipCuda::schema().describe() == Clip::schema().describe());
}

TEST_CASE("clip cuda: the CPU build's configuration error, then no usable GPU", "[plugins][clip][cuda]") {
  // 1/0.005 = 200 > max_scale: refused as the CPU build refuses it, GPU or not.
  std::string cpu_message;
  try {
    Clip refused(params(0.005));
  } catch (const contra::ConfigError& e) {
    cpu_message = e.what();
  }
  REQUIRE_FALSE(cpu_message.empty());
  CHECK_THROWS_AS(ClipCuda(params(0.005)), contra::ConfigError);
  CHECK_THROWS_WITH(ClipCuda(params(0.005)), cpu_message);
  if (!contra::cuda::available()) {
    ClipCuda loss(params());  // the plugin checks create it with no GPU
    CHECK_THROWS_WITH(loss.parameters(),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by clip (cuda))");
  }
}

TEST_CASE("clip cuda: logit_scale is the CPU build's, on cuda", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (double t : {0.07, 0.5, 0.01}) {
    INFO("init_temperature " << t);
    Clip cpu(params(t));
    ClipCuda gpu(params(t));
    const std::vector<contra::Parameter*> want = cpu.parameters(), have = gpu.parameters();
    REQUIRE(have.size() == 1);
    const contra::Parameter& p = *have[0];
    CHECK(p.name == want[0]->name);
    CHECK(p.decay == want[0]->decay);
    CHECK(p.value.device() == contra::Device::cuda);
    CHECK(p.grad.device() == contra::Device::cuda);
    CHECK(p.value.dtype() == contra::DType::f32);
    CHECK(p.grad.dtype() == contra::DType::f32);
    CHECK(p.value.shape() == contra::Shape({1}));
    CHECK(p.grad.shape() == contra::Shape({1}));
    CHECK(to_host(p.value).data<float>()[0] == want[0]->value.data<float>()[0]);
    CHECK(to_host(p.grad).data<float>()[0] == 0.0f);
    CHECK(gpu.parameters()[0] == have[0]);  // the same address each call
  }
  ClipCuda fixed(params(0.07, false));
  CHECK(fixed.parameters().empty());
}

TEST_CASE("clip cuda: value, metrics, dL/dz and dL/dt match the CPU build", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (auto [n, d, t, chunk] : {std::tuple<std::int64_t, std::int64_t, double, std::int64_t>{37, 19, 0.07, 1024},
                                {50, 64, 0.5, 7},
                                {8, 130, 1.0, 3},
                                {1, 5, 0.07, 1024},
                                {2, 3, 0.2, 1},
                                {300, 32, 0.02, 64}}) {
    for (int layout = 0; layout < 4; ++layout) {
      // 0: towers {0, 1}; 1: towers {1, 0} (view 1 is the image); 2: no
      // view_tower; 3: correlated views (the matching pairs stand out), with labels.
      INFO("N " << n << ", D " << d << ", T " << t << ", chunk " << chunk << ", layout " << layout);
      tt::Batch b = layout == 3 ? tt::random_batch(n, d, 17 + n) : uncorrelated(n, d, 7 + n + layout);
      if (layout == 1) b.towers = {1, 0};
      if (layout == 2) b.with_towers = false;
      std::vector<std::int64_t> labels(static_cast<std::size_t>(2 * n));
      for (std::size_t k = 0; k < labels.size(); ++k) labels[k] = static_cast<std::int64_t>(k % 3);
      Clip cpu(params(t, true, chunk));
      ClipCuda gpu(params(t, true, chunk));
      if (layout == 3) {
        // Labels are no business of clip's: the same result with them.
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

TEST_CASE("clip cuda: the clamp at max_scale as on the CPU (s = max_scale, dL/dt = 0)", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(40, 24, 3);
  for (double max_scale : {100.0, 20.0}) {
    INFO("max_scale " << max_scale);
    Clip cpu(params(0.07, true, 16, max_scale));
    ClipCuda gpu(params(0.07, true, 16, max_scale));
    const float log_max = static_cast<float>(std::log(max_scale));
    for (float t : {static_cast<float>(std::log(2.0 * max_scale)), std::nextafter(log_max, 10.0f), log_max,
                    std::nextafter(log_max, 0.0f), log_max - 1.0f}) {
      INFO("t " << t);
      set_scalar(*cpu.parameters()[0], t);
      set_scalar(*gpu.parameters()[0], t);
      const contra::LossResult got = compare(cpu, gpu, b);
      const bool clamped = t > log_max;
      if (clamped) {
        CHECK(grad_of(*gpu.parameters()[0]) == 0.0f);
        CHECK(tt::metric(got, "logit_scale") == static_cast<double>(static_cast<float>(max_scale)));
      } else {
        CHECK(grad_of(*gpu.parameters()[0]) != 0.0f);
      }
    }
  }
}

TEST_CASE("clip cuda: a fixed temperature (learn_temperature = false) matches the CPU build", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(33, 16, 5);
  Clip cpu(params(0.1, false));
  ClipCuda gpu(params(0.1, false));
  compare(cpu, gpu, b);
}

TEST_CASE("clip cuda: compute() adds dL/dt into the parameter's gradient", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(20, 12, 9);
  contra::Embeddings e = b.embeddings();
  e.z = to_device(b.z);
  ClipCuda gpu(params(0.2));
  contra::LossResult out;
  gpu.compute(e, all_pairs(), out);
  const float once = grad_of(*gpu.parameters()[0]);
  CHECK(once != 0.0f);
  gpu.compute(e, all_pairs(), out);
  CHECK(grad_of(*gpu.parameters()[0]) == 2.0f * once);
}

TEST_CASE("clip cuda: chunks of 5 rows and one chunk give the same result", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(53, 40, 11);
  Clip cpu(params(0.1));
  ClipCuda small(params(0.1, true, 5));
  ClipCuda whole(params(0.1));
  const contra::LossResult a = compare(cpu, small, b);
  const float dt_small = grad_of(*small.parameters()[0]);
  const contra::LossResult c = compare(cpu, whole, b);
  CHECK(value_difference(a.value, c.value) <= 1e-6);
  CHECK(relative_difference(c.grad, a.grad) <= 1e-5);
  CHECK(value_difference(dt_small, grad_of(*whole.parameters()[0])) <= 1e-5);
}

TEST_CASE("clip cuda: 2N = 4096 in chunks of 512 matches the CPU build", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(2048, 128, 21);
  Clip cpu(params(0.07));
  ClipCuda gpu(params(0.07, true, 512));
  compare(cpu, gpu, b);
}

TEST_CASE("clip cuda: repeated calls give bit-identical results", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  const tt::Batch b = uncorrelated(31, 48, 19);
  contra::Embeddings e = b.embeddings();
  e.z = to_device(b.z);
  ClipCuda gpu(params(0.07, true, 8));
  contra::LossResult r1, r2;
  gpu.compute(e, all_pairs(), r1);
  const contra::Tensor g1 = to_host(r1.grad);
  const float dt1 = grad_of(*gpu.parameters()[0]);
  zero_grads(gpu);
  gpu.compute(e, all_pairs(), r2);
  const contra::Tensor g2 = to_host(r2.grad);
  CHECK(r1.value == r2.value);
  CHECK(relative_difference(g1, g2) == 0.0);
  CHECK(dt1 == grad_of(*gpu.parameters()[0]));
  CHECK(r1.metrics == r2.metrics);
}

TEST_CASE("clip cuda: TF32 and bf16 products stay close to the CPU build", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  const tt::Batch b = tt::random_batch(64, 128, 13);
  for (auto mode : {contra::cuda::MathMode::tf32, contra::cuda::MathMode::bf16}) {
    INFO("math mode " << contra::cuda::math_mode_name(mode));
    contra::cuda::set_math_mode(mode);
    Clip cpu(params(0.5));
    ClipCuda gpu(params(0.5));
    compare(cpu, gpu, b, 1e-2, 5e-2);
  }
}

TEST_CASE("clip cuda: refuses what the CPU build refuses, with its messages", "[plugins][clip][gpu]") {
  CONTRA_REQUIRE_GPU();
  Clip cpu(params());
  ClipCuda gpu(params());
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
  contra::Pairs negatives;
  negatives.negative.emplace_back(0, 1);
  same_refusal(ok.embeddings(), negatives);
  same_refusal(ok.embeddings(), contra::Pairs{});
  contra::Embeddings odd = ok.embeddings();
  odd.z = random_matrix(5, 4, 1);
  std::vector<std::int64_t> five = {0, 1, 2, 0, 1};
  odd.sample = &five;
  same_refusal(odd, all_pairs());

  // Embeddings on the CPU: the cuda build's own message, as info_nce's.
  contra::LossResult out;
  CHECK_THROWS_WITH(gpu.compute(ok.embeddings(), all_pairs(), out),
                    "clip: expected embeddings as an f32 [M, D] cuda tensor, got f32 [6, 4] on cpu");
}
