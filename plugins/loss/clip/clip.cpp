#include "clip.hpp"

#include <contra/errors.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

using two_tower::column_span;
using two_tower::min_parallel_elements;

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// Logits enter every exponential as s·(c − m), m the largest cosine of the
// row or column: the difference is exact where it matters (near the
// largest), whereas s·c − s·m would carry the rounding of a logit of up to
// max_scale in size (~1e-5 at 100), enough to make a converged loss negative.

// For each row r of a block of cosines c (b × n): its largest cosine, and
// log Σ_j exp(s·(c_rj − largest)); the row's log-sum-exp of the logits is
// s·largest + that.
void row_logsumexp(const float* c, std::int64_t b, std::int64_t n, float s, float* row_max, double* row_log_sum) {
#pragma omp parallel for schedule(static) if (b * n > min_parallel_elements)
  for (std::int64_t r = 0; r < b; ++r) {
    const float* row = c + r * n;
    float largest = neg_inf;
#pragma omp simd reduction(max : largest)
    for (std::int64_t j = 0; j < n; ++j) largest = std::max(largest, row[j]);
    double sum = 0.0;
    for (std::int64_t j = 0; j < n; ++j) sum += std::exp(s * (row[j] - largest));
    row_max[r] = largest;
    row_log_sum[r] = std::log(sum);
  }
}

// The same for the columns, online across blocks of rows: each column keeps
// its largest cosine so far and Σ exp(s·(c − that largest)); a block with a
// larger one rescales the sum first. Each task owns a span of columns.
void add_to_column_logsumexp(const float* c, std::int64_t b, std::int64_t n, float s, float* column_max,
                             double* column_sum) {
#pragma omp parallel for schedule(static) if (b * n > min_parallel_elements)
  for (std::int64_t j0 = 0; j0 < n; j0 += column_span) {
    const std::int64_t j1 = std::min(n, j0 + column_span);
    float block_max[column_span];
    std::fill(block_max, block_max + (j1 - j0), neg_inf);
    for (std::int64_t r = 0; r < b; ++r) {
      const float* row = c + r * n;
#pragma omp simd
      for (std::int64_t j = j0; j < j1; ++j) block_max[j - j0] = std::max(block_max[j - j0], row[j]);
    }
    for (std::int64_t j = j0; j < j1; ++j) {
      const float largest = std::max(column_max[j], block_max[j - j0]);
      if (column_max[j] > neg_inf) column_sum[j] *= std::exp(static_cast<double>(s) * (column_max[j] - largest));
      column_max[j] = largest;
    }
    for (std::int64_t r = 0; r < b; ++r) {
      const float* row = c + r * n;
      for (std::int64_t j = j0; j < j1; ++j) column_sum[j] += std::exp(s * (row[j] - column_max[j]));
    }
  }
}

// The log-sum-exp of the rows and of the columns, as row_logsumexp() gives them.
struct LogSumExp {
  const float* row_max;
  const double* row_log_sum;
  const float* column_max;
  const double* column_log_sum;
};

// dL/dlogit_ij = (softmax_j(row i) + softmax_i(column j) − 2·[i = j]) / 2N for
// rows [i0, i0 + b), written over their cosines c; returns Σ dL/dlogit_ij · c_ij,
// the block's part of dL/ds.
double logit_gradients(float* c, std::int64_t i0, std::int64_t b, std::int64_t n, float s, const LogSumExp& lse) {
  const double half_mean = 0.5 / static_cast<double>(n);
  const float half_mean_f = static_cast<float>(half_mean);
  double dl_ds = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : dl_ds) if (b * n > min_parallel_elements)
  for (std::int64_t r = 0; r < b; ++r) {
    const std::int64_t i = i0 + r;
    float* row = c + r * n;
    const float row_max = lse.row_max[i], row_log_sum = static_cast<float>(lse.row_log_sum[i]);
    const float matching = row[i];
    double row_sum = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
      const float cosine = row[j];
      const float g = (std::exp(s * (cosine - row_max) - row_log_sum) +
                       std::exp(s * (cosine - lse.column_max[j]) - static_cast<float>(lse.column_log_sum[j]))) *
                      half_mean_f;
      row[j] = g;
      row_sum += static_cast<double>(g) * cosine;
    }
    // The matching pair: (softmax − 1) of the row and of the column, as
    // expm1 of the log-probabilities in double. Where the pair dominates,
    // 1 − softmax is below a float's resolution at 1 and would cancel to 0.
    const double log_p_row = s * (static_cast<double>(matching) - row_max) - lse.row_log_sum[i];
    const double log_p_column = s * (static_cast<double>(matching) - lse.column_max[i]) - lse.column_log_sum[i];
    const double g_matching = (std::expm1(log_p_row) + std::expm1(log_p_column)) * half_mean;
    row_sum += (g_matching - row[i]) * matching;
    row[i] = static_cast<float>(g_matching);
    dl_ds += row_sum;
  }
  return dl_ds;
}

}  // namespace

