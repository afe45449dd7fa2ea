#include "semi_hard.hpp"

#include <contra/blas.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

constexpr std::int64_t block_rows = 256;  // anchor rows per sgemm block
constexpr float norm_eps = 1e-12f;        // norms below are clamped, as F.normalize does

// Checks the embeddings and returns each row's group: its label with
// use_labels, else its sample.
const std::vector<std::int64_t>& row_groups(const contra::Embeddings& e, bool use_labels,
                                            const char* who) {
  const contra::Tensor& z = e.z;
  if (z.rank() != 2 || z.dtype() != contra::DType::f32 || z.device() != contra::Device::cpu ||
      z.dim(1) < 1)
    throw contra::UsageError(std::string(who) + ": expected embeddings as an f32 [M, D] CPU tensor, got " +
                             contra::dtype_name(z.dtype()) + " " + z.shape().str() + " on " +
                             contra::device_name(z.device()));
  const std::int64_t m = z.dim(0);
  if (m > std::numeric_limits<std::int32_t>::max())
    throw contra::UsageError(std::string(who) + ": " + std::to_string(m) +
                             " rows do not fit the int32 row indices of Pairs");
  if (!e.sample || static_cast<std::int64_t>(e.sample->size()) != m)
    throw contra::UsageError(std::string(who) + ": Embeddings::sample must give the sample of each of the " +
                             std::to_string(m) + " rows");
  if (!use_labels) return *e.sample;
  if (!e.label)
    throw contra::UsageError(std::string(who) +
                             ": use_labels = true, but the batch has no labels (Embeddings::label is null)");
  if (static_cast<std::int64_t>(e.label->size()) != m)
    throw contra::UsageError(std::string(who) + ": Embeddings::label has " + std::to_string(e.label->size()) +
                             " entries for " + std::to_string(m) + " rows");
  return *e.label;
}

// x ← the rows, L2-normalised (cosine) or centred on their mean (euclidean:
// distances do not change, and |a|² + |b|² − 2a·b loses less to cancellation);
// sq ← squared norms of the rows of x.
void prepare_rows(const float* z, std::int64_t m, std::int64_t d, bool cosine, std::vector<float>& x,
                  std::vector<float>& sq, std::vector<double>& mean) {
  x.resize(static_cast<std::size_t>(m * d));
  sq.resize(static_cast<std::size_t>(m));
  if (!cosine) {
    mean.assign(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t k = 0; k < d; ++k) mean[k] += z[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) mean[k] /= static_cast<double>(m);
  }
  for (std::int64_t i = 0; i < m; ++i) {
    const float* zi = z + i * d;
    float* xi = x.data() + i * d;
    double ss = 0.0;
    if (cosine) {
      for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(zi[k]) * zi[k];
      const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), norm_eps);
      for (std::int64_t k = 0; k < d; ++k) xi[k] = zi[k] * inv;
    } else {
      for (std::int64_t k = 0; k < d; ++k) {
        xi[k] = static_cast<float>(zi[k] - mean[k]);
        ss += static_cast<double>(xi[k]) * xi[k];
      }
    }
    sq[i] = static_cast<float>(ss);
  }
}

// dist[(a − a0)·m + j] ← d(a, j) for anchors a in [a0, a1): one sgemm, then
// 1 − s (cosine) or √max(|a|² + |j|² − 2a·j, 0) (euclidean); d(a, a) = 0.
void distance_block(const std::vector<float>& x, const std::vector<float>& sq, std::int64_t m,
                    std::int64_t d, bool cosine, std::int64_t a0, std::int64_t a1, float* dist) {
  contra::sgemm(false, true, a1 - a0, m, d, 1.0f, x.data() + a0 * d, d, x.data(), d, 0.0f, dist, m);
  for (std::int64_t a = a0; a < a1; ++a) {
    float* row = dist + (a - a0) * m;
    if (cosine) {
      for (std::int64_t j = 0; j < m; ++j) row[j] = 1.0f - row[j];
    } else {
      const float sa = sq[a];
      for (std::int64_t j = 0; j < m; ++j) row[j] = std::sqrt(std::max(sa + sq[j] - 2.0f * row[j], 0.0f));
    }
    row[a] = 0.0f;
  }
}

}  // namespace

contra::Schema SemiHard::schema() {
  return contra::Schema("semi_hard",
                        "per positive pair, the nearest semi-hard negative (FaceNet, Schroff et al. 2015)")
      .add<std::string>("distance", "euclidean", "euclidean, or cosine (1 - cosine similarity)")
      .choices({"euclidean", "cosine"})
      .add<double>("margin", 0.2, "semi-hard window: d(a,p) < d(a,n) < d(a,p) + margin")
      .at_least(0.0)
      .add<std::string>("fallback", "tfa",
                        "without a semi-hard negative: tfa (as TripletSemiHardLoss: nearest negative "
                        "farther than the positive, else the farthest) or skip (no triplet)")
      .choices({"tfa", "skip"})
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

SemiHard::SemiHard(const contra::Params& p)
    : cosine_(p.get<std::string>("distance") == "cosine"),
      margin_(p.get<double>("margin")),
      skip_(p.get<std::string>("fallback") == "skip"),
      use_labels_(p.get<bool>("use_labels")) {}

void SemiHard::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "semi_hard");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  prepare_rows(e.z.data<float>(), m, d, cosine_, x_, sq_, mean_);
  dist_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    distance_block(x_, sq_, m, d, cosine_, a0, a1, dist_.data());
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* row = dist_.data() + (a - a0) * m;
      // The anchor's negatives sorted by (distance, row): the nearest one
      // farther than d(a,p) is a binary search, the lowest row first on ties.
      neg_.clear();
      // (A NaN distance, from NaN embeddings, sorts as +inf: std::sort needs an order.)
      for (std::int64_t j = 0; j < m; ++j)
        if (group[j] != group[a])
          neg_.emplace_back(std::isnan(row[j]) ? std::numeric_limits<float>::infinity() : row[j],
                            static_cast<std::int32_t>(j));
      if (neg_.empty()) continue;
      std::sort(neg_.begin(), neg_.end());
      // The farthest negative, lowest row among equals (TF's fallback).
      auto far = std::lower_bound(neg_.begin(), neg_.end(), neg_.back().first,
                                  [](const auto& x, float v) { return x.first < v; });
      const auto ai = static_cast<std::int32_t>(a);
      for (std::int64_t p = 0; p < m; ++p) {
        if (p == a || group[p] != group[a]) continue;
        const float dap = row[p];
        auto it = std::upper_bound(neg_.begin(), neg_.end(), dap,
                                   [](float v, const auto& x) { return v < x.first; });
        std::int32_t n;
        if (it != neg_.end() && static_cast<double>(it->first) < static_cast<double>(dap) + margin_)
          n = it->second;  // semi-hard
        else if (skip_)
          continue;
        else if (it != neg_.end())
          n = it->second;  // easy: d(a,n) >= d(a,p) + margin, the nearest such
        else
          n = far->second;  // every negative is hard: the farthest
        out.triplets.push_back({ai, static_cast<std::int32_t>(p), n});
      }
    }
  }
}

}  // namespace contra::plugins
