#include "contrastive_margin.hpp"

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

contra::Schema ContrastiveMargin::schema() {
  return contra::Schema("contrastive_margin",
                        "pairwise contrastive loss (Hadsell, Chopra & LeCun 2006): y d^2 + (1 - y) "
                        "max(0, margin - d)^2 over Euclidean distances")
      .add<double>("margin", 1.0, "m: negatives closer than this are pushed apart (must be > 0)")
      .at_least(0.0)
      .add<bool>("normalize", false, "L2-normalise the rows before measuring distances")
      .add<std::string>("reduction", "mean", "how pair losses combine: mean or sum")
      .choices({"mean", "sum"})
      .add<std::int64_t>("chunk", 1024, "anchor rows per block with all pairs; at most chunk x rows distances are held")
      .at_least(1);
}

ContrastiveMargin::ContrastiveMargin(const contra::Params& p)
    : margin_(p.get<double>("margin")),
      normalize_(p.get<bool>("normalize")),
      sum_(p.get<std::string>("reduction") == "sum"),
      chunk_(p.get<std::int64_t>("chunk")) {
  if (!(margin_ > 0.0)) {
    contra::Diagnostic d{p.where("margin"), p.prefix() + ".margin",
                         "expected a margin > 0, found " + contra::value_to_string(contra::Value(margin_))};
    throw contra::ConfigError(d.str());
  }
}