contra::Schema Clip::schema() {
  return contra::Schema("clip",
                        "CLIP's symmetric InfoNCE between two towers' views (image-text), with a learnable "
                        "temperature")
      .add<double>("init_temperature", 0.07,
                   "temperature T at the start: the learnt log-scale t starts at log(1/T), the logits are "
                   "exp(t) times the cosines")
      .range(1e-3, 10.0)
      .add<bool>("learn_temperature", true, "learn t (the parameter logit_scale); false keeps the scale 1/T")
      .add<double>("max_scale", 100.0, "the scale exp(t) is clamped at this (CLIP: 100); dL/dt is 0 while clamped")
      .at_least(1.0)
      .add<std::int64_t>("chunk", 1024,
                         "rows of the first view whose similarities are held at once; memory is chunk x N floats")
      .at_least(1);
}

Clip::Clip(const contra::Params& p)
    : learn_temperature_(p.get<bool>("learn_temperature")),
      max_scale_(p.get<double>("max_scale")),
      chunk_(p.get<std::int64_t>("chunk")),
      log_scale_(two_tower::scalar_parameter("logit_scale", std::log(1.0 / p.get<double>("init_temperature")))) {
  const double temperature = p.get<double>("init_temperature");
  if (1.0 / temperature > max_scale_) {
    contra::Diagnostic d{p.where("init_temperature"), p.prefix() + ".init_temperature",
                         "a temperature of " + contra::value_to_string(contra::Value(temperature)) +
                             " scales the logits by " + contra::value_to_string(contra::Value(1.0 / temperature)) +
                             ", above max_scale = " + contra::value_to_string(contra::Value(max_scale_)) +
                             " (it would start clamped, with no gradient); raise it or max_scale"};
    throw contra::ConfigError(d.str());
  }
}

std::vector<contra::Parameter*> Clip::parameters() {
  if (!learn_temperature_) return {};
  return {&log_scale_};
}

void Clip::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  contra::check_pairs_form("clip", pairs, pairs_forms::all_only());
  views_.load("clip", emb);
  const std::int64_t n = views_.samples();

  // Clamped where t > log(max_scale), compared as the float t is stored: a t
  // set to log(max_scale) is not clamped by the rounding of its exp.
  const double t = two_tower::value_of(log_scale_);
  const bool clamped = t > static_cast<double>(static_cast<float>(std::log(max_scale_)));
  const float s = static_cast<float>(clamped ? max_scale_ : std::exp(t));
  const double scale = s;  // the scale every product uses, in double where sums need it

  const std::int64_t block_rows = std::min(chunk_, n);
  const bool one_block = block_rows == n;  // pass 2 reuses pass 1's cosines
  block_.ensure({block_rows, n}, contra::DType::f32);
  float* c = block_.data<float>();
  row_max_.assign(static_cast<std::size_t>(n), 0.0f);
  row_log_sum_.assign(static_cast<std::size_t>(n), 0.0);
  column_max_.assign(static_cast<std::size_t>(n), neg_inf);
  column_log_sum_.assign(static_cast<std::size_t>(n), 0.0);
  tally_.start(n);

  // Pass 1: the log-sum-exp of every row and every column of the logits.
  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    views_.cosines(i0, b, c);
    tally_.add_rows(c, i0, b);
    row_logsumexp(c, b, n, s, row_max_.data() + i0, row_log_sum_.data() + i0);
    add_to_column_logsumexp(c, b, n, s, column_max_.data(), column_log_sum_.data());
  }
  for (double& sum : column_log_sum_) sum = std::log(sum);
  // Row i's cross-entropy is log Σ_j exp(logit_ij) − logit_ii
  // = row_log_sum_i + s·(row_max_i − C_ii); column i's likewise.
  const std::vector<float>& matching = tally_.matching_cosines();
  double cross_entropy_sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    cross_entropy_sum += row_log_sum_[i] + scale * (static_cast<double>(row_max_[i]) - matching[i]) +
                         column_log_sum_[i] + scale * (static_cast<double>(column_max_[i]) - matching[i]);
  out.value = cross_entropy_sum / (2.0 * static_cast<double>(n));

  // Pass 2: dL/dlogits block by block, into dL/dẑ and dL/ds.
  const LogSumExp lse{row_max_.data(), row_log_sum_.data(), column_max_.data(), column_log_sum_.data()};
  double dl_ds = 0.0;
  for (std::int64_t i0 = 0; i0 < n; i0 += block_rows) {
    const std::int64_t b = std::min(block_rows, n - i0);
    if (!one_block) views_.cosines(i0, b, c);
    dl_ds += logit_gradients(c, i0, b, n, s, lse);
    views_.backprop(i0, b, c, s);
  }
  views_.backward(out.grad);
  // s = exp(t): dL/dt = s·dL/ds; a clamped s does not depend on t.
  if (learn_temperature_ && !clamped) two_tower::add_gradient(log_scale_, scale * dl_ds);

  out.metrics.emplace_back("logit_scale", scale);
  tally_.write_metrics(out.metrics);
}

}  // namespace contra::plugins
