#include "vit_cuda.hpp"

#include "vit_kernels.hpp"

#include "../host_initialised.hpp"

#include <contra/cuda.hpp>
#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <string>

namespace contra::plugins {

namespace {

void check_launch(const char* what) {
  if (const std::string e = vit_kernels::last_error(); !e.empty())
    throw contra::DeviceError(std::string("vit (cuda): ") + what + " kernel failed: " + e);
}

}  // namespace

VisionTransformerCuda::VisionTransformerCuda(const contra::Params& p)
    : params_(p),
      patch_(p.get<std::int64_t>("patch")),
      width_(p.get<std::int64_t>("width")),
      layers_(p.get<std::int64_t>("layers")),
      heads_(p.get<std::int64_t>("heads")),
      mlp_ratio_(p.get<std::int64_t>("mlp_ratio")),
      output_(p.get<std::int64_t>("output")),
      mean_pooling_(p.get<std::string>("pooling") == "mean") {}

VisionTransformerCuda::~VisionTransformerCuda() = default;

void VisionTransformerCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("vit: build() called twice");
  // The CPU model holds the checks, their messages and the initialisation.
  VisionTransformer host(params_);
  contra::EncoderContext host_ctx = ctx;
  host_ctx.precision = contra::Precision::f32;  // the draws do not depend on it; the CPU may lack bf16
  host.build(host_ctx);
  contra::cuda::require("vit (cuda)");
  channels_ = ctx.input[0];
  height_ = ctx.input[1];
  image_width_ = ctx.input[2];
  length_ = (height_ / patch_) * (image_width_ / patch_) + 1;

  contra::Rng init(ctx.seed, 0, 0, 0, 0);  // drawn over below
  patch_embedding_ = std::make_unique<contra::cuda::nn::Linear>("patch_embedding", channels_ * patch_ * patch_,
                                                                width_, false, init, ctx.precision);
  class_embedding_ = host_initialised::device_parameter("class_embedding", {width_}, false);
  positional_embedding_ = host_initialised::device_parameter("positional_embedding", {length_, width_}, false);
  ln_pre_ = std::make_unique<contra::cuda::nn::LayerNorm>("ln_pre", width_);
  for (std::int64_t i = 0; i < layers_; ++i)
    blocks_.push_back(std::make_unique<contra::cuda::nn::TransformerBlock>(
        "blocks." + std::to_string(i), width_, heads_, mlp_ratio_ * width_, init, ctx.precision, false));
  ln_post_ = std::make_unique<contra::cuda::nn::LayerNorm>("ln_post", width_);
  projection_ = std::make_unique<contra::cuda::nn::Linear>("projection", width_, output_, false, init, ctx.precision);
  built_ = true;
  host_initialised::copy_values("vit (cuda)", host.parameters(), parameters());
}

std::vector<contra::Parameter*> VisionTransformerCuda::parameters() {
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

const contra::Tensor& VisionTransformerCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("vit: forward() called before build()");
  backward_ready_ = false;
  if (x.dtype() != contra::DType::f32 || x.device() != contra::Device::cuda || x.rank() != 4 || x.dim(0) < 1 ||
      x.dim(1) != channels_ || x.dim(2) != height_ || x.dim(3) != image_width_)
    throw contra::UsageError("vit: forward() expected f32 images [N, " + std::to_string(channels_) + ", " +
                             std::to_string(height_) + ", " + std::to_string(image_width_) + "] on cuda, got " +
                             contra::dtype_name(x.dtype()) + " " + x.shape().str() + " on " +
                             contra::device_name(x.device()));
  void* stream = contra::cuda::current_stream();
  rows_ = x.dim(0);
  const vit_kernels::PatchGrid grid{rows_, channels_, height_, image_width_, patch_};
  patches_.ensure({rows_ * grid.patches(), grid.features()}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::extract_patches(x.data<float>(), grid, patches_.data<float>(), stream);
  check_launch("patch extraction");
  const contra::Tensor& embedded = patch_embedding_->forward(patches_, mode);
  tokens_.ensure({rows_ * length_, width_}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::assemble_tokens(embedded.data<float>(), class_embedding_.value.data<float>(),
                               positional_embedding_.value.data<float>(), rows_, length_, width_,
                               tokens_.data<float>(), stream);
  check_launch("token assembly");
  const contra::Tensor* h = &ln_pre_->forward(tokens_, mode);
  for (auto& b : blocks_) {
    b->set_sequences(length_);
    h = &b->forward(*h, mode);
  }
  pooled_.ensure({rows_, width_}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::pool(h->data<float>(), rows_, length_, width_, mean_pooling_, pooled_.data<float>(), stream);
  check_launch("pooling");
  const contra::Tensor& y = projection_->forward(ln_post_->forward(pooled_, mode), mode);
  backward_ready_ = mode == contra::Mode::train;
  return y;
}

const contra::Tensor& VisionTransformerCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  if (!backward_ready_)
    throw contra::UsageError("vit: backward() needs a train-mode forward() first (none since the last backward() "
                             "or eval-mode forward())");
  dy.expect({rows_, output_}, contra::DType::f32, "vit: backward() dy");
  if (dy.device() != contra::Device::cuda)
    throw contra::UsageError(std::string("vit (cuda): backward() expected dy on cuda, got ") +
                             contra::device_name(dy.device()));
  void* stream = contra::cuda::current_stream();
  const contra::Tensor& dpooled = ln_post_->backward(projection_->backward(dy, true), true);
  dhidden_.ensure({rows_ * length_, width_}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::unpool(dpooled.data<float>(), rows_, length_, width_, mean_pooling_, dhidden_.data<float>(), stream);
  check_launch("unpooling");
  const contra::Tensor* d = &dhidden_;
  for (std::size_t i = blocks_.size(); i-- > 0;) d = &blocks_[i]->backward(*d, true);
  const contra::Tensor& dtokens = ln_pre_->backward(*d, true);
  dpatch_rows_.ensure({rows_ * (length_ - 1), width_}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::token_backward(dtokens.data<float>(), rows_, length_, width_, class_embedding_.grad.data<float>(),
                              positional_embedding_.grad.data<float>(), dpatch_rows_.data<float>(), stream);
  check_launch("token gradient");
  const contra::Tensor& dpatches = patch_embedding_->backward(dpatch_rows_, want_input_grad);
  backward_ready_ = false;
  if (!want_input_grad) {
    static const contra::Tensor none;
    return none;
  }
  const vit_kernels::PatchGrid grid{rows_, channels_, height_, image_width_, patch_};
  dx_.ensure({rows_, channels_, height_, image_width_}, contra::DType::f32, contra::Device::cuda);
  vit_kernels::fold_patches(dpatches.data<float>(), grid, dx_.data<float>(), stream);
  check_launch("patch folding");
  return dx_;
}

}  // namespace contra::plugins
