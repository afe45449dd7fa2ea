#pragma once
/// \file
/// Row-wise L2 normalisation, ẑ_i = z_i / max(‖z_i‖, eps) as
/// torch.nn.functional.normalize computes it, and its backward pass: what the
/// losses on cosine similarities (and normalised distances) share.
///
/// Each row is computed on its own (sums vectorised within the row), so a
/// row's result does not depend on how many rows there are or on the number
/// of threads. Large inputs are split over the calling thread's OpenMP team.

#include <cstdint>

namespace contra {

/// Norms below this are clamped (torch.nn.functional.normalize's default eps).
inline constexpr float l2_norm_eps = 1e-12f;

/// zhat_i = z_i / max(‖z_i‖, l2_norm_eps) for `rows` contiguous rows of `d`
/// floats; ‖z_i‖ into norms[i] unless `norms` is null (the backward pass
/// needs them). `zhat` may be `z`.
void l2_normalize_rows(const float* z, std::int64_t rows, std::int64_t d, float* zhat, float* norms);

/// Back through l2_normalize_rows(): from g = dL/dẑ,
///   dL/dz_i = scale · (g_i − ẑ_i (ẑ_i·g_i)) / ‖z_i‖,
/// or scale · g_i / l2_norm_eps for a row whose norm was clamped (there
/// ẑ = z / eps is linear in z). `zhat` and `norms` are what the forward pass
/// wrote; `scale` folds a mean (e.g. over anchors) into the same pass.
/// `grad_z` may be `grad_zhat`.
void l2_normalize_rows_backward(const float* zhat, const float* norms, const float* grad_zhat, float scale,
                                std::int64_t rows, std::int64_t d, float* grad_z);

}  // namespace contra
