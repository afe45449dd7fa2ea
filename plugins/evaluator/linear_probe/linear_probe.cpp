#include "linear_probe.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

void check_split(const contra::FeatureSet& s, const char* which) {
  const std::string w = std::string("linear_probe: ") + which + " split";
  if (!s.features.defined() || s.features.rank() != 2 || s.features.dtype() != DType::f32 ||
      s.features.device() != Device::cpu)
    throw UsageError(w + ": features must be a [N, D] f32 tensor on the CPU, got " +
                     (s.features.defined() ? s.features.shape().str() + " " + dtype_name(s.features.dtype()) +
                                                 " on " + device_name(s.features.device())
                                           : std::string("an undefined tensor")));
  const std::int64_t n = s.features.dim(0);
  if (n == 0) throw UsageError(w + " is empty");
  if (static_cast<std::int64_t>(s.labels.size()) != n)
    throw UsageError(w + ": " + std::to_string(s.labels.size()) + " labels for " + std::to_string(n) + " rows");
  if (s.num_classes < 1) throw UsageError(w + ": num_classes is " + std::to_string(s.num_classes));
  for (std::size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] < 0 || s.labels[i] >= s.num_classes)
      throw UsageError(w + ": label " + std::to_string(s.labels[i]) + " of row " + std::to_string(i) +
                       " is outside [0, " + std::to_string(s.num_classes) + ")");
}

// (x − mean) / scale into a fresh [N, D] tensor.
contra::Tensor standardise(const contra::Tensor& in, const std::vector<double>& mean,
                           const std::vector<double>& scale) {
  const std::int64_t n = in.dim(0), d = in.dim(1);
  contra::Tensor out = contra::Tensor::empty({n, d}, DType::f32);
  const float* x = in.data<float>();
  float* y = out.data<float>();
  std::vector<double> inv(scale.size());
  for (std::size_t k = 0; k < scale.size(); ++k) inv[k] = 1.0 / scale[k];
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) y[i * d + k] = static_cast<float>((x[i * d + k] - mean[k]) * inv[k]);
  return out;
}

// Logits z = x W + b for every row of x ([N, D] standardised), then the
// fraction of rows whose argmax (equal logits: lower class) is the label.
double accuracy(const contra::Tensor& x, const std::vector<std::int64_t>& labels, const std::vector<double>& theta,
                std::int64_t c, contra::Tensor& w, contra::Tensor& z) {
  const std::int64_t n = x.dim(0), d = x.dim(1);
  z.ensure({n, c}, DType::f32);
  float* zp = z.data<float>();
  sgemm(false, false, n, c, d, 1.0f, x.data<float>(), d, w.data<float>(), c, 0.0f, zp, c);
  const double* b = theta.data() + d * c;
  std::int64_t right = 0;
#pragma omp parallel for schedule(static) reduction(+ : right)
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t best = 0;
    double top = zp[i * c] + b[0];
    for (std::int64_t k = 1; k < c; ++k) {
      const double v = zp[i * c + k] + b[k];
      if (v > top) top = v, best = k;
    }
    right += best == labels[static_cast<std::size_t>(i)] ? 1 : 0;
  }
  return static_cast<double>(right) / static_cast<double>(n);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

contra::Schema LinearProbe::schema() {
  return contra::Schema("linear_probe",
                        "multinomial logistic regression on frozen standardised features (full-batch L-BFGS)")
      .add<double>("l2", 1e-4, "L2 penalty l2/2 · ‖W‖² on the weights (not the bias)")
      .range(0.0, 1e6)
      .add<std::int64_t>("max_iter", 200, "most L-BFGS iterations")
      .range(1, 100000)
      .add<double>("tolerance", 1e-6, "stop when max |gradient| or the relative decrease of the loss is below")
      .range(0.0, 1.0)
      .add<std::int64_t>("history", 10, "L-BFGS correction pairs kept")
      .range(1, 100);
}

LinearProbe::LinearProbe(const contra::Params& p)
    : l2_(p.get<double>("l2")),
      max_iter_(p.get<std::int64_t>("max_iter")),
      tolerance_(p.get<double>("tolerance")),
      memory_(p.get<std::int64_t>("history")) {}