void ContrastiveMargin::compute(const contra::Embeddings& emb, const contra::Pairs& pairs,
                                contra::LossResult& out) {
  const bool all =
      contra::check_pairs_form("contrastive_margin", pairs, pairs_forms::all_or_listed_pairs()) ==
      contra::PairsSelection::all;
  const contra::Tensor& z = emb.z;
  contra::EmbeddingsUse use;
  use.sample = all;  // the pairs of Pairs::all come from the grouping by sample
  const std::int64_t M = contra::check_embeddings("contrastive_margin", emb, contra::Device::cpu, use),
                     D = z.dim(1);
  if (all && M < 2)
    throw contra::UsageError("contrastive_margin: a batch of " + std::to_string(M) + " row has no pair");
  contra::check_pair_indices("contrastive_margin", pairs, emb);

  // 1. x = z (or ẑ = z / max(|z|, eps) with `normalize`): pair differences and
  //    explicit pairs use it as is. With all pairs the Gram block uses xc, x
  //    centred by its column mean: distances do not change, fewer digits cancel.
  const float* zp = z.data<float>();
  const float* x = zp;
  float* nrm = nullptr;
  if (normalize_) {
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

  // 2. Each pair's loss, and its coefficient c: dl/dx_i = c (x_i − x_j) = −dl/dx_j.
  const double m = margin_;
  double loss = 0.0, pos_d = 0.0, neg_d = 0.0;
  std::int64_t n_pos = 0, n_neg = 0, active = 0;
  auto term = [&](double d2, bool positive) -> double {
    const double d = std::sqrt(d2);
    if (positive) {  // d²: dl/dx_i = 2 (x_i − x_j)
      ++n_pos;
      pos_d += d;
      loss += d2;
      return 2.0;
    }
    ++n_neg;
    neg_d += d;
    if (d >= m) return 0.0;
    ++active;  // (m − d)²: dl/dx_i = −2 (m − d) (x_i − x_j) / d; none at d = 0
    const double h = m - d;
    loss += h * h;
    return d > 0.0 ? -2.0 * h / d : 0.0;
  };
  auto exact_d2 = [&](std::int64_t i, std::int64_t j) {
    const float* xi = x + i * D;
    const float* xj = x + j * D;
    double s = 0.0;
    for (std::int64_t k = 0; k < D; ++k) {
      const double t = static_cast<double>(xi[k]) - xj[k];
      s += t * t;
    }
    return s;
  };
  auto add_direct = [&](std::int64_t i, std::int64_t j, double c) {
    if (c == 0.0) return;
    const float* xi = x + i * D;
    const float* xj = x + j * D;
    float* gi = dx + i * D;
    float* gj = dx + j * D;
    const float cf = static_cast<float>(c);
    for (std::int64_t k = 0; k < D; ++k) {
      const float t = cf * (xi[k] - xj[k]);
      gi[k] += t;
      gj[k] -= t;
    }
  };

  std::int64_t count = 0;
  if (all) {
    // Blocks of at most `chunk` rows i against every j > i: G = x_blk xᵀ, then
    // coefficients C in place; dL/dx gets rowsum(C)∘x_blk − C x for the block
    // and colsum(C)∘x − Cᵀ x_blk for every row.
    const std::int64_t* sample = emb.sample->data();
    xc_.ensure({M, D}, contra::DType::f32);
    sq_.ensure({M}, contra::DType::f32);
    float* xc = xc_.data<float>();
    float* sq = sq_.data<float>();
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
    const std::int64_t B = std::min(chunk_, M);
    dist_.ensure({B, M}, contra::DType::f32);
    float* C = dist_.data<float>();
    colsum_.assign(static_cast<std::size_t>(M), 0.0);
    for (std::int64_t b0 = 0; b0 < M; b0 += B) {
      const std::int64_t nb = std::min(B, M - b0);
      const float* xb = xc + b0 * D;
      contra::sgemm(false, true, nb, M, D, 1.0f, xb, D, xc, D, 0.0f, C, M);
      for (std::int64_t r = 0; r < nb; ++r) {
        const std::int64_t i = b0 + r;
        float* row = C + r * M;
        double rowsum = 0.0;
        std::fill(row, row + i + 1, 0.0f);
        for (std::int64_t j = i + 1; j < M; ++j) {
          const float scale = sq[i] + sq[j];
          float d2f = scale - 2.0f * row[j];
          const bool near = d2f < near_share * scale;
          const double d2 = near ? exact_d2(i, j) : static_cast<double>(std::max(d2f, 0.0f));
          const double c = term(d2, sample[i] == sample[j]);
          if (near) {
            add_direct(i, j, c);
            row[j] = 0.0f;
          } else {
            row[j] = static_cast<float>(c);
            rowsum += c;
            colsum_[j] += c;
          }
        }
        const float rs = static_cast<float>(rowsum);
        const float* xi = xc + i * D;
        float* gi = dx + i * D;
        for (std::int64_t k = 0; k < D; ++k) gi[k] += rs * xi[k];
      }
      contra::sgemm(false, false, nb, D, M, -1.0f, C, M, xc, D, 1.0f, dx + b0 * D, D);
      contra::sgemm(true, false, M, D, nb, -1.0f, C, M, xb, D, 1.0f, dx, D);
    }
    for (std::int64_t j = 0; j < M; ++j) {
      const float cs = static_cast<float>(colsum_[j]);
      const float* xj = xc + j * D;
      float* gj = dx + j * D;
      for (std::int64_t k = 0; k < D; ++k) gj[k] += cs * xj[k];
    }
    count = M * (M - 1) / 2;
  } else {
    for (const auto& [i, j] : pairs.positive) add_direct(i, j, term(exact_d2(i, j), true));
    for (const auto& [i, j] : pairs.negative) add_direct(i, j, term(exact_d2(i, j), false));
    count = static_cast<std::int64_t>(pairs.positive.size() + pairs.negative.size());
  }

  // 3. Reduction, and back to z: dL/dz = dL/dx (the centring does not change
  //    distances; dL/dxc = dL/dx), through the normalisation when asked.
  const float scale = sum_ ? 1.0f : 1.0f / static_cast<float>(count);
  out.grad.ensure(z.shape(), contra::DType::f32);
  float* gz = out.grad.data<float>();
  if (normalize_) {
    contra::l2_normalize_rows_backward(x, nrm, dx, scale, M, D, gz);
  } else {
    for (std::int64_t k = 0; k < M * D; ++k) gz[k] = dx[k] * scale;
  }

  out.value = sum_ ? loss : loss / static_cast<double>(count);
  out.metrics.clear();
  out.metrics.emplace_back("pos_dist", n_pos ? pos_d / static_cast<double>(n_pos) : 0.0);
  out.metrics.emplace_back("neg_dist", n_neg ? neg_d / static_cast<double>(n_neg) : 0.0);
  out.metrics.emplace_back("active_negatives", n_neg ? static_cast<double>(active) / static_cast<double>(n_neg) : 0.0);
}

}  // namespace contra::plugins
