// text_transformer against PyTorch autograd in float64 (torch_oracle.hpp):
// the same parameters and token ids, CLIP's text encoder written with
// PyTorch's own multi-head attention (text_transformer_vs_torch.py); the
// output and every parameter's gradient, as the largest difference relative
// to the oracle's largest entry of that tensor.
#include "text_transformer.hpp"

#include "torch_oracle.hpp"

#include <contra/rng.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace contra;
using plugins::TextTransformer;

namespace {

using test::dump_tensor;
using test::shape_json;

constexpr std::int32_t eos = 2;

// Rows of `length` ids: bos (1), text[r] random ids in [4, vocabulary), eos, then random ids
// (padding need not be the pad id: nothing reads it).
Tensor token_rows(const std::vector<std::int64_t>& text, std::int64_t length, std::int64_t vocabulary) {
  Tensor x = Tensor::empty({static_cast<std::int64_t>(text.size()), length}, DType::i32);
  Rng rng(31, 0, 0, 0, 0);
  for (std::size_t r = 0; r < text.size(); ++r) {
    std::int32_t* row = x.data<std::int32_t>() + static_cast<std::int64_t>(r) * length;
    for (std::int64_t t = 0; t < length; ++t) row[t] = static_cast<std::int32_t>(rng.integer(4, vocabulary - 1));
    row[0] = 1;
    row[text[r] + 1] = eos;
  }
  return x;
}

nlohmann::json compare(const std::string& pooling, bool causal) {
  const std::int64_t length = 9, vocabulary = 40;
  TextTransformer net(TextTransformer::schema().bind({{"width", std::int64_t{16}},
                                                                {"layers", std::int64_t{2}},
                                                                {"heads", std::int64_t{4}},
                                                                {"mlp_ratio", std::int64_t{2}},
                                                                {"output", std::int64_t{12}},
                                                                {"pooling", pooling},
                                                                {"causal", causal}}));
  EncoderContext ctx;
  ctx.input = Shape{length};
  ctx.seed = 5;
  ctx.vocabulary.size = vocabulary;
  ctx.vocabulary.eos = eos;
  net.build(ctx);
  // Larger than CLIP's initial embeddings, and non-zero biases: every term shows.
  std::uint64_t key = 40;
  for (Parameter* p : net.parameters()) {
    const Tensor noise = testing::random_tensor(p->value.shape(), key++, -0.3, 0.3);
    for (std::int64_t i = 0; i < p->value.numel(); ++i) p->value.data<float>()[i] += noise.data<float>()[i];
  }

  test::TempDir dir("torch");
  const Tensor x = token_rows({7, 0, 3, 5, 1, 2}, length, vocabulary);
  const Tensor y = net.forward(x, Mode::train).clone();
  const Tensor w = testing::random_tensor(y.shape(), 22);
  auto params = net.parameters();
  for (auto* p : params) p->grad.zero();
  net.backward(w, false);
  dump_tensor(dir, "x", x);
  dump_tensor(dir, "y", y);
  dump_tensor(dir, "w", w);
  nlohmann::ordered_json meta = {
      {"x", shape_json(x.shape())},
      {"config", {{"width", 16}, {"layers", 2}, {"heads", 4}, {"pooling", pooling}, {"causal", causal}, {"eos", eos}}},
      {"params", nlohmann::ordered_json::object()}};
  for (auto* p : params) {
    dump_tensor(dir, "p_" + p->name, p->value);
    dump_tensor(dir, "g_" + p->name, p->grad);
    meta["params"][p->name] = shape_json(p->value.shape());
  }
  test::write_file(dir.file("meta.json"), meta.dump());
  return test::oracle_figures(test::run_oracle("plugins/encoder/text_transformer/text_transformer_vs_torch.py",
                                               dir.path().string()));
}

}  // namespace

TEST_CASE("text_transformer: matches CLIP's text encoder in PyTorch autograd (float64)",
          "[plugins][text_transformer][torch]") {
  if (!test::torch_oracle_ready()) return;
  for (const auto& [pooling, causal] : std::vector<std::pair<std::string, bool>>{{"eos", true}, {"mean", false}}) {
    INFO("pooling " << pooling << ", causal " << causal);
    const nlohmann::json r = compare(pooling, causal);
    INFO(r.dump());
    // f32 against float64 (observed on AVX2: 3e-7 for the outputs, 9e-7 for
    // the gradients; kernels of other CPUs sum in other orders).
    CHECK(r.at("forward").get<double>() < 5e-6);
    CHECK(r.at("params").get<double>() < 2e-5);
    CHECK(r.at("count").get<int>() == 2 + 2 * 12 + 3);
  }
}
