#pragma once
// BatchNorm then ReLU as one layer, for a layer library without a fused one
// (contra::cuda::nn): the parameters, buffers and names of the BatchNorm, as
// contra::nn::BatchNormReLU has, so that a network template names
// `L::BatchNormReLU` for the CPU and GPU builds alike.

#include <contra/nn/layer.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

template <class BatchNorm, class ReLU>
class BatchNormThenReLU final : public contra::nn::Layer {
 public:
  BatchNormThenReLU(std::string name, std::int64_t channels) : bn_(std::move(name), channels) {}

  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override {
    return relu_.forward(bn_.forward(x, mode), mode);
  }
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad = true) override {
    return bn_.backward(relu_.backward(dy, true), want_input_grad);
  }
  void parameters(std::vector<contra::Parameter*>& out) override { bn_.parameters(out); }
  void buffers(std::vector<std::pair<std::string, contra::Tensor*>>& out) override { bn_.buffers(out); }

 private:
  BatchNorm bn_;
  ReLU relu_;
};

}  // namespace contra::plugins
