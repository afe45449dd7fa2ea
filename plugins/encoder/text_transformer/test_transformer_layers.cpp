// The SDK's transformer layers (contra/nn/layer_norm.hpp, attention.hpp,
// transformer.hpp and nn::Gelu): forward passes against their definitions
// computed here in double, gradients against central finite differences
// (layer_check.hpp: L = Σ y ⊙ w, step 1e-2, |analytic − numeric| <= 5e-4 +
// 5e-3·max(|analytic|, |numeric|) at 24 sampled coordinates of x and of
// every parameter: a quarter of the SDK's default tolerance, as these
// layers are smooth; observed at most a twentieth of this), the padding and
// causal masks, and the errors.
#include <contra/cpu.hpp>
#include <contra/nn/activation.hpp>
#include <contra/nn/attention.hpp>
#include <contra/nn/layer_norm.hpp>
#include <contra/nn/transformer.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace contra;
using contra::test::check_layer_gradients;
using contra::test::random_tensor;

namespace {

test::GradCheckOptions smooth() {
  test::GradCheckOptions o;
  o.abs_tol = 5e-4;
  o.rel_tol = 5e-3;
  return o;
}

// Adds U(-spread, spread) to every parameter of `layer`, so that no bias is
// zero and no weight of a layer norm is one: every term of the gradients
// then shows.
void perturb_parameters(nn::Layer& layer, std::uint64_t key, double spread = 0.2) {
  std::vector<Parameter*> params;
  layer.parameters(params);
  for (Parameter* p : params) {
    Tensor noise = random_tensor(p->value.shape(), key++, -spread, spread);
    for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += noise.data<float>()[i];
  }
}

std::vector<std::string> names_of(nn::Layer& layer) {
  std::vector<Parameter*> params;
  layer.parameters(params);
  std::vector<std::string> names;
  for (Parameter* p : params) names.push_back(p->name);
  return names;
}

// Row r of a row-major [rows, cols] f32 tensor, element c.
float at(const Tensor& t, std::int64_t r, std::int64_t c) { return t.data<float>()[r * t.dim(1) + c]; }

// x·Wᵀ + b of a Linear, in double.
std::vector<double> linear_reference(nn::Linear& lin, const std::vector<double>& x, std::int64_t rows) {
  const std::int64_t in = lin.in_features(), out = lin.out_features();
  const float* w = lin.weight().value.data<float>();
  std::vector<double> y(static_cast<std::size_t>(rows * out));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = lin.bias() ? lin.bias()->value.data<float>()[o] : 0.0;
      for (std::int64_t c = 0; c < in; ++c) s += x[static_cast<std::size_t>(r * in + c)] * w[o * in + c];
      y[static_cast<std::size_t>(r * out + o)] = s;
    }
  return y;
}

// MultiHeadSelfAttention's output from its definition (attention.hpp), in
// double: padded queries attend to nothing, so their output is the bias.
std::vector<double> attention_reference(nn::MultiHeadSelfAttention& a, const Tensor& x, std::int64_t length,
                                        const std::vector<std::int32_t>& valid) {
  const std::int64_t d = a.width(), heads = a.heads(), dh = d / heads, rows = x.dim(0);
  std::vector<double> in(x.data<float>(), x.data<float>() + x.numel());
  const std::vector<double> qkv = linear_reference(a.in_proj(), in, rows);
  std::vector<double> out(static_cast<std::size_t>(rows * d), 0.0);
  auto get = [&](std::int64_t row, std::int64_t part, std::int64_t h, std::int64_t e) {
    return qkv[static_cast<std::size_t>(row * 3 * d + part * d + h * dh + e)];
  };
  for (std::size_t b = 0; b < valid.size(); ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < valid[b]; ++i) {
        const std::int64_t qi = static_cast<std::int64_t>(b) * length + i;
        const std::int64_t seen = a.causal() ? i + 1 : valid[b];
        std::vector<double> p(static_cast<std::size_t>(seen));
        double top = -1e300, sum = 0;
        for (std::int64_t j = 0; j < seen; ++j) {
          double s = 0;
          for (std::int64_t e = 0; e < dh; ++e) s += get(qi, 0, h, e) * get(qi - i + j, 1, h, e);
          p[static_cast<std::size_t>(j)] = s / std::sqrt(static_cast<double>(dh));
          top = std::max(top, p[static_cast<std::size_t>(j)]);
        }
        for (double& v : p) sum += v = std::exp(v - top);
        for (std::int64_t e = 0; e < dh; ++e) {
          double o = 0;
          for (std::int64_t j = 0; j < seen; ++j) o += p[static_cast<std::size_t>(j)] / sum * get(qi - i + j, 2, h, e);
          out[static_cast<std::size_t>(qi * d + h * dh + e)] = o;
        }
      }
  return linear_reference(a.out_proj(), out, rows);
}

