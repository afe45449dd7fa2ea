// text_transformer's cuda build against its CPU build (the oracle), both
// built from the same seed: identical initial parameters; outputs and every
// parameter gradient of three train steps and an eval-mode output, for eos
// and mean pooling, causal or not, texts of several lengths (padding), token
// ids given on the host or on the GPU. Tolerances relative to the CPU's
// largest entry: 1e-4 in strict f32 (two blocks of products, layer norms and
// softmaxes summed in another order), 2e-2 with TF32 products.
#include "text_transformer.hpp"
#include "text_transformer_cuda.hpp"

#include "gpu_test.hpp"
#include "layer_twin.hpp"

#include <contra/cuda.hpp>
#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using contra::plugins::TextTransformer;
using contra::plugins::TextTransformerCuda;

namespace {

contra::Params small_params(const std::string& pooling, bool causal) {
  return TextTransformer::schema().bind({{"width", std::int64_t{16}},
                                         {"layers", std::int64_t{2}},
                                         {"heads", std::int64_t{4}},
                                         {"mlp_ratio", std::int64_t{2}},
                                         {"output", std::int64_t{12}},
                                         {"pooling", pooling},
                                         {"causal", causal}});
}

contra::EncoderContext text_context(std::int64_t length, std::int64_t vocabulary) {
  contra::EncoderContext ctx;
  ctx.input = contra::Shape{length};
  ctx.seed = 5;
  ctx.vocabulary.size = vocabulary;
  ctx.vocabulary.pad = 0;
  ctx.vocabulary.bos = 1;
  ctx.vocabulary.eos = 2;
  ctx.vocabulary.unk = 3;
  return ctx;
}

// `rows` texts of 0 to length − 2 random tokens in [4, vocabulary) between
// bos and eos, padded; repeated ids across rows (the embedding gradient adds
// several rows into one).
contra::Tensor token_rows(std::int64_t rows, std::int64_t length, std::int64_t vocabulary, std::uint64_t seed) {
  contra::Tensor t = contra::Tensor::zeros({rows, length}, contra::DType::i32);
  contra::Rng rng(seed, 0, 0, 0, 0);
  std::int32_t* ids = t.data<std::int32_t>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t text = static_cast<std::int64_t>(rng.next_u64() % static_cast<std::uint64_t>(length - 1));
    std::int32_t* row = ids + r * length;
    row[0] = 1;
    for (std::int64_t k = 0; k < text; ++k)
      row[1 + k] = static_cast<std::int32_t>(4 + rng.next_u64() % static_cast<std::uint64_t>(vocabulary - 4));
    row[1 + text] = 2;
  }
  return t;
}

}  // namespace

TEST_CASE("text_transformer cuda: schema and configuration errors are the CPU build's",
          "[plugins][text_transformer][cuda]") {
  CHECK(TextTransformerCuda::schema().describe() == TextTransformer::schema().describe());
  TextTransformerCuda images(small_params("eos", true));
  CHECK_THROWS_WITH(images.build({contra::Shape{1, 8, 8}, 1}),
                    "text_transformer: takes token ids from a tokenizer, but its input ([1, 8, 8]) has no "
                    "vocabulary: it is not a text input");
  TextTransformerCuda heads(TextTransformer::schema().bind({{"width", std::int64_t{10}}, {"heads", std::int64_t{4}}}));
  CHECK_THROWS_WITH(heads.build(text_context(8, 50)), "text_transformer.width = 10 is not a multiple of text_transformer.heads = 4");
  if (!contra::cuda::available()) {
    TextTransformerCuda ok(small_params("eos", true));
    CHECK_THROWS_WITH(ok.build(text_context(8, 50)),
                      "no usable GPU: " + contra::cuda::unavailable_reason() + " (needed by text_transformer (cuda))");
  }
}

TEST_CASE("text_transformer cuda: matches the CPU build end to end", "[plugins][text_transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  cuda_twin::MathModeGuard guard;
  const std::int64_t length = 9, vocabulary = 40, rows = 7;
  for (const std::string pooling : {"eos", "mean"})
    for (const bool causal : {true, false})
      for (const bool ids_on_device : {false, true})
        for (auto mode : {contra::cuda::MathMode::strict_f32, contra::cuda::MathMode::tf32}) {
          contra::cuda::set_math_mode(mode);
          INFO(pooling << " pooling, causal " << causal << ", ids on " << (ids_on_device ? "cuda" : "cpu") << ", "
                       << contra::cuda::math_mode_name(mode));
          TextTransformer cpu(small_params(pooling, causal));
          TextTransformerCuda gpu(small_params(pooling, causal));
          cpu.build(text_context(length, vocabulary));
          gpu.build(text_context(length, vocabulary));
          layer_twin::compare_encoder_on(
              cpu, gpu, [&](std::uint64_t seed) { return token_rows(rows, length, vocabulary, seed); }, false,
              ids_on_device, mode == contra::cuda::MathMode::strict_f32 ? 1e-4 : 2e-2);
        }
}

TEST_CASE("text_transformer cuda: bad token ids get the CPU build's messages", "[plugins][text_transformer][gpu]") {
  CONTRA_REQUIRE_GPU();
  TextTransformerCuda gpu(small_params("eos", true));
  gpu.build(text_context(6, 40));
  contra::Tensor ids = token_rows(3, 6, 40, 1);
  ids.data<std::int32_t>()[6 + 1] = 40;
  CHECK_THROWS_WITH(gpu.forward(ids, contra::Mode::train),
                    "text_transformer: row 1 holds token id 40 at position 1, outside the vocabulary of 40");
  CHECK_THROWS_WITH(gpu.forward(cuda_twin::to_device(ids), contra::Mode::train),
                    "text_transformer: row 1 holds token id 40 at position 1, outside the vocabulary of 40");
  CHECK_THROWS_WITH(gpu.backward(cuda_twin::to_device(layer_twin::random({3, 12}, 1)), false),
                    "text_transformer: backward() needs a train-mode forward() first (none since the last "
                    "backward() or eval-mode forward())");
}
