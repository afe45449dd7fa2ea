#pragma once
// Shared by the miners of batch rows (batch_all, batch_hard, semi_hard,
// multi_similarity, distance_weighted): input
// checks, each row's group (label or sample), and pairwise distances computed
// in sgemm blocks. Header-only so that each plugin library stays
// self-contained.

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>
#include <contra/roles/miner.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins::miner_detail {
// Internal linkage: each including file gets its own copy.
namespace {


constexpr std::int64_t block_rows = 256;  // anchor rows per sgemm block

// Checks the embeddings (an f32 [M, D] tensor on `device`) and returns each
// row's group: its label with use_labels, else its sample.
[[maybe_unused]] const std::vector<std::int64_t>& row_groups(const contra::Embeddings& e, bool use_labels, const char* who,
                                            contra::Device device = contra::Device::cpu) {
  contra::EmbeddingsUse use;
  use.label = use_labels;
  contra::check_embeddings(who, e, device, use);
  if (!use_labels) return *e.sample;
  if (!e.label)
    throw contra::UsageError(std::string(who) +
                             ": use_labels = true, but the batch has no labels (Embeddings::label is null)");
  return *e.label;
}

// x ← the rows, L2-normalised (cosine) or centred on their mean (euclidean:
// distances do not change, and |a|² + |b|² − 2a·b loses less to cancellation);
// sq ← squared norms of the rows of x.
[[maybe_unused]] void prepare_rows(const float* z, std::int64_t m, std::int64_t d, bool cosine, std::vector<float>& x,
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
      const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), contra::l2_norm_eps);
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
[[maybe_unused]] void distance_block(const std::vector<float>& x, const std::vector<float>& sq, std::int64_t m,
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
}  // namespace contra::plugins::miner_detail
