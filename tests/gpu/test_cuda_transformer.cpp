// The GPU transformer layers (contra/cuda/nn.hpp: LayerNorm, Gelu,
// MultiHeadSelfAttention, TransformerBlock) against their CPU twins
// (contra/nn/, the oracle), built from the same seed: identical initial
// parameters, train-mode outputs, dL/dx and every parameter gradient (two
// steps, so that gradients accumulate), eval-mode outputs. The [gpu] cases
// skip where no GPU is usable; the others run everywhere.
//
// Tolerances, relative to the CPU result's largest entry: strict_f32 1e-4
// (sums of up to a few hundred terms in another order: cuBLAS against
// oneDNN and sgemm, warp and block reductions against serial loops); 1e-5
// for GELU (element-wise: erf and exp a few ulps apart); TF32 (10-bit
// mantissa inputs) 1e-2; bf16 products (8-bit), against the f32 CPU layer,
// 5e-2.
#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>
#include <contra/nn/activation.hpp>
#include <contra/nn/attention.hpp>
#include <contra/nn/layer_norm.hpp>
#include <contra/nn/transformer.hpp>

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

using namespace contra;
using cuda_twin::MathModeGuard;
using layer_twin::compare_layer;

namespace gnn = contra::cuda::nn;

namespace {

// The message of the UsageError f() throws.
template <class F> std::string usage_error(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a UsageError: ") + e.what();
  }
  return "no error";
}

Tensor device_random(const Shape& shape, std::uint64_t seed) {
  return cuda_twin::to_device(layer_twin::random(shape, seed));
}

// Adds the same U(-spread, spread) noise to the parameters of both layers,
// so that no bias is zero and no layer norm weight is one: every term of the
// gradients shows.
void perturb_both(nn::Layer& cpu, nn::Layer& gpu, std::uint64_t seed, double spread = 0.2) {
  std::vector<Parameter*> pc, pg;
  cpu.parameters(pc);
  gpu.parameters(pg);
  REQUIRE(pc.size() == pg.size());
  Rng rng(seed, 0, 0, 0, 0);
  for (std::size_t i = 0; i < pc.size(); ++i) {
    Tensor& v = pc[i]->value;
    for (std::int64_t k = 0; k < v.numel(); ++k) v.data<float>()[k] += static_cast<float>(rng.uniform(-spread, spread));
    contra::cuda::copy_to_device(pg[i]->value, v, contra::cuda::current_stream());
  }
  contra::cuda::synchronize(contra::cuda::current_stream());
}

// Valid lengths as set_sequences() takes them (empty: all real).
struct Sequences {
  std::int64_t batch, length;
  std::vector<std::int32_t> valid;
};

std::string describe(const Sequences& s) {
  std::string out = std::to_string(s.batch) + " sequences of " + std::to_string(s.length) + ", valid {";
  for (std::size_t b = 0; b < s.valid.size(); ++b) out += (b ? ", " : "") + std::to_string(s.valid[b]);
  return out + "}";
}

bool all_finite(const Tensor& device) {
  const Tensor host = cuda_twin::to_host(device);
  for (std::int64_t k = 0; k < host.numel(); ++k)
    if (!std::isfinite(host.data<float>()[k])) return false;
  return true;
}

}  // namespace

