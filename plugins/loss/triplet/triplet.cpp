#include "triplet.hpp"

#include "../pairs_forms.hpp"

#include <contra/blas.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {
// A pair whose squared distance from the Gram block, |x_i|² + |x_j|² − 2 x_i·x_j,
// is below this share of |x_i|² + |x_j|² lost too many digits to cancellation:
// its distance is recomputed from the difference, and its gradient added
// directly.
constexpr float near_share = 1e-2f;
}  // namespace

contra::Schema Triplet::schema() {
  return contra::Schema("triplet",
                        "triplet margin loss max(0, d(a,p) - d(a,n) + margin) over mined triplets, or "
                        "every triplet of the batch")
      .add<double>("margin", 0.2, "m: how much farther than the positive the negative must be")
      .at_least(0.0)
      .add<std::string>("distance", "euclidean", "euclidean, or cosine (1 - cosine similarity)")
      .choices({"euclidean", "cosine"})
      .add<bool>("squared", false, "use the squared Euclidean distance")
      .add<bool>("soft_margin", false, "log(1 + exp(d(a,p) - d(a,n))) instead of the hinge (margin unused)")
      .add<std::string>("reduction", "mean",
                        "mean over all triplets, or mean_nonzero over those with a non-zero loss")
      .choices({"mean", "mean_nonzero"})
      .add<bool>("normalize", false, "L2-normalise the rows before Euclidean distances")
      .add<std::int64_t>("chunk", 1024,
                         "anchor rows per block with all triplets; at most chunk x rows distances are held")
      .at_least(1);
}

Triplet::Triplet(const contra::Params& p)
    : margin_(p.get<double>("margin")),
      cosine_(p.get<std::string>("distance") == "cosine"),
      squared_(p.get<bool>("squared")),
      soft_(p.get<bool>("soft_margin")),
      mean_nonzero_(p.get<std::string>("reduction") == "mean_nonzero"),
      normalize_(p.get<bool>("normalize")),
      chunk_(p.get<std::int64_t>("chunk")) {
  if (cosine_ && squared_) {
    contra::Diagnostic d{p.where("squared"), p.prefix() + ".squared",
                         "squared = true applies to distance = \"euclidean\", but distance is \"cosine\""};
    throw contra::ConfigError(d.str());
  }
}

