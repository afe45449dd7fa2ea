#pragma once
// What the two-tower losses (clip, siglip) share: which two views of a batch
// they contrast and the checks that go with it, the views' normalised rows,
// the blocks of cosine similarities both compute and the gradient back
// through them, their learnable scalars (Loss::parameters()), and the
// in-batch retrieval metrics. Header-only, like pairs_forms.hpp: each plugin
// library compiles its own copy.
//
// Both losses compare row i of one view (say the image of sample i) with
// row j of the other (the caption of sample j): C = Â·B̂ᵀ (N × N) with Â, B̂
// the two views' rows scaled to unit length. They hold C `chunk` rows at a
// time (a block of rows of Â against every row of B̂), never N × N at once.

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/roles/miner.hpp>
#include <contra/tensor.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace contra::plugins::two_tower {

/// Below this many similarities a block's element-wise passes run on the
/// calling thread alone (an OpenMP team costs more than it saves).
inline constexpr std::int64_t min_parallel_elements = 1 << 15;

/// Columns per task where a pass over a block goes column by column.
inline constexpr std::int64_t column_span = 256;

/// The two views a two-tower loss contrasts, as rows of the batch: row
/// first·N + i (e.g. the image of sample i) matches row second·N + i (its
/// caption), and every other pairing is a negative.
struct ViewPair {
  std::int64_t first = 0;    ///< the view of the lower-numbered tower (the image); view 0 without towers
  std::int64_t second = 1;   ///< the other view
  std::int64_t samples = 0;  ///< N
};

/// Checks that `emb` is what a two-tower loss takes and picks its two views:
/// an f32 [2N, D] CPU tensor of V = 2 views, N ≥ 1, the two views from
/// different towers when Embeddings::view_tower says which (else view 0 is
/// `first`), row v·N + i holding view v of sample i, and no momentum keys
/// or memory (the loss would silently leave them out). Throws UsageError
/// starting "<who>: ".
inline ViewPair pick_views(std::string_view who_name, const Embeddings& emb) {
  const std::string who(who_name);
  const std::int64_t rows = check_embeddings(who, emb);
  if (emb.views != 2) {
    std::string message = who + ": contrasts 2 views, one per tower (e.g. an image and its caption), but the batch has " +
                          std::to_string(emb.views) + (emb.views == 1 ? " view" : " views");
    if (emb.view_tower) {
      message += " (from towers";
      for (std::size_t v = 0; v < emb.view_tower->size(); ++v)
        message += (v == 0 ? " " : ", ") + std::to_string((*emb.view_tower)[v]);
      message += "): set [augment] views = 1 beside one [tower.NAME]";
    }
    throw UsageError(message);
  }
  if (emb.keys.defined() || emb.memory)
    throw UsageError(who +
                     ": takes no momentum keys and no memory (it contrasts the two towers' views of the batch); "
                     "remove [memory]");
  if (rows == 0 || rows % 2 != 0)
    throw UsageError(who + ": expected the rows of 2 views of N >= 1 samples, got " + std::to_string(rows) + " rows");
  ViewPair pair;
  pair.samples = rows / 2;
  if (emb.view_tower) {
    const std::vector<std::int32_t>& tower = *emb.view_tower;
    if (tower.size() != 2)
      throw UsageError(who + ": Embeddings::view_tower has " + std::to_string(tower.size()) + " entries for 2 views");
    if (tower[0] == tower[1])
      throw UsageError(who + ": both views come from tower " + std::to_string(tower[0]) +
                       "; it contrasts the views of two towers (e.g. the [encoder]'s images and a [tower.NAME]'s "
                       "captions)");
    if (tower[1] < tower[0]) std::swap(pair.first, pair.second);
  }
  // The matching pairs are found by position: sample i's rows are i and N + i.
  const std::vector<std::int64_t>& sample = *emb.sample;
  const std::int64_t n = pair.samples;
  for (std::int64_t i = 0; i < n; ++i)
    if (sample[i] != sample[n + i])
      throw UsageError(who + ": rows " + std::to_string(i) + " and " + std::to_string(n + i) + " are samples " +
                       std::to_string(sample[i]) + " and " + std::to_string(sample[n + i]) +
                       "; row v·N + i must be view v of sample i");
  return pair;
}

