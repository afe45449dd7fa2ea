#include "seed_resnet.hpp"

#include "seed_resnet_net.hpp"
#include "../conv_algorithm.hpp"

#include <contra/memory_budget.hpp>
#include <contra/nn/activation.hpp>
#include <contra/nn/batch_norm.hpp>
#include <contra/nn/conv2d.hpp>
#include <contra/nn/linear.hpp>
#include <contra/nn/pooling.hpp>

namespace contra::plugins {

using namespace contra::nn;

namespace {
// The CPU layer library, for seed_resnet_net.hpp.
struct Layers {
  using Conv2d = contra::nn::Conv2d;
  using BatchNormReLU = contra::nn::BatchNormReLU;  // fused in oneDNN
  using MaxPool2d = contra::nn::MaxPool2d;
  using GlobalAvgPool = contra::nn::GlobalAvgPool;
  using AvgPool2d = contra::nn::AvgPool2d;
  using Flatten = contra::nn::Flatten;
  using Linear = contra::nn::Linear;
  static void configure(Conv2d& conv, ConvAlgorithm a) { apply_conv_algorithm(conv, a); }
};
}  // namespace

contra::Schema SeedResNet::schema() {
  contra::Schema s = contra::Schema("seed_resnet",
                        "conv-BN-ReLU stem with max pool, two stages of two conv-BN-ReLU, global "
                        "average pool, linear (the classic contrastive tutorial's ResNetEncoder)")
      .add<std::int64_t>("width", 64, "channels of the stem and the first stage; the second has twice as many")
      .range(1, 4096)
      .add<std::int64_t>("output", 128, "width of the final linear layer (the embedding)")
      .range(1, 65536)
      .add<std::int64_t>("pool_grid", 1,
                         "average-pool the last stage to a pool_grid × pool_grid grid (pool_grid along the shorter "
                         "side of a wide map) before the linear layer (1: global average pool)")
      .range(1, 16);
  add_conv_algorithm(s);
  return s;
}

SeedResNet::SeedResNet(const contra::Params& p)
    : width_(p.get<std::int64_t>("width")),
      output_(p.get<std::int64_t>("output")),
      pool_grid_(p.get<std::int64_t>("pool_grid")),
      conv_algorithm_(conv_algorithm_of(p)),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

void SeedResNet::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("seed_resnet: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("seed_resnet: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  const SeedResNetPool pool = seed_resnet_pool(ctx.input, pool_grid_);
  channels_ = ctx.input[0];
  // f32 weights and gradients, and the running statistics, before any layer
  // allocates; named by `output` when the linear layer is most of it.
  const SeedResNetSize size = seed_resnet_size(channels_, width_, output_, pool);
  const bool fc = size.fc * 2 > size.parameters;
  contra::require_memory(
      fc ? key_prefix_ + "output = " + std::to_string(output_) : key_prefix_ + "width = " + std::to_string(width_),
      contra::add_bytes(contra::mul_bytes(size.parameters, 2 * sizeof(float)),
                        contra::mul_bytes(size.buffers, sizeof(float))),
      "weights and gradients",
      std::to_string(size.parameters) + " parameters × 4 B × 2, for " + std::to_string(channels_) +
          "-channel images; the linear layer " + std::to_string(2 * width_ * pool.cells) + " × " +
          std::to_string(output_));
  build_seed_resnet<Layers>(net_, channels_, width_, output_, pool, conv_algorithm_, ctx);
  built_ = true;
}

std::vector<contra::Parameter*> SeedResNet::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> SeedResNet::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& SeedResNet::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("seed_resnet: forward() called before build()");
  if (x.rank() != 4 || x.dim(1) != channels_)
    throw contra::UsageError("seed_resnet: expected images [N, " + std::to_string(channels_) +
                             ", H, W], got " + x.shape().str());
  nchw_to_nhwc(x, nhwc_);
  return net_.forward(nhwc_, mode);
}

const contra::Tensor& SeedResNet::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  nhwc_to_nchw(dx, dx_);
  return dx_;
}

}  // namespace contra::plugins
