#include "vit.hpp"

#include <contra/gradient_ready.hpp>
#include <contra/memory_budget.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace contra::plugins {

using contra::nn::TransformerBlock;

namespace {

// Rng streams of the initialisation, Rng(seed, 0, stream, 0, 0).
constexpr std::uint64_t patch_stream = 0, class_stream = 1, position_stream = 2, first_block_stream = 3;

contra::Parameter make_parameter(std::string name, const contra::Shape& shape, bool decay) {
  contra::Parameter p;
  p.name = std::move(name);
  p.value = contra::Tensor::empty(shape, contra::DType::f32);
  p.grad = contra::Tensor::zeros(shape, contra::DType::f32);
  p.decay = decay;
  return p;
}

}  // namespace

contra::Schema VisionTransformer::schema() {
  return contra::Schema("vit",
                        "Vision Transformer (CLIP's image tower): patch embedding, class token and positions, "
                        "pre-LayerNorm transformer blocks, the class token (or the mean), LayerNorm, projection")
      .add<std::int64_t>("patch", 4, "side of the square patches, in pixels (must divide the image's sides)")
      .range(1, 1024)
      .add<std::int64_t>("width", 192, "features of the patch embeddings and of every block")
      .range(1, 8192)
      .add<std::int64_t>("layers", 4, "transformer blocks")
      .range(1, 64)
      .add<std::int64_t>("heads", 4, "attention heads per block (must divide width)")
      .range(1, 256)
      .add<std::int64_t>("mlp_ratio", 4, "hidden width of each block's MLP, as a multiple of width")
      .range(1, 16)
      .add<std::int64_t>("output", 128, "width of the embedding (the final projection, without bias)")
      .range(1, 65536)
      .add<std::string>("pooling", "cls", "what represents an image: the class token (CLIP, ViT) or the mean over "
                                          "every position")
      .choices({"cls", "mean"});
}

VisionTransformer::VisionTransformer(const contra::Params& p)
    : patch_(p.get<std::int64_t>("patch")),
      width_(p.get<std::int64_t>("width")),
      layers_(p.get<std::int64_t>("layers")),
      heads_(p.get<std::int64_t>("heads")),
      mlp_ratio_(p.get<std::int64_t>("mlp_ratio")),
      output_(p.get<std::int64_t>("output")),
      pooling_(p.get<std::string>("pooling") == "mean" ? Pooling::mean : Pooling::cls),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

VisionTransformer::~VisionTransformer() = default;

void VisionTransformer::require_memory() const {
  // Weights and gradients, f32, before anything allocates.
  const std::uint64_t w = static_cast<std::uint64_t>(width_);
  const std::uint64_t per_block = TransformerBlock::parameter_count(width_, mlp_ratio_ * width_);
  const std::uint64_t patch_features = static_cast<std::uint64_t>(channels_ * patch_ * patch_);
  std::uint64_t params = contra::mul_bytes(patch_features + 1 + static_cast<std::uint64_t>(length_) + 4, w);
  params = contra::add_bytes(params, contra::mul_bytes(per_block, static_cast<std::uint64_t>(layers_)));
  params = contra::add_bytes(params, contra::mul_bytes(static_cast<std::uint64_t>(output_), w));
  contra::require_memory(key_prefix_ + "width = " + std::to_string(width_),
                         contra::mul_bytes(params, 2 * sizeof(float)), "weights and gradients",
                         std::to_string(params) + " parameters × 4 B × 2, for " + std::to_string(layers_) +
                             " layers and " + std::to_string(length_) + " positions");
}

void VisionTransformer::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("vit: build() called twice");
  if (ctx.vocabulary.size != 0 || ctx.input.rank() != 3)
    throw contra::ConfigError("vit: takes images [C, H, W], got inputs of shape " + ctx.input.str() +
                              (ctx.vocabulary.size != 0 ? " (token ids)" : ""));
  channels_ = ctx.input[0];
  height_ = ctx.input[1];
  image_width_ = ctx.input[2];
  if (height_ % patch_ != 0 || image_width_ % patch_ != 0)
    throw contra::ConfigError(key_prefix_ + "patch = " + std::to_string(patch_) + " must divide the images' " +
                              std::to_string(height_) + "×" + std::to_string(image_width_) + " sides");
  if (width_ % heads_ != 0)
    throw contra::ConfigError(key_prefix_ + "width = " + std::to_string(width_) + " is not a multiple of " +
                              key_prefix_ + "heads = " + std::to_string(heads_));
  grid_h_ = height_ / patch_;
  grid_w_ = image_width_ / patch_;
  length_ = grid_h_ * grid_w_ + 1;
  require_memory();

  contra::Rng patch_init(ctx.seed, 0, patch_stream, 0, 0);
  patch_embedding_ = std::make_unique<contra::nn::Linear>("patch_embedding", channels_ * patch_ * patch_, width_,
                                                          false, patch_init, ctx.precision);
  class_embedding_ = make_parameter("class_embedding", {width_}, false);
  positional_embedding_ = make_parameter("positional_embedding", {length_, width_}, false);
  ln_pre_ = std::make_unique<contra::nn::LayerNorm>("ln_pre", width_);
  for (std::int64_t i = 0; i < layers_; ++i) {
    contra::Rng init(ctx.seed, 0, first_block_stream + static_cast<std::uint64_t>(i), 0, 0);
    blocks_.push_back(std::make_unique<TransformerBlock>("blocks." + std::to_string(i), width_, heads_,
                                                         mlp_ratio_ * width_, init, ctx.precision, false));
  }
  ln_post_ = std::make_unique<contra::nn::LayerNorm>("ln_post", width_);
  contra::Rng projection_init(ctx.seed, 0, first_block_stream + static_cast<std::uint64_t>(layers_), 0, 0);
  projection_ = std::make_unique<contra::nn::Linear>("projection", width_, output_, false, projection_init,
                                                     ctx.precision);
  initialise(ctx.seed);
  built_ = true;
}

