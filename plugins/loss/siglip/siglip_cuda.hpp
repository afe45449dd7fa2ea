#pragma once
/// \file
/// siglip on the GPU: the same loss, parameters and metrics as the CPU build
/// (siglip.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "siglip.hpp"

#include "../../cuda_support.cuh"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace contra::plugins {

struct SiglipCudaState;

/// SigLIP's pairwise sigmoid loss as Siglip computes it, the parameters
/// "logit_scale" (t) and "logit_bias" (b) with their values and grads f32 [1]
/// on cuda (initialised as the CPU build does; the optimizer's cuda build
/// updates them). One pass over blocks of `chunk` rows of Â: the block's
/// cosines by cuBLAS, one thread per column for the retrieval tally, one
/// kernel per row for the loss terms, the tally and the coefficients
/// ∂loss/∂C in place, then the gradient by two more products. exp(t) and b
/// are read on the device.
class SiglipCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Siglip::schema(); }
  /// Needs no GPU yet (the plugin checks create every plugin with its
  /// defaults): the parameters go to the GPU at the first parameters() or
  /// compute(), which throw DeviceError("no usable GPU: ... (needed by
  /// siglip (cuda))") without one.
  explicit SiglipCuda(const contra::Params& p);
  ~SiglipCuda() override;

  contra::PairsForms pairs_forms() const override { return pairs_forms::all_only(); }
  /// "logit_scale" (t) then "logit_bias" (b), those that are learnt, on cuda.
  std::vector<contra::Parameter*> parameters() override;

  /// z.z: [2N, D] f32 on cuda, 2 views (of different towers when
  /// z.view_tower says); the CPU build's messages for anything else. Writes
  /// the value, dL/dz (out.grad, [2N, D] on cuda), adds dL/dt and dL/db into
  /// the parameters' grads on the device, and appends the CPU build's
  /// metrics. Runs on contra::cuda::current_stream() and synchronises it
  /// once, to read the value and metrics. Memory: chunk × N floats plus a few 2N × D.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  bool learn_scale_, learn_bias_;
  std::int64_t chunk_;
  contra::Parameter log_scale_;  // t, "logit_scale" [1] on cuda
  contra::Parameter bias_;       // b, "logit_bias" [1] on cuda
  double initial_log_scale_, initial_bias_;
  bool on_device_ = false;  // log_scale_ and bias_ made
  void to_device();
  std::unique_ptr<SiglipCudaState> state_;
};

}  // namespace contra::plugins
