#include "text_transformer.hpp"

#include <contra/gradient_ready.hpp>
#include <contra/memory_budget.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace contra::plugins {

using contra::nn::TransformerBlock;

namespace {

// Columns of the embedding gradients one task accumulates: one cache line,
// so that tasks never share a line.
constexpr std::int64_t grad_columns_per_task = 16;

// Rng streams of the initialisation, Rng(seed, 0, stream, 0, 0).
constexpr std::uint64_t token_stream = 0, position_stream = 1, first_block_stream = 2;

contra::Parameter make_parameter(std::string name, const contra::Shape& shape) {
  contra::Parameter p;
  p.name = std::move(name);
  p.value = contra::Tensor::empty(shape, contra::DType::f32);
  p.grad = contra::Tensor::zeros(shape, contra::DType::f32);
  return p;
}

}  // namespace

contra::Schema TextTransformer::schema() {
  return contra::Schema("text_transformer",
                        "CLIP's text transformer: token and position embeddings, pre-LayerNorm transformer blocks, "
                        "the eos position (or the mean), LayerNorm, linear projection")
      .add<std::int64_t>("width", 256, "features of the token embeddings and of every block")
      .range(1, 8192)
      .add<std::int64_t>("layers", 4, "transformer blocks")
      .range(1, 64)
      .add<std::int64_t>("heads", 4, "attention heads per block (must divide width)")
      .range(1, 256)
      .add<std::int64_t>("mlp_ratio", 4, "hidden width of each block's MLP, as a multiple of width")
      .range(1, 16)
      .add<std::int64_t>("output", 256, "width of the embedding (the final projection, without bias)")
      .range(1, 65536)
      .add<std::string>("pooling", "eos",
                        "what represents a text: the eos position (CLIP) or the mean over bos through eos")
      .choices({"eos", "mean"})
      .add<bool>("causal", true, "each position attends only to itself and earlier positions (CLIP)");
}

TextTransformer::TextTransformer(const contra::Params& p)
    : width_(p.get<std::int64_t>("width")),
      layers_(p.get<std::int64_t>("layers")),
      heads_(p.get<std::int64_t>("heads")),
      mlp_ratio_(p.get<std::int64_t>("mlp_ratio")),
      output_(p.get<std::int64_t>("output")),
      pooling_(p.get<std::string>("pooling") == "mean" ? Pooling::mean : Pooling::eos),
      causal_(p.get<bool>("causal")),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

TextTransformer::~TextTransformer() = default;

void TextTransformer::require_memory() const {
  // Weights and gradients, f32, before anything allocates.
  const std::uint64_t w = static_cast<std::uint64_t>(width_);
  const std::uint64_t per_block = TransformerBlock::parameter_count(width_, mlp_ratio_ * width_);
  std::uint64_t params = contra::mul_bytes(static_cast<std::uint64_t>(vocabulary_.size) + length_, w);
  params = contra::add_bytes(params, contra::mul_bytes(per_block, static_cast<std::uint64_t>(layers_)));
  params = contra::add_bytes(params, 2 * w + static_cast<std::uint64_t>(output_) * w);
  contra::require_memory(key_prefix_ + "width = " + std::to_string(width_),
                         contra::mul_bytes(params, 2 * sizeof(float)), "weights and gradients",
                         std::to_string(params) + " parameters × 4 B × 2, for " + std::to_string(layers_) +
                             " layers, a vocabulary of " + std::to_string(vocabulary_.size) + " and " +
                             std::to_string(length_) + " positions");
}

void TextTransformer::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("text_transformer: build() called twice");
  if (ctx.vocabulary.size == 0)
    throw contra::ConfigError("text_transformer: takes token ids from a tokenizer, but its input (" +
                              ctx.input.str() + ") has no vocabulary: it is not a text input");
  if (ctx.input.rank() != 1 || ctx.input[0] < 1)
    throw contra::ConfigError("text_transformer: takes token ids [L], got inputs of shape " + ctx.input.str());
  if (width_ % heads_ != 0)
    throw contra::ConfigError(key_prefix_ + "width = " + std::to_string(width_) + " is not a multiple of " +
                              key_prefix_ + "heads = " + std::to_string(heads_));
  vocabulary_ = ctx.vocabulary;
  length_ = ctx.input[0];
  require_memory();

  token_embedding_ = make_parameter("token_embedding.weight", {vocabulary_.size, width_});
  positional_embedding_ = make_parameter("positional_embedding", {length_, width_});
  for (std::int64_t i = 0; i < layers_; ++i) {
    contra::Rng init(ctx.seed, 0, first_block_stream + static_cast<std::uint64_t>(i), 0, 0);
    blocks_.push_back(std::make_unique<TransformerBlock>("blocks." + std::to_string(i), width_, heads_,
                                                         mlp_ratio_ * width_, init, ctx.precision, causal_));
  }
  ln_final_ = std::make_unique<contra::nn::LayerNorm>("ln_final", width_);
  contra::Rng projection_init(ctx.seed, 0, first_block_stream + static_cast<std::uint64_t>(layers_), 0, 0);
  projection_ = std::make_unique<contra::nn::Linear>("text_projection", width_, output_, false, projection_init,
                                                     ctx.precision);
  initialise(ctx.seed);
  built_ = true;
}