// Rows of positions t >= valid[b] (padding) of x, overwritten with other values.
Tensor with_new_padding(const Tensor& x, std::int64_t length, const std::vector<std::int32_t>& valid,
                        std::uint64_t key) {
  Tensor out = x.clone();
  Tensor noise = random_tensor(x.shape(), key, -3, 3);
  for (std::size_t b = 0; b < valid.size(); ++b)
    for (std::int64_t t = valid[b]; t < length; ++t) {
      const std::int64_t r = static_cast<std::int64_t>(b) * length + t;
      for (std::int64_t c = 0; c < x.dim(1); ++c)
        out.data<float>()[r * x.dim(1) + c] = noise.data<float>()[r * x.dim(1) + c];
    }
  return out;
}

bool rows_equal(const Tensor& a, const Tensor& b, std::int64_t r) {
  for (std::int64_t c = 0; c < a.dim(1); ++c)
    if (at(a, r, c) != at(b, r, c)) return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// LayerNorm

TEST_CASE("layer norm: forward normalises each row, then scales and shifts", "[sdk][nn][layer_norm]") {
  nn::LayerNorm ln("ln", 7);
  CHECK(names_of(ln) == std::vector<std::string>{"ln.weight", "ln.bias"});
  CHECK_FALSE(ln.weight().decay);
  CHECK_FALSE(ln.bias().decay);
  for (std::int64_t c = 0; c < 7; ++c) {
    CHECK(ln.weight().value.data<float>()[c] == 1.0f);
    CHECK(ln.bias().value.data<float>()[c] == 0.0f);
  }
  perturb_parameters(ln, 3, 0.5);
  // Rows of different offsets and scales, one of them constant (σ = 0: y = β).
  Tensor x = random_tensor({5, 7}, 1, -2, 2);
  for (std::int64_t c = 0; c < 7; ++c) {
    x.data<float>()[7 + c] = 5.0f + 0.25f * x.data<float>()[7 + c];
    x.data<float>()[14 + c] = 0.25f;
  }
  for (Mode mode : {Mode::train, Mode::eval}) {
    const Tensor& y = ln.forward(x, mode);
    REQUIRE(y.shape() == x.shape());
    for (std::int64_t r = 0; r < 5; ++r) {
      double mean = 0, var = 0;
      for (std::int64_t c = 0; c < 7; ++c) mean += at(x, r, c) / 7.0;
      for (std::int64_t c = 0; c < 7; ++c) var += (at(x, r, c) - mean) * (at(x, r, c) - mean) / 7.0;
      for (std::int64_t c = 0; c < 7; ++c) {
        const double want = (at(x, r, c) - mean) / std::sqrt(var + 1e-5) * ln.weight().value.data<float>()[c] +
                            ln.bias().value.data<float>()[c];
        INFO("row " << r << ", column " << c);
        CHECK(at(y, r, c) == Approx(want).margin(2e-5));
      }
    }
  }
}

TEST_CASE("layer norm: gradients match finite differences", "[sdk][nn][layer_norm]") {
  nn::LayerNorm ln("ln", 6);
  perturb_parameters(ln, 5, 0.5);
  CHECK(check_layer_gradients(ln, random_tensor({4, 6}, 6, -2, 2), smooth()) <= 1.0);
  // An eval-mode forward is differentiated the same way (a layer norm has no mode).
  test::GradCheckOptions eval = smooth();
  eval.mode = Mode::eval;
  CHECK(check_layer_gradients(ln, random_tensor({3, 6}, 7, -2, 2), eval) <= 1.0);
}

TEST_CASE("layer norm: errors", "[sdk][nn][layer_norm]") {
  CHECK_THROWS_WITH(nn::LayerNorm("ln", 0), "LayerNorm 'ln': features must be >= 1, got 0");
  CHECK_THROWS_WITH(nn::LayerNorm("ln", 4, 0.0), "LayerNorm 'ln': eps must be > 0, got 0");
  nn::LayerNorm ln("ln", 4);
  CHECK_THROWS_WITH(ln.backward(random_tensor({2, 4}, 1)),
                    "LayerNorm 'ln': backward() called without a forward() to differentiate");
  CHECK_THROWS_WITH(ln.forward(random_tensor({2, 3}, 1), Mode::train),
                    "LayerNorm 'ln': expected an f32 cpu tensor [N, 4], N > 0, got f32 cpu [2, 3]");
  ln.forward(random_tensor({2, 4}, 1), Mode::train);
  CHECK_THROWS_AS(ln.backward(random_tensor({3, 4}, 1)), UsageError);
}

// ---------------------------------------------------------------------------
// GELU

TEST_CASE("gelu: forward is x·Φ(x) with the exact erf", "[sdk][nn][activation]") {
  nn::Gelu gelu;
  Tensor x = random_tensor({6, 50}, 1, -6, 6);
  const Tensor& y = gelu.forward(x, Mode::eval);
  REQUIRE(y.shape() == x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.data<float>()[i];
    INFO("x = " << v);
    CHECK(y.data<float>()[i] == Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))).margin(1e-6).epsilon(1e-5));
  }
}