/// A learnable scalar of a loss, as Loss::parameters() hands it out: [1] f32,
/// its gradient zero, no weight decay (a temperature or a bias decayed
/// towards 0 would be pulled to an arbitrary value).
inline Parameter scalar_parameter(std::string name, double value) {
  Parameter p;
  p.name = std::move(name);
  p.value = Tensor::empty({1}, DType::f32);
  p.value.data<float>()[0] = static_cast<float>(value);
  p.grad = Tensor::zeros({1}, DType::f32);
  p.decay = false;
  return p;
}

inline double value_of(const Parameter& p) { return p.value.data<float>()[0]; }

/// Adds dL/dθ into the parameter's gradient: the runtime zeroes it before
/// each step, and anything else (a test, a second loss term) may have added
/// to it before.
inline void add_gradient(Parameter& p, double g) { p.grad.data<float>()[0] += static_cast<float>(g); }

/// The two views' rows scaled to unit length, dL/dẑ as a loss accumulates
/// it block by block, and dL/dz back through the normalisation. Buffers are
/// allocated when a size grows and reused afterwards.
class NormalisedViews {
 public:
  /// Checks `emb` (pick_views()), normalises every row and zeroes dL/dẑ.
  ViewPair load(std::string_view who, const Embeddings& emb) {
    views_ = pick_views(who, emb);
    rows_ = emb.rows();
    dim_ = emb.z.dim(1);
    zhat_.ensure({rows_, dim_}, DType::f32);
    norms_.ensure({rows_}, DType::f32);
    grad_zhat_.ensure({rows_, dim_}, DType::f32);
    grad_zhat_.zero();
    l2_normalize_rows(emb.z.data<float>(), rows_, dim_, zhat_.data<float>(), norms_.data<float>());
    return views_;
  }

  std::int64_t samples() const noexcept { return views_.samples; }
  const float* first() const { return zhat_.data<float>() + views_.first * views_.samples * dim_; }
  const float* second() const { return zhat_.data<float>() + views_.second * views_.samples * dim_; }

  /// c = Â[i0, i0 + b) · B̂ᵀ: the cosines of b rows of the first view with
  /// every row of the second (b × N, row-major).
  void cosines(std::int64_t i0, std::int64_t b, float* c) const {
    const std::int64_t n = views_.samples;
    sgemm(false, true, b, n, dim_, 1.0f, first() + i0 * dim_, dim_, second(), dim_, 0.0f, c, n);
  }

  /// From g = dL/d(logits) of that block (b × N), where logits = scale · c
  /// (+ a constant): dL/dÂ_block += scale·g·B̂ and dL/dB̂ += scale·gᵀ·Â_block.
  void backprop(std::int64_t i0, std::int64_t b, const float* g, float scale) {
    const std::int64_t n = views_.samples;
    float* grad_first = grad_zhat_.data<float>() + views_.first * n * dim_;
    float* grad_second = grad_zhat_.data<float>() + views_.second * n * dim_;
    sgemm(false, false, b, dim_, n, scale, g, n, second(), dim_, 1.0f, grad_first + i0 * dim_, dim_);
    sgemm(true, false, n, dim_, b, scale, g, n, first() + i0 * dim_, dim_, 1.0f, grad_second, dim_);
  }

  /// dL/dz ([2N, D] f32, written over `grad`) from the dL/dẑ backprop() added up.
  void backward(Tensor& grad) const {
    grad.ensure({rows_, dim_}, DType::f32);
    l2_normalize_rows_backward(zhat_.data<float>(), norms_.data<float>(), grad_zhat_.data<float>(), 1.0f, rows_,
                               dim_, grad.data<float>());
  }

