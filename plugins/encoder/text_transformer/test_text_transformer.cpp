// text_transformer: schema, build, parameters and their initialisation,
// gradients against central finite differences, the padding mask, the
// errors, and bf16 products.
#include "text_transformer.hpp"

#include "layer_check.hpp"

#include <contra/cpu.hpp>
#include <contra/rng.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::TextTransformer;

namespace {

constexpr std::int32_t pad = 0, bos = 1, eos = 2;

TextTransformer make(std::initializer_list<std::pair<std::string, contra::Value>> values) {
  return TextTransformer(TextTransformer::schema().bind(values));
}

// A small encoder: width 8 (2 heads), 2 layers, output 6.
contra::Params small_params(const std::string& pooling = "eos", bool causal = true) {
  return TextTransformer::schema().bind({{"width", std::int64_t{8}},
                                         {"layers", std::int64_t{2}},
                                         {"heads", std::int64_t{2}},
                                         {"mlp_ratio", std::int64_t{2}},
                                         {"output", std::int64_t{6}},
                                         {"pooling", pooling},
                                         {"causal", causal}});
}

TextTransformer small(const std::string& pooling = "eos", bool causal = true) {
  return TextTransformer(small_params(pooling, causal));
}

contra::EncoderContext text_context(std::int64_t length, std::int64_t vocabulary, std::uint64_t seed = 1) {
  contra::EncoderContext ctx;
  ctx.input = contra::Shape{length};
  ctx.seed = seed;
  ctx.vocabulary.size = vocabulary;
  ctx.vocabulary.pad = pad;
  ctx.vocabulary.bos = bos;
  ctx.vocabulary.eos = eos;
  ctx.vocabulary.unk = 3;
  return ctx;
}

// Rows of `length` token ids: bos, text[r] random ids in [4, vocabulary), eos, pad...
contra::Tensor token_rows(const std::vector<std::int64_t>& text, std::int64_t length, std::int64_t vocabulary,
                          std::uint64_t key) {
  contra::Tensor x = contra::Tensor::empty({static_cast<std::int64_t>(text.size()), length}, contra::DType::i32);
  contra::Rng rng(key, 0, 0, 0, 0);
  std::int32_t* ids = x.data<std::int32_t>();
  for (std::size_t r = 0; r < text.size(); ++r) {
    std::int32_t* row = ids + static_cast<std::int64_t>(r) * length;
    row[0] = bos;
    for (std::int64_t t = 1; t <= text[r]; ++t) row[t] = static_cast<std::int32_t>(rng.integer(4, vocabulary - 1));
    row[text[r] + 1] = eos;
    for (std::int64_t t = text[r] + 2; t < length; ++t) row[t] = pad;
  }
  return x;
}

contra::Parameter& parameter(TextTransformer& e, const std::string& name) {
  for (contra::Parameter* p : e.parameters())
    if (p->name == name) return *p;
  FAIL("no parameter " << name);
  throw;
}

double mean_of(const contra::Tensor& t) {
  double s = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) s += t.data<float>()[i];
  return s / static_cast<double>(t.numel());
}

double std_of(const contra::Tensor& t) {
  const double m = mean_of(t);
  double s = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) s += (t.data<float>()[i] - m) * (t.data<float>()[i] - m);
  return std::sqrt(s / static_cast<double>(t.numel()));
}