TEST_CASE("cuda transformer: wrong arguments get the CPU layers' messages, with or without a GPU",
          "[cuda][nn][transformer]") {
  Rng a(1, 0, 0, 0, 0), b(1, 0, 0, 0, 0);
  // Pinned for the common cases, then every refusal compared with the CPU's.
  CHECK_THROWS_WITH(gnn::LayerNorm("ln", 0), "LayerNorm 'ln': features must be >= 1, got 0");
  CHECK_THROWS_WITH(gnn::MultiHeadSelfAttention("attn", 6, 4, b),
                    "MultiHeadSelfAttention 'attn': width must be a positive multiple of heads, got width 6 and 4 "
                    "heads");
  CHECK_THROWS_WITH(gnn::TransformerBlock("blk", 8, 2, 0, b),
                    "linear 'blk.mlp.c_fc': in_features and out_features must be positive (got 8, 0)");
  CHECK(usage_error([&] { gnn::LayerNorm("ln", 0); }) == usage_error([&] { nn::LayerNorm("ln", 0); }));
  CHECK(usage_error([&] { gnn::LayerNorm("ln", 4, 0.0); }) == usage_error([&] { nn::LayerNorm("ln", 4, 0.0); }));
  CHECK(usage_error([&] { gnn::LayerNorm("ln", 4, -1e-3); }) == usage_error([&] { nn::LayerNorm("ln", 4, -1e-3); }));
  for (auto [w, h] : {std::pair<std::int64_t, std::int64_t>{6, 4}, {0, 1}, {6, 0}, {-4, 2}, {8, -2}}) {
    const std::int64_t width = w, heads = h;  // captured below
    INFO("width " << width << ", heads " << heads);
    CHECK(usage_error([&] { gnn::MultiHeadSelfAttention("attn", width, heads, b); }) ==
          usage_error([&] { nn::MultiHeadSelfAttention("attn", width, heads, a); }));
    CHECK(usage_error([&] { gnn::MultiHeadSelfAttention("attn", width, heads, b, Precision::f32, true); }) ==
          usage_error([&] { nn::MultiHeadSelfAttention("attn", width, heads, a, Precision::f32, true); }));
  }
  for (auto [w, h, m] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{0, 1, 8},
                         {6, 4, 8},
                         {6, 0, 8},
                         {8, 2, 0},
                         {8, 2, -3}}) {
    const std::int64_t width = w, heads = h, mlp = m;  // captured below
    INFO("width " << width << ", heads " << heads << ", mlp_width " << mlp);
    CHECK(usage_error([&] { gnn::TransformerBlock("blk", width, heads, mlp, b); }) ==
          usage_error([&] { nn::TransformerBlock("blk", width, heads, mlp, a); }));
  }
}

TEST_CASE("cuda transformer: without a usable GPU, building a layer says why", "[cuda][nn][transformer]") {
  if (cuda::available()) {
    SUCCEED("a GPU is usable here");
    return;
  }
  Rng init(1, 0, 0, 0, 0);
  const std::string reason = "no usable GPU: " + cuda::unavailable_reason();
  CHECK_THROWS_WITH(gnn::LayerNorm("ln", 8), reason + " (needed by LayerNorm (cuda))");
  CHECK_THROWS_WITH(gnn::Gelu(), reason + " (needed by GELU (cuda))");
  CHECK_THROWS_WITH(gnn::MultiHeadSelfAttention("attn", 8, 2, init),
                    reason + " (needed by MultiHeadSelfAttention (cuda))");
  CHECK_THROWS_WITH(gnn::TransformerBlock("blk", 8, 2, 16, init), reason + " (needed by TransformerBlock (cuda))");
  CHECK_THROWS_AS(gnn::TransformerBlock("blk", 8, 2, 16, init, Precision::bf16, true), DeviceError);
}

TEST_CASE("cuda transformer: LayerNorm matches the CPU layer", "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  // Rows of a few elements to many, a row count over one chunk of the
  // parameters' gradient sums (32 rows), and over 128 chunks.
  for (auto [shape, eps] : {std::pair<Shape, double>{Shape{7, 16}, 1e-5},
                            {Shape{1, 5}, 1e-5},
                            {Shape{33, 300}, 1e-5},
                            {Shape{300, 64}, 1e-3},
                            {Shape{5000, 8}, 1e-5},
                            {Shape{4, 1100}, 1e-6}}) {
    INFO("input " << shape.str() << ", eps " << eps);
    nn::LayerNorm cpu("ln", shape[1], eps);
    gnn::LayerNorm gpu("ln", shape[1], eps);
    CHECK(gpu.features() == shape[1]);
    CHECK(gpu.eps() == eps);
    compare_layer(cpu, gpu, shape, 1e-4, 2, /*eval_backward=*/true);
    perturb_both(cpu, gpu, 11);
    compare_layer(cpu, gpu, shape, 1e-4, 2, /*eval_backward=*/true, 5);
  }
}

