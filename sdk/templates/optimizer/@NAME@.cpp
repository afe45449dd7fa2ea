// @NAME@: a contra optimizer plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [optimizer] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "plain stochastic gradient descent with weight decay")
      .add<double>("lr", 0.1, "learning rate").range(0.0, 100.0)
      .add<double>("weight_decay", 0.0, "L2 penalty on parameters with decay = true").range(0.0, 1.0);
}

@CLASS@::@CLASS@(const contra::Params& p) : lr_(p.get<double>("lr")), weight_decay_(p.get<double>("weight_decay")) {}

void @CLASS@::configure(const std::vector<contra::Parameter*>& params) { params_ = params; }

// Skeleton: θ ← θ − lr·scale·(g + wd·θ). Replace with your update; keep any
// state (momenta) per parameter, allocated in configure().
void @CLASS@::step(const contra::OptimizerStep& s) {
  last_lr_ = lr_ * s.lr_scale;
  for (contra::Parameter* p : params_) {
    float* w = p->value.data<float>();
    const float* g = p->grad.data<float>();
    const double wd = p->decay ? weight_decay_ : 0.0;
    for (std::int64_t i = 0; i < p->value.numel(); ++i)
      w[i] = static_cast<float>(w[i] - last_lr_ * (g[i] + wd * w[i]));
  }
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_OPTIMIZER(@CLASS@))
