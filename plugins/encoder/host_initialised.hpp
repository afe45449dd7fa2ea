#pragma once
// What the transformer encoders' cuda builds (text_transformer, vit) share:
// parameters of their own on the GPU, and the initial values of the CPU
// build's model copied into every parameter, so that the two builds start
// from the same weights by construction.

#include <contra/cuda.hpp>
#include <contra/errors.hpp>
#include <contra/roles/encoder.hpp>

#include <string>
#include <vector>

namespace contra::plugins::host_initialised {

/// A zeroed f32 parameter (value and grad) on cuda.
inline contra::Parameter device_parameter(std::string name, const contra::Shape& shape, bool decay) {
  contra::Parameter p;
  p.name = std::move(name);
  p.value = contra::Tensor::zeros(shape, contra::DType::f32, contra::Device::cuda);
  p.grad = contra::Tensor::zeros(shape, contra::DType::f32, contra::Device::cuda);
  p.decay = decay;
  return p;
}

/// Copies each of `host`'s values into `device`'s, which must be the same
/// parameters (names, shapes, decay) in the same order (UsageError naming
/// the first that differs, `who` first); then waits for the copies, since
/// the train step may run on another stream.
inline void copy_values(const std::string& who, const std::vector<contra::Parameter*>& host,
                        const std::vector<contra::Parameter*>& device) {
  if (host.size() != device.size())
    throw contra::UsageError(who + ": " + std::to_string(device.size()) + " parameters, the CPU build " +
                             std::to_string(host.size()));
  void* stream = contra::cuda::current_stream();
  for (std::size_t i = 0; i < host.size(); ++i) {
    const contra::Parameter &from = *host[i], &to = *device[i];
    if (from.name != to.name || from.value.shape() != to.value.shape() || from.decay != to.decay)
      throw contra::UsageError(who + ": parameter " + std::to_string(i) + " is " + to.name + " " +
                               to.value.shape().str() + ", the CPU build's " + from.name + " " +
                               from.value.shape().str());
    contra::cuda::copy_to_device(device[i]->value, from.value, stream);
  }
  contra::cuda::synchronize(stream);
}

}  // namespace contra::plugins::host_initialised