void TextTransformer::initialise(std::uint64_t seed) {
  // CLIP's initialize_parameters(): embeddings N(0, 0.02²) and N(0, 0.01²);
  // per block attention in_proj N(0, 1/width), out_proj and the MLP's output
  // N(0, 1/(width·2·layers)) (the residual stream grows with depth), the
  // MLP's input N(0, 1/(2·width)); the projection N(0, 1/width). Biases and
  // layer norms keep the layers' PyTorch initialisation. These draws come
  // from epoch-1 streams, apart from the epoch-0 ones the constructors used.
  const double attn_std = 1.0 / std::sqrt(static_cast<double>(width_));
  const double proj_std = attn_std / std::sqrt(2.0 * static_cast<double>(layers_));
  const double fc_std = 1.0 / std::sqrt(2.0 * static_cast<double>(width_));
  contra::Rng token_init(seed, 0, token_stream, 0, 0), position_init(seed, 0, position_stream, 0, 0);
  contra::nn::fill_normal(token_embedding_.value, 0.02, token_init);
  contra::nn::fill_normal(positional_embedding_.value, 0.01, position_init);
  for (std::int64_t i = 0; i < layers_; ++i) {
    contra::Rng init(seed, 1, first_block_stream + static_cast<std::uint64_t>(i), 0, 0);
    TransformerBlock& b = *blocks_[static_cast<std::size_t>(i)];
    contra::nn::fill_normal(b.attention().in_proj().weight().value, attn_std, init);
    contra::nn::fill_normal(b.attention().out_proj().weight().value, proj_std, init);
    contra::nn::fill_normal(b.mlp_fc().weight().value, fc_std, init);
    contra::nn::fill_normal(b.mlp_proj().weight().value, proj_std, init);
  }
  contra::Rng projection_init(seed, 1, first_block_stream + static_cast<std::uint64_t>(layers_), 0, 0);
  contra::nn::fill_normal(projection_->weight().value, attn_std, projection_init);
}

std::vector<contra::Parameter*> TextTransformer::parameters() {
  std::vector<contra::Parameter*> out;
  if (!built_) return out;
  out.push_back(&token_embedding_);
  out.push_back(&positional_embedding_);
  for (auto& b : blocks_) b->parameters(out);
  ln_final_->parameters(out);
  projection_->parameters(out);
  return out;
}

std::vector<std::int32_t> text_valid_lengths(const std::int32_t* ids, std::int64_t rows, std::int64_t length,
                                             const contra::Vocabulary& vocabulary) {
  std::vector<std::int32_t> valid_lengths(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int32_t* row = ids + r * length;
    std::int32_t valid = 0;
    for (std::int64_t t = 0; t < length; ++t) {
      if (row[t] < 0 || row[t] >= vocabulary.size)
        throw contra::DataError("text_transformer: row " + std::to_string(r) + " holds token id " +
                                std::to_string(row[t]) + " at position " + std::to_string(t) +
                                ", outside the vocabulary of " + std::to_string(vocabulary.size));
      if (valid == 0 && row[t] == vocabulary.eos) valid = static_cast<std::int32_t>(t + 1);
    }
    if (valid == 0)
      throw contra::DataError("text_transformer: row " + std::to_string(r) + " has no eos token (id " +
                              std::to_string(vocabulary.eos) + ") in its " + std::to_string(length) + " positions");
    valid_lengths[static_cast<std::size_t>(r)] = valid;
  }
  return valid_lengths;
}

void TextTransformer::read_tokens(const contra::Tensor& x) {
  if (x.dtype() != contra::DType::i32 || x.device() != contra::Device::cpu || x.rank() != 2 ||
      x.dim(1) != length_ || x.dim(0) < 1)
    throw contra::UsageError("text_transformer: forward() expected i32 token ids [N, " + std::to_string(length_) +
                             "] on cpu, got " + contra::dtype_name(x.dtype()) + " " + x.shape().str() + " on " +
                             contra::device_name(x.device()));
  rows_ = x.dim(0);
  const std::int32_t* ids = x.data<std::int32_t>();
  tokens_.assign(ids, ids + rows_ * length_);
  valid_ = text_valid_lengths(ids, rows_, length_, vocabulary_);
}

void TextTransformer::embed() {
  embedded_.ensure({rows_ * length_, width_}, contra::DType::f32);
  const float* tok = token_embedding_.value.data<float>();
  const float* pos = positional_embedding_.value.data<float>();
  float* h = embedded_.data<float>();
  const std::int64_t w = width_, l = length_;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < rows_ * l; ++i) {
    const float* t = tok + static_cast<std::int64_t>(tokens_[static_cast<std::size_t>(i)]) * w;
    const float* p = pos + (i % l) * w;
    float* out = h + i * w;
    for (std::int64_t c = 0; c < w; ++c) out[c] = t[c] + p[c];
  }
}

