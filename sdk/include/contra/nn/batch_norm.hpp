#pragma once
/// \file
/// Batch normalisation over the last dimension (channels), PyTorch's
/// BatchNorm2d on NHWC images and BatchNorm1d on [N, C] features, on oneDNN's
/// batch_normalization primitives.

#include <contra/nn/layer.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace contra::nn {

/// y = γ · (x − μ) / sqrt(σ² + eps) + β per channel c, for x of shape
/// [N, H, W, C] or [N, C] (f32, cpu).
///
/// - Train mode: μ, σ² are the batch statistics over every axis but the last
///   (σ² biased, as in the normalisation itself); the running statistics are
///   then updated as PyTorch does: running = (1 − momentum)·running +
///   momentum·batch, with the *unbiased* batch variance (× M/(M−1), M values
///   per channel) for running_var. Needs M > 1.
/// - Eval mode: μ, σ² are running_mean and running_var; nothing is updated.
/// - Synchronised train mode (a contra::BatchStatsReducer installed on the
///   calling thread when forward() is called, contra/batch_stats.hpp): μ, σ²
///   are the statistics of the global batch, every rank's x together
///   (PyTorch's SyncBatchNorm). forward() sums per-channel Σx, Σx² (in
///   double; σ² = Σx²/M − μ², which keeps f32 accuracy unless |μ| > ~10⁴·σ)
///   and the count across ranks in one reducer call; M counts the global
///   batch, for the running variance's M/(M−1) and for M > 1 (one value per
///   channel on a rank is fine). Every rank's running statistics come out
///   the same. backward() returns the global batch's dL/dx for this rank's
///   rows, after one more reducer call (Σdy·x̂, Σdy per channel) — made only
///   when want_input_grad, which must therefore be the same on every rank,
///   as it is for a layer's place in the network — and with the reducer still
///   installed. It adds only this rank's share of dL/dγ and dL/dβ: the ranks'
///   parameter gradients are summed with all the others'.
///
/// backward() differentiates the last forward(), whichever its mode: after a
/// train-mode forward through the batch statistics, after an eval-mode one
/// through the fixed running statistics (a frozen batch norm). It adds dL/dγ
/// and dL/dβ into the parameters' grad.
///
/// Parameters "<name>.weight" (γ, initially 1) and "<name>.bias" (β,
/// initially 0), both with decay = false. Buffers "<name>.running_mean"
/// (initially 0) and "<name>.running_var" (initially 1).
///
/// In train mode the layer keeps a non-owning reference to x until the next
/// forward(): callers must keep x alive and unchanged until backward().
/// oneDNN primitives and their scratch memory are created once per input
/// shape and cached; steady-state calls allocate no tensors.
class BatchNorm final : public Layer {
 public:
  /// Throws UsageError unless channels >= 1, 0 <= momentum <= 1, eps > 0.
  BatchNorm(std::string name, std::int64_t channels, double momentum = 0.1, double eps = 1e-5);
  ~BatchNorm() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, Tensor*>>& out) override;

  std::int64_t channels() const noexcept;
  double momentum() const noexcept;
  double eps() const noexcept;
  Parameter& weight() noexcept;
  Parameter& bias() noexcept;
  Tensor& running_mean() noexcept;  ///< [C] f32
  Tensor& running_var() noexcept;   ///< [C] f32

 private:
  friend class BatchNormReLU;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// max(BatchNorm(x), 0): a BatchNorm followed by a ReLU, fused into oneDNN's
/// batch-normalisation primitives (fuse_norm_relu). Same arguments, modes,
/// parameters, buffers and names as BatchNorm (so a checkpoint of
/// BatchNorm + ReLU loads into it), same results as BatchNorm then ReLU up
/// to float rounding; dL/dx is zero where the output is zero. Faster: the
/// activation is read and written once less in each direction, and the ReLU
/// keeps a mask instead of its output.
class BatchNormReLU final : public Layer {
 public:
  /// Throws UsageError like BatchNorm.
  BatchNormReLU(std::string name, std::int64_t channels, double momentum = 0.1, double eps = 1e-5);
  ~BatchNormReLU() override;

  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy, bool want_input_grad = true) override;
  void parameters(std::vector<Parameter*>& out) override;
  void buffers(std::vector<std::pair<std::string, Tensor*>>& out) override;

  /// The normalisation: parameters, statistics, momentum and eps.
  BatchNorm& batch_norm() noexcept { return bn_; }

 private:
  BatchNorm bn_;
};

}  // namespace contra::nn