double LinearProbe::objective(const std::vector<double>& theta, std::vector<double>& grad) {
  const std::int64_t n = n_, d = d_, c = c_;
  float* w = w_.data<float>();
  for (std::int64_t k = 0; k < d * c; ++k) w[k] = static_cast<float>(theta[k]);
  float* z = z_.data<float>();
  const float* x = x_.data<float>();
  sgemm(false, false, n, c, d, 1.0f, x, d, w, c, 0.0f, z, c);
  const double* b = theta.data() + d * c;
  const std::int64_t* y = labels_;
  double* loss = row_loss_.data();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    float* zi = z + i * c;
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t k = 0; k < c; ++k) m = std::max(m, zi[k] + b[k]);
    double sum = 0;
    for (std::int64_t k = 0; k < c; ++k) sum += std::exp(zi[k] + b[k] - m);
    const double lse = m + std::log(sum);
    loss[i] = lse - (zi[y[i]] + b[y[i]]);
    // ∂loss_i/∂z_ik = softmax_k − [k = y_i]
    for (std::int64_t k = 0; k < c; ++k) zi[k] = static_cast<float>(std::exp(zi[k] + b[k] - lse));
    zi[y[i]] -= 1.0f;
  }
  // Serial sums: the same whatever the thread count.
  double f = 0;
  for (std::int64_t i = 0; i < n; ++i) f += loss[i];
  f /= static_cast<double>(n);
  double penalty = 0;
  for (std::int64_t k = 0; k < d * c; ++k) penalty += theta[k] * theta[k];
  f += 0.5 * l2_ * penalty;

  float* gw = gw_.data<float>();
  sgemm(true, false, d, c, n, static_cast<float>(1.0 / static_cast<double>(n)), x, d, z, c, 0.0f, gw, c);
  for (std::int64_t k = 0; k < d * c; ++k) grad[k] = gw[k] + l2_ * theta[k];
  double* gb = grad.data() + d * c;
  std::fill(gb, gb + c, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < c; ++k) gb[k] += z[i * c + k];
  for (std::int64_t k = 0; k < c; ++k) gb[k] /= static_cast<double>(n);
  return f;
}

