#pragma once
// Gradient check of a layer against central finite differences, in double
// arithmetic of the layer's float outputs: L = Σ y ⊙ w for a fixed random w,
// so dL/dy = w; the analytic dL/dx and dL/dθ are compared with
// (L(θ+ε) − L(θ−ε)) / 2ε at sampled coordinates.

#include "test_support.hpp"

#include <contra/nn/layer.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace contra::test {

inline Tensor random_tensor(const Shape& s, std::uint64_t key, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::empty(s, DType::f32);
  Rng rng(key, 0, 0, 0, 0);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

struct GradCheckOptions {
  double eps = 1e-2;        ///< finite-difference step
  double rel_tol = 2e-2;    ///< |a − n| <= abs_tol + rel_tol·max(|a|, |n|)
  double abs_tol = 2e-3;
  int samples = 24;         ///< coordinates checked per tensor
  Mode mode = Mode::train;
  /// Share of checked coordinates that must agree. Below 1 only for deep
  /// ReLU/max-pool networks in float32, where some step crosses a kink that
  /// the one-sided test misses; a wiring bug fails most coordinates.
  double min_agreement = 1.0;
};

/// Gradient check of anything with forward(x) -> y and backward(dy) -> dx
/// that accumulates into `params`' grads. Returns the worst
/// |analytic − numeric| / (abs_tol + rel_tol·scale) seen (<= 1 passes).
template <class Forward, class Backward>
double check_gradients(Forward forward, Backward backward, const std::vector<Parameter*>& params, Tensor x,
                       const GradCheckOptions& o = {}) {
  // Weighting of the output: fixed for the whole check.
  Tensor y0 = forward(x).clone();
  Tensor w = random_tensor(y0.shape(), 777);
  auto loss = [&]() {
    const Tensor& y = forward(x);
    const float* py = y.template data<float>();
    const float* pw = w.data<float>();
    double s = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(py[i]) * pw[i];
    return s;
  };
  for (Parameter* p : params) p->grad.zero();
  forward(x);
  Tensor dx = backward(w).clone();
  std::vector<Tensor> grads;
  for (Parameter* p : params) grads.push_back(p->grad.clone());

  // A coordinate next to a kink (a ReLU or max-pool switch within eps) has
  // one-sided differences that disagree; such coordinates are skipped, and at
  // most a quarter of the samples may be.
  double worst = 0;
  int checked = 0, skipped = 0, disagreed = 0;
  auto compare = [&](const std::string& what, float* data, const float* analytic, std::int64_t n) {
    Rng pick(99, 0, static_cast<std::uint64_t>(n), 0, 0);
    for (int s = 0; s < std::min<std::int64_t>(o.samples, n); ++s) {
      std::int64_t i = s < 2 ? (s == 0 ? 0 : n - 1) : pick.integer(0, n - 1);
      const float saved = data[i];
      const double f0 = loss();
      data[i] = static_cast<float>(saved + o.eps);
      const double up = loss();
      data[i] = static_cast<float>(saved - o.eps);
      const double down = loss();
      data[i] = saved;
      const double forward_d = (up - f0) / o.eps, backward_d = (f0 - down) / o.eps;
      const double num = (up - down) / (2 * o.eps);
      const double a = analytic[i];
      const double scale = o.abs_tol + o.rel_tol * std::max(std::fabs(a), std::fabs(num));
      if (std::fabs(forward_d - backward_d) > 2 * scale) {
        ++skipped;
        continue;
      }
      ++checked;
      double score = std::fabs(a - num) / scale;
      worst = std::max(worst, score);
      if (score > 1.0) {
        ++disagreed;
        if (o.min_agreement < 1.0) {
          WARN(what << "[" << i << "]: analytic " << a << ", numeric " << num << " (tolerated)");
          continue;
        }
      }
      INFO(what << "[" << i << "]: analytic " << a << ", numeric " << num);
      CHECK(score <= 1.0);
    }
  };
  compare("dL/dx", x.data<float>(), dx.data<float>(), x.numel());
  for (std::size_t k = 0; k < params.size(); ++k)
    compare("dL/d" + params[k]->name, params[k]->value.data<float>(), grads[k].data<float>(),
            params[k]->value.numel());
  INFO(skipped << " of " << (checked + skipped) << " coordinates skipped as next to a kink, " << disagreed
                << " of " << checked << " disagreed");
  CHECK(skipped * 4 <= checked + skipped);
  CHECK(checked - disagreed >= o.min_agreement * checked);
  return worst;
}

/// check_gradients for one layer.
inline double check_layer_gradients(nn::Layer& layer, Tensor x, const GradCheckOptions& o = {}) {
  std::vector<Parameter*> params;
  layer.parameters(params);
  return check_gradients([&](const Tensor& in) -> const Tensor& { return layer.forward(in, o.mode); },
                         [&](const Tensor& dy) -> const Tensor& { return layer.backward(dy, true); }, params, x, o);
}

/// check_gradients for an encoder plugin (already built).
inline double check_encoder_gradients(Encoder& e, Tensor x, const GradCheckOptions& o = {}) {
  return check_gradients([&](const Tensor& in) -> const Tensor& { return e.forward(in, o.mode); },
                         [&](const Tensor& dy) -> const Tensor& { return e.backward(dy, true); }, e.parameters(),
                         x, o);
}

}  // namespace contra::test
