#include "seed_resnet_cuda.hpp"

#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

SeedResNetCuda::SeedResNetCuda(const contra::Params& p)
    : width_(p.get<std::int64_t>("width")),
      output_(p.get<std::int64_t>("output")),
      pool_grid_(p.get<std::int64_t>("pool_grid")) {}

void SeedResNetCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("seed_resnet: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("seed_resnet: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  const std::int64_t h = (ctx.input[1] - 1) / 2 + 1, w_in = (ctx.input[2] - 1) / 2 + 1;  // after the max pool
  if (pool_grid_ != 1 && (h != w_in || h % pool_grid_ != 0))
    throw contra::ConfigError("seed_resnet: pool_grid = " + std::to_string(pool_grid_) + " must divide the " +
                              std::to_string(h) + "×" + std::to_string(w_in) + " feature map of inputs " +
                              ctx.input.str() + " (square maps only)");
  contra::cuda::require("seed_resnet (cuda)");
  channels_ = ctx.input[0];
  const std::int64_t w = width_, w2 = 2 * width_;
  // The CPU build's layers, names and draws, in the same order.
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  auto conv_bn_relu = [&](const std::string& name, std::int64_t in, std::int64_t out) {
    net_.emplace<Conv2d>(name + ".conv", in, out, 3, 1, 1, false, init, ctx.precision);
    net_.emplace<BatchNorm>(name + ".bn", out);
    net_.emplace<ReLU>();
  };
  conv_bn_relu("stem", channels_, w);
  net_.emplace<MaxPool2d>(3, 2, 1);
  conv_bn_relu("layer1.0", w, w);
  conv_bn_relu("layer1.1", w, w);
  conv_bn_relu("layer2.0", w, w2);
  conv_bn_relu("layer2.1", w2, w2);
  if (pool_grid_ == 1) {
    net_.emplace<GlobalAvgPool>();
    net_.emplace<Linear>("fc", w2, output_, true, init, ctx.precision);
  } else {
    const int cell = static_cast<int>(h / pool_grid_);
    net_.emplace<AvgPool2d>(cell, cell);
    net_.emplace<Flatten>();
    net_.emplace<Linear>("fc", w2 * pool_grid_ * pool_grid_, output_, true, init, ctx.precision);
  }
  // The initial values were copied and the gradients zeroed on this thread's
  // stream; the train step may run on another.
  contra::cuda::synchronize(contra::cuda::current_stream());
  built_ = true;
}

std::vector<contra::Parameter*> SeedResNetCuda::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> SeedResNetCuda::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& SeedResNetCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("seed_resnet: forward() called before build()");
  if (x.rank() != 4 || x.dim(1) != channels_)
    throw contra::UsageError("seed_resnet: expected images [N, " + std::to_string(channels_) +
                             ", H, W], got " + x.shape().str());
  if (x.device() != contra::Device::cuda || x.dtype() != contra::DType::f32)
    throw contra::UsageError(std::string("seed_resnet (cuda): expected f32 images on cuda, got ") +
                             contra::dtype_name(x.dtype()) + " on " + contra::device_name(x.device()));
  nchw_to_nhwc(x, nhwc_);
  return net_.forward(nhwc_, mode);
}

const contra::Tensor& SeedResNetCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  nhwc_to_nchw(dx, dx_);
  return dx_;
}

}  // namespace contra::plugins