std::vector<std::pair<std::string, double>> LinearProbe::evaluate(const contra::FeatureSet& train,
                                                                  const contra::FeatureSet& test, std::uint64_t) {
  check_split(train, "train");
  check_split(test, "test");
  n_ = train.features.dim(0);
  d_ = train.features.dim(1);
  if (test.features.dim(1) != d_)
    throw UsageError("linear_probe: train features have " + std::to_string(d_) + " dimensions, test features " +
                     std::to_string(test.features.dim(1)));
  c_ = std::max(train.num_classes, test.num_classes);
  labels_ = train.labels.data();
  const std::int64_t n = n_, d = d_, c = c_;

  // Standardisation from the train split: two passes in double. A dimension
  // whose spread is below float resolution of its mean (or zero) is constant:
  // σ = 1, so it becomes x − μ ≈ 0 on train instead of amplified rounding.
  mean_.assign(static_cast<std::size_t>(d), 0.0);
  scale_.assign(static_cast<std::size_t>(d), 0.0);
  const float* xin = train.features.data<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) mean_[k] += xin[i * d + k];
  for (auto& m : mean_) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      const double v = xin[i * d + k] - mean_[k];
      scale_[k] += v * v;
    }
  for (std::int64_t k = 0; k < d; ++k) {
    const double sd = std::sqrt(scale_[k] / static_cast<double>(n));
    scale_[k] = (sd > 1e-6 * std::abs(mean_[k]) && sd > 1e-30) ? sd : 1.0;
  }
  x_ = standardise(train.features, mean_, scale_);
  z_.ensure({n, c}, DType::f32);
  w_.ensure({d, c}, DType::f32);
  gw_.ensure({d, c}, DType::f32);
  row_loss_.assign(static_cast<std::size_t>(n), 0.0);

  // L-BFGS (Nocedal & Wright, Algorithm 7.4/7.5) with backtracking Armijo steps.
  const std::size_t p = static_cast<std::size_t>((d + 1) * c);
  theta_.assign(p, 0.0);
  std::vector<double> g(p), trial(p), g_trial(p), dir(p), alpha(static_cast<std::size_t>(memory_));
  std::deque<std::pair<std::vector<double>, std::vector<double>>> pairs;  // (s, y), oldest first
  std::deque<double> rho;
  double f = objective(theta_, g);
  history_.assign(1, f);
  std::int64_t iterations = 0;
  constexpr double armijo = 1e-4;
  while (iterations < max_iter_ && max_abs(g) > tolerance_) {
    // Two-loop recursion: dir = −H g.
    for (std::size_t i = 0; i < p; ++i) dir[i] = -g[i];
    for (std::size_t j = pairs.size(); j-- > 0;) {
      alpha[j] = rho[j] * dot(pairs[j].first, dir);
      for (std::size_t i = 0; i < p; ++i) dir[i] -= alpha[j] * pairs[j].second[i];
    }
    double step = 1.0;
    if (!pairs.empty()) {
      const auto& [s, yv] = pairs.back();
      const double gamma = dot(s, yv) / dot(yv, yv);
      for (double& v : dir) v *= gamma;
    } else {
      // First step (or after a reset): steepest descent scaled to a unit first move.
      double l1 = 0;
      for (double v : g) l1 += std::abs(v);
      step = std::min(1.0, 1.0 / l1);
    }
    for (std::size_t j = 0; j < pairs.size(); ++j) {
      const double beta = rho[j] * dot(pairs[j].second, dir);
      for (std::size_t i = 0; i < p; ++i) dir[i] += (alpha[j] - beta) * pairs[j].first[i];
    }
    double slope = dot(g, dir);
    if (!(slope < 0)) {  // not a descent direction (rounding): restart from steepest descent
      pairs.clear();
      rho.clear();
      for (std::size_t i = 0; i < p; ++i) dir[i] = -g[i];
      slope = dot(g, dir);
      double l1 = 0;
      for (double v : g) l1 += std::abs(v);
      step = std::min(1.0, 1.0 / l1);
    }
    double f_trial = f;
    bool accepted = false;
    for (int tries = 0; tries < 30; ++tries) {  // down to step · 2^-29
      for (std::size_t i = 0; i < p; ++i) trial[i] = theta_[i] + step * dir[i];
      f_trial = objective(trial, g_trial);
      if (f_trial <= f + armijo * step * slope) {
        accepted = f_trial < f;  // equal: the step is below rounding
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;  // no step decreases f (converged to rounding)
    ++iterations;
    std::vector<double> s(p), yv(p);
    for (std::size_t i = 0; i < p; ++i) {
      s[i] = trial[i] - theta_[i];
      yv[i] = g_trial[i] - g[i];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12 * dot(yv, yv) && sy > 0) {
      if (static_cast<std::int64_t>(pairs.size()) == memory_) {
        pairs.pop_front();
        rho.pop_front();
      }
      pairs.emplace_back(std::move(s), std::move(yv));
      rho.push_back(1.0 / sy);
    }
    const double decrease = f - f_trial;
    theta_.swap(trial);
    g.swap(g_trial);
    f = f_trial;
    history_.push_back(f);
    if (decrease <= tolerance_ * std::max({std::abs(f), std::abs(f + decrease), 1.0})) break;
  }

  // Accuracies with the final parameters.
  float* w = w_.data<float>();
  for (std::int64_t k = 0; k < d * c; ++k) w[k] = static_cast<float>(theta_[k]);
  const double train_top1 = accuracy(x_, train.labels, theta_, c, w_, z_);
  const contra::Tensor xt = standardise(test.features, mean_, scale_);
  contra::Tensor zt;
  const double top1 = accuracy(xt, test.labels, theta_, c, w_, zt);

  // Large buffers are not kept between evaluations.
  x_ = contra::Tensor();
  z_ = contra::Tensor();
  row_loss_ = {};
  labels_ = nullptr;
  return {{"top1", top1}, {"train_top1", train_top1}, {"loss", f}, {"iterations", static_cast<double>(iterations)}};
}

}  // namespace contra::plugins