TEST_CASE("cuda transformer: LayerNorm checks its input and gradient like the CPU layer",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  gnn::LayerNorm ln("ln", 4);
  CHECK_THROWS_WITH(ln.backward(device_random({2, 4}, 1)),
                    "LayerNorm 'ln': backward() called without a forward() to differentiate");
  CHECK_THROWS_WITH(ln.forward(device_random({2, 3}, 1), Mode::train),
                    "LayerNorm 'ln': expected an f32 cuda tensor [N, 4], N > 0, got f32 cuda [2, 3]");
  CHECK_THROWS_WITH(ln.forward(layer_twin::random({2, 4}, 1), Mode::train),
                    "LayerNorm 'ln': expected an f32 cuda tensor [N, 4], N > 0, got f32 cpu [2, 4]");
  const Tensor x = device_random({2, 4}, 1);
  ln.forward(x, Mode::train);
  CHECK_THROWS_AS(ln.backward(device_random({3, 4}, 1)), UsageError);
  CHECK_THROWS_AS(ln.backward(layer_twin::random({2, 4}, 1)), UsageError);
  // Without the input gradient, the parameters' gradients are still added.
  CHECK_FALSE(ln.backward(device_random({2, 4}, 2), false).defined());
  CHECK(ln.backward(device_random({2, 4}, 2), true).defined());
}

TEST_CASE("cuda transformer: Gelu matches the CPU layer", "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (const Shape& shape : {Shape{5, 7}, Shape{3, 4, 5, 6}, Shape{1000, 37}}) {
    INFO("input " << shape.str());
    nn::Gelu cpu;
    gnn::Gelu gpu;
    compare_layer(cpu, gpu, shape, 1e-5);
  }
  // Large and small inputs: the tails of Φ and φ.
  nn::Gelu cpu;
  gnn::Gelu gpu;
  Tensor x = layer_twin::random({4, 50}, 3, 6.0);
  const Tensor xd = cuda_twin::to_device(x);
  layer_twin::check_close("train-mode output", "y", cpu.forward(x, Mode::train), gpu.forward(xd, Mode::train), 1e-5);
  const Tensor dy = layer_twin::random({4, 50}, 4);
  layer_twin::check_close("input gradient", "dx", cpu.backward(dy), gpu.backward(cuda_twin::to_device(dy)), 1e-5);
}

TEST_CASE("cuda transformer: Gelu needs a train-mode forward before backward, like the CPU layer",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  gnn::Gelu gelu;
  const Tensor x = device_random({3, 4}, 1);
  CHECK_THROWS_WITH(gelu.backward(x), "GELU: backward() without a train-mode forward()");
  gelu.forward(x, Mode::eval);
  CHECK_THROWS_WITH(gelu.backward(x), "GELU: backward() without a train-mode forward()");
  CHECK_THROWS_WITH(gelu.forward(layer_twin::random({3, 4}, 1), Mode::train),
                    "GELU: expected an f32 cuda tensor, got f32 cpu [3, 4]");
  gelu.forward(x, Mode::train);
  CHECK_THROWS_AS(gelu.backward(device_random({4, 3}, 2)), UsageError);
  CHECK_FALSE(gelu.backward(x, false).defined());
  CHECK(gelu.backward(x, true).shape() == Shape{3, 4});
}

namespace {

// width, heads and how the rows form sequences: one head and several, full
// and padded sequences (down to one real position), lengths over a warp.
struct AttentionCase {
  std::int64_t width, heads;
  Sequences seq;
};

const std::vector<AttentionCase>& attention_cases() {
  static const std::vector<AttentionCase> cases{
      {8, 1, {3, 5, {}}},
      {12, 3, {4, 7, {7, 3, 1, 5}}},
      {32, 4, {2, 16, {16, 9}}},
      {64, 8, {3, 33, {1, 33, 20}}},
      {16, 2, {2, 40, {}}},
      {24, 1, {2, 70, {70, 37}}},
  };
  return cases;
}

}  // namespace

