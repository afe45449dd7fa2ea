#include "resnet18_cuda.hpp"

#include <contra/cuda.hpp>

namespace contra::plugins {

using namespace contra::cuda::nn;

ResNet18Cuda::ResNet18Cuda(const contra::Params& p) : width_(p.get<std::int64_t>("width")) {}

void ResNet18Cuda::build(const contra::EncoderContext& ctx) {
  if (built_) throw contra::UsageError("resnet18: build() called twice");
  if (ctx.input.rank() != 3)
    throw contra::ConfigError("resnet18: takes images [C, H, W], got inputs of shape " + ctx.input.str());
  contra::cuda::require("resnet18 (cuda)");
  channels_ = ctx.input[0];
  // The CPU build's layers, names and draws (resnet18_net.hpp).
  build_resnet18<CudaLayers>(net_, channels_, width_, contra::nn::ConvAlgorithm::automatic, ctx);
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