TEST_CASE("gelu: gradients match finite differences, and backward needs a train-mode forward",
          "[sdk][nn][activation]") {
  nn::Gelu gelu;
  CHECK(check_layer_gradients(gelu, random_tensor({5, 9}, 2, -4, 4), smooth()) <= 1.0);
  Tensor x = random_tensor({2, 3}, 3);
  gelu.forward(x, Mode::eval);
  CHECK_THROWS_WITH(gelu.backward(x), "GELU: backward() without a train-mode forward()");
  gelu.forward(x, Mode::train);
  CHECK_FALSE(gelu.backward(x, false).defined());
}

// ---------------------------------------------------------------------------
// MultiHeadSelfAttention

TEST_CASE("attention: forward matches its definition, with and without the causal mask",
          "[sdk][nn][attention]") {
  const std::int64_t length = 5;
  const std::vector<std::int32_t> valid{5, 3, 1};
  for (bool causal : {false, true}) {
    INFO("causal " << causal);
    Rng init(1, 0, 0, 0, 0);
    nn::MultiHeadSelfAttention attn("attn", 8, 2, init, Precision::f32, causal);
    perturb_parameters(attn, 10);
    attn.set_sequences(length, valid);
    Tensor x = random_tensor({15, 8}, 2, -2, 2);
    const Tensor& y = attn.forward(x, Mode::eval);
    REQUIRE(y.shape() == x.shape());
    const std::vector<double> want = attention_reference(attn, x, length, valid);
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      INFO("row " << i / 8 << ", column " << i % 8);
      CHECK(y.data<float>()[i] == Approx(want[static_cast<std::size_t>(i)]).margin(2e-5));
    }
  }
}

TEST_CASE("attention: parameters are PyTorch's, initialised as nn.MultiheadAttention", "[sdk][nn][attention]") {
  Rng init(2, 0, 0, 0, 0);
  nn::MultiHeadSelfAttention attn("attn", 16, 4, init);
  CHECK(names_of(attn) ==
        std::vector<std::string>{"attn.in_proj.weight", "attn.in_proj.bias", "attn.out_proj.weight", "attn.out_proj.bias"});
  CHECK(attn.in_proj().weight().value.shape() == Shape{48, 16});
  CHECK(attn.out_proj().weight().value.shape() == Shape{16, 16});
  const double xavier = std::sqrt(6.0 / 64), kaiming = 1.0 / 4;
  double in_top = 0, out_top = 0;
  for (std::int64_t i = 0; i < 48 * 16; ++i)
    in_top = std::max(in_top, std::abs(double(attn.in_proj().weight().value.data<float>()[i])));
  for (std::int64_t i = 0; i < 16 * 16; ++i)
    out_top = std::max(out_top, std::abs(double(attn.out_proj().weight().value.data<float>()[i])));
  CHECK(in_top <= xavier);
  CHECK(in_top > 0.9 * xavier);
  CHECK(out_top <= kaiming);
  CHECK(out_top > 0.9 * kaiming);
  for (std::int64_t i = 0; i < 48; ++i) CHECK(attn.in_proj().bias()->value.data<float>()[i] == 0.0f);
  for (std::int64_t i = 0; i < 16; ++i) CHECK(attn.out_proj().bias()->value.data<float>()[i] == 0.0f);
}

