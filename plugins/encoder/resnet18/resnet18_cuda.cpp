#include "resnet18_cuda.hpp"

#include <contra/cuda.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

BasicBlockCuda::BasicBlockCuda(const std::string& name, std::int64_t in, std::int64_t out, int stride,
                               contra::Rng& init, contra::Precision precision) {
  branch_.emplace<Conv2d>(name + ".conv1", in, out, 3, stride, 1, false, init, precision);
  branch_.emplace<BatchNorm>(name + ".bn1", out);
  branch_.emplace<ReLU>();
  branch_.emplace<Conv2d>(name + ".conv2", out, out, 3, 1, 1, false, init, precision);
  branch_.emplace<BatchNorm>(name + ".bn2", out);
  if (stride != 1 || in != out) {
    shortcut_ = std::make_unique<contra::nn::Sequential>();
    shortcut_->emplace<Conv2d>(name + ".shortcut.conv", in, out, 1, stride, 0, false, init, precision);
    shortcut_->emplace<BatchNorm>(name + ".shortcut.bn", out);
  }
}

const contra::Tensor& BasicBlockCuda::forward(const contra::Tensor& x, contra::Mode mode) {
  const contra::Tensor& b = branch_.forward(x, mode);
  add(b, shortcut_ ? shortcut_->forward(x, mode) : x, sum_);
  return relu_.forward(sum_, mode);
}

const contra::Tensor& BasicBlockCuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dsum = relu_.backward(dy, true);
  const contra::Tensor& dx_branch = branch_.backward(dsum, want_input_grad);
  if (shortcut_) {
    const contra::Tensor& dx_short = shortcut_->backward(dsum, want_input_grad);
    if (!want_input_grad) return dx_branch;
    add(dx_branch, dx_short, dx_);
  } else {
    if (!want_input_grad) return dx_branch;
    add(dx_branch, dsum, dx_);
  }
  return dx_;
}

void BasicBlockCuda::parameters(std::vector<contra::Parameter*>& out) {
  branch_.parameters(out);
  if (shortcut_) shortcut_->parameters(out);
}

void BasicBlockCuda::buffers(std::vector<std::pair<std::string, contra::Tensor*>>& out) {
  branch_.buffers(out);
  if (shortcut_) shortcut_->buffers(out);
}

ResNet18Cuda::ResNet18Cuda(const contra::Params& p) : width_(p.get<std::int64_t>("width")) {}

void ResNet18Cuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("resnet18: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("resnet18: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  contra::cuda::require("resnet18 (cuda)");
  channels_ = ctx.input[0];
  // The CPU build's layers, names and draws, in the same order.
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  const std::int64_t w = width_;
  net_.emplace<Conv2d>("stem.conv", channels_, w, 3, 1, 1, false, init, ctx.precision);
  net_.emplace<BatchNorm>("stem.bn", w);
  net_.emplace<ReLU>();
  std::int64_t in = w;
  for (int stage = 0; stage < 4; ++stage) {
    const std::int64_t out = w << stage;
    const std::string name = "layer" + std::to_string(stage + 1);
    net_.emplace<BasicBlockCuda>(name + ".0", in, out, stage == 0 ? 1 : 2, init, ctx.precision);
    net_.emplace<BasicBlockCuda>(name + ".1", out, out, 1, init, ctx.precision);
    in = out;
  }
  net_.emplace<GlobalAvgPool>();
  // The initial values were copied and the gradients zeroed on this thread's
  // stream; the train step may run on another.
  contra::cuda::synchronize(contra::cuda::current_stream());
  built_ = true;
}

std::vector<contra::Parameter*> ResNet18Cuda::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

std::vector<std::pair<std::string, contra::Tensor*>> ResNet18Cuda::buffers() {
  std::vector<std::pair<std::string, contra::Tensor*>> out;
  net_.buffers(out);
  return out;
}

const contra::Tensor& ResNet18Cuda::forward(const contra::Tensor& x, contra::Mode mode) {
  if (!built_) throw contra::UsageError("resnet18: forward() called before build()");
  if (x.rank() != 4 || x.dim(1) != channels_)
    throw contra::UsageError("resnet18: expected images [N, " + std::to_string(channels_) + ", H, W], got " +
                             x.shape().str());
  if (x.device() != contra::Device::cuda || x.dtype() != contra::DType::f32)
    throw contra::UsageError(std::string("resnet18 (cuda): expected f32 images on cuda, got ") +
                             contra::dtype_name(x.dtype()) + " on " + contra::device_name(x.device()));
  nchw_to_nhwc(x, nhwc_);
  return net_.forward(nhwc_, mode);
}

const contra::Tensor& ResNet18Cuda::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  nhwc_to_nchw(dx, dx_);
  return dx_;
}

}  // namespace contra::plugins
