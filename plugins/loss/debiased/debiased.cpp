#include "debiased.hpp"

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
constexpr std::int64_t no_id = std::numeric_limits<std::int64_t>::min();
}  // namespace

contra::Schema Debiased::schema() {
  return contra::Schema("debiased",
                        "debiased contrastive loss (Chuang et al. 2020): InfoNCE corrected for "
                        "same-class negatives")
      .add<double>("temperature", 0.5, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0)
      .add<double>("tau_plus", 0.1,
                   "class prior tau+: probability that a negative is of the anchor's class")
      .range(0.0, 0.999)
      .add<std::int64_t>("chunk", 1024,
                         "anchor rows per block; at most chunk x (rows + memory keys) similarities are held")
      .at_least(1);
}

Debiased::Debiased(const contra::Params& p)
    : temperature_(p.get<double>("temperature")),
      tau_plus_(p.get<double>("tau_plus")),
      chunk_(p.get<std::int64_t>("chunk")) {}

void Debiased::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  if (!pairs.all)
    throw contra::UsageError(
        "debiased: needs the all_pairs miner (Pairs::all); explicit positive/negative pairs and triplets are "
        "not supported");
  const contra::Tensor& z = emb.z;
  if (z.rank() != 2 || z.dtype() != contra::DType::f32 || z.device() != contra::Device::cpu)
    throw contra::UsageError("debiased: expected embeddings as an f32 [M, D] CPU tensor, got " +
                             std::string(contra::dtype_name(z.dtype())) + " " + z.shape().str() + " on " +
                             contra::device_name(z.device()));
  const std::int64_t M = z.dim(0), D = z.dim(1);
  if (!emb.sample || static_cast<std::int64_t>(emb.sample->size()) != M)
    throw contra::UsageError("debiased: Embeddings::sample must give the sample of each of the " +
                             std::to_string(M) + " rows");
  if (emb.ids && static_cast<std::int64_t>(emb.ids->size()) != M)
    throw contra::UsageError("debiased: Embeddings::ids has " + std::to_string(emb.ids->size()) +
                             " entries for " + std::to_string(M) + " rows");
  const std::int64_t* sample = emb.sample->data();
  const std::int64_t* row_ids = emb.ids ? emb.ids->data() : nullptr;

  // Memory: every valid key is a negative of every anchor (full), or only the
  // keys the miner listed in pairs.memory_negative (listed).
  const contra::MemoryView* mem = emb.memory && emb.memory->size() > 0 ? emb.memory : nullptr;
  std::int64_t K = 0;
  const float* keys = nullptr;
  const std::int64_t* key_ids = nullptr;
  if (mem) {
    const contra::Tensor& k = mem->keys;
    if (k.rank() != 2 || k.dtype() != contra::DType::f32 || k.device() != contra::Device::cpu ||
        k.dim(1) != D)
      throw contra::UsageError("debiased: expected memory keys as an f32 [K, " + std::to_string(D) +
                               "] CPU tensor, got " + std::string(contra::dtype_name(k.dtype())) + " " +
                               k.shape().str() + " on " + contra::device_name(k.device()));
    K = k.dim(0);
    keys = k.data<float>();
    if (mem->ids && static_cast<std::int64_t>(mem->ids->size()) != K)
      throw contra::UsageError("debiased: MemoryView::ids has " + std::to_string(mem->ids->size()) +
                               " entries for " + std::to_string(K) + " keys");
    key_ids = mem->ids ? mem->ids->data() : nullptr;
  }
  const bool listed = !pairs.memory_negative.empty();
  const bool full_memory = mem && !listed;
  if (listed) {
    if (!mem)
      throw contra::UsageError(
          "debiased: pairs.memory_negative lists memory keys, but the pipeline has no memory (or it is empty)");
    listed_begin_.assign(static_cast<std::size_t>(M + 1), 0);
    for (const auto& [a, k] : pairs.memory_negative) {
      if (a < 0 || a >= M || k < 0 || k >= K)
        throw contra::UsageError("debiased: memory negative (" + std::to_string(a) + ", " + std::to_string(k) +
                                 ") is out of range for " + std::to_string(M) + " rows and " +
                                 std::to_string(K) + " memory keys");
      if (key_ids && key_ids[k] < 0)
        throw contra::UsageError("debiased: memory negative (" + std::to_string(a) + ", " + std::to_string(k) +
                                 ") names an empty memory slot");
      ++listed_begin_[static_cast<std::size_t>(a) + 1];
    }
    for (std::int64_t i = 0; i < M; ++i) listed_begin_[i + 1] += listed_begin_[i];
    listed_key_.resize(pairs.memory_negative.size());
    listed_sim_.resize(pairs.memory_negative.size());
    std::vector<std::int64_t>& fill = listed_begin_;  // advanced while filling, shifted back below
    for (const auto& [a, k] : pairs.memory_negative) listed_key_[static_cast<std::size_t>(fill[a]++)] = k;
    for (std::int64_t i = M; i > 0; --i) fill[i] = fill[i - 1];
    fill[0] = 0;
  }
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

  // 2. Blocks of at most `chunk` anchors: S = ẑ_blk ẑᵀ / T (and ẑ_blk keysᵀ / T),
  //    row operations turn S into dL/ds in place, then dL/dẑ accumulates
  //    G ẑ / T for the anchors, Gᵀ ẑ_blk / T for the rows they meet.
  const std::int64_t B = std::min(chunk_, M);
  sim_.ensure({B, M}, contra::DType::f32);
  if (full_memory) msim_.ensure({B, K}, contra::DType::f32);
  dzhat_.ensure({M, D}, contra::DType::f32);
  dzhat_.zero();
  float* S = sim_.data<float>();
  float* SK = full_memory ? msim_.data<float>() : nullptr;
  float* dzh = dzhat_.data<float>();

  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  const double tp = tau_plus_, inv_1mt = 1.0 / (1.0 - tau_plus_);
  const double floor_log = -1.0 / temperature_;  // log of the bound's e^{-1/T}
  double loss = 0.0, pos_sum = 0.0, neg_sum = 0.0;
  std::int64_t anchors = 0, pos_count = 0, neg_count = 0, terms = 0, clamped = 0;

  for (std::int64_t b0 = 0; b0 < M; b0 += B) {
    const std::int64_t nb = std::min(B, M - b0);
    const float* zb = zh + b0 * D;
    contra::sgemm(false, true, nb, M, D, inv_t, zb, D, zh, D, 0.0f, S, M);
    if (full_memory) contra::sgemm(false, true, nb, K, D, inv_t, zb, D, keys, D, 0.0f, SK, K);

    for (std::int64_t r = 0; r < nb; ++r) {
      const std::int64_t i = b0 + r;
      float* row = S + r * M;
      float* mrow = full_memory ? SK + r * K : nullptr;
      const std::int64_t si = sample[i];
      const std::int64_t rid = row_ids ? row_ids[i] : no_id;
      auto key_ok = [&](std::int64_t k) {
        return !key_ids || (key_ids[k] >= 0 && key_ids[k] != rid);
      };
      const std::int64_t l0 = listed ? listed_begin_[i] : 0, l1 = listed ? listed_begin_[i + 1] : 0;
      const float* zi = zh + i * D;

      // Pass 1: positives, negatives, and the largest negative m_N.
      float m_neg = neg_inf;
      std::int64_t P = 0, Nn = 0;
      double row_pos = 0.0, row_neg = 0.0;
      for (std::int64_t j = 0; j < M; ++j) {
        if (j == i) continue;
        if (sample[j] == si) {
          ++P;
          row_pos += row[j];
        } else {
          ++Nn;
          row_neg += row[j];
          m_neg = std::max(m_neg, row[j]);
        }
      }
      if (full_memory)
        for (std::int64_t k = 0; k < K; ++k)
          if (key_ok(k)) {
            ++Nn;
            row_neg += mrow[k];
            m_neg = std::max(m_neg, mrow[k]);
          }
      for (std::int64_t l = l0; l < l1; ++l) {
        const float* kk = keys + static_cast<std::int64_t>(listed_key_[l]) * D;
        float dot = 0.0f;
        for (std::int64_t c = 0; c < D; ++c) dot += zi[c] * kk[c];
        const float s = dot * inv_t;
        listed_sim_[l] = s;
        ++Nn;
        row_neg += s;
        m_neg = std::max(m_neg, s);
      }
      if (P == 0) {  // no positive: the row is no anchor and gets no gradient
        std::fill(row, row + M, 0.0f);
        if (full_memory) std::fill(mrow, mrow + K, 0.0f);
        continue;
      }
      ++anchors;
      pos_sum += row_pos;
      pos_count += P;
      neg_sum += row_neg;
      neg_count += Nn;

      // Pass 2: S_N = Σ_j e^{s_j − m_N}, the negatives' term in units of e^{m_N}.
      double sum_neg = 0.0;
      for (std::int64_t j = 0; j < M; ++j)
        if (j != i && sample[j] != si) sum_neg += std::exp(row[j] - m_neg);
      if (full_memory)
        for (std::int64_t k = 0; k < K; ++k)
          if (key_ok(k)) sum_neg += std::exp(mrow[k] - m_neg);
      for (std::int64_t l = l0; l < l1; ++l) sum_neg += std::exp(listed_sim_[l] - m_neg);

      // Positives, each shifted by m = max(s_ip, m_N) so that every exponential
      // is <= 1:  l_ip = log(pos' + Ng') − (s_ip − m), with pos' = e^{s_ip − m},
      // S' = S_N e^{m_N − m}, Ng' = max((S' − Nn τ⁺ pos') / (1 − τ⁺), Nn e^{−1/T − m}).
      const double ntp = static_cast<double>(Nn) * tp;
      const double inv_p = 1.0 / static_cast<double>(P);
      double row_loss = 0.0, c = 0.0;  // c = Σ_p e^{m_N − m} / ((1 − τ⁺)(pos' + Ng')) over unclamped p
      for (std::int64_t j = 0; j < M; ++j) {
        if (j == i || sample[j] != si) continue;
        const double a = row[j];
        const double m = std::max(a, static_cast<double>(m_neg));
        const double pe = std::exp(a - m);
        const double f = Nn == 0 ? 0.0 : std::exp(static_cast<double>(m_neg) - m);
        const double A = (sum_neg * f - ntp * pe) * inv_1mt;
        const double Bn = static_cast<double>(Nn) * std::exp(floor_log - m);
        const bool open = A > Bn;
        const double den = pe + (open ? A : Bn);
        row_loss += std::log(den) - (a - m);
        double g;
        if (open) {
          g = pe * (1.0 - ntp * inv_1mt) / den - 1.0;
          c += f * inv_1mt / den;
        } else {
          g = pe / den - 1.0;
          ++clamped;
        }
        ++terms;
        row[j] = static_cast<float>(g * inv_p);
      }
      loss += row_loss * inv_p;

      // Pass 3, negatives: ∂l/∂s_j = c/P · e^{s_j − m_N}.
      const double cp = c * inv_p;
      auto grad = [&](float s) -> float { return static_cast<float>(cp * std::exp(s - m_neg)); };
      for (std::int64_t j = 0; j < M; ++j)
        if (j != i && sample[j] != si) row[j] = grad(row[j]);
      row[i] = 0.0f;
      if (full_memory)
        for (std::int64_t k = 0; k < K; ++k) mrow[k] = key_ok(k) ? grad(mrow[k]) : 0.0f;
      float* gi = dzh + i * D;
      for (std::int64_t l = l0; l < l1; ++l) {
        const float g = grad(listed_sim_[l]) * inv_t;
        const float* kk = keys + static_cast<std::int64_t>(listed_key_[l]) * D;
        for (std::int64_t k = 0; k < D; ++k) gi[k] += g * kk[k];
      }
    }

    // dL/dẑ (unscaled by the anchor count): the block's rows get G ẑ / T and
    // G_mem keys / T; every row gets Gᵀ ẑ_blk / T. Keys get no gradient.
    contra::sgemm(false, false, nb, D, M, inv_t, S, M, zh, D, 1.0f, dzh + b0 * D, D);
    contra::sgemm(true, false, M, D, nb, inv_t, S, M, zb, D, 1.0f, dzh, D);
    if (full_memory) contra::sgemm(false, false, nb, D, K, inv_t, SK, K, keys, D, 1.0f, dzh + b0 * D, D);
  }
  if (anchors == 0)
    throw contra::UsageError("debiased: no row has a positive (another view of its sample) among " +
                             std::to_string(M) + " rows; it needs at least 2 views per sample");

  // 3. Mean over anchors, and through the normalisation:
  //    dL/dz_i = (g_i − ẑ_i (ẑ_i·g_i)) / |z_i|.
  const float scale = 1.0f / static_cast<float>(anchors);
  out.grad.ensure(z.shape(), contra::DType::f32);
  float* gz = out.grad.data<float>();
  for (std::int64_t i = 0; i < M; ++i) {
    const float* hi = zh + i * D;
    const float* gi = dzh + i * D;
    float* oi = gz + i * D;
    if (nrm[i] < norm_eps) {  // clamped norm: ẑ = z / eps is linear in z
      for (std::int64_t k = 0; k < D; ++k) oi[k] = gi[k] * scale / norm_eps;
      continue;
    }
    float dot = 0.0f;
    for (std::int64_t k = 0; k < D; ++k) dot += hi[k] * gi[k];
    const float inv = scale / nrm[i];
    for (std::int64_t k = 0; k < D; ++k) oi[k] = (gi[k] - hi[k] * dot) * inv;
  }

  out.value = loss / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", pos_count ? pos_sum * temperature_ / pos_count : 0.0);
  out.metrics.emplace_back("neg_sim", neg_count ? neg_sum * temperature_ / neg_count : 0.0);
  out.metrics.emplace_back("clamped", terms ? static_cast<double>(clamped) / terms : 0.0);
}

}  // namespace contra::plugins