void VisionTransformer::initialise(std::uint64_t seed) {
  // CLIP's VisionTransformer: the class token, the positions and the
  // projection N(0, 1/width); the patch embedding (its conv1) and the blocks
  // keep PyTorch's defaults, which the layers drew.
  const double scale = 1.0 / std::sqrt(static_cast<double>(width_));
  contra::Rng class_init(seed, 0, class_stream, 0, 0), position_init(seed, 0, position_stream, 0, 0);
  contra::nn::fill_normal(class_embedding_.value, scale, class_init);
  contra::nn::fill_normal(positional_embedding_.value, scale, position_init);
  contra::Rng projection_init(seed, 1, first_block_stream + static_cast<std::uint64_t>(layers_), 0, 0);
  contra::nn::fill_normal(projection_->weight().value, scale, projection_init);
}

std::vector<contra::Parameter*> VisionTransformer::parameters() {
  std::vector<contra::Parameter*> out;
  if (!built_) return out;
  patch_embedding_->parameters(out);
  out.push_back(&class_embedding_);
  out.push_back(&positional_embedding_);
  ln_pre_->parameters(out);
  for (auto& b : blocks_) b->parameters(out);
  ln_post_->parameters(out);
  projection_->parameters(out);
  return out;
}

void VisionTransformer::extract_patches(const contra::Tensor& x) {
  // Row n·P + k is patch k (row-major over the grid) of image n, its
  // features in PyTorch's conv weight order (channel, y, x).
  const std::int64_t p = patch_, c = channels_, h = height_, w = image_width_, patches = grid_h_ * grid_w_;
  const std::int64_t features = c * p * p;
  patches_.ensure({rows_ * patches, features}, contra::DType::f32);
  const float* in = x.data<float>();
  float* out = patches_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < rows_ * patches; ++row) {
    const std::int64_t n = row / patches, k = row % patches, gy = k / grid_w_, gx = k % grid_w_;
    float* o = out + row * features;
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t dy = 0; dy < p; ++dy)
        std::memcpy(o + (ch * p + dy) * p, in + ((n * c + ch) * h + gy * p + dy) * w + gx * p,
                    static_cast<std::size_t>(p) * sizeof(float));
  }
}

void VisionTransformer::fold_patches(const contra::Tensor& dpatches) {
  // extract_patches() backwards: patches do not overlap, so each pixel's
  // gradient is one patch row's entry.
  const std::int64_t p = patch_, c = channels_, h = height_, w = image_width_, patches = grid_h_ * grid_w_;
  const std::int64_t features = c * p * p;
  dx_.ensure({rows_, c, h, w}, contra::DType::f32);
  const float* in = dpatches.data<float>();
  float* out = dx_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t row = 0; row < rows_ * patches; ++row) {
    const std::int64_t n = row / patches, k = row % patches, gy = k / grid_w_, gx = k % grid_w_;
    const float* d = in + row * features;
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t dy = 0; dy < p; ++dy)
        std::memcpy(out + ((n * c + ch) * h + gy * p + dy) * w + gx * p, d + (ch * p + dy) * p,
                    static_cast<std::size_t>(p) * sizeof(float));
  }
}

void VisionTransformer::assemble_tokens(const contra::Tensor& embedded_patches) {
  const std::int64_t wd = width_, l = length_;
  tokens_.ensure({rows_ * l, wd}, contra::DType::f32);
  const float* cls = class_embedding_.value.data<float>();
  const float* pos = positional_embedding_.value.data<float>();
  const float* e = embedded_patches.data<float>();
  float* t = tokens_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < rows_ * l; ++i) {
    const std::int64_t n = i / l, k = i % l;
    const float* src = k == 0 ? cls : e + (n * (l - 1) + k - 1) * wd;
    const float* q = pos + k * wd;
    float* o = t + i * wd;
    for (std::int64_t ch = 0; ch < wd; ++ch) o[ch] = src[ch] + q[ch];
  }
}