TEST_CASE("cuda transformer: MultiHeadSelfAttention matches the CPU layer (strict f32 and TF32)",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  for (const AttentionCase& c : attention_cases()) {
    for (bool causal : {false, true}) {
      for (auto [mode, tol] : {std::pair<cuda::MathMode, double>{cuda::MathMode::strict_f32, 1e-4},
                               {cuda::MathMode::tf32, 1e-2}}) {
        cuda::set_math_mode(mode);
        INFO("width " << c.width << ", " << c.heads << " heads, " << describe(c.seq) << (causal ? ", causal" : "")
                      << ", " << cuda::math_mode_name(mode));
        Rng a(21, 0, 0, 0, 0), b(21, 0, 0, 0, 0);
        nn::MultiHeadSelfAttention cpu("attn", c.width, c.heads, a, Precision::f32, causal);
        gnn::MultiHeadSelfAttention gpu("attn", c.width, c.heads, b, Precision::f32, causal);
        CHECK(a.next_u64() == b.next_u64());  // the same draws, in the same order
        CHECK(gpu.width() == c.width);
        CHECK(gpu.heads() == c.heads);
        CHECK(gpu.causal() == causal);
        cpu.set_sequences(c.seq.length, c.seq.valid);
        gpu.set_sequences(c.seq.length, c.seq.valid);
        compare_layer(cpu, gpu, Shape{c.seq.batch * c.seq.length, c.width}, tol);
        // With nonzero biases: padded rows are b_out.
        perturb_both(cpu, gpu, 31);
        compare_layer(cpu, gpu, Shape{c.seq.batch * c.seq.length, c.width}, tol, 1, false, 7);
      }
    }
  }
}

TEST_CASE("cuda transformer: MultiHeadSelfAttention with bf16 precision stays close to the f32 CPU layer",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  cuda::set_math_mode(cuda::MathMode::strict_f32);
  for (bool causal : {false, true}) {
    INFO((causal ? "causal" : "not causal"));
    Rng a(22, 0, 0, 0, 0), b(22, 0, 0, 0, 0);
    nn::MultiHeadSelfAttention cpu("attn", 32, 4, a, Precision::f32, causal);
    gnn::MultiHeadSelfAttention gpu("attn", 32, 4, b, Precision::bf16, causal);
    const std::vector<std::int32_t> valid{12, 5, 9};
    cpu.set_sequences(12, valid);
    gpu.set_sequences(12, valid);
    compare_layer(cpu, gpu, Shape{36, 32}, 5e-2);
  }
}

TEST_CASE("cuda transformer: MultiHeadSelfAttention never reads padded positions", "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  for (bool causal : {false, true}) {
    INFO((causal ? "causal" : "not causal"));
    Rng a(23, 0, 0, 0, 0), b(23, 0, 0, 0, 0);
    nn::MultiHeadSelfAttention cpu("attn", 16, 2, a, Precision::f32, causal);
    gnn::MultiHeadSelfAttention gpu("attn", 16, 2, b, Precision::f32, causal);
    perturb_both(cpu, gpu, 41);
    const std::vector<std::int32_t> valid{3, 6, 1};
    cpu.set_sequences(6, valid);
    gpu.set_sequences(6, valid);
    // NaN in every padded row: no real row may see it, and padded rows are b_out.
    Tensor x = layer_twin::random({18, 16}, 5);
    for (std::int64_t s = 0; s < 3; ++s)
      for (std::int64_t t = valid[static_cast<std::size_t>(s)]; t < 6; ++t)
        for (std::int64_t k = 0; k < 16; ++k)
          x.data<float>()[(s * 6 + t) * 16 + k] = std::numeric_limits<float>::quiet_NaN();
    const Tensor xd = cuda_twin::to_device(x);
    const Tensor& yc = cpu.forward(x, Mode::eval);
    const Tensor& yg = gpu.forward(xd, Mode::eval);
    CHECK(all_finite(yg));
    layer_twin::check_close("eval-mode output", "y", yc, yg, 1e-4);
  }
}

