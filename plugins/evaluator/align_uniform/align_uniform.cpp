#include "align_uniform.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/rng.hpp>
#include <contra/tensor.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

namespace {

// Norms below this are clamped, as torch.nn.functional.normalize does.
constexpr double norm_eps = 1e-12;
// Rows of the Gram matrix computed per sgemm in the uniformity pass.
constexpr std::int64_t block_rows = 256;
// Rng streams (the `op` of contra::Rng).
constexpr std::uint32_t op_rows = 1, op_pairs = 2;

void check_test(const contra::FeatureSet& s) {
  const std::string w = "align_uniform: test split";
  if (!s.features.defined() || s.features.rank() != 2 || s.features.dtype() != DType::f32 ||
      s.features.device() != Device::cpu)
    throw UsageError(w + ": features must be a [N, D] f32 tensor on the CPU, got " +
                     (s.features.defined() ? s.features.shape().str() + " " + dtype_name(s.features.dtype()) +
                                                 " on " + device_name(s.features.device())
                                           : std::string("an undefined tensor")));
  const std::int64_t n = s.features.dim(0);
  if (n < 2) throw UsageError(w + " has " + std::to_string(n) + " rows; uniformity needs at least 2");
  if (static_cast<std::int64_t>(s.labels.size()) != n)
    throw UsageError(w + ": " + std::to_string(s.labels.size()) + " labels for " + std::to_string(n) + " rows");
  if (s.num_classes < 1) throw UsageError(w + ": num_classes is " + std::to_string(s.num_classes));
  for (std::size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] < 0 || s.labels[i] >= s.num_classes)
      throw UsageError(w + ": label " + std::to_string(s.labels[i]) + " of row " + std::to_string(i) +
                       " is outside [0, " + std::to_string(s.num_classes) + ")");
}

// The listed rows of x, each divided by its L2 norm (clamped at norm_eps),
// into a fresh [rows.size(), D] tensor; their squared norms (1, or 0 for a
// zero row) into sq.
contra::Tensor normalised(const contra::Tensor& x, const std::vector<std::int64_t>& rows,
                          std::vector<double>& sq) {
  const std::int64_t m = static_cast<std::int64_t>(rows.size()), d = x.dim(1);
  contra::Tensor out = contra::Tensor::empty({m, d}, DType::f32);
  sq.assign(rows.size(), 0.0);
  const float* in = x.data<float>();
  float* y = out.data<float>();
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < m; ++r) {
    const float* xi = in + rows[r] * d;
    double ss = 0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(xi[k]) * xi[k];
    const double inv = 1.0 / std::max(std::sqrt(ss), norm_eps);
    double s2 = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      y[r * d + k] = static_cast<float>(xi[k] * inv);
      s2 += static_cast<double>(y[r * d + k]) * y[r * d + k];
    }
    sq[r] = s2;
  }
  return out;
}

// ‖f̂_i − f̂_j‖² of two rows of x, in double.
double squared_distance(const float* x, std::int64_t d, std::int64_t i, std::int64_t j) {
  const float* a = x + i * d;
  const float* b = x + j * d;
  double ss = 0;
  for (std::int64_t k = 0; k < d; ++k) {
    const double v = static_cast<double>(a[k]) - b[k];
    ss += v * v;
  }
  return ss;
}

}  // namespace

contra::Schema AlignUniform::schema() {
  return contra::Schema("align_uniform",
                        "alignment (same-label pairs) and uniformity of normalised test features (Wang & Isola 2020)")
      .add<double>("t", 2.0, "uniformity kernel exp(−t ‖f_i − f_j‖²)")
      .range(1e-3, 100.0)
      .add<double>("alpha", 2.0, "alignment exponent: mean ‖f_i − f_j‖^alpha over same-label pairs")
      .range(1e-3, 10.0)
      .add<std::int64_t>("max_rows", 4096, "uniformity over all pairs of at most this many rows (seeded subset)")
      .range(2, 1 << 20)
      .add<std::int64_t>("max_pairs", 65536, "alignment over at most this many same-label pairs (seeded sample)")
      .at_least(1);
}

AlignUniform::AlignUniform(const contra::Params& p)
    : t_(p.get<double>("t")),
      alpha_(p.get<double>("alpha")),
      max_rows_(p.get<std::int64_t>("max_rows")),
      max_pairs_(p.get<std::int64_t>("max_pairs")) {}

