#pragma once
/// \file
/// clip on the GPU: the same loss, parameter and metrics as the CPU build
/// (clip.hpp, README.md), for embeddings on Device::cuda.

#include "../pairs_forms.hpp"
#include "clip.hpp"

#include "../../cuda_support.cuh"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace contra::plugins {

struct ClipCudaState;

/// CLIP's symmetric InfoNCE as Clip computes it, the parameter "logit_scale"
/// (t) with its value and grad f32 [1] on cuda (initialised as the CPU build
/// does; the optimizer's cuda build updates it). Two passes over blocks of
/// `chunk` rows of Â: the block's cosines by cuBLAS, one kernel per row
/// (max, log-sum-exp, the row's retrieval tally) and one thread per column
/// (online log-sum-exp and tally across blocks); then per row the
/// coefficients ∂loss/∂logit in place and the gradient by two more products.
/// The scale s = min(exp(t), max_scale) is worked out on the device from t.
class ClipCuda final : public contra::Loss {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return Clip::schema(); }
  /// The CPU build's ConfigError for a bad configuration. Needs no GPU yet
  /// (the plugin checks create every plugin with its defaults): the
  /// parameter goes to the GPU at the first parameters() or compute(), which
  /// throw DeviceError("no usable GPU: ... (needed by clip (cuda))")
  /// without one.
  explicit ClipCuda(const contra::Params& p);
  ~ClipCuda() override;

  contra::PairsForms pairs_forms() const override { return pairs_forms::all_only(); }
  /// "logit_scale" (t, on cuda), or nothing when learn_temperature = false.
  std::vector<contra::Parameter*> parameters() override;

  /// z.z: [2N, D] f32 on cuda, 2 views (of different towers when
  /// z.view_tower says); the CPU build's messages for anything else. Writes
  /// the value, dL/dz (out.grad, [2N, D] on cuda), adds dL/dt into the
  /// parameter's grad on the device, and appends the CPU build's metrics.
  /// Runs on contra::cuda::current_stream() and synchronises it once, to
  /// read the value and metrics. Memory: chunk × N floats plus a few 2N × D.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  bool learn_temperature_;
  double max_scale_;
  std::int64_t chunk_;
  double initial_log_scale_;
  contra::Parameter log_scale_;  // t, "logit_scale" [1] on cuda; handed out only when learnt
  bool on_device_ = false;       // log_scale_ made
  std::unique_ptr<ClipCudaState> state_;

  void to_device();
};

}  // namespace contra::plugins