TEST_CASE("cuda transformer: MultiHeadSelfAttention's backward uses the valid lengths of its forward",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  Rng a(24, 0, 0, 0, 0), b(24, 0, 0, 0, 0);
  nn::MultiHeadSelfAttention cpu("attn", 16, 4, a);
  gnn::MultiHeadSelfAttention gpu("attn", 16, 4, b);
  std::vector<Parameter*> pc, pg;
  cpu.parameters(pc);
  gpu.parameters(pg);
  for (const std::vector<std::int32_t>& next :
       {std::vector<std::int32_t>{2, 2}, std::vector<std::int32_t>{}, std::vector<std::int32_t>{5, 3}}) {
    cpu.set_sequences(5, std::vector<std::int32_t>{5, 3});
    gpu.set_sequences(5, std::vector<std::int32_t>{5, 3});
    const Tensor x = layer_twin::random({10, 16}, 6), dy = layer_twin::random({10, 16}, 7);
    const Tensor xd = cuda_twin::to_device(x), dyd = cuda_twin::to_device(dy);
    layer_twin::check_close("train-mode output", "y", cpu.forward(x, Mode::train), gpu.forward(xd, Mode::train),
                            1e-4);
    cpu.set_sequences(5, next);
    gpu.set_sequences(5, next);
    layer_twin::check_close("input gradient", "dx", cpu.backward(dy), gpu.backward(dyd), 1e-4);
    layer_twin::check_grads(pc, pg, 1e-4);
    // The next forward uses the new lengths.
    layer_twin::check_close("eval-mode output", "y", cpu.forward(x, Mode::eval), gpu.forward(xd, Mode::eval), 1e-4);
  }
}

