#pragma once
// Gradient check of a layer against central finite differences, as Catch2
// checks. The arithmetic is the SDK's (contra/testing.hpp,
// contra::testing::check_gradients: L = Σ y ⊙ w for a fixed random w, so
// dL/dy = w; the analytic dL/dx and dL/dθ are compared with
// (L(θ+ε) − L(θ−ε)) / 2ε at sampled coordinates); this header reports every
// compared coordinate to Catch2.

#include "test_support.hpp"

#include <contra/nn/layer.hpp>
#include <contra/testing.hpp>

#include <string>
#include <vector>

namespace contra::test {

using contra::testing::random_tensor;
using GradCheckOptions = contra::testing::GradientOptions;

/// Gradient check of anything with forward(x) -> y and backward(dy) -> dx
/// that accumulates into `params`' grads. Returns the worst
/// |analytic − numeric| / (abs_tol + rel_tol·scale) seen (<= 1 passes).
template <class Forward, class Backward>
double check_gradients(Forward forward, Backward backward, const std::vector<Parameter*>& params, Tensor x,
                       const GradCheckOptions& o = {}) {
  const contra::testing::GradientReport rep = contra::testing::check_gradients(forward, backward, params, x, o);
  for (const auto& s : rep.samples) {
    if (s.score > 1.0 && o.min_agreement < 1.0) {
      WARN(s.what << "[" << s.index << "]: analytic " << s.analytic << ", numeric " << s.numeric << " (tolerated)");
      continue;
    }
    INFO(s.what << "[" << s.index << "]: analytic " << s.analytic << ", numeric " << s.numeric);
    CHECK(s.score <= 1.0);
  }
  INFO(rep.skipped << " of " << (rep.checked + rep.skipped) << " coordinates skipped as next to a kink, "
                   << rep.disagreed << " of " << rep.checked << " disagreed");
  CHECK(rep.skipped <= o.max_skipped * (rep.checked + rep.skipped));
  CHECK(rep.checked - rep.disagreed >= o.min_agreement * rep.checked);
  return rep.worst;
}

/// check_gradients for one layer.
inline double check_layer_gradients(nn::Layer& layer, Tensor x, const GradCheckOptions& o = {}) {
  std::vector<Parameter*> params;
  layer.parameters(params);
  return contra::test::check_gradients([&](const Tensor& in) -> const Tensor& { return layer.forward(in, o.mode); },
                         [&](const Tensor& dy) -> const Tensor& { return layer.backward(dy, true); }, params, x, o);
}

/// check_gradients for an encoder plugin (already built).
inline double check_encoder_gradients(Encoder& e, Tensor x, const GradCheckOptions& o = {}) {
  return contra::test::check_gradients([&](const Tensor& in) -> const Tensor& { return e.forward(in, o.mode); },
                         [&](const Tensor& dy) -> const Tensor& { return e.backward(dy, true); }, e.parameters(),
                         x, o);
}

}  // namespace contra::test
