#pragma once
// The Adam update shared by adam and adamw, on the CPU (their step() loops)
// and the GPU (adam_cuda.cuh's kernel): the per-step scalars, computed on the
// host as PyTorch does, and the update of one element, operation for
// operation as torch.optim.Adam / AdamW (amsgrad off).

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define CONTRA_ADAM_HOST_DEVICE __host__ __device__
#else
#define CONTRA_ADAM_HOST_DEVICE
#endif

namespace contra::plugins::adam {

/// How weight decay enters: added to the gradient (adam, L2), or shrinking
/// the weight before the update (adamw, decoupled).
enum class Decay { l2, decoupled };

/// The scalars of step t: the learning rate folded with the bias corrections,
/// the decay rates and eps in float.
struct StepScalars {
  float step_size;     // lr / (1 − β1^t)
  float inv_sqrt_bc2;  // 1 / √(1 − β2^t)
  float b1, c1;        // β1, 1 − β1
  float b2, c2;        // β2, 1 − β2
  float eps;
};

inline StepScalars step_scalars(double lr, double beta1, double beta2, double eps, std::int64_t t) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
  return {static_cast<float>(lr / bc1),
          static_cast<float>(1.0 / std::sqrt(bc2)),
          static_cast<float>(beta1),
          static_cast<float>(1.0 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1.0 - beta2),
          static_cast<float>(eps)};
}

/// Element k: m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², and
///   w ← w − step_size · m / (√v / √(1 − β2^t) + eps)
/// with, for Decay::l2, g = grad + decay · w (decay: weight_decay, or 0), and
/// for Decay::decoupled, w first multiplied by decay (1 − lr · weight_decay,
/// or 1).
template <Decay kind>
CONTRA_ADAM_HOST_DEVICE inline void update(float* w, const float* grad, float* m, float* v, std::int64_t k,
                                           const StepScalars& s, float decay) {
  float g = grad[k];
  if constexpr (kind == Decay::l2) g = g + decay * w[k];
  const float mk = s.b1 * m[k] + s.c1 * g;
  const float vk = s.b2 * v[k] + s.c2 * (g * g);
  m[k] = mk;
  v[k] = vk;
  const float step = s.step_size * mk / (sqrtf(vk) * s.inv_sqrt_bc2 + s.eps);
  if constexpr (kind == Decay::l2) w[k] -= step;
  else w[k] = decay * w[k] - step;
}

}  // namespace contra::plugins::adam
