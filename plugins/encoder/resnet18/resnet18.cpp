#include "resnet18.hpp"

#include <contra/memory_budget.hpp>

namespace contra::plugins {

using namespace contra::nn;

contra::Schema ResNet18::schema() {
  contra::Schema s = contra::Schema("resnet18",
                                    "ResNet-18, CIFAR variant: 3x3 stem, no max pool, 4 stages of 2 BasicBlocks, "
                                    "global average pool; output width 8 x width")
                        .add<std::int64_t>("width", 64, "channels of the stem and first stage; stages double it")
                        .range(1, 1024);
  add_conv_algorithm(s);
  return s;
}

ResNet18::ResNet18(const contra::Params& p)
    : width_(p.get<std::int64_t>("width")),
      conv_algorithm_(conv_algorithm_of(p)),
      key_prefix_(p.prefix().empty() ? std::string() : p.prefix() + ".") {}

void ResNet18::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("resnet18: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("resnet18: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  channels_ = ctx.input[0];
  // f32 weights and gradients, and the running statistics, before any layer allocates.
  const ResNet18Size size = resnet18_size(channels_, width_);
  contra::require_memory(key_prefix_ + "width = " + std::to_string(width_),
                         contra::add_bytes(contra::mul_bytes(size.parameters, 2 * sizeof(float)),
                                           contra::mul_bytes(size.buffers, sizeof(float))),
                         "weights and gradients",
                         std::to_string(size.parameters) + " parameters × 4 B × 2, for " + std::to_string(channels_) +
                             "-channel images");
  build_resnet18<CpuLayers>(net_, channels_, width_, conv_algorithm_, ctx);
  built_ = true;
}

std::vector<contra::Parameter*> ResNet18::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> ResNet18::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& ResNet18::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("resnet18: forward() called before build()");
  if (x.rank() != 4 || x.dim(1) != channels_)
    throw contra::UsageError("resnet18: expected images [N, " + std::to_string(channels_) + ", H, W], got " +
                             x.shape().str());
  nchw_to_nhwc(x, nhwc_);
  return net_.forward(nhwc_, mode);
}

const contra::Tensor& ResNet18::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  nhwc_to_nchw(dx, dx_);
  return dx_;
}

}  // namespace contra::plugins