bool same_values(const contra::Tensor& a, const contra::Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (a.data<float>()[i] != b.data<float>()[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("text_transformer: schema declares its parameters with their bounds", "[plugins][text_transformer]") {
  const contra::testing::CheckResult r = contra::testing::check_schema<TextTransformer>();
  INFO(r.message);
  CHECK(r.ok);
  const contra::Params p = TextTransformer::schema().bind({});
  CHECK(p.get<std::int64_t>("width") == 256);
  CHECK(p.get<std::int64_t>("layers") == 4);
  CHECK(p.get<std::int64_t>("heads") == 4);
  CHECK(p.get<std::int64_t>("mlp_ratio") == 4);
  CHECK(p.get<std::int64_t>("output") == 256);
  CHECK(p.get<std::string>("pooling") == "eos");
  CHECK(p.get<bool>("causal"));
  const contra::Schema s = TextTransformer::schema();
  CHECK_THROWS_AS(s.bind({{"width", std::int64_t{0}}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"layers", std::int64_t{65}}}), contra::ConfigError);
  CHECK_THROWS_AS(s.bind({{"pooling", std::string("max")}}), contra::ConfigError);
  CHECK_NOTHROW(s.bind({{"pooling", std::string("mean")}, {"causal", false}}));
}

TEST_CASE("text_transformer: build refuses what it cannot take, naming it", "[plugins][text_transformer]") {
  contra::EncoderContext images;
  images.input = contra::Shape{3, 32, 32};
  CHECK_THROWS_WITH(small().build(images),
                    "text_transformer: takes token ids from a tokenizer, but its input ([3, 32, 32]) has no "
                    "vocabulary: it is not a text input");
  contra::EncoderContext two_d = text_context(8, 30);
  two_d.input = contra::Shape{2, 8};
  CHECK_THROWS_AS(small().build(two_d), contra::ConfigError);
  CHECK_THROWS_WITH(small().build(two_d), "text_transformer: takes token ids [L], got inputs of shape [2, 8]");
  CHECK_THROWS_WITH(make({{"width", std::int64_t{10}}, {"heads", std::int64_t{4}}}).build(text_context(8, 30)),
                    "text_transformer.width = 10 is not a multiple of text_transformer.heads = 4");
  TextTransformer twice = small();
  twice.build(text_context(8, 30));
  CHECK_THROWS_WITH(twice.build(text_context(8, 30)), "text_transformer: build() called twice");
}

TEST_CASE("text_transformer: parameters have stable names, shapes and CLIP's initialisation",
          "[plugins][text_transformer]") {
  TextTransformer e = make({{"width", std::int64_t{64}}, {"layers", std::int64_t{2}}, {"output", std::int64_t{32}}});
  e.build(text_context(16, 500, 7));
  CHECK(e.output_dim() == 32);
  std::vector<std::string> want{"token_embedding.weight", "positional_embedding"};
  for (const std::string block : {"blocks.0.", "blocks.1."})
    for (const char* name : {"ln_1.weight", "ln_1.bias", "attn.in_proj.weight", "attn.in_proj.bias",
                             "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
                             "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      want.push_back(block + name);
  for (const char* name : {"ln_final.weight", "ln_final.bias", "text_projection.weight"}) want.push_back(name);
  std::vector<std::string> names;
  for (contra::Parameter* p : e.parameters()) names.push_back(p->name);
  CHECK(names == want);
  CHECK(parameter(e, "token_embedding.weight").value.shape() == contra::Shape{500, 64});
  CHECK(parameter(e, "positional_embedding").value.shape() == contra::Shape{16, 64});
  CHECK(parameter(e, "blocks.1.mlp.c_fc.weight").value.shape() == contra::Shape{256, 64});
  CHECK(parameter(e, "text_projection.weight").value.shape() == contra::Shape{32, 64});
  CHECK(e.buffers().empty());

  // Standard deviations of CLIP's initialize_parameters(), within a few
  // percent (the smallest tensor has 1024 draws).
  const double attn = 1 / std::sqrt(64.0), proj = attn / std::sqrt(4.0), fc = 1 / std::sqrt(128.0);
  const std::vector<std::pair<std::string, double>> stds{
      {"token_embedding.weight", 0.02},    {"positional_embedding", 0.01},
      {"blocks.0.attn.in_proj.weight", attn}, {"blocks.1.attn.out_proj.weight", proj},
      {"blocks.0.mlp.c_fc.weight", fc},    {"blocks.1.mlp.c_proj.weight", proj},
      {"text_projection.weight", attn}};
  for (const auto& [name, sd] : stds) {
    INFO(name);
    CHECK(std_of(parameter(e, name).value) == Approx(sd).epsilon(0.06));
    CHECK(std::abs(mean_of(parameter(e, name).value)) < 0.1 * sd);
  }
  for (const char* name : {"blocks.0.attn.in_proj.bias", "blocks.1.attn.out_proj.bias", "ln_final.bias"})
    CHECK(std_of(parameter(e, name).value) == 0.0);
  CHECK(mean_of(parameter(e, "blocks.0.ln_1.weight").value) == 1.0);
  for (const char* name : {"token_embedding.weight", "positional_embedding", "text_projection.weight"})
    CHECK(parameter(e, name).decay);
  for (const char* name : {"blocks.0.ln_1.weight", "blocks.0.attn.in_proj.bias", "ln_final.bias"})
    CHECK_FALSE(parameter(e, name).decay);
}

TEST_CASE("text_transformer: a seed gives the same encoder, another seed another", "[plugins][text_transformer]") {
  const contra::Tensor x = token_rows({3, 0, 6}, 8, 30, 1);
  const contra::testing::CheckResult r = contra::testing::check_encoder_deterministic(
      [] { return std::make_shared<TextTransformer>(small_params()); }, text_context(8, 30, 5), x);
  INFO(r.message);
  CHECK(r.ok);
  TextTransformer a = small(), b = small();
  a.build(text_context(8, 30, 5));
  b.build(text_context(8, 30, 6));
  for (std::size_t k = 0; k < a.parameters().size(); ++k) {
    contra::Parameter& pa = *a.parameters()[k];
    INFO(pa.name);
    if (std_of(pa.value) > 0) CHECK_FALSE(same_values(pa.value, b.parameters()[k]->value));
  }
}

TEST_CASE("text_transformer: gradients of every parameter match finite differences",
          "[plugins][text_transformer]") {
  // Unit-scale embeddings (CLIP's are 0.02 and 0.01: the layer norms would
  // magnify a step of 1e-2 into a large change) and every bias non-zero.
  for (const auto& [pooling, causal] :
       std::vector<std::pair<std::string, bool>>{{"eos", true}, {"mean", false}, {"mean", true}}) {
    INFO("pooling " << pooling << ", causal " << causal);
    TextTransformer e = small(pooling, causal);
    e.build(text_context(6, 20, 3));
    std::uint64_t key = 100;
    for (contra::Parameter* p : e.parameters()) {
      const contra::Tensor noise = contra::testing::random_tensor(p->value.shape(), key++, -0.5, 0.5);
      const bool embedding = p->name == "token_embedding.weight" || p->name == "positional_embedding";
      for (std::int64_t i = 0; i < p->value.numel(); ++i)
        p->value.data<float>()[i] = embedding ? 2 * noise.data<float>()[i] : p->value.data<float>()[i] + 0.2f * noise.data<float>()[i];
    }
    const contra::Tensor ids = token_rows({4, 1, 0, 2}, 6, 20, 4);
    // The token ids have no gradient: the checker's input is a placeholder
    // the encoder never reads, whose derivative is 0 either way.
    const contra::Tensor placeholder = contra::Tensor::zeros({1}, contra::DType::f32);
    const contra::Tensor no_input_grad = contra::Tensor::zeros({1}, contra::DType::f32);
    // Half the SDK's default tolerance, and a step of 3e-3: over the
    // default 1e-2 the curvature of the network makes the one-sided
    // differences disagree, and the checker would skip many coordinates as
    // next to a kink (3 % of them are, at most, with 3e-3).
    contra::test::GradCheckOptions o;
    o.abs_tol = 1e-3;
    o.rel_tol = 1e-2;
    o.eps = 3e-3;
    o.samples = 8;  // per parameter: 29 of them
    contra::test::check_gradients(
        [&](const contra::Tensor&) -> const contra::Tensor& { return e.forward(ids, contra::Mode::train); },
        [&](const contra::Tensor& dy) -> const contra::Tensor& {
          e.backward(dy, false);
          return no_input_grad;
        },
        e.parameters(), placeholder, o);
  }
}

TEST_CASE("text_transformer: tokens after eos change nothing", "[plugins][text_transformer]") {
  for (const auto& [pooling, causal] : std::vector<std::pair<std::string, bool>>{{"eos", true}, {"mean", false}}) {
    INFO("pooling " << pooling << ", causal " << causal);
    TextTransformer e = small(pooling, causal);
    e.build(text_context(10, 40, 9));
    const contra::Tensor x = token_rows({2, 8, 0, 5}, 10, 40, 10);
    contra::Tensor other = x.clone();
    contra::Rng rng(11, 0, 0, 0, 0);
    for (std::int64_t i = 0; i < other.numel(); ++i)
      if (other.data<std::int32_t>()[i] == pad) other.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng.integer(0, 39));
    const contra::Tensor dy = contra::testing::random_tensor({4, 6}, 12);

    auto run = [&](const contra::Tensor& ids) {
      for (contra::Parameter* p : e.parameters()) p->grad.zero();
      std::vector<contra::Tensor> out{e.forward(ids, contra::Mode::train).clone()};
      e.backward(dy, false);
      for (contra::Parameter* p : e.parameters()) out.push_back(p->grad.clone());
      return out;
    };
    const std::vector<contra::Tensor> a = run(x), b = run(other);
    CHECK(same_values(a[0], b[0]));
    // The gradients too: padded positions contribute to none of them.
    for (std::size_t k = 1; k < a.size(); ++k) {
      INFO(e.parameters()[k - 1]->name);
      CHECK(same_values(a[k], b[k]));
    }
  }
}

TEST_CASE("text_transformer: the causal mask and the pooling change the embedding", "[plugins][text_transformer]") {
  const contra::Tensor x = token_rows({3, 5}, 8, 30, 13);
  std::vector<contra::Tensor> outputs;
  for (const auto& [pooling, causal] :
       std::vector<std::pair<std::string, bool>>{{"eos", true}, {"eos", false}, {"mean", true}}) {
    TextTransformer e = small(pooling, causal);
    e.build(text_context(8, 30, 14));
    outputs.push_back(e.forward(x, contra::Mode::eval).clone());
  }
  CHECK_FALSE(same_values(outputs[0], outputs[1]));
  CHECK_FALSE(same_values(outputs[0], outputs[2]));
}

TEST_CASE("text_transformer: train and eval forward agree, buffers are reused and gradients accumulate",
          "[plugins][text_transformer]") {
  TextTransformer e = small();
  e.build(text_context(8, 30, 15));
  const contra::Tensor x = token_rows({6, 2, 0}, 8, 30, 16), dy = contra::testing::random_tensor({3, 6}, 17);
  const contra::Tensor eval = e.forward(x, contra::Mode::eval).clone();
  const contra::Tensor& train = e.forward(x, contra::Mode::train);
  const void* storage = train.raw();
  CHECK(same_values(eval, train));
  e.backward(dy, false);
  std::vector<contra::Tensor> once;
  for (contra::Parameter* p : e.parameters()) once.push_back(p->grad.clone());
  CHECK(e.forward(x, contra::Mode::train).raw() == storage);
  e.backward(dy, false);
  for (std::size_t k = 0; k < once.size(); ++k) {
    contra::Parameter& p = *e.parameters()[k];
    INFO(p.name);
    for (std::int64_t i = 0; i < p.grad.numel(); ++i)
      CHECK(p.grad.data<float>()[i] == Approx(2 * once[k].data<float>()[i]).margin(1e-6));
  }
}

TEST_CASE("text_transformer: misuse and bad tokens are errors naming what is wrong", "[plugins][text_transformer]") {
  TextTransformer e = small();
  const contra::Tensor x = token_rows({2, 3}, 8, 30, 18);
  CHECK_THROWS_WITH(e.forward(x, contra::Mode::eval), "text_transformer: forward() called before build()");
  e.build(text_context(8, 30, 19));
  CHECK_THROWS_WITH(e.forward(contra::testing::random_tensor({2, 8}, 1), contra::Mode::train),
                    "text_transformer: forward() expected i32 token ids [N, 8] on cpu, got f32 [2, 8] on cpu");
  CHECK_THROWS_WITH(e.forward(token_rows({2, 3}, 9, 30, 18), contra::Mode::train),
                    "text_transformer: forward() expected i32 token ids [N, 8] on cpu, got i32 [2, 9] on cpu");
  contra::Tensor bad = x.clone();
  bad.data<std::int32_t>()[8 + 2] = 30;  // row 1, position 2
  CHECK_THROWS_AS(e.forward(bad, contra::Mode::train), contra::DataError);
  CHECK_THROWS_WITH(e.forward(bad, contra::Mode::train),
                    "text_transformer: row 1 holds token id 30 at position 2, outside the vocabulary of 30");
  bad.data<std::int32_t>()[8 + 2] = -1;
  CHECK_THROWS_WITH(e.forward(bad, contra::Mode::train),
                    "text_transformer: row 1 holds token id -1 at position 2, outside the vocabulary of 30");
  contra::Tensor no_eos = x.clone();
  no_eos.data<std::int32_t>()[3] = pad;  // row 0's eos
  CHECK_THROWS_AS(e.forward(no_eos, contra::Mode::train), contra::DataError);
  CHECK_THROWS_WITH(e.forward(no_eos, contra::Mode::train),
                    "text_transformer: row 0 has no eos token (id 2) in its 8 positions");

  const contra::Tensor dy = contra::testing::random_tensor({2, 6}, 20);
  CHECK_THROWS_WITH(e.backward(dy, false),
                    "text_transformer: backward() needs a train-mode forward() first (none since the last backward() "
                    "or eval-mode forward())");
  e.forward(x, contra::Mode::train);
  CHECK_THROWS_WITH(e.backward(dy, true),
                    "text_transformer: token ids have no gradient: call backward() with want_input_grad = false");
  CHECK_THROWS_AS(e.backward(contra::testing::random_tensor({3, 6}, 21), false), contra::UsageError);
  CHECK_NOTHROW(e.backward(dy, false));
  CHECK_THROWS_AS(e.backward(dy, false), contra::UsageError);  // one backward per forward
}

TEST_CASE("text_transformer: bf16 products stay close to f32 (where the CPU runs bf16)",
          "[plugins][text_transformer]") {
  contra::EncoderContext bf16_ctx = text_context(8, 30, 22);
  bf16_ctx.precision = contra::Precision::bf16;
  if (!contra::cpu_capabilities().bf16) {
    WARN("SKIPPED: " << contra::bf16_unavailable_reason());
    // The layers refuse it at build, naming the CPU: validate refuses the pipeline before that.
    CHECK_THROWS_AS(small().build(bf16_ctx), contra::DeviceError);
    CHECK_THROWS_WITH(small().build(bf16_ctx), "linear 'blocks.0.attn.in_proj': " +
                                                   contra::bf16_unavailable_reason() + "; use f32 precision");
    return;
  }
  TextTransformer f32 = small(), bf16 = small();
  f32.build(text_context(8, 30, 22));
  bf16.build(bf16_ctx);
  const contra::Tensor x = token_rows({6, 2, 0, 4}, 8, 30, 23), dy = contra::testing::random_tensor({4, 6}, 24);
  const contra::Tensor y32 = f32.forward(x, contra::Mode::train).clone();
  const contra::Tensor& y16 = bf16.forward(x, contra::Mode::train);
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < y32.numel(); ++i) {
    num += std::pow(y16.data<float>()[i] - y32.data<float>()[i], 2);
    den += std::pow(y32.data<float>()[i], 2);
  }
  CHECK(std::sqrt(num / den) < 2e-2);
  f32.backward(dy, false);
  bf16.backward(dy, false);
  for (std::size_t k = 0; k < f32.parameters().size(); ++k) {
    const contra::Tensor& g32 = f32.parameters()[k]->grad;
    const contra::Tensor& g16 = bf16.parameters()[k]->grad;
    num = den = 0;
    for (std::int64_t i = 0; i < g32.numel(); ++i) {
      num += std::pow(g16.data<float>()[i] - g32.data<float>()[i], 2);
      den += std::pow(g32.data<float>()[i], 2);
    }
    INFO(f32.parameters()[k]->name);
    if (den > 0) CHECK(std::sqrt(num / den) < 5e-2);
  }
}
