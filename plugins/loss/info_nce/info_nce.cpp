#include "info_nce.hpp"

#include <contra/blas.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {
// Norms below this are clamped, as torch.nn.functional.normalize does.
constexpr float norm_eps = 1e-12f;
}  // namespace

contra::Schema InfoNce::schema() {
  return contra::Schema("info_nce", "NT-Xent / InfoNCE over V views per sample (SimCLR)")
      .add<double>("temperature", 0.5, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0);
}

InfoNce::InfoNce(const contra::Params& p) : temperature_(p.get<double>("temperature")) {}

void InfoNce::compute(const contra::Embeddings& emb, const contra::Pairs& pairs,
                      contra::LossResult& out) {
  if (!pairs.all)
    throw contra::UsageError(
        "info_nce: needs the all_pairs miner (explicit pairs and triplets are not supported yet)");
  const contra::Tensor& z = emb.z;
  if (z.rank() != 2 || z.dtype() != contra::DType::f32 || z.device() != contra::Device::cpu)
    throw contra::UsageError("info_nce: expected embeddings as an f32 [M, D] CPU tensor, got " +
                             std::string(contra::dtype_name(z.dtype())) + " " + z.shape().str() +
                             " on " + contra::device_name(z.device()));
  const std::int64_t M = z.dim(0), D = z.dim(1);
  if (!emb.sample || static_cast<std::int64_t>(emb.sample->size()) != M)
    throw contra::UsageError("info_nce: Embeddings::sample must give the sample of each of the " +
                             std::to_string(M) + " rows");
  const std::int64_t* sample = emb.sample->data();
  const float inv_t = static_cast<float>(1.0 / temperature_);

  // 1. ẑ_i = z_i / max(|z_i|, eps).
  zhat_.ensure({M, D}, contra::DType::f32);
  norm_.ensure({M}, contra::DType::f32);
  const float* zp = z.data<float>();
  float* zh = zhat_.data<float>();
  float* nrm = norm_.data<float>();
  for (std::int64_t i = 0; i < M; ++i) {
    const float* zi = zp + i * D;
    float ss = 0.0f;
    for (std::int64_t k = 0; k < D; ++k) ss += zi[k] * zi[k];
    const float n = std::sqrt(ss);
    nrm[i] = n;
    const float inv = 1.0f / std::max(n, norm_eps);
    float* hi = zh + i * D;
    for (std::int64_t k = 0; k < D; ++k) hi[k] = zi[k] * inv;
  }

  // 2. S = ẑ ẑᵀ / T.
  sim_.ensure({M, M}, contra::DType::f32);
  float* S = sim_.data<float>();
  contra::sgemm(false, true, M, M, D, inv_t, zh, D, zh, D, 0.0f, S, M);

  // 3. Per anchor row: loss, and dL/ds written over the row of S. Shifts keep
  //    every exponent <= 0: negatives by their max m_N, each positive's term
  //    by m_p = max(s_ip, m_N), so every denominator D_p is >= 1.
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  double loss = 0.0, pos_sum = 0.0, neg_sum = 0.0;
  std::int64_t anchors = 0, pos_count = 0, neg_count = 0;
  for (std::int64_t i = 0; i < M; ++i) {
    float* row = S + i * M;
    const std::int64_t si = sample[i];
    float m_neg = neg_inf;
    std::int64_t P = 0;
    double row_pos = 0.0, row_neg = 0.0;
    for (std::int64_t j = 0; j < M; ++j) {
      if (j == i) continue;
      if (sample[j] == si) {
        ++P;
        row_pos += row[j];
      } else {
        m_neg = std::max(m_neg, row[j]);
        row_neg += row[j];
      }
    }
    pos_sum += row_pos;
    neg_sum += row_neg;
    pos_count += P;
    neg_count += M - 1 - P;
    if (P == 0) {  // no positive: the row is no anchor and gets no gradient
      std::fill(row, row + M, 0.0f);
      continue;
    }
    ++anchors;
    // Negatives: e_n = exp(s_in − m_N), stored in place; E_N = Σ e_n.
    double e_neg = 0.0;
    for (std::int64_t j = 0; j < M; ++j) {
      if (j == i || sample[j] == si) continue;
      const float e = std::exp(row[j] - m_neg);
      row[j] = e;
      e_neg += e;
    }
    // Positives: l_ip = −s_ip + m_p + log D_p with
    // D_p = exp(s_ip − m_p) + E_N·exp(m_N − m_p).
    const double inv_p = 1.0 / static_cast<double>(P);
    double row_loss = 0.0, c = 0.0;  // c = Σ_p exp(m_N − m_p) / D_p
    for (std::int64_t j = 0; j < M; ++j) {
      if (j == i || sample[j] != si) continue;
      const double a = row[j];
      double mp, ea, en;  // m_p, exp(s_ip − m_p), exp(m_N − m_p)
      if (a >= m_neg) {
        mp = a;
        ea = 1.0;
        en = std::exp(static_cast<double>(m_neg) - a);
      } else {
        mp = m_neg;
        ea = std::exp(a - m_neg);
        en = 1.0;
      }
      const double Dp = ea + e_neg * en;
      row_loss += -a + mp + std::log(Dp);
      row[j] = static_cast<float>((ea / Dp - 1.0) * inv_p);  // ∂loss_i/∂s_ip
      c += en / Dp;
    }
    loss += row_loss * inv_p;
    // ∂loss_i/∂s_in = e_n · c / P; the diagonal does not enter.
    const float scale = static_cast<float>(c * inv_p);
    for (std::int64_t j = 0; j < M; ++j)
      if (j != i && sample[j] != si) row[j] *= scale;
    row[i] = 0.0f;
  }
  if (anchors == 0)
    throw contra::UsageError("info_nce: no row has a positive (another view of its sample) among " +
                             std::to_string(M) + " rows; it needs at least 2 views per sample");

  // 4. Mean over anchors: G = S / anchors; dL/dẑ = (G + Gᵀ) ẑ / T.
  const float g_scale = inv_t / static_cast<float>(anchors);
  dzhat_.ensure({M, D}, contra::DType::f32);
  float* dzh = dzhat_.data<float>();
  contra::sgemm(false, false, M, D, M, g_scale, S, M, zh, D, 0.0f, dzh, D);
  contra::sgemm(true, false, M, D, M, g_scale, S, M, zh, D, 1.0f, dzh, D);

  // 5. Through the normalisation: dL/dz_i = (g_i − ẑ_i (ẑ_i·g_i)) / |z_i|.
  out.grad.ensure(z.shape(), contra::DType::f32);
  float* gz = out.grad.data<float>();
  for (std::int64_t i = 0; i < M; ++i) {
    const float* hi = zh + i * D;
    const float* gi = dzh + i * D;
    float* oi = gz + i * D;
    if (nrm[i] < norm_eps) {  // clamped norm: ẑ = z / eps is linear in z
      for (std::int64_t k = 0; k < D; ++k) oi[k] = gi[k] / norm_eps;
      continue;
    }
    float dot = 0.0f;
    for (std::int64_t k = 0; k < D; ++k) dot += hi[k] * gi[k];
    const float inv = 1.0f / nrm[i];
    for (std::int64_t k = 0; k < D; ++k) oi[k] = (gi[k] - hi[k] * dot) * inv;
  }

  out.value = loss / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", pos_count ? pos_sum * temperature_ / pos_count : 0.0);
  out.metrics.emplace_back("neg_sim", neg_count ? neg_sum * temperature_ / neg_count : 0.0);
}

}  // namespace contra::plugins