TEST_CASE("cuda transformer: MultiHeadSelfAttention checks its calls like the CPU layer",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  Rng a(6, 0, 0, 0, 0), b(6, 0, 0, 0, 0);
  nn::MultiHeadSelfAttention cpu("attn", 8, 2, a);
  gnn::MultiHeadSelfAttention attn("attn", 8, 2, b);
  std::vector<Parameter*> params;
  attn.parameters(params);
  REQUIRE(params.size() == 4);
  CHECK(params[0]->name == "attn.in_proj.weight");
  CHECK(params[1]->name == "attn.in_proj.bias");
  CHECK(params[2]->name == "attn.out_proj.weight");
  CHECK(params[3]->name == "attn.out_proj.bias");
  CHECK_THROWS_WITH(attn.forward(device_random({8, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': forward() called before set_sequences()");
  CHECK(usage_error([&] { attn.set_sequences(0); }) == usage_error([&] { cpu.set_sequences(0); }));
  CHECK_THROWS_WITH(attn.set_sequences(0), "MultiHeadSelfAttention 'attn': sequence length must be >= 1, got 0");
  for (const std::vector<std::int32_t>& bad : {std::vector<std::int32_t>{4, 0}, std::vector<std::int32_t>{5},
                                               std::vector<std::int32_t>{2, -1}}) {
    CHECK(usage_error([&] { attn.set_sequences(4, bad); }) == usage_error([&] { cpu.set_sequences(4, bad); }));
  }
  CHECK_THROWS_WITH(attn.set_sequences(4, std::vector<std::int32_t>{4, 0}),
                    "MultiHeadSelfAttention 'attn': sample 1 has 0 valid positions, outside [1, 4]");
  attn.set_sequences(4, std::vector<std::int32_t>{4, 2});
  CHECK_THROWS_WITH(attn.forward(device_random({6, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': expected an f32 cuda tensor [B·L, 8] with L = 4, got f32 cuda "
                    "[6, 8]");
  CHECK_THROWS_WITH(attn.forward(layer_twin::random({8, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': expected an f32 cuda tensor [B·L, 8] with L = 4, got f32 cpu "
                    "[8, 8]");
  CHECK_THROWS_WITH(attn.forward(device_random({12, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': set_sequences() gave valid lengths of 2 samples, but the input "
                    "[12, 8] holds 3 sequences of 4");
  CHECK_THROWS_WITH(attn.backward(device_random({8, 8}, 1)),
                    "MultiHeadSelfAttention 'attn': backward() without a train-mode forward()");
  const Tensor x = device_random({8, 8}, 1);
  attn.forward(x, Mode::eval);
  CHECK_THROWS_WITH(attn.backward(device_random({8, 8}, 1)),
                    "MultiHeadSelfAttention 'attn': backward() without a train-mode forward()");
  attn.forward(x, Mode::train);
  CHECK_THROWS_AS(attn.backward(device_random({4, 8}, 1)), UsageError);
  CHECK_THROWS_AS(attn.backward(layer_twin::random({8, 8}, 1)), UsageError);
  CHECK_FALSE(attn.backward(device_random({8, 8}, 2), false).defined());
}

TEST_CASE("cuda transformer: TransformerBlock matches the CPU block (strict f32 and TF32)",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  MathModeGuard guard;
  // width, heads, mlp_width, sequences
  for (auto [width, heads, mlp, seq] :
       {std::tuple<std::int64_t, std::int64_t, std::int64_t, Sequences>{16, 2, 64, {3, 6, {6, 2, 4}}},
        {32, 4, 48, {2, 9, {}}},
        {8, 1, 8, {2, 3, {1, 3}}},
        {64, 8, 256, {2, 40, {40, 17}}}}) {
    for (bool causal : {false, true}) {
      for (auto [mode, tol] : {std::pair<cuda::MathMode, double>{cuda::MathMode::strict_f32, 1e-4},
                               {cuda::MathMode::tf32, 1e-2}}) {
        cuda::set_math_mode(mode);
        INFO("width " << width << ", " << heads << " heads, mlp " << mlp << ", " << describe(seq)
                      << (causal ? ", causal" : "") << ", " << cuda::math_mode_name(mode));
        Rng a(41, 0, 0, 0, 0), b(41, 0, 0, 0, 0);
        nn::TransformerBlock cpu("blk", width, heads, mlp, a, Precision::f32, causal);
        gnn::TransformerBlock gpu("blk", width, heads, mlp, b, Precision::f32, causal);
        CHECK(a.next_u64() == b.next_u64());
        cpu.set_sequences(seq.length, seq.valid);
        gpu.set_sequences(seq.length, seq.valid);
        const Shape in{seq.batch * seq.length, width};
        compare_layer(cpu, gpu, in, tol);
        perturb_both(cpu, gpu, 51);
        compare_layer(cpu, gpu, in, tol, 1, false, 9);
      }
    }
  }
}

TEST_CASE("cuda transformer: TransformerBlock's parameters, and its backward without the input gradient",
          "[cuda][nn][transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  Rng a(42, 0, 0, 0, 0), b(42, 0, 0, 0, 0);
  nn::TransformerBlock cpu("b", 16, 4, 32, a);
  gnn::TransformerBlock gpu("b", 16, 4, 32, b);
  std::vector<Parameter*> pc, pg;
  cpu.parameters(pc);
  gpu.parameters(pg);
  const std::vector<std::string> names{"b.ln_1.weight",        "b.ln_1.bias",        "b.attn.in_proj.weight",
                                       "b.attn.in_proj.bias",  "b.attn.out_proj.weight", "b.attn.out_proj.bias",
                                       "b.ln_2.weight",        "b.ln_2.bias",        "b.mlp.c_fc.weight",
                                       "b.mlp.c_fc.bias",      "b.mlp.c_proj.weight", "b.mlp.c_proj.bias"};
  REQUIRE(pg.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(pg[i]->name == names[i]);
  layer_twin::check_same_parameters(pc, pg);
  std::uint64_t count = 0;
  for (Parameter* p : pg) count += static_cast<std::uint64_t>(p->value.numel());
  CHECK(count == nn::TransformerBlock::parameter_count(16, 32));

  const Tensor dy = layer_twin::random({12, 16}, 8), dyd = cuda_twin::to_device(dy);
  CHECK_THROWS_WITH(gpu.backward(dyd), "TransformerBlock 'b': backward() without a train-mode forward()");
  perturb_both(cpu, gpu, 61);
  const std::vector<std::int32_t> valid{4, 2, 3};
  cpu.set_sequences(4, valid);
  gpu.set_sequences(4, valid);
  const Tensor x = layer_twin::random({12, 16}, 9), xd = cuda_twin::to_device(x);
  layer_twin::check_close("train-mode output", "y", cpu.forward(x, Mode::train), gpu.forward(xd, Mode::train), 1e-4);
  cpu.backward(dy, false);
  CHECK_FALSE(gpu.backward(dyd, false).defined());
  layer_twin::check_grads(pc, pg, 1e-4);
  CHECK_THROWS_AS(gpu.backward(device_random({8, 16}, 1)), UsageError);
  gpu.forward(xd, Mode::eval);
  CHECK_THROWS_WITH(gpu.backward(dyd), "TransformerBlock 'b': backward() without a train-mode forward()");
}