TEST_CASE("attention: gradients of x and every parameter match finite differences", "[sdk][nn][attention]") {
  for (bool causal : {false, true}) {
    INFO("causal " << causal);
    Rng init(3, 0, 0, 0, 0);
    nn::MultiHeadSelfAttention attn("attn", 8, 2, init, Precision::f32, causal);
    perturb_parameters(attn, 20);
    attn.set_sequences(4, std::vector<std::int32_t>{4, 2, 3});
    CHECK(check_layer_gradients(attn, random_tensor({12, 8}, 4, -2, 2), smooth()) <= 1.0);
    attn.set_sequences(3);  // every position valid
    CHECK(check_layer_gradients(attn, random_tensor({6, 8}, 5, -2, 2), smooth()) <= 1.0);
  }
}

TEST_CASE("attention: padded positions change no valid row, and padded rows are the output bias",
          "[sdk][nn][attention]") {
  const std::int64_t length = 6;
  const std::vector<std::int32_t> valid{2, 6, 4};
  for (bool causal : {false, true}) {
    Rng init(4, 0, 0, 0, 0);
    nn::MultiHeadSelfAttention attn("attn", 8, 4, init, Precision::f32, causal);
    perturb_parameters(attn, 30);
    attn.set_sequences(length, valid);
    Tensor x = random_tensor({18, 8}, 6);
    Tensor y = attn.forward(x, Mode::train).clone();
    Tensor dy = random_tensor(y.shape(), 7);
    Tensor dx = attn.backward(dy).clone();
    const Tensor& y2 = attn.forward(with_new_padding(x, length, valid, 8), Mode::train);
    const float* bias = attn.out_proj().bias()->value.data<float>();
    for (std::size_t b = 0; b < valid.size(); ++b)
      for (std::int64_t t = 0; t < length; ++t) {
        const std::int64_t r = static_cast<std::int64_t>(b) * length + t;
        INFO("sample " << b << ", position " << t << ", causal " << causal);
        if (t < valid[b]) {
          CHECK(rows_equal(y, y2, r));
          continue;
        }
        for (std::int64_t c = 0; c < 8; ++c) {
          CHECK(at(y2, r, c) == bias[c]);
          CHECK(at(dx, r, c) == 0.0f);  // nothing depends on a padded row
        }
      }
  }
}

TEST_CASE("attention: with the causal mask, a later position changes no earlier row", "[sdk][nn][attention]") {
  Rng init(5, 0, 0, 0, 0);
  nn::MultiHeadSelfAttention attn("attn", 8, 2, init, Precision::f32, true);
  attn.set_sequences(5);
  Tensor x = random_tensor({10, 8}, 9);
  Tensor y = attn.forward(x, Mode::eval).clone();
  Tensor changed = x.clone();
  for (std::int64_t c = 0; c < 8; ++c) changed.data<float>()[3 * 8 + c] += 1.0f;  // sample 0, position 3
  const Tensor& y2 = attn.forward(changed, Mode::eval);
  for (std::int64_t r = 0; r < 10; ++r) {
    INFO("row " << r);
    CHECK(rows_equal(y, y2, r) == (r < 3 || r >= 5));
  }
}