std::vector<std::pair<std::string, double>> AlignUniform::evaluate(const contra::FeatureSet&,
                                                                   const contra::FeatureSet& test,
                                                                   std::uint64_t seed) {
  check_test(test);
  const std::int64_t n = test.features.dim(0), d = test.features.dim(1);

  // ---- uniformity: all unordered pairs of the chosen rows ----
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  if (n > max_rows_) {
    // Partial Fisher-Yates: the first max_rows entries are a uniform subset.
    contra::Rng rng(seed, 0, 0, 0, op_rows);
    for (std::int64_t i = 0; i < max_rows_; ++i) std::swap(rows[i], rows[rng.integer(i, n - 1)]);
    rows.resize(static_cast<std::size_t>(max_rows_));
    std::sort(rows.begin(), rows.end());
  }
  const std::int64_t m = static_cast<std::int64_t>(rows.size());
  std::vector<double> sq;
  const contra::Tensor f = normalised(test.features, rows, sq);
  const float* fp = f.data<float>();
  contra::Tensor gram = contra::Tensor::empty({std::min(block_rows, m), m}, DType::f32);
  float* g = gram.data<float>();
  std::vector<double> row_sum(static_cast<std::size_t>(m), 0.0);
  const double t = t_;
  for (std::int64_t begin = 0; begin < m; begin += block_rows) {
    const std::int64_t b = std::min(block_rows, m - begin);
    // Only columns j > i are needed: from column begin + 1 on.
    const std::int64_t col0 = begin + 1;
    if (col0 >= m) break;
    sgemm(false, true, b, m - col0, d, 1.0f, fp + begin * d, d, fp + col0 * d, d, 0.0f, g, m - col0);
#pragma omp parallel for schedule(dynamic, 8)
    for (std::int64_t r = 0; r < b; ++r) {
      const std::int64_t i = begin + r;
      const float* gr = g + r * (m - col0);
      double s = 0;
      for (std::int64_t j = i + 1; j < m; ++j) {
        const double d2 = std::max(0.0, sq[i] + sq[j] - 2.0 * gr[j - col0]);
        s += std::exp(-t * d2);
      }
      row_sum[i] = s;
    }
  }
  double total = 0;
  for (double s : row_sum) total += s;
  const double pairs_u = 0.5 * static_cast<double>(m) * static_cast<double>(m - 1);
  const double uniformity = std::log(total / pairs_u);

  // ---- alignment: same-label pairs of all test rows ----
  const std::int64_t classes = test.num_classes;
  std::vector<std::int64_t> start(static_cast<std::size_t>(classes + 1), 0), members(static_cast<std::size_t>(n));
  for (std::int64_t y : test.labels) ++start[y + 1];
  for (std::int64_t c = 0; c < classes; ++c) start[c + 1] += start[c];
  {
    std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
    for (std::int64_t i = 0; i < n; ++i) members[fill[test.labels[i]]++] = i;  // ascending within a class
  }
  // Pairs per class, cumulative: class c owns pair numbers [cum[c], cum[c + 1]).
  std::vector<std::int64_t> cum(static_cast<std::size_t>(classes + 1), 0);
  for (std::int64_t c = 0; c < classes; ++c) {
    const std::int64_t k = start[c + 1] - start[c];
    cum[c + 1] = cum[c] + k * (k - 1) / 2;
  }
  const std::int64_t pair_count = cum[classes];
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  if (pair_count <= max_pairs_) {
    pairs.reserve(static_cast<std::size_t>(pair_count));
    for (std::int64_t c = 0; c < classes; ++c)
      for (std::int64_t a = start[c]; a < start[c + 1]; ++a)
        for (std::int64_t b = a + 1; b < start[c + 1]; ++b) pairs.emplace_back(members[a], members[b]);
  } else {
    contra::Rng rng(seed, 0, 0, 0, op_pairs);
    pairs.reserve(static_cast<std::size_t>(max_pairs_));
    for (std::int64_t s = 0; s < max_pairs_; ++s) {
      const std::int64_t r = rng.integer(0, pair_count - 1);
      const std::int64_t c = std::upper_bound(cum.begin(), cum.end(), r) - cum.begin() - 1;
      const std::int64_t k = start[c + 1] - start[c];
      const std::int64_t a = rng.integer(0, k - 1);
      std::int64_t b = rng.integer(0, k - 2);
      b += b >= a ? 1 : 0;
      pairs.emplace_back(members[start[c] + a], members[start[c] + b]);
    }
  }
  double alignment = std::numeric_limits<double>::quiet_NaN();
  if (!pairs.empty()) {
    // Normalised copies of just the rows the pairs use would save little: normalise all.
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), std::int64_t{0});
    std::vector<double> sq_all;
    const contra::Tensor fa = normalised(test.features, all, sq_all);
    const float* fap = fa.data<float>();
    const std::int64_t np = static_cast<std::int64_t>(pairs.size());
    std::vector<double> value(static_cast<std::size_t>(np));
    const double half_alpha = 0.5 * alpha_;
#pragma omp parallel for schedule(static)
    for (std::int64_t p = 0; p < np; ++p)
      value[p] = std::pow(squared_distance(fap, d, pairs[p].first, pairs[p].second), half_alpha);
    double s = 0;
    for (double v : value) s += v;
    alignment = s / static_cast<double>(np);
  }
  return {{"alignment", alignment}, {"uniformity", uniformity}};
}

}  // namespace contra::plugins
