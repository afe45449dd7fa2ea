#pragma once
// The debiased contrastive loss (Chuang et al. 2020) with the hardness
// weights of Robinson et al. 2021 on the CPU, shared by the `debiased`
// (β = 0) and `hcl` plugins: β = 0 takes the unweighted path, so `debiased`
// computes exactly what `hcl` with β = 0 does. The cuda builds share
// debiased_hcl_cuda.cuh. Header-only, internal linkage: each plugin library
// keeps its own copy.

#include "pairs_forms.hpp"

#include <contra/blas.hpp>
#include <contra/errors.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>
#include <contra/roles/loss.hpp>
#include <contra/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins::debiased_hcl {
namespace {
constexpr std::int64_t no_id = std::numeric_limits<std::int64_t>::min();
constexpr float neg_inf = -std::numeric_limits<float>::infinity();

inline float dot(const float* a, const float* b, std::int64_t d) {
  float s = 0.0f;
  for (std::int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

inline void axpy(float alpha, const float* x, float* y, std::int64_t d) {
  for (std::int64_t k = 0; k < d; ++k) y[k] += alpha * x[k];
}

/// The loss of hcl.hpp (debiased.hpp for β = 0) on CPU tensors; messages
/// start with `name`. Holds at most `chunk` × (M + K) similarities at a time;
/// allocates only when a size grows.
class Estimator {
 public:
  /// `report_concentration`: add the "weight_concentration" metric (hcl).
  Estimator(std::string name, double temperature, double tau_plus, double beta, std::int64_t chunk,
            bool report_concentration)
      : name_(std::move(name)),
        temperature_(temperature),
        tau_plus_(tau_plus),
        beta_(beta),
        chunk_(chunk),
        report_concentration_(report_concentration) {}

  void compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out);

 private:
  std::string name_;
  double temperature_;
  double tau_plus_;
  double beta_;
  std::int64_t chunk_;
  bool report_concentration_;
  contra::Tensor zhat_;   // [M, D] normalised rows
  contra::Tensor norm_;   // [M] row norms
  contra::Tensor sim_;    // [B, M] similarities of a block of anchors, then dL/ds in place
  contra::Tensor msim_;   // [B, K] the block's similarities to the memory, then dL/ds
  contra::Tensor dzhat_;  // [M, D] dL/dẑ
  std::vector<float> ps_, ns_;  // one anchor's positive and negative similarities, then dL/ds
  // Explicit pairs, by anchor (CSR): positives' rows, negatives' columns
  // (rows < M, memory key k as M + k).
  std::vector<std::int64_t> pos_start_, pos_col_, neg_start_, neg_col_, fill_, order_;
};

void Estimator::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  // Which form of Pairs: every pair of the grouping, or explicit negatives (as info_nce).
  contra::check_pairs_form(name_, pairs, plugins::pairs_forms::all_or_listed_negatives());
  contra::EmbeddingsUse use;
  use.ids = true;
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings(name_, emb, contra::Device::cpu, use), D = z.dim(1);
  const std::int64_t* sample = emb.sample->data();
  const std::int64_t* row_ids = emb.ids ? emb.ids->data() : nullptr;

  // The memory's keys: with Pairs::all every valid key is a negative of every
  // anchor; with explicit lists only the (anchor, key) pairs listed.
  const contra::MemoryView* mem = emb.memory && emb.memory->size() > 0 ? emb.memory : nullptr;
  std::int64_t K = 0;
  const float* keys = nullptr;
  const std::int64_t* key_ids = nullptr;
  if (mem) {
    const contra::Tensor& k = mem->keys;
    if (k.rank() != 2 || k.dtype() != contra::DType::f32 || k.device() != contra::Device::cpu ||
        k.dim(1) != D)
      throw contra::UsageError(name_ + ": expected memory keys as an f32 [K, " + std::to_string(D) +
                               "] CPU tensor, got " + std::string(contra::dtype_name(k.dtype())) + " " +
                               k.shape().str() + " on " + contra::device_name(k.device()));
    K = k.dim(0);
    keys = k.data<float>();
    if (mem->ids && static_cast<std::int64_t>(mem->ids->size()) != K)
      throw contra::UsageError(name_ + ": MemoryView::ids has " + std::to_string(mem->ids->size()) +
                               " entries for " + std::to_string(K) + " keys");
    key_ids = mem->ids ? mem->ids->data() : nullptr;
  }
  contra::check_pair_indices(name_, pairs, emb);
  const float inv_t = static_cast<float>(1.0 / temperature_);

  // 1. ẑ_i = z_i / max(|z_i|, eps).
  zhat_.ensure({M, D}, contra::DType::f32);
  norm_.ensure({M}, contra::DType::f32);
  const float* zp = z.data<float>();
  float* zh = zhat_.data<float>();
  float* nrm = norm_.data<float>();
  contra::l2_normalize_rows(zp, M, D, zh, nrm);
  dzhat_.ensure({M, D}, contra::DType::f32);
  dzhat_.zero();
  float* dzh = dzhat_.data<float>();

  // 2. One anchor's loss from its positives' similarities ps[0..P) and its
  //    negatives' ns[0..Nn), both overwritten with ∂loss_i/∂s. With
  //    e_j = exp(s_j − m_N) (m_N the largest negative) and w_j = exp(β (s_j − m_N)):
  //    R / e^{m_N} = Nn Σ w_j e_j / Σ w_j  (exactly Σ e_j when β = 0). Each
  //    positive is shifted by m = max(s_ip, m_N), so every exponential is <= 1:
  //    l_ip = log(pos' + Ng') − (s_ip − m), pos' = e^{s_ip − m}, R' = R e^{m_N − m},
  //    Ng' = max((R' − Nn τ⁺ pos') / (1 − τ⁺), Nn e^{−1/T − m}).
  const double beta = beta_, tp = tau_plus_, inv_1mt = 1.0 / (1.0 - tau_plus_);
  const float beta_f = static_cast<float>(beta_);
  const double floor_log = -1.0 / temperature_;  // log of the bound's e^{-1/T}
  double loss = 0.0, pos_sum = 0.0, neg_sum = 0.0, conc_sum = 0.0;
  std::int64_t anchors = 0, pos_count = 0, neg_count = 0, conc_count = 0, terms = 0, clamped = 0;
  auto anchor = [&](float* ps, std::int64_t P, float* ns, std::int64_t Nn) {
    ++anchors;
    float m_neg = neg_inf;
    for (std::int64_t q = 0; q < P; ++q) pos_sum += ps[q];
    for (std::int64_t k = 0; k < Nn; ++k) {
      neg_sum += ns[k];
      m_neg = std::max(m_neg, ns[k]);
    }
    pos_count += P;
    neg_count += Nn;
    double sw = 0.0, swe = 0.0, sww = 0.0;
    for (std::int64_t k = 0; k < Nn; ++k) {
      const float d = ns[k] - m_neg;
      const double e = std::exp(d);
      const double w = beta_f == 0.0f ? 1.0 : static_cast<double>(std::exp(beta_f * d));
      sw += w;
      swe += w * e;
      sww += w * w;
    }
    const double R = Nn == 0 ? 0.0 : (beta == 0.0 ? swe : static_cast<double>(Nn) * swe / sw);
    if (Nn > 0) {
      conc_sum += sw * sw / (static_cast<double>(Nn) * sww);
      ++conc_count;
    }
    const double ntp = static_cast<double>(Nn) * tp;
    const double inv_p = 1.0 / static_cast<double>(P);
    double row_loss = 0.0, c = 0.0;  // c = Σ_p e^{m_N − m} / ((1 − τ⁺)(pos' + Ng')) over unclamped p
    for (std::int64_t q = 0; q < P; ++q) {
      const double a = ps[q];
      const double m = std::max(a, static_cast<double>(m_neg));
      const double pe = std::exp(a - m);
      const double f = Nn == 0 ? 0.0 : std::exp(static_cast<double>(m_neg) - m);
      const double A = (R * f - ntp * pe) * inv_1mt;
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
      ps[q] = static_cast<float>(g * inv_p);
    }
    loss += row_loss * inv_p;
    // Negatives: ∂l/∂s_j = c/P · w_j/Σw · ((1 + β) Nn e_j − β R'), in the units
    // above (exactly c/P · e_j when β = 0).
    const double cp = c * inv_p;
    for (std::int64_t k = 0; k < Nn; ++k) {
      const float d = ns[k] - m_neg;
      const double e = std::exp(d);
      if (beta_f == 0.0f) {
        ns[k] = static_cast<float>(cp * e);
      } else {
        const double w = std::exp(beta_f * d) / sw;
        ns[k] = static_cast<float>(cp * w * ((1.0 + beta) * static_cast<double>(Nn) * e - beta * R));
      }
    }
  };

  if (pairs.all) {
    // 3a. Blocks of at most `chunk` anchors: S = ẑ_blk ẑᵀ / T (and ẑ_blk keysᵀ / T);
    //     each row's candidates are gathered, turned into dL/ds, and scattered
    //     back in place; then dL/dẑ accumulates G ẑ / T (and G_mem keys / T) for
    //     the anchors and Gᵀ ẑ_blk / T for every row. Keys get no gradient.
    const std::int64_t B = std::min(chunk_, M);
    sim_.ensure({B, M}, contra::DType::f32);
    if (mem) msim_.ensure({B, K}, contra::DType::f32);
    float* S = sim_.data<float>();
    float* SK = mem ? msim_.data<float>() : nullptr;
    for (std::int64_t b0 = 0; b0 < M; b0 += B) {
      const std::int64_t nb = std::min(B, M - b0);
      const float* zb = zh + b0 * D;
      contra::sgemm(false, true, nb, M, D, inv_t, zb, D, zh, D, 0.0f, S, M);
      if (mem) contra::sgemm(false, true, nb, K, D, inv_t, zb, D, keys, D, 0.0f, SK, K);
      for (std::int64_t r = 0; r < nb; ++r) {
        const std::int64_t i = b0 + r;
        float* row = S + r * M;
        float* mrow = mem ? SK + r * K : nullptr;
        const std::int64_t si = sample[i];
        const std::int64_t rid = row_ids ? row_ids[i] : no_id;
        // A key is a negative unless it is an empty slot or of the anchor's own sample.
        auto key_ok = [&](std::int64_t k) { return !key_ids || (key_ids[k] >= 0 && key_ids[k] != rid); };
        ps_.clear();
        ns_.clear();
        for (std::int64_t j = 0; j < M; ++j)
          if (j != i) (sample[j] == si ? ps_ : ns_).push_back(row[j]);
        if (mem)
          for (std::int64_t k = 0; k < K; ++k)
            if (key_ok(k)) ns_.push_back(mrow[k]);
        if (ps_.empty()) {  // no positive: the row is no anchor and gets no gradient
          std::fill(row, row + M, 0.0f);
          if (mem) std::fill(mrow, mrow + K, 0.0f);
          continue;
        }
        anchor(ps_.data(), static_cast<std::int64_t>(ps_.size()), ns_.data(),
               static_cast<std::int64_t>(ns_.size()));
        std::size_t q = 0, t = 0;
        for (std::int64_t j = 0; j < M; ++j) row[j] = j == i ? 0.0f : sample[j] == si ? ps_[q++] : ns_[t++];
        if (mem)
          for (std::int64_t k = 0; k < K; ++k) mrow[k] = key_ok(k) ? ns_[t++] : 0.0f;
      }
      contra::sgemm(false, false, nb, D, M, inv_t, S, M, zh, D, 1.0f, dzh + b0 * D, D);
      contra::sgemm(true, false, M, D, nb, inv_t, S, M, zb, D, 1.0f, dzh, D);
      if (mem) contra::sgemm(false, false, nb, D, K, inv_t, SK, K, keys, D, 1.0f, dzh + b0 * D, D);
    }
  } else {
    // 3b. Explicit negatives: exactly the listed rows (Pairs::negative) and
    //     memory keys (Pairs::memory_negative) of each anchor, as often as
    //     listed; positives from Pairs::positive, or else the other views of the
    //     anchor's sample. One dot product per listed pair, no M × M work.
    //     Every index was checked above (contra::check_pair_indices).
    pos_start_.assign(static_cast<std::size_t>(M + 1), 0);
    if (!pairs.positive.empty()) {
      for (const auto& [a, p] : pairs.positive) ++pos_start_[a + 1];
      for (std::int64_t i = 0; i < M; ++i) pos_start_[i + 1] += pos_start_[i];
      pos_col_.resize(pairs.positive.size());
      fill_.assign(pos_start_.begin(), pos_start_.end() - 1);
      for (const auto& [a, p] : pairs.positive) pos_col_[fill_[a]++] = p;
    } else {  // the other rows of the sample: rows sorted by sample, then each group's others
      order_.resize(static_cast<std::size_t>(M));
      for (std::int64_t i = 0; i < M; ++i) order_[i] = i;
      std::stable_sort(order_.begin(), order_.end(),
                       [&](std::int64_t a, std::int64_t b) { return sample[a] < sample[b]; });
      pos_col_.clear();
      for (std::int64_t g0 = 0; g0 < M;) {
        std::int64_t g1 = g0 + 1;
        while (g1 < M && sample[order_[g1]] == sample[order_[g0]]) ++g1;
        for (std::int64_t a = g0; a < g1; ++a) pos_start_[order_[a] + 1] = g1 - g0 - 1;
        g0 = g1;
      }
      for (std::int64_t i = 0; i < M; ++i) pos_start_[i + 1] += pos_start_[i];
      pos_col_.resize(static_cast<std::size_t>(pos_start_[M]));
      fill_.assign(pos_start_.begin(), pos_start_.end() - 1);
      for (std::int64_t g0 = 0; g0 < M;) {
        std::int64_t g1 = g0 + 1;
        while (g1 < M && sample[order_[g1]] == sample[order_[g0]]) ++g1;
        for (std::int64_t a = g0; a < g1; ++a)
          for (std::int64_t b = g0; b < g1; ++b)
            if (a != b) pos_col_[fill_[order_[a]]++] = order_[b];
        g0 = g1;
      }
    }
    neg_start_.assign(static_cast<std::size_t>(M + 1), 0);
    for (const auto& [a, n] : pairs.negative) ++neg_start_[a + 1];
    for (const auto& [a, k] : pairs.memory_negative) ++neg_start_[a + 1];
    for (std::int64_t i = 0; i < M; ++i) neg_start_[i + 1] += neg_start_[i];
    neg_col_.resize(static_cast<std::size_t>(neg_start_[M]));
    fill_.assign(neg_start_.begin(), neg_start_.end() - 1);
    for (const auto& [a, n] : pairs.negative) neg_col_[fill_[a]++] = n;
    for (const auto& [a, k] : pairs.memory_negative) neg_col_[fill_[a]++] = M + k;  // keys after the rows
    auto column = [&](std::int64_t c) { return c < M ? zh + c * D : keys + (c - M) * D; };

    for (std::int64_t i = 0; i < M; ++i) {
      const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
      const std::int64_t n0 = neg_start_[i], Nn = neg_start_[i + 1] - n0;
      if (P == 0) continue;  // listed negatives of a row without positive do not count
      const float* zi = zh + i * D;
      ps_.resize(static_cast<std::size_t>(P));
      ns_.resize(static_cast<std::size_t>(Nn));
      for (std::int64_t q = 0; q < P; ++q) ps_[q] = dot(zi, zh + pos_col_[p0 + q] * D, D) * inv_t;
      for (std::int64_t k = 0; k < Nn; ++k) ns_[k] = dot(zi, column(neg_col_[n0 + k]), D) * inv_t;
      anchor(ps_.data(), P, ns_.data(), Nn);
      float* gi = dzh + i * D;
      for (std::int64_t q = 0; q < P; ++q) {
        const std::int64_t p = pos_col_[p0 + q];
        const float g = ps_[q] * inv_t;
        axpy(g, zh + p * D, gi, D);
        axpy(g, zi, dzh + p * D, D);
      }
      for (std::int64_t k = 0; k < Nn; ++k) {
        const std::int64_t c = neg_col_[n0 + k];
        const float g = ns_[k] * inv_t;
        axpy(g, column(c), gi, D);
        if (c < M) axpy(g, zi, dzh + c * D, D);
      }
    }
  }
  if (anchors == 0)
    throw contra::UsageError(name_ + ": no row has a positive (another view of its sample) among " +
                             std::to_string(M) + " rows; it needs at least 2 views per sample");

  // 4. Mean over anchors, and through the normalisation.
  out.grad.ensure(z.shape(), contra::DType::f32);
  contra::l2_normalize_rows_backward(zh, nrm, dzh, 1.0f / static_cast<float>(anchors), M, D,
                                     out.grad.data<float>());

  out.value = loss / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", pos_count ? pos_sum * temperature_ / pos_count : 0.0);
  out.metrics.emplace_back("neg_sim", neg_count ? neg_sum * temperature_ / neg_count : 0.0);
  if (report_concentration_)
    out.metrics.emplace_back("weight_concentration", conc_count ? conc_sum / conc_count : 1.0);
  out.metrics.emplace_back("clamped", terms ? static_cast<double>(clamped) / terms : 0.0);
}

}  // namespace
}  // namespace contra::plugins::debiased_hcl