void TextTransformer::pool(const contra::Tensor& h) {
  pooled_.ensure({rows_, width_}, contra::DType::f32);
  const float* in = h.data<float>();
  float* out = pooled_.data<float>();
  const std::int64_t w = width_, l = length_;
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows_; ++r) {
    const std::int64_t valid = valid_[static_cast<std::size_t>(r)];
    const float* first = in + r * l * w;
    float* o = out + r * w;
    if (pooling_ == Pooling::eos) {
      std::memcpy(o, first + (valid - 1) * w, static_cast<std::size_t>(w) * sizeof(float));
      continue;
    }
    std::fill(o, o + w, 0.0f);
    for (std::int64_t t = 0; t < valid; ++t)
      for (std::int64_t c = 0; c < w; ++c) o[c] += first[t * w + c];
    const float inv = 1.0f / static_cast<float>(valid);
    for (std::int64_t c = 0; c < w; ++c) o[c] *= inv;
  }
}

void TextTransformer::unpool(const contra::Tensor& dpooled) {
  dhidden_.ensure({rows_ * length_, width_}, contra::DType::f32);
  const float* in = dpooled.data<float>();
  float* out = dhidden_.data<float>();
  const std::int64_t w = width_, l = length_;
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows_; ++r) {
    const std::int64_t valid = valid_[static_cast<std::size_t>(r)];
    const float* d = in + r * w;
    float* first = out + r * l * w;
    std::fill(first, first + l * w, 0.0f);
    if (pooling_ == Pooling::eos) {
      std::memcpy(first + (valid - 1) * w, d, static_cast<std::size_t>(w) * sizeof(float));
      continue;
    }
    const float inv = 1.0f / static_cast<float>(valid);
    for (std::int64_t t = 0; t < valid; ++t)
      for (std::int64_t c = 0; c < w; ++c) first[t * w + c] = d[c] * inv;
  }
}

void TextTransformer::embedding_backward(const contra::Tensor& dh) {
  // Rows sharing a token id add into one gradient row, so the work is split
  // by columns: each task adds every row's slice of its columns, in row
  // order (the same bits at any thread count). Padded positions are
  // skipped: nothing attends to them or pools them, so their gradient is 0.
  const float* d = dh.data<float>();
  float* tok = token_embedding_.grad.data<float>();
  float* pos = positional_embedding_.grad.data<float>();
  const std::int64_t w = width_, l = length_;
  const std::int64_t tasks = (w + grad_columns_per_task - 1) / grad_columns_per_task;
#pragma omp parallel for schedule(static)
  for (std::int64_t task = 0; task < tasks; ++task) {
    const std::int64_t c0 = task * grad_columns_per_task, c1 = std::min(w, c0 + grad_columns_per_task);
    for (std::int64_t r = 0; r < rows_; ++r)
      for (std::int64_t t = 0; t < valid_[static_cast<std::size_t>(r)]; ++t) {
        const std::int64_t i = r * l + t;
        const float* g = d + i * w;
        float* tg = tok + static_cast<std::int64_t>(tokens_[static_cast<std::size_t>(i)]) * w;
        float* pg = pos + t * w;
        for (std::int64_t c = c0; c < c1; ++c) {
          tg[c] += g[c];
          pg[c] += g[c];
        }
      }
  }
  contra::gradient_ready(token_embedding_);
  contra::gradient_ready(positional_embedding_);
}

const contra::Tensor& TextTransformer::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("text_transformer: forward() called before build()");
  backward_ready_ = false;
  read_tokens(x);
  embed();
  const contra::Tensor* h = &embedded_;
  for (auto& b : blocks_) {
    b->set_sequences(length_, valid_);
    h = &b->forward(*h, mode);
  }
  pool(*h);
  const contra::Tensor& y = projection_->forward(ln_final_->forward(pooled_, mode), mode);
  backward_ready_ = mode == contra::Mode::train;
  return y;
}

const contra::Tensor& TextTransformer::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (want_input_grad)
    throw contra::UsageError("text_transformer: token ids have no gradient: call backward() with "
                             "want_input_grad = false");
  if (!backward_ready_)
    throw contra::UsageError("text_transformer: backward() needs a train-mode forward() first (none since the "
                             "last backward() or eval-mode forward())");
  dy.expect({rows_, output_}, contra::DType::f32, "text_transformer: backward() dy");
  unpool(ln_final_->backward(projection_->backward(dy, true), true));
  const contra::Tensor* d = &dhidden_;
  for (std::size_t i = blocks_.size(); i-- > 0;) d = &blocks_[i]->backward(*d, true);
  embedding_backward(*d);
  backward_ready_ = false;
  static const contra::Tensor none;
  return none;
}

}  // namespace contra::plugins