TEST_CASE("attention: errors", "[sdk][nn][attention]") {
  Rng init(6, 0, 0, 0, 0);
  CHECK_THROWS_WITH(nn::MultiHeadSelfAttention("attn", 6, 4, init),
                    "MultiHeadSelfAttention 'attn': width must be a positive multiple of heads, got width 6 and 4 heads");
  nn::MultiHeadSelfAttention attn("attn", 8, 2, init);
  CHECK_THROWS_WITH(attn.forward(random_tensor({8, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': forward() called before set_sequences()");
  CHECK_THROWS_WITH(attn.set_sequences(0), "MultiHeadSelfAttention 'attn': sequence length must be >= 1, got 0");
  CHECK_THROWS_WITH(attn.set_sequences(4, std::vector<std::int32_t>{4, 0}),
                    "MultiHeadSelfAttention 'attn': sample 1 has 0 valid positions, outside [1, 4]");
  CHECK_THROWS_WITH(attn.set_sequences(4, std::vector<std::int32_t>{5}),
                    "MultiHeadSelfAttention 'attn': sample 0 has 5 valid positions, outside [1, 4]");
  attn.set_sequences(4, std::vector<std::int32_t>{4, 2});
  CHECK_THROWS_WITH(attn.forward(random_tensor({6, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': expected an f32 cpu tensor [B·L, 8] with L = 4, got f32 cpu [6, 8]");
  CHECK_THROWS_WITH(attn.forward(random_tensor({12, 8}, 1), Mode::train),
                    "MultiHeadSelfAttention 'attn': set_sequences() gave valid lengths of 2 samples, but the input "
                    "[12, 8] holds 3 sequences of 4");
  CHECK_THROWS_WITH(attn.backward(random_tensor({8, 8}, 1)),
                    "MultiHeadSelfAttention 'attn': backward() without a train-mode forward()");
  attn.forward(random_tensor({8, 8}, 1), Mode::train);
  CHECK_THROWS_AS(attn.backward(random_tensor({4, 8}, 1)), UsageError);
}

// ---------------------------------------------------------------------------
// TransformerBlock

TEST_CASE("transformer block: parameters in order, with CLIP's names", "[sdk][nn][transformer]") {
  Rng init(7, 0, 0, 0, 0);
  nn::TransformerBlock block("blocks.0", 8, 2, 32, init);
  CHECK(names_of(block) == std::vector<std::string>{
                               "blocks.0.ln_1.weight", "blocks.0.ln_1.bias", "blocks.0.attn.in_proj.weight",
                               "blocks.0.attn.in_proj.bias", "blocks.0.attn.out_proj.weight",
                               "blocks.0.attn.out_proj.bias", "blocks.0.ln_2.weight", "blocks.0.ln_2.bias",
                               "blocks.0.mlp.c_fc.weight", "blocks.0.mlp.c_fc.bias", "blocks.0.mlp.c_proj.weight",
                               "blocks.0.mlp.c_proj.bias"});
  CHECK(block.mlp_fc().weight().value.shape() == Shape{32, 8});
  CHECK(block.mlp_proj().weight().value.shape() == Shape{8, 32});
}

TEST_CASE("transformer block: forward is x' + MLP(LN2(x')) with x' = x + Attn(LN1(x))", "[sdk][nn][transformer]") {
  Rng init(8, 0, 0, 0, 0);
  nn::TransformerBlock block("b", 8, 2, 16, init, Precision::f32, true);
  perturb_parameters(block, 40);
  const std::vector<std::int32_t> valid{3, 4};
  block.set_sequences(4, valid);
  Tensor x = random_tensor({8, 8}, 10, -2, 2);
  Tensor y = block.forward(x, Mode::eval).clone();
  // The same layers, one at a time.
  block.attention().set_sequences(4, valid);
  Tensor mid = x.clone();
  const Tensor& a = block.attention().forward(block.ln_1().forward(x, Mode::eval), Mode::eval);
  for (std::int64_t i = 0; i < x.numel(); ++i) mid.data<float>()[i] += a.data<float>()[i];
  Tensor hidden = block.mlp_fc().forward(block.ln_2().forward(mid, Mode::eval), Mode::eval).clone();
  for (std::int64_t i = 0; i < hidden.numel(); ++i) {
    const double v = hidden.data<float>()[i];
    hidden.data<float>()[i] = static_cast<float>(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  }
  const Tensor& m = block.mlp_proj().forward(hidden, Mode::eval);
  for (std::int64_t i = 0; i < y.numel(); ++i)
    CHECK(y.data<float>()[i] == Approx(mid.data<float>()[i] + m.data<float>()[i]).margin(1e-5));
}

TEST_CASE("transformer block: gradients of x and every parameter match finite differences",
          "[sdk][nn][transformer]") {
  for (bool causal : {false, true}) {
    INFO("causal " << causal);
    Rng init(9, 0, 0, 0, 0);
    nn::TransformerBlock block("b", 8, 2, 16, init, Precision::f32, causal);
    perturb_parameters(block, 50);
    block.set_sequences(4, std::vector<std::int32_t>{4, 1, 3});
    CHECK(check_layer_gradients(block, random_tensor({12, 8}, 11, -2, 2), smooth()) <= 1.0);
  }
}

TEST_CASE("transformer block: backward without the input gradient adds the same parameter gradients",
          "[sdk][nn][transformer]") {
  Rng init(10, 0, 0, 0, 0);
  nn::TransformerBlock block("b", 8, 2, 16, init);
  block.set_sequences(3, std::vector<std::int32_t>{2, 3});
  std::vector<Parameter*> params;
  block.parameters(params);
  Tensor x = random_tensor({6, 8}, 12), dy = random_tensor({6, 8}, 13);
  std::vector<Tensor> with_dx;
  block.forward(x, Mode::train);
  CHECK(block.backward(dy, true).shape() == x.shape());
  for (Parameter* p : params) {
    with_dx.push_back(p->grad.clone());
    p->grad.zero();
  }
  block.forward(x, Mode::train);
  CHECK_FALSE(block.backward(dy, false).defined());
  for (std::size_t k = 0; k < params.size(); ++k) {
    INFO(params[k]->name);
    for (std::int64_t i = 0; i < params[k]->grad.numel(); ++i)
      CHECK(params[k]->grad.data<float>()[i] == with_dx[k].data<float>()[i]);
  }
  block.forward(x, Mode::eval);
  CHECK_THROWS_WITH(block.backward(dy), "TransformerBlock 'b': backward() without a train-mode forward()");
}

TEST_CASE("transformer block: bf16 products stay close to f32 (where the CPU runs bf16)", "[sdk][nn][transformer]") {
  Rng init(11, 0, 0, 0, 0);
  if (!cpu_capabilities().bf16) {
    WARN("SKIPPED: " << bf16_unavailable_reason());
    CHECK_THROWS_AS(nn::TransformerBlock("b", 8, 2, 16, init, Precision::bf16), DeviceError);
    Rng again(11, 0, 0, 0, 0);
    CHECK_THROWS_WITH(nn::TransformerBlock("b", 8, 2, 16, again, Precision::bf16),
                      "linear 'b.attn.in_proj': " + bf16_unavailable_reason() + "; use f32 precision");
    return;
  }
  Rng init16(11, 0, 0, 0, 0);
  nn::TransformerBlock f32("b", 32, 4, 64, init), bf16("b", 32, 4, 64, init16, Precision::bf16);
  for (nn::TransformerBlock* b : {&f32, &bf16}) b->set_sequences(8, std::vector<std::int32_t>{8, 5});
  Tensor x = random_tensor({16, 32}, 14);
  Tensor y32 = f32.forward(x, Mode::train).clone();
  const Tensor& y16 = bf16.forward(x, Mode::train);
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < y32.numel(); ++i) {
    num += std::pow(y16.data<float>()[i] - y32.data<float>()[i], 2);
    den += std::pow(y32.data<float>()[i], 2);
  }
  CHECK(std::sqrt(num / den) < 1e-2);
}

TEST_CASE("transformer block: parameter_count() counts what a built block holds", "[plugins][text_transformer]") {
  for (const auto& [width, mlp_width] : {std::pair<std::int64_t, std::int64_t>{8, 16}, {12, 48}}) {
    contra::Rng init(1, 0, 0, 0, 0);
    contra::nn::TransformerBlock block("b", width, 4, mlp_width, init);
    std::vector<contra::Parameter*> params;
    block.parameters(params);
    std::uint64_t values = 0;
    for (const contra::Parameter* p : params) values += static_cast<std::uint64_t>(p->value.numel());
    CHECK(contra::nn::TransformerBlock::parameter_count(width, mlp_width) == values);
  }
}