void VisionTransformer::pool(const contra::Tensor& h) {
  const std::int64_t wd = width_, l = length_;
  pooled_.ensure({rows_, wd}, contra::DType::f32);
  const float* in = h.data<float>();
  float* out = pooled_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < rows_; ++n) {
    const float* first = in + n * l * wd;
    float* o = out + n * wd;
    if (pooling_ == Pooling::cls) {
      std::memcpy(o, first, static_cast<std::size_t>(wd) * sizeof(float));
      continue;
    }
    std::fill(o, o + wd, 0.0f);
    for (std::int64_t k = 0; k < l; ++k)
      for (std::int64_t ch = 0; ch < wd; ++ch) o[ch] += first[k * wd + ch];
    const float inv = 1.0f / static_cast<float>(l);
    for (std::int64_t ch = 0; ch < wd; ++ch) o[ch] *= inv;
  }
}

void VisionTransformer::unpool(const contra::Tensor& dpooled) {
  const std::int64_t wd = width_, l = length_;
  dhidden_.ensure({rows_ * l, wd}, contra::DType::f32);
  const float* in = dpooled.data<float>();
  float* out = dhidden_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < rows_; ++n) {
    const float* d = in + n * wd;
    float* first = out + n * l * wd;
    if (pooling_ == Pooling::cls) {
      std::memcpy(first, d, static_cast<std::size_t>(wd) * sizeof(float));
      std::fill(first + wd, first + l * wd, 0.0f);
      continue;
    }
    const float inv = 1.0f / static_cast<float>(l);
    for (std::int64_t k = 0; k < l; ++k)
      for (std::int64_t ch = 0; ch < wd; ++ch) first[k * wd + ch] = d[ch] * inv;
  }
}

void VisionTransformer::token_backward(const contra::Tensor& dtokens) {
  // dL/d(class_embedding) and dL/d(positional_embedding) sum over the images
  // (in image order: the same bits at any thread count); the patch rows'
  // gradients go on to the patch embedding.
  const std::int64_t wd = width_, l = length_;
  const float* d = dtokens.data<float>();
  float* cls = class_embedding_.grad.data<float>();
  float* pos = positional_embedding_.grad.data<float>();
  dpatch_rows_.ensure({rows_ * (l - 1), wd}, contra::DType::f32);
  float* dp = dpatch_rows_.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t k = 0; k < l; ++k)
    for (std::int64_t n = 0; n < rows_; ++n) {
      const float* g = d + (n * l + k) * wd;
      float* pg = pos + k * wd;
      for (std::int64_t ch = 0; ch < wd; ++ch) pg[ch] += g[ch];
      if (k == 0)
        for (std::int64_t ch = 0; ch < wd; ++ch) cls[ch] += g[ch];
      else
        std::memcpy(dp + (n * (l - 1) + k - 1) * wd, g, static_cast<std::size_t>(wd) * sizeof(float));
    }
  contra::gradient_ready(class_embedding_);
  contra::gradient_ready(positional_embedding_);
}

const contra::Tensor& VisionTransformer::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("vit: forward() called before build()");
  backward_ready_ = false;
  if (x.dtype() != contra::DType::f32 || x.device() != contra::Device::cpu || x.rank() != 4 || x.dim(0) < 1 ||
      x.dim(1) != channels_ || x.dim(2) != height_ || x.dim(3) != image_width_)
    throw contra::UsageError("vit: forward() expected f32 images [N, " + std::to_string(channels_) + ", " +
                             std::to_string(height_) + ", " + std::to_string(image_width_) + "] on cpu, got " +
                             contra::dtype_name(x.dtype()) + " " + x.shape().str() + " on " +
                             contra::device_name(x.device()));
  rows_ = x.dim(0);
  extract_patches(x);
  assemble_tokens(patch_embedding_->forward(patches_, mode));
  const contra::Tensor* h = &ln_pre_->forward(tokens_, mode);
  for (auto& b : blocks_) {
    b->set_sequences(length_);
    h = &b->forward(*h, mode);
  }
  pool(*h);
  const contra::Tensor& y = projection_->forward(ln_post_->forward(pooled_, mode), mode);
  backward_ready_ = mode == contra::Mode::train;
  return y;
}

const contra::Tensor& VisionTransformer::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (!backward_ready_)
    throw contra::UsageError("vit: backward() needs a train-mode forward() first (none since the last backward() "
                             "or eval-mode forward())");
  dy.expect({rows_, output_}, contra::DType::f32, "vit: backward() dy");
  unpool(ln_post_->backward(projection_->backward(dy, true), true));
  const contra::Tensor* d = &dhidden_;
  for (std::size_t i = blocks_.size(); i-- > 0;) d = &blocks_[i]->backward(*d, true);
  token_backward(ln_pre_->backward(*d, true));
  const contra::Tensor& dpatches = patch_embedding_->backward(dpatch_rows_, want_input_grad);
  backward_ready_ = false;
  if (!want_input_grad) {
    static const contra::Tensor none;
    return none;
  }
  fold_patches(dpatches);
  return dx_;
}

}  // namespace contra::plugins
