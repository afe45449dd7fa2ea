#include "multi_similarity.hpp"

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

}  // namespace

contra::Schema MultiSimilarity::schema() {
  return contra::Schema("multi_similarity",
                        "pairs near the other kind's hardest similarity (MS mining, Wang et al. 2019)")
      .add<double>("epsilon", 0.1,
                   "keep n if S_an + epsilon > min_p S_ap, p if S_ap - epsilon < max_n S_an (cosine S)")
      .at_least(0.0)
      .add<bool>("use_labels", false,
                 "group rows by class label instead of by sample (needs a labelled source)");
}

MultiSimilarity::MultiSimilarity(const contra::Params& p)
    : epsilon_(p.get<double>("epsilon")), use_labels_(p.get<bool>("use_labels")) {}

void MultiSimilarity::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const std::vector<std::int64_t>& group = row_groups(e, use_labels_, "multi_similarity");
  const std::int64_t m = e.z.dim(0), d = e.z.dim(1);
  if (m == 0) return;
  // x = the rows, L2-normalised.
  const float* z = e.z.data<float>();
  x_.resize(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    const float* zi = z + i * d;
    float* xi = x_.data() + i * d;
    double ss = 0.0;
    for (std::int64_t k = 0; k < d; ++k) ss += static_cast<double>(zi[k]) * zi[k];
    const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), norm_eps);
    for (std::int64_t k = 0; k < d; ++k) xi[k] = zi[k] * inv;
  }
  sim_.resize(static_cast<std::size_t>(std::min(m, block_rows) * m));
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t a0 = 0; a0 < m; a0 += block_rows) {
    const std::int64_t a1 = std::min(m, a0 + block_rows);
    contra::sgemm(false, true, a1 - a0, m, d, 1.0f, x_.data() + a0 * d, d, x_.data(), d, 0.0f, sim_.data(), m);
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* s = sim_.data() + (a - a0) * m;
      // Without positives min_pos = +inf keeps no negative; without negatives
      // max_neg = −inf keeps no positive (as pytorch-metric-learning).
      double min_pos = inf, max_neg = -inf;
      for (std::int64_t j = 0; j < m; ++j) {
        if (j == a) continue;
        if (group[j] == group[a])
          min_pos = std::min(min_pos, static_cast<double>(s[j]));
        else
          max_neg = std::max(max_neg, static_cast<double>(s[j]));
      }
      const auto ai = static_cast<std::int32_t>(a);
      for (std::int64_t j = 0; j < m; ++j) {
        if (j == a) continue;
        if (group[j] == group[a]) {
          if (static_cast<double>(s[j]) - epsilon_ < max_neg) out.positive.emplace_back(ai, static_cast<std::int32_t>(j));
        } else if (static_cast<double>(s[j]) + epsilon_ > min_pos) {
          out.negative.emplace_back(ai, static_cast<std::int32_t>(j));
        }
      }
    }
  }
}

}  // namespace contra::plugins
