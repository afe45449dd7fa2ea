#pragma once
// The kernels of the GPU transformer layers (transformer_kernels.cu): layer
// normalisation, the exact GELU, and multi-head attention's head
// rearrangements and masked softmax. Each launcher queues its kernel on `s`
// and throws DeviceError (naming the layer) when the launch fails. Counts are
// in elements; every pointer is device memory. Internal to libcontra_cuda.

#include <cuda_runtime.h>

#include <cstdint>

namespace contra::cuda::nn::detail {

// LayerNorm ---------------------------------------------------------------------

/// y = γ ⊙ (x − μ)·rstd + β per row of x [rows, features], μ and the biased
/// variance σ² in f32 (two passes over the row), rstd = 1/sqrt(σ² + eps).
/// Writes mean[row] = μ and rstd[row] for the backward pass.
void launch_layer_norm_forward(const float* x, const float* gamma, const float* beta, float eps, std::int64_t rows,
                               std::int64_t features, float* y, float* mean, float* rstd, cudaStream_t s);
/// dx per row: rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)), g = dy ⊙ γ, x̂ = (x − μ)·rstd.
void launch_layer_norm_backward_input(const float* x, const float* dy, const float* gamma, const float* mean,
                                      const float* rstd, std::int64_t rows, std::int64_t features, float* dx,
                                      cudaStream_t s);
/// Floats of scratch launch_layer_norm_backward_params() needs for this shape.
std::int64_t layer_norm_params_scratch(std::int64_t rows, std::int64_t features);
/// dγ += Σ_rows dy ⊙ x̂ and dβ += Σ_rows dy: partial sums over fixed chunks
/// of rows into `scratch`, then the chunks summed in order (no atomics: the
/// result does not depend on scheduling).
void launch_layer_norm_backward_params(const float* x, const float* dy, const float* mean, const float* rstd,
                                       std::int64_t rows, std::int64_t features, float* scratch, float* dgamma,
                                       float* dbeta, cudaStream_t s);

// GELU --------------------------------------------------------------------------

/// y = x/2 · (1 + erf(x/√2)).
void launch_gelu_forward(const float* x, float* y, std::int64_t n, cudaStream_t s);
/// dx = dy · (Φ(x) + x·φ(x)). dx may be dy.
void launch_gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n, cudaStream_t s);

// Multi-head attention ----------------------------------------------------------

/// The geometry of one attention call: `batch` sequences of `length` rows,
/// `heads` heads of `head_dim` features (width = heads · head_dim). `valid`
/// (device, [batch] int32) gives each sample's real positions; nullptr: all
/// `length` are real.
struct AttentionShape {
  std::int64_t batch, length, heads, head_dim;
  const std::int32_t* valid;
};

/// From rows [batch·length, parts·width] (parts 1..3; part p's head h is
/// columns p·width + h·head_dim ...) into parts per-head tensors
/// [batch·heads, length, head_dim] (dst0..dst{parts−1}); rows of padded
/// positions (t >= valid[b]) become 0.
void launch_split_heads(const AttentionShape& g, int parts, const float* src, float* dst0, float* dst1,
                        float* dst2, cudaStream_t s);
/// The inverse: parts per-head tensors into rows [batch·length, parts·width];
/// rows of padded positions become 0.
void launch_merge_heads(const AttentionShape& g, int parts, const float* src0, const float* src1,
                        const float* src2, float* dst, cudaStream_t s);
/// In place on scores [batch·heads, length, length]: each query row i < valid
/// gets the softmax over the keys it may see (j < valid, and j <= i when
/// `causal`), 0 elsewhere; rows of padded queries become all 0.
void launch_masked_softmax(const AttentionShape& g, bool causal, float* scores, cudaStream_t s);
/// In place on dprobs: dS = P ⊙ (dP − Σ_{j < valid} P_j·dP_j) for real query
/// rows (0 at hidden keys, where P = 0), all 0 for padded queries.
void launch_masked_softmax_backward(const AttentionShape& g, const float* probs, float* dprobs, cudaStream_t s);

}  // namespace contra::cuda::nn::detail
