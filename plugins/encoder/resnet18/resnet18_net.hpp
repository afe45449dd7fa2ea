#pragma once
// The ResNet-18 network, once for both builds: the BasicBlock and the layer
// list are templates over the layer library (CpuLayers here, CudaLayers in
// resnet18_cuda.hpp), so that the CPU and GPU builds have the same layers,
// names and initial draws by construction.

#include <contra/nn/conv2d.hpp>
#include <contra/nn/sequential.hpp>
#include <contra/plugin.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// conv3x3(stride) – BN – ReLU – conv3x3 – BN, plus the identity or a
/// 1x1 conv – BN projection shortcut, then ReLU of the sum. `L` names the
/// layer classes (Conv2d, BatchNorm, BatchNormReLU, ReLU, GlobalAvgPool),
/// add(a, b, out) and configure(conv, algorithm).
template <class L>
class BasicBlockOf final : public contra::nn::Layer {
 public:
  BasicBlockOf(const std::string& name, std::int64_t in, std::int64_t out, int stride, contra::Rng& init,
               contra::Precision precision, contra::nn::ConvAlgorithm conv_algorithm) {
    L::configure(branch_.emplace<typename L::Conv2d>(name + ".conv1", in, out, 3, stride, 1, false, init, precision),
                 conv_algorithm);
    branch_.emplace<typename L::BatchNormReLU>(name + ".bn1", out);
    L::configure(branch_.emplace<typename L::Conv2d>(name + ".conv2", out, out, 3, 1, 1, false, init, precision),
                 conv_algorithm);
    branch_.emplace<typename L::BatchNorm>(name + ".bn2", out);
    if (stride != 1 || in != out) {
      shortcut_ = std::make_unique<contra::nn::Sequential>();
      shortcut_->emplace<typename L::Conv2d>(name + ".shortcut.conv", in, out, 1, stride, 0, false, init, precision);
      shortcut_->emplace<typename L::BatchNorm>(name + ".shortcut.bn", out);
    }
  }

  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override {
    const contra::Tensor& b = branch_.forward(x, mode);
    L::add(b, shortcut_ ? shortcut_->forward(x, mode) : x, sum_);
    return relu_.forward(sum_, mode);
  }

  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad = true) override {
    const contra::Tensor& dsum = relu_.backward(dy, true);
    const contra::Tensor& dx_branch = branch_.backward(dsum, want_input_grad);
    const contra::Tensor* dx_other = &dsum;  // the identity passes dsum through
    if (shortcut_) dx_other = &shortcut_->backward(dsum, want_input_grad);
    if (!want_input_grad) return dx_branch;
    L::add(dx_branch, *dx_other, dx_);
    return dx_;
  }

  void parameters(std::vector<contra::Parameter*>& out) override {
    branch_.parameters(out);
    if (shortcut_) shortcut_->parameters(out);
  }

  void buffers(std::vector<std::pair<std::string, contra::Tensor*>>& out) override {
    branch_.buffers(out);
    if (shortcut_) shortcut_->buffers(out);
  }

 private:
  contra::nn::Sequential branch_;
  std::unique_ptr<contra::nn::Sequential> shortcut_;  // null: identity
  typename L::ReLU relu_;
  contra::Tensor sum_, dx_;
};

/// Parameters of build_resnet18() (weights, batch-norm scales and shifts),
/// and its batch-norm running statistics, counted without building it: what
/// the build checks against the machine's memory before allocating.
struct ResNet18Size {
  std::uint64_t parameters = 0;
  std::uint64_t buffers = 0;
};
inline ResNet18Size resnet18_size(std::int64_t channels, std::int64_t width) {
  ResNet18Size s;
  auto conv = [&](std::int64_t in, std::int64_t out, std::int64_t k) {
    s.parameters += static_cast<std::uint64_t>(in) * static_cast<std::uint64_t>(out) * static_cast<std::uint64_t>(k * k);
  };
  auto bn = [&](std::int64_t c) {
    s.parameters += 2 * static_cast<std::uint64_t>(c);
    s.buffers += 2 * static_cast<std::uint64_t>(c);
  };
  conv(channels, width, 3);
  bn(width);
  std::int64_t in = width;
  for (int stage = 0; stage < 4; ++stage) {
    const std::int64_t out = width << stage;
    for (int block = 0; block < 2; ++block) {
      const std::int64_t from = block == 0 ? in : out;
      conv(from, out, 3);
      bn(out);
      conv(out, out, 3);
      bn(out);
      if (block == 0 && (stage != 0 || from != out)) {
        conv(from, out, 1);
        bn(out);
      }
    }
    in = out;
  }
  return s;
}

/// Appends the network to `net`: the 3x3 stem (`channels` → `width`), four
/// stages of two BasicBlocks (width, 2, 4, 8 × width; stride 2 from the
/// second), the global average pool. Weights drawn from `ctx.seed` in layer order.
template <class L>
void build_resnet18(contra::nn::Sequential& net, std::int64_t channels, std::int64_t width,
                    contra::nn::ConvAlgorithm conv_algorithm, const contra::EncoderContext& ctx) {
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  L::configure(net.emplace<typename L::Conv2d>("stem.conv", channels, width, 3, 1, 1, false, init, ctx.precision),
               conv_algorithm);
  net.emplace<typename L::BatchNormReLU>("stem.bn", width);
  std::int64_t in = width;
  for (int stage = 0; stage < 4; ++stage) {
    const std::int64_t out = width << stage;
    const std::string name = "layer" + std::to_string(stage + 1);
    net.emplace<BasicBlockOf<L>>(name + ".0", in, out, stage == 0 ? 1 : 2, init, ctx.precision, conv_algorithm);
    net.emplace<BasicBlockOf<L>>(name + ".1", out, out, 1, init, ctx.precision, conv_algorithm);
    in = out;
  }
  net.emplace<typename L::GlobalAvgPool>();
}

}  // namespace contra::plugins