void Triplet::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  const contra::PairsSelection selection = contra::check_pairs_form("triplet", pairs, pairs_forms::all_or_triplets());
  const bool all = selection == contra::PairsSelection::all;
  if (selection == contra::PairsSelection::none) {
    // A triplet miner may find nothing in a batch (every triplet already
    // satisfied): no loss, no gradient, and the run goes on.
    out.value = 0.0;
    out.grad.ensure(emb.z.shape(), contra::DType::f32);
    out.grad.zero();
    out.metrics.clear();
    out.metrics.emplace_back("triplets", 0.0);
    out.metrics.emplace_back("active_triplets", 0.0);
    return;
  }
  const contra::Tensor& z = emb.z;
  contra::EmbeddingsUse use;
  use.sample = all;  // the triplets of Pairs::all come from the grouping by sample
  const std::int64_t M = contra::check_embeddings("triplet", emb, contra::Device::cpu, use), D = z.dim(1);
  contra::check_pair_indices("triplet", pairs, emb);

  // 1. x = z, or ẑ = z / max(|z|, eps) for cosine distances and `normalize`.
  const float* zp = z.data<float>();
  const float* x = zp;
  const bool normalized = cosine_ || normalize_;
  float* nrm = nullptr;
  if (normalized) {
    zhat_.ensure({M, D}, contra::DType::f32);
    norm_.ensure({M}, contra::DType::f32);
    float* zh = zhat_.data<float>();
    nrm = norm_.data<float>();
    contra::l2_normalize_rows(zp, M, D, zh, nrm);
    x = zh;
  }
  dx_.ensure({M, D}, contra::DType::f32);
  dx_.zero();
  float* dx = dx_.data<float>();

  // 2. Distances and their gradients. Euclidean: dd/dx_i = c (x_i − x_j) =
  //    −dd/dx_j with c = 1/d (0 at d = 0), or 2 squared. Cosine: d = 1 − x_i·x_j,
  //    dd/dx_i = −x_j, dd/dx_j = −x_i.
  auto exact = [&](std::int64_t i, std::int64_t j) -> double {
    const float* xi = x + i * D;
    const float* xj = x + j * D;
    double s = 0.0;
    if (cosine_) {
      for (std::int64_t k = 0; k < D; ++k) s += static_cast<double>(xi[k]) * xj[k];
      return 1.0 - s;
    }
    for (std::int64_t k = 0; k < D; ++k) {
      const double t = static_cast<double>(xi[k]) - xj[k];
      s += t * t;
    }
    return squared_ ? s : std::sqrt(s);
  };
  // Coefficient of the pair's gradient in the form above, for dL/dd = g.
  auto coef = [&](double d, double g) -> double {
    if (cosine_) return g;
    if (squared_) return 2.0 * g;
    return d > 0.0 ? g / d : 0.0;
  };
  auto add_direct = [&](std::int64_t i, std::int64_t j, double d, double g) {
    if (g == 0.0) return;
    const float c = static_cast<float>(coef(d, g));
    const float* xi = x + i * D;
    const float* xj = x + j * D;
    float* gi = dx + i * D;
    float* gj = dx + j * D;
    if (cosine_) {
      for (std::int64_t k = 0; k < D; ++k) {
        gi[k] -= c * xj[k];
        gj[k] -= c * xi[k];
      }
      return;
    }
    for (std::int64_t k = 0; k < D; ++k) {
      const float t = c * (xi[k] - xj[k]);
      gi[k] += t;
      gj[k] -= t;
    }
  };
  // One triplet's loss; returns dl/d(d(a,p)) (= −dl/d(d(a,n))).
  const double m = margin_;
  double loss = 0.0, sum_dp = 0.0, sum_dn = 0.0;
  std::int64_t total = 0, active = 0;
  auto triplet = [&](double dp, double dn) -> double {
    ++total;
    sum_dp += dp;
    sum_dn += dn;
    if (soft_) {  // softplus(u), u = dp − dn; derivative sigmoid(u)
      const double u = dp - dn;
      const double l = u > 0.0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u));
      if (l > 0.0) ++active;
      loss += l;
      return u > 0.0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u));
    }
    const double u = dp - dn + m;
    if (u <= 0.0) return 0.0;
    ++active;
    loss += u;
    return 1.0;
  };

  if (all) {
    // Blocks of at most `chunk` anchors against every row: distances from one
    // sgemm (Euclidean: on rows centred by their mean), dL/dd coefficients in
    // place, then the gradient from two more (plus the row and column sums).
    const std::int64_t* sample = emb.sample->data();
    const float* g_rows = x;  // rows the Gram block is made of
    float* sq = nullptr;
    if (!cosine_) {
      xc_.ensure({M, D}, contra::DType::f32);
      sq_.ensure({M}, contra::DType::f32);
      float* xc = xc_.data<float>();
      sq = sq_.data<float>();
      for (std::int64_t k = 0; k < D; ++k) {
        double mean = 0.0;
        for (std::int64_t i = 0; i < M; ++i) mean += x[i * D + k];
        const float mu = static_cast<float>(mean / static_cast<double>(M));
        for (std::int64_t i = 0; i < M; ++i) xc[i * D + k] = x[i * D + k] - mu;
      }
      for (std::int64_t i = 0; i < M; ++i) {
        float ss = 0.0f;
        for (std::int64_t k = 0; k < D; ++k) ss += xc[i * D + k] * xc[i * D + k];
        sq[i] = ss;
      }
      g_rows = xc;
      colsum_.assign(static_cast<std::size_t>(M), 0.0);
    }
    // Distance of (i, j) from the Gram entry; `near` when recomputed.
    auto from_gram = [&](std::int64_t i, std::int64_t j, float gram, bool& near) -> double {
      near = false;
      if (cosine_) return 1.0 - static_cast<double>(gram);
      const float scale = sq[i] + sq[j];
      const float d2 = scale - 2.0f * gram;
      if (d2 < near_share * scale) {
        near = true;
        return exact(i, j);
      }
      return squared_ ? static_cast<double>(d2) : std::sqrt(static_cast<double>(d2));
    };
    const std::int64_t B = std::min(chunk_, M);
    dist_.ensure({B, M}, contra::DType::f32);
    float* C = dist_.data<float>();
    for (std::int64_t b0 = 0; b0 < M; b0 += B) {
      const std::int64_t nb = std::min(B, M - b0);
      const float* gb = g_rows + b0 * D;
      contra::sgemm(false, true, nb, M, D, 1.0f, gb, D, g_rows, D, 0.0f, C, M);
      for (std::int64_t r = 0; r < nb; ++r) {
        const std::int64_t i = b0 + r;
        float* row = C + r * M;
        const std::int64_t si = sample[i];
        pos_.clear();
        pos_d_.clear();
        pos_g_.clear();
        pos_near_.clear();
        for (std::int64_t j = 0; j < M; ++j)
          if (j != i && sample[j] == si) {
            bool near;
            pos_.push_back(j);
            pos_d_.push_back(from_gram(i, j, row[j], near));
            pos_g_.push_back(0.0);
            pos_near_.push_back(near);
          }
        const std::size_t P = pos_.size();
        double rowsum = 0.0;
        for (std::int64_t j = 0; j < M; ++j) {
          if (sample[j] == si) continue;
          bool near;
          const double dn = from_gram(i, j, row[j], near);
          double gn = 0.0;
          for (std::size_t q = 0; q < P; ++q) {
            const double g = triplet(pos_d_[q], dn);
            pos_g_[q] += g;
            gn -= g;
          }
          if (near) {
            add_direct(i, j, dn, gn);
            row[j] = 0.0f;
          } else {
            const double c = coef(dn, gn);
            row[j] = static_cast<float>(c);
            rowsum += c;
            if (!cosine_) colsum_[j] += c;
          }
        }
        for (std::size_t q = 0; q < P; ++q) {
          const std::int64_t j = pos_[q];
          if (pos_near_[q]) {
            add_direct(i, j, pos_d_[q], pos_g_[q]);
            row[j] = 0.0f;
          } else {
            const double c = coef(pos_d_[q], pos_g_[q]);
            row[j] = static_cast<float>(c);
            rowsum += c;
            if (!cosine_) colsum_[j] += c;
          }
        }
        row[i] = 0.0f;
        if (!cosine_) {  // rowsum(C)∘x_i
          const float rs = static_cast<float>(rowsum);
          const float* xi = g_rows + i * D;
          float* gi = dx + i * D;
          for (std::int64_t k = 0; k < D; ++k) gi[k] += rs * xi[k];
        }
      }
      // Euclidean: − C x and − Cᵀ x_blk (with the sums); cosine the same two
      // products are the whole gradient.
      contra::sgemm(false, false, nb, D, M, -1.0f, C, M, g_rows, D, 1.0f, dx + b0 * D, D);
      contra::sgemm(true, false, M, D, nb, -1.0f, C, M, gb, D, 1.0f, dx, D);
    }
    if (!cosine_)
      for (std::int64_t j = 0; j < M; ++j) {  // colsum(C)∘x_j
        const float cs = static_cast<float>(colsum_[j]);
        const float* xj = g_rows + j * D;
        float* gj = dx + j * D;
        for (std::int64_t k = 0; k < D; ++k) gj[k] += cs * xj[k];
      }
    if (total == 0)
      throw contra::UsageError("triplet: the batch of " + std::to_string(M) +
                               " rows has no (anchor, positive, negative) triplet; it needs at least 2 "
                               "views per sample and 2 samples");
  } else {
    for (const auto& t : pairs.triplets) {
      const double dp = exact(t.anchor, t.positive), dn = exact(t.anchor, t.negative);
      const double g = triplet(dp, dn);
      add_direct(t.anchor, t.positive, dp, g);
      add_direct(t.anchor, t.negative, dn, -g);
    }
  }

  // 3. Reduction, and back to z: dL/dz = dL/dx (the centring does not change
  //    distances), through the normalisation when there is one.
  const double divisor = mean_nonzero_ ? static_cast<double>(active) : static_cast<double>(total);
  const float scale = divisor > 0.0 ? static_cast<float>(1.0 / divisor) : 0.0f;
  out.grad.ensure(z.shape(), contra::DType::f32);
  float* gz = out.grad.data<float>();
  if (normalized) {
    contra::l2_normalize_rows_backward(x, nrm, dx, scale, M, D, gz);
  } else {
    for (std::int64_t k = 0; k < M * D; ++k) gz[k] = dx[k] * scale;
  }

  out.value = divisor > 0.0 ? loss / divisor : 0.0;
  out.metrics.clear();
  out.metrics.emplace_back("active_triplets", total ? static_cast<double>(active) / static_cast<double>(total) : 0.0);
  out.metrics.emplace_back("pos_dist", total ? sum_dp / static_cast<double>(total) : 0.0);
  out.metrics.emplace_back("neg_dist", total ? sum_dn / static_cast<double>(total) : 0.0);
  out.metrics.emplace_back("triplets", static_cast<double>(total));
}

}  // namespace contra::plugins
