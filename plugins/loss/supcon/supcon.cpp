#include "supcon.hpp"

#include "../pairs_forms.hpp"

#include <contra/blas.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace contra::plugins {

contra::Schema SupCon::schema() {
  return contra::Schema("supcon",
                        "supervised contrastive loss (Khosla et al. 2020, L_out): rows of one class are "
                        "positives; by sample (SimCLR) without labels")
      .add<double>("temperature", 0.1, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0)
      .add<std::int64_t>("chunk", 1024, "anchor rows per block; at most chunk x rows similarities are held")
      .at_least(1);
}

SupCon::SupCon(const contra::Params& p)
    : temperature_(p.get<double>("temperature")), chunk_(p.get<std::int64_t>("chunk")) {}

void SupCon::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  contra::check_pairs_form("supcon", pairs, pairs_forms::all_only());
  contra::EmbeddingsUse use;
  use.label = true;
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings("supcon", emb, contra::Device::cpu, use), D = z.dim(1);
  // Positives share the class, or the sample when the batch has no labels.
  const std::int64_t* group = emb.label ? emb.label->data() : emb.sample->data();
  const float inv_t = static_cast<float>(1.0 / temperature_);

  // 1. ẑ_i = z_i / max(|z_i|, eps).
  zhat_.ensure({M, D}, contra::DType::f32);
  norm_.ensure({M}, contra::DType::f32);
  const float* zp = z.data<float>();
  float* zh = zhat_.data<float>();
  float* nrm = norm_.data<float>();
  contra::l2_normalize_rows(zp, M, D, zh, nrm);

  // 2. Blocks of at most `chunk` anchors: S = ẑ_blk ẑᵀ / T, turned in place into
  //    dL/ds = softmax_{a≠i}(s_i) − [a ∈ P(i)] / |P(i)|, then dL/dẑ accumulates
  //    G ẑ / T for the anchors and Gᵀ ẑ_blk / T for every row.
  const std::int64_t B = std::min(chunk_, M);
  sim_.ensure({B, M}, contra::DType::f32);
  dzhat_.ensure({M, D}, contra::DType::f32);
  dzhat_.zero();
  float* S = sim_.data<float>();
  float* dzh = dzhat_.data<float>();
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  double loss = 0.0, pos_sum = 0.0, neg_sum = 0.0;
  std::int64_t anchors = 0, pos_count = 0, neg_count = 0;

  for (std::int64_t b0 = 0; b0 < M; b0 += B) {
    const std::int64_t nb = std::min(B, M - b0);
    const float* zb = zh + b0 * D;
    contra::sgemm(false, true, nb, M, D, inv_t, zb, D, zh, D, 0.0f, S, M);
    for (std::int64_t r = 0; r < nb; ++r) {
      const std::int64_t i = b0 + r;
      float* row = S + r * M;
      const std::int64_t gi = group[i];
      float mx = neg_inf;
      std::int64_t P = 0;
      double row_pos = 0.0, row_neg = 0.0;
      for (std::int64_t j = 0; j < M; ++j) {
        if (j == i) continue;
        mx = std::max(mx, row[j]);
        if (group[j] == gi) {
          ++P;
          row_pos += row[j];
        } else {
          row_neg += row[j];
        }
      }
      if (P == 0) {  // no positive: the row is no anchor and gets no gradient
        std::fill(row, row + M, 0.0f);
        continue;
      }
      ++anchors;
      pos_sum += row_pos;
      pos_count += P;
      neg_sum += row_neg;
      neg_count += M - 1 - P;
      // loss_i = log Σ_{a≠i} e^{s_ia} − mean_p s_ip, shifted by the row's max.
      double sum = 0.0;
      for (std::int64_t j = 0; j < M; ++j)
        if (j != i) {
          const float e = std::exp(row[j] - mx);
          row[j] = e;
          sum += e;
        }
      const double inv_p = 1.0 / static_cast<double>(P);
      loss += static_cast<double>(mx) + std::log(sum) - row_pos * inv_p;
      const double inv_sum = 1.0 / sum;
      for (std::int64_t j = 0; j < M; ++j)
        if (j != i) row[j] = static_cast<float>(row[j] * inv_sum - (group[j] == gi ? inv_p : 0.0));
      row[i] = 0.0f;
    }
    contra::sgemm(false, false, nb, D, M, inv_t, S, M, zh, D, 1.0f, dzh + b0 * D, D);
    contra::sgemm(true, false, M, D, nb, inv_t, S, M, zb, D, 1.0f, dzh, D);
  }
  if (anchors == 0)
    throw contra::UsageError("supcon: no row has a positive (another row of its " +
                             std::string(emb.label ? "class" : "sample") + ") among " + std::to_string(M) +
                             " rows");

  // 3. Mean over anchors, and through the normalisation.
  out.grad.ensure(z.shape(), contra::DType::f32);
  contra::l2_normalize_rows_backward(zh, nrm, dzh, 1.0f / static_cast<float>(anchors), M, D,
                                     out.grad.data<float>());

  out.value = loss / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", pos_count ? pos_sum * temperature_ / pos_count : 0.0);
  out.metrics.emplace_back("neg_sim", neg_count ? neg_sum * temperature_ / neg_count : 0.0);
  out.metrics.emplace_back("anchors", static_cast<double>(anchors) / static_cast<double>(M));
}

}  // namespace contra::plugins