 private:
  ViewPair views_;
  std::int64_t rows_ = 0, dim_ = 0;
  Tensor zhat_;       // [2N, D] unit rows
  Tensor norms_;      // [2N] the rows' norms, for the backward pass
  Tensor grad_zhat_;  // [2N, D] dL/dẑ
};

/// In-batch top-1 retrieval and the matching pairs' similarity, tallied from
/// the blocks of C = Â·B̂ᵀ (the logits of both losses are an increasing
/// function of C, so they rank alike). Sample i's first-view row retrieves
/// its match when C_ii is strictly above every other entry of row i
/// (first → second: "i2t_accuracy"), its second-view row when C_ii is
/// strictly above every other entry of column i ("t2i_accuracy"). Ties count
/// as misses, so collapsed embeddings score 0 rather than 1/N.
class RetrievalTally {
 public:
  void start(std::int64_t n) {
    n_ = n;
    rows_matched_ = 0;
    matching_.assign(static_cast<std::size_t>(n), 0.0f);
    best_other_in_column_.assign(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
  }

  /// Rows [i0, i0 + b) of C, b × N row-major.
  void add_rows(const float* c, std::int64_t i0, std::int64_t b) {
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    const std::int64_t n = n_;
    float* matching = matching_.data();
    float* best_column = best_other_in_column_.data();
    std::int64_t matched = 0;
#pragma omp parallel if (b * n > min_parallel_elements)
    {
#pragma omp for schedule(static) reduction(+ : matched)
      for (std::int64_t r = 0; r < b; ++r) {
        const std::int64_t i = i0 + r;
        const float* row = c + r * n;
        float best_other = neg_inf;
#pragma omp simd reduction(max : best_other)
        for (std::int64_t j = 0; j < n; ++j) best_other = std::max(best_other, j == i ? neg_inf : row[j]);
        matching[i] = row[i];
        matched += row[i] > best_other ? 1 : 0;
      }
      // Column by column, each task owning its columns' running maxima.
#pragma omp for schedule(static)
      for (std::int64_t j0 = 0; j0 < n; j0 += column_span) {
        const std::int64_t j1 = std::min(n, j0 + column_span);
        for (std::int64_t r = 0; r < b; ++r) {
          const std::int64_t i = i0 + r;
          const float* row = c + r * n;
#pragma omp simd
          for (std::int64_t j = j0; j < j1; ++j) best_column[j] = std::max(best_column[j], j == i ? neg_inf : row[j]);
        }
      }
    }
    rows_matched_ += matched;
  }

  /// C_ii of every sample (valid once every row was added).
  const std::vector<float>& matching_cosines() const noexcept { return matching_; }

  /// Appends "i2t_accuracy", "t2i_accuracy" and "positive_similarity" (the
  /// mean C_ii) once every row was added.
  void write_metrics(std::vector<std::pair<std::string, double>>& metrics) const {
    std::int64_t columns_matched = 0;
    double cosine_sum = 0.0;
    for (std::int64_t j = 0; j < n_; ++j) {
      columns_matched += matching_[j] > best_other_in_column_[j] ? 1 : 0;
      cosine_sum += matching_[j];
    }
    const double n = static_cast<double>(n_);
    metrics.emplace_back("i2t_accuracy", static_cast<double>(rows_matched_) / n);
    metrics.emplace_back("t2i_accuracy", static_cast<double>(columns_matched) / n);
    metrics.emplace_back("positive_similarity", cosine_sum / n);
  }

 private:
  std::int64_t n_ = 0, rows_matched_ = 0;
  std::vector<float> matching_;              // C_ii
  std::vector<float> best_other_in_column_;  // max over i != j of C_ij, per column j
};

}  // namespace contra::plugins::two_tower
