#pragma once
/// \file
/// A layer says when a parameter's gradient for this backward pass is
/// complete: data-parallel ranks then start all-reducing it while the rest of
/// the backward pass runs (PyTorch DDP's bucketed overlap).
///
/// The runtime installs a hook on the thread that runs a train step, during
/// the step's last backward pass; the CPU layers (`nn::Conv2d`, `nn::Linear`,
/// `nn::BatchNorm`) call gradient_ready() for their parameters once they have
/// added their last contribution. A layer that never calls it loses nothing:
/// its gradients are reduced after the backward pass.

#include <contra/roles/encoder.hpp>

namespace contra {

class GradientReadyHook {
 public:
  virtual ~GradientReadyHook() = default;
  /// `p.grad` holds this backward pass's whole gradient and will not change
  /// before the optimizer runs.
  virtual void ready(Parameter& p) = 0;
};

/// The hook installed on this thread, or null.
GradientReadyHook* gradient_ready_hook() noexcept;

/// What a layer calls for each of its parameters at the end of backward().
inline void gradient_ready(Parameter& p) {
  if (GradientReadyHook* h = gradient_ready_hook()) h->ready(p);
}

/// Installs a hook on this thread while alive, restoring the previous one
/// after; null installs none.
class ScopedGradientReadyHook {
 public:
  explicit ScopedGradientReadyHook(GradientReadyHook* hook) noexcept;
  ~ScopedGradientReadyHook();
  ScopedGradientReadyHook(const ScopedGradientReadyHook&) = delete;
  ScopedGradientReadyHook& operator=(const ScopedGradientReadyHook&) = delete;

 private:
  GradientReadyHook* previous_;
};

}  // namespace contra
