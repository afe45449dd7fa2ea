#include "seed_resnet_cuda.hpp"

#include "seed_resnet_net.hpp"

#include <contra/cuda.hpp>
#include <contra/cuda/nn.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

namespace {
// The GPU layer library, for seed_resnet_net.hpp.
struct Layers {
  using Conv2d = contra::cuda::nn::Conv2d;
  using BatchNormReLU = contra::cuda::nn::BatchNormReLU;
  using MaxPool2d = contra::cuda::nn::MaxPool2d;
  using GlobalAvgPool = contra::cuda::nn::GlobalAvgPool;
  using AvgPool2d = contra::cuda::nn::AvgPool2d;
  using Flatten = contra::cuda::nn::Flatten;
  using Linear = contra::cuda::nn::Linear;
  static void configure(Conv2d&, contra::nn::ConvAlgorithm) {}  // cuDNN chooses
};
}  // namespace

SeedResNetCuda::SeedResNetCuda(const contra::Params& p)
    : width_(p.get<std::int64_t>("width")),
      output_(p.get<std::int64_t>("output")),
      pool_grid_(p.get<std::int64_t>("pool_grid")) {}

void SeedResNetCuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("seed_resnet: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("seed_resnet: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  const SeedResNetPool pool = seed_resnet_pool(ctx.input, pool_grid_);  // the CPU build's check, before the GPU's
  contra::cuda::require("seed_resnet (cuda)");
  channels_ = ctx.input[0];
  // The CPU build's layers, names and draws (seed_resnet_net.hpp).
  build_seed_resnet<Layers>(net_, channels_, width_, output_, pool, contra::nn::ConvAlgorithm::automatic, ctx);
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
