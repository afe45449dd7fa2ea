#pragma once
/// \file
/// linear_probe: multinomial logistic regression with an L2 penalty, trained
/// on frozen, standardised train features by full-batch L-BFGS, measured on
/// the test features. See README.md for the exact objective.

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// x̃ = (x − μ) / σ per dimension, μ and σ from the train split (σ = 1 for a
/// constant dimension); logits z = x̃ W + b, W [D, C], b [C]. Minimises
///   f(W, b) = 1/N Σ_i (log Σ_c e^{z_ic} − z_{i,y_i}) + l2/2 · ‖W‖²
/// (the bias is not penalised) from W = 0, b = 0 with L-BFGS (`history`
/// pairs, backtracking Armijo line search) until ‖∇f‖_∞ <= tolerance, the
/// relative decrease of f in an iteration <= tolerance, no step decreases f,
/// or `max_iter` iterations. The objective is convex (strictly for l2 > 0),
/// the start fixed and the batch full, so the result does not depend on the
/// seed. Products by contra::sgemm on the calling thread's OpenMP team.
class LinearProbe final : public contra::Evaluator {
 public:
  static contra::Schema schema();
  explicit LinearProbe(const contra::Params& p);

  /// train/test: features [N, D] f32 on the CPU (same D), N labels each in
  /// [0, num_classes); UsageError otherwise, or for an empty split. Figures
  /// "top1" (test accuracy), "train_top1", "loss" (final f, penalty
  /// included) and "iterations" (L-BFGS iterations run).
  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test,
                                                       std::uint64_t seed) override;

  /// Of the last evaluate(): f at the start (log C) and after each iteration.
  const std::vector<double>& loss_history() const noexcept { return history_; }
  /// Of the last evaluate(): the parameters, W row-major [D, C] then b [C],
  /// acting on standardised features; and the standardisation (μ, σ, [D]).
  const std::vector<double>& weights() const noexcept { return theta_; }
  const std::vector<double>& mean() const noexcept { return mean_; }
  const std::vector<double>& scale() const noexcept { return scale_; }

 private:
  // f and ∇f at theta_ (gradient into grad); logits and softmax in z_.
  double objective(const std::vector<double>& theta, std::vector<double>& grad);

  double l2_;
  std::int64_t max_iter_;
  double tolerance_;
  std::int64_t memory_;

  // Per evaluate().
  std::int64_t n_ = 0, d_ = 0, c_ = 0;
  const std::int64_t* labels_ = nullptr;
  contra::Tensor x_;              // [N, D] standardised train features
  contra::Tensor z_;              // [N, C] logits, then softmax − one-hot
  contra::Tensor w_;              // [D, C] float copy of W for sgemm
  contra::Tensor gw_;             // [D, C] float Xᵀ(P − Y)/N
  std::vector<double> row_loss_;  // [N]
  std::vector<double> theta_, mean_, scale_, history_;
};

}  // namespace contra::plugins
