#include "info_nce.hpp"

#include "../pairs_forms.hpp"

#include <contra/blas.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

// The row operations are vectorised loops around an inlined polynomial exp.
// Built for a baseline without AVX2 (plain x86-64), they are compiled for
// AVX-512, AVX2+FMA and the baseline, and the loader picks the best this CPU
// runs (GCC function multi-versioning). Built for AVX2 or better already
// (e.g. -march=native), they are not cloned: GCC does not inline a function
// of the translation unit's target into a clone of another target, and the
// exp would become a scalar call per element.
// Not under ThreadSanitizer: the clones' resolver runs while the dynamic
// linker relocates, before the sanitizer's runtime is there to call.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(__SANITIZE_THREAD__)
#define CONTRA_NCE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CONTRA_NCE_CLONES
#endif
#if defined(__GNUC__)
#define CONTRA_NCE_INLINE inline __attribute__((always_inline))
#else
#define CONTRA_NCE_INLINE inline
#endif

namespace contra::plugins {

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

std::string str(std::int64_t v) { return std::to_string(v); }

// The symmetric path shifts every exponent by 1/T instead of a row's max:
// s − 1/T >= −2/T stays above e^−87 (the smallest normal float) for T >= 0.023.
constexpr double min_symmetric_temperature = 0.025;

// e^x for x <= 0 (x = −inf included), vectorisable: Cody-Waite reduction
// x = n·ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, and 2^n
// put together in the exponent bits. Relative error about 2e-7 (2 ulp); x <
// −87.3 flushes to 0 (or to the smallest normal), which is exact enough for
// terms summed against a largest term of 1.
CONTRA_NCE_INLINE float exp_nonpositive(float x) {
  x = x < -88.0f ? -88.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;  // n in [−127, 0]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Largest entry, and sum and count of the finite ones (masked entries are −inf).
CONTRA_NCE_CLONES float row_max(const float* x, std::int64_t n, double* finite_sum,
                                std::int64_t* finite_count) {
  float m = neg_inf, s = 0.0f;
  std::int64_t c = 0;
#pragma omp simd reduction(max : m) reduction(+ : s, c)
  for (std::int64_t j = 0; j < n; ++j) {
    const float v = x[j];
    m = v > m ? v : m;
    const bool finite = v > neg_inf;
    s += finite ? v : 0.0f;
    c += finite ? 1 : 0;
  }
  *finite_sum = s;
  *finite_count = c;
  return m;
}

// x_j ← exp(x_j − m) in place (masked −inf entries become 0); returns the sum.
CONTRA_NCE_CLONES double exp_shift_sum(float* x, std::int64_t n, float m) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (std::int64_t j = 0; j < n; ++j) {
    const float e = exp_nonpositive(x[j] - m);
    x[j] = e;
    s += e;
  }
  return s;
}

// Symmetric path, pass 1, on a tile x (r × c, row-major) of similarities:
// E = exp(x − mu) (masked −inf entries 0), written over x; rowsum[i] += Σ_j E_ij
// and, for a tile off the diagonal, colsum[j] += Σ_i E_ij.
constexpr std::int64_t max_tile = 256;
CONTRA_NCE_CLONES void tile_sums(float* x, std::int64_t r, std::int64_t c, float mu, double* rowsum,
                                 double* colsum) {
  float cs[max_tile] = {};
  for (std::int64_t i = 0; i < r; ++i) {
    float* xi = x + i * c;
    float s = 0.0f;
    if (colsum) {
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < c; ++j) {
        const float e = exp_nonpositive(xi[j] - mu);
        xi[j] = e;
        s += e;
        cs[j] += e;
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < c; ++j) {
        const float e = exp_nonpositive(xi[j] - mu);
        xi[j] = e;
        s += e;
      }
    }
    rowsum[i] += s;
  }
  if (colsum)
    for (std::int64_t j = 0; j < c; ++j) colsum[j] += cs[j];
}

// Symmetric path, pass 2 on a tile kept from pass 1: x_ij ← E_ij · (a_i + b_j).
CONTRA_NCE_CLONES void tile_scale(float* x, std::int64_t r, std::int64_t c, const float* a, const float* b) {
  for (std::int64_t i = 0; i < r; ++i) {
    float* xi = x + i * c;
    const float ai = a[i];
#pragma omp simd
    for (std::int64_t j = 0; j < c; ++j) xi[j] *= ai + b[j];
  }
}

// Symmetric path, pass 2: x_ij ← exp(x_ij − mu) · (a_i + b_j), the coefficient of
// the unordered pair {i, j} in dL/dẑ (both rows' terms).
CONTRA_NCE_CLONES void tile_coefficients(float* x, std::int64_t r, std::int64_t c, float mu, const float* a,
                                         const float* b) {
  for (std::int64_t i = 0; i < r; ++i) {
    float* xi = x + i * c;
    const float ai = a[i];
#pragma omp simd
    for (std::int64_t j = 0; j < c; ++j) xi[j] = exp_nonpositive(xi[j] - mu) * (ai + b[j]);
  }
}

inline float dot(const float* a, const float* b, std::int64_t d) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (std::int64_t k = 0; k < d; ++k) s += a[k] * b[k];
  return s;
}

inline void axpy(float alpha, const float* x, float* y, std::int64_t d) {
#pragma omp simd
  for (std::int64_t k = 0; k < d; ++k) y[k] += alpha * x[k];
}

// One anchor's loss from its positives' similarities ps[0..P) and its
// negatives summarised as m = max s_in (−inf when none) and en = Σ exp(s_in − m).
// Each positive's term is shifted by m_p = max(s_ip, m) so that every
// exponent is <= 0 and T = 0.001 stays finite:
//   l_ip = −s_ip + m_p + log D_p,  D_p = exp(s_ip − m_p) + en·exp(m − m_p).
// Writes ∂loss_i/∂s_ip into pg and returns loss_i; ∂loss_i/∂s_in is
// exp(s_in − m) · *neg_scale.
double finish_row(const float* ps, float* pg, std::int64_t P, float m, double en, float* neg_scale) {
  const double inv_p = 1.0 / static_cast<double>(P);
  double loss = 0.0, c = 0.0;  // c = Σ_p exp(m − m_p) / D_p
  for (std::int64_t k = 0; k < P; ++k) {
    const double a = ps[k];
    double mp, ea, eneg;  // m_p, exp(s_ip − m_p), exp(m − m_p)
    if (a >= m) {
      mp = a;
      ea = 1.0;
      eneg = std::exp(static_cast<double>(m) - a);  // 0 when m = −inf
    } else {
      mp = m;
      ea = std::exp(a - m);
      eneg = 1.0;
    }
    const double Dp = ea + en * eneg;
    loss += -a + mp + std::log(Dp);
    pg[k] = static_cast<float>((ea / Dp - 1.0) * inv_p);
    c += eneg / Dp;
  }
  *neg_scale = static_cast<float>(c * inv_p);
  return loss * inv_p;
}

void check_matrix(const contra::Tensor& t, std::int64_t rows, std::int64_t cols, const char* what) {
  if (t.rank() != 2 || t.dtype() != contra::DType::f32 || t.device() != contra::Device::cpu ||
      (rows >= 0 && t.dim(0) != rows) || t.dim(1) != cols)
    throw contra::UsageError(std::string("info_nce: expected ") + what + " as an f32 [" +
                             (rows >= 0 ? str(rows) : std::string("K")) + ", " + str(cols) +
                             "] CPU tensor, got " + contra::dtype_name(t.dtype()) + " " +
                             t.shape().str() + " on " + contra::device_name(t.device()));
}

}  // namespace

contra::Schema InfoNce::schema() {
  return contra::Schema("info_nce",
                        "NT-Xent / InfoNCE over V views per sample (SimCLR), with memory negatives "
                        "and momentum keys (MoCo)")
      .add<double>("temperature", 0.5, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0)
      .add<std::int64_t>("chunk", 1024,
                         "anchor rows whose similarities are computed at once; memory is "
                         "chunk x (rows + memory keys) floats")
      .at_least(1)
      .add<std::string>("batch_negatives", "auto",
                        "other samples' batch rows as negatives: auto = yes without momentum keys, "
                        "no with them (MoCo)")
      .choices({"auto", "yes", "no"});
}

InfoNce::InfoNce(const contra::Params& p)
    : temperature_(p.get<double>("temperature")), chunk_(p.get<std::int64_t>("chunk")) {
  const std::string b = p.get<std::string>("batch_negatives");
  batch_negatives_ = b == "yes" ? BatchNegatives::yes : b == "no" ? BatchNegatives::no : BatchNegatives::automatic;
}

void InfoNce::compute(const contra::Embeddings& emb, const contra::Pairs& pairs,
                      contra::LossResult& out) {
  // Which form of Pairs: every pair of the grouping, or explicit negatives.
  contra::check_pairs_form("info_nce", pairs, pairs_forms::all_or_listed_negatives_and_synthetic());
  const contra::Tensor& z = emb.z;
  const std::int64_t M = contra::check_embeddings("info_nce", emb), D = z.dim(1);
  M_ = M;
  D_ = D;
  keys_ = emb.keys.defined();
  if (keys_) check_matrix(emb.keys, M, D, "momentum keys (Embeddings::keys)");
  K_ = 0;
  mem_ = nullptr;
  if (emb.memory && emb.memory->size() > 0) {
    check_matrix(emb.memory->keys, -1, D, "memory keys (MemoryView::keys)");
    K_ = emb.memory->size();
    mem_ = emb.memory->keys.data<float>();
    if (emb.memory->ids && static_cast<std::int64_t>(emb.memory->ids->size()) != K_)
      throw contra::UsageError("info_nce: MemoryView::ids has " + str(emb.memory->ids->size()) +
                               " entries for " + str(K_) + " keys");
  }
  contra::check_pair_indices("info_nce", pairs, emb);
  const bool batch_neg = batch_negatives_ == BatchNegatives::yes ||
                         (batch_negatives_ == BatchNegatives::automatic && !keys_);
  if (pairs.all && !batch_neg && !emb.memory)
    throw contra::UsageError(
        std::string("info_nce: no negatives: batch_negatives = ") +
        (batch_negatives_ == BatchNegatives::no ? "\"no\"" : "\"auto\" with momentum keys") +
        " takes negatives from a memory only, and the pipeline has none");
  inv_t_ = static_cast<float>(1.0 / temperature_);

  // 1. Normalised rows (and keys).
  zhat_.ensure({M, D}, contra::DType::f32);
  norm_.ensure({M}, contra::DType::f32);
  const float* zp = z.data<float>();
  float* zh = zhat_.data<float>();
  float* nrm = norm_.data<float>();
  contra::l2_normalize_rows(zp, M, D, zh, nrm);
  if (keys_) {
    khat_.ensure({M, D}, contra::DType::f32);
    contra::l2_normalize_rows(emb.keys.data<float>(), M, D, khat_.data<float>(), nullptr);
  }
  const float* pos_rows = keys_ ? khat_.data<float>() : zh;  // what a positive is

  // 2. Rows grouped by sample (stable: rows ascending within a group).
  const std::int64_t* sample = emb.sample->data();
  {
    std::vector<std::int32_t> order(static_cast<std::size_t>(M));
    for (std::int64_t i = 0; i < M; ++i) order[i] = static_cast<std::int32_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int32_t a, std::int32_t b) { return sample[a] < sample[b]; });
    group_of_.assign(static_cast<std::size_t>(M), 0);
    group_start_.clear();
    group_rows_.assign(order.begin(), order.end());
    for (std::int64_t k = 0; k < M; ++k) {
      if (k == 0 || sample[order[k]] != sample[order[k - 1]])
        group_start_.push_back(static_cast<std::int32_t>(k));
      group_of_[order[k]] = static_cast<std::int32_t>(group_start_.size() - 1);
    }
    group_start_.push_back(static_cast<std::int32_t>(M));
  }

  // 3. Positives per row: Pairs::positive, else the other rows of the sample.
  pos_start_.assign(static_cast<std::size_t>(M + 1), 0);
  pos_col_.clear();
  if (!pairs.positive.empty()) {
    for (const auto& [a, p] : pairs.positive) ++pos_start_[a + 1];
    for (std::int64_t i = 0; i < M; ++i) pos_start_[i + 1] += pos_start_[i];
    pos_col_.resize(pairs.positive.size());
    std::vector<std::int64_t> fill(pos_start_.begin(), pos_start_.end() - 1);
    for (const auto& [a, p] : pairs.positive) pos_col_[fill[a]++] = p;
  } else {
    for (std::int64_t i = 0; i < M; ++i) {
      const std::int32_t g = group_of_[i];
      pos_start_[i + 1] = pos_start_[i] + (group_start_[g + 1] - group_start_[g] - 1);
    }
    pos_col_.resize(static_cast<std::size_t>(pos_start_[M]));
    for (std::int64_t i = 0, k = 0; i < M; ++i) {
      const std::int32_t g = group_of_[i];
      for (std::int32_t q = group_start_[g]; q < group_start_[g + 1]; ++q)
        if (group_rows_[q] != i) pos_col_[k++] = group_rows_[q];
    }
  }
  const std::int64_t npos = pos_start_[M];
  pos_s_.resize(static_cast<std::size_t>(npos));
  pos_g_.assign(static_cast<std::size_t>(npos), 0.0f);
  std::int64_t anchors = 0;
  for (std::int64_t i = 0; i < M; ++i) {
    if (pos_start_[i + 1] > pos_start_[i]) ++anchors;
    for (std::int64_t k = pos_start_[i]; k < pos_start_[i + 1]; ++k)
      pos_s_[k] = dot(zh + i * D, pos_rows + static_cast<std::int64_t>(pos_col_[k]) * D, D) * inv_t_;
  }
  if (anchors == 0)
    throw contra::UsageError("info_nce: no row has a positive (another view of its sample) among " +
                             str(M) + " rows; it needs at least 2 views per sample");
  alpha_ = static_cast<float>(1.0 / (temperature_ * static_cast<double>(anchors)));

  dzhat_.ensure({M, D}, contra::DType::f32);
  dzhat_.zero();
  extra_dzhat_ = 0;

  // 4. Negatives: dense blocks of every candidate, or the listed ones.
  Sums sums;
  if (pairs.all && batch_neg && !keys_ && K_ == 0 && temperature_ >= min_symmetric_temperature) symmetric(sums);
  else if (pairs.all) dense(emb, batch_neg, sums);
  else sparse(emb, pairs, sums);
  add_positive_gradients();

  // 5. Through the normalisation, with the other threads' parts of dL/dẑ from
  //    the symmetric path added first.
  float* dzh = dzhat_.data<float>();
  const int extra = extra_dzhat_;
  if (extra > 0) {
    const float* extra_rows = thread_dzhat_.data<float>();
#pragma omp parallel for schedule(static) if (M * D > 65536)
    for (std::int64_t i = 0; i < M; ++i)
      for (int th = 0; th < extra; ++th) axpy(1.0f, extra_rows + (th * M + i) * D, dzh + i * D, D);
  }
  out.grad.ensure(z.shape(), contra::DType::f32);
  contra::l2_normalize_rows_backward(zh, nrm, dzh, 1.0f, M, D, out.grad.data<float>());

  out.value = sums.loss / static_cast<double>(anchors);
  out.metrics.clear();
  out.metrics.emplace_back("pos_sim", sums.pos_count ? sums.pos_sum * temperature_ / sums.pos_count : 0.0);
  out.metrics.emplace_back("neg_sim", sums.neg_count ? sums.neg_sum * temperature_ / sums.neg_count : 0.0);
}

// Pairs::all. Candidates (columns) are the batch rows (ẑ, or k̂ with momentum
// keys) when batch negatives are on, then the memory keys. Per block of anchor
// rows: S = ẑ_block · candidatesᵀ / T (sgemm); per row, in one pass: mask the
// row's own sample and excluded keys (−inf), its max m and exp(s − m) in place;
// then dL/dẑ_block += diag(scale) · E · candidates and, when the candidates are
// the rows themselves, dL/dẑ += Eᵀ · diag(scale) · ẑ_block (sgemm).
void InfoNce::dense(const contra::Embeddings& emb, bool batch_neg, Sums& sums) {
  const std::int64_t M = M_, D = D_;
  const std::int64_t Cb = batch_neg ? M : 0, Km = K_, C = Cb + Km;
  const float* zh = zhat_.data<float>();
  const float* cand = keys_ ? khat_.data<float>() : zh;
  float* dzh = dzhat_.data<float>();

  // Memory keys excluded from every row (empty slots) and from rows of the same id.
  empty_slots_.clear();
  same_id_start_.assign(static_cast<std::size_t>(M + 1), 0);
  same_id_key_.clear();
  if (Km > 0) {
    if (!emb.memory->ids)
      throw contra::UsageError("info_nce: the memory's keys come without ids (MemoryView::ids)");
    if (!emb.ids || static_cast<std::int64_t>(emb.ids->size()) != M)
      throw contra::UsageError(
          "info_nce: with a memory, Embeddings::ids must give the sample id of each of the " + str(M) +
          " rows (to keep a row's own sample out of its negatives)");
    const std::int64_t* kid = emb.memory->ids->data();
    const std::int64_t* rid = emb.ids->data();
    std::vector<std::pair<std::int64_t, std::int32_t>> by_id(static_cast<std::size_t>(M));
    for (std::int64_t i = 0; i < M; ++i) by_id[i] = {rid[i], static_cast<std::int32_t>(i)};
    std::sort(by_id.begin(), by_id.end());
    std::vector<std::pair<std::int32_t, std::int32_t>> excluded;  // (row, key)
    for (std::int64_t k = 0; k < Km; ++k) {
      if (kid[k] == -1) {
        empty_slots_.push_back(static_cast<std::int32_t>(k));
        continue;
      }
      if (kid[k] < by_id.front().first || kid[k] > by_id.back().first) continue;
      auto it = std::lower_bound(by_id.begin(), by_id.end(), std::make_pair(kid[k], std::int32_t{0}));
      for (; it != by_id.end() && it->first == kid[k]; ++it)
        excluded.emplace_back(it->second, static_cast<std::int32_t>(k));
    }
    for (const auto& e : excluded) ++same_id_start_[e.first + 1];
    for (std::int64_t i = 0; i < M; ++i) same_id_start_[i + 1] += same_id_start_[i];
    same_id_key_.resize(excluded.size());
    std::vector<std::int64_t> fill(same_id_start_.begin(), same_id_start_.end() - 1);
    for (const auto& e : excluded) same_id_key_[fill[e.first]++] = e.second;
  }
  if (C == 0) {  // no negative anywhere (an empty memory): every l_ip = 0
    for (std::int64_t i = 0; i < M; ++i) {
      const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
      if (P == 0) continue;
      float scale;
      sums.loss += finish_row(&pos_s_[p0], &pos_g_[p0], P, neg_inf, 0.0, &scale);
      for (std::int64_t k = p0; k < p0 + P; ++k) sums.pos_sum += pos_s_[k];
      sums.pos_count += P;
    }
    return;
  }

  const std::int64_t B = std::min(chunk_, M);
  const bool transposed_part = Cb > 0 && !keys_;  // the batch candidates are the rows themselves
  if (transposed_part) {
    dzt_.ensure({D, M}, contra::DType::f32);
    dzt_.zero();
  }
  sim_.ensure({B, C}, contra::DType::f32);
  work_.ensure({B, D}, contra::DType::f32);
  row_scale_.resize(static_cast<std::size_t>(B));
  float* S = sim_.data<float>();
  float* W = work_.data<float>();
  float* scale = row_scale_.data();

  start_rows();
  for (std::int64_t r0 = 0; r0 < M; r0 += B) {
    const std::int64_t b = std::min(B, M - r0);
    const float* zb = zh + r0 * D;
    if (Cb > 0) contra::sgemm(false, true, b, Cb, D, inv_t_, zb, D, cand, D, 0.0f, S, C);
    if (Km > 0) contra::sgemm(false, true, b, Km, D, inv_t_, zb, D, mem_, D, 0.0f, S + Cb, C);

#pragma omp parallel for schedule(static) if (b * C > 32768)
    for (std::int64_t ii = 0; ii < b; ++ii) {
      const std::int64_t i = r0 + ii;
      float* row = S + ii * C;
      const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
      if (P == 0) {  // no positive: not an anchor, no gradient through this row
        std::fill(row, row + C, 0.0f);
        scale[ii] = 0.0f;
        continue;
      }
      if (Cb > 0) {
        const std::int32_t g = group_of_[i];
        for (std::int32_t q = group_start_[g]; q < group_start_[g + 1]; ++q) row[group_rows_[q]] = neg_inf;
      }
      if (Km > 0) {
        float* mrow = row + Cb;
        for (std::int32_t k : empty_slots_) mrow[k] = neg_inf;
        for (std::int64_t q = same_id_start_[i]; q < same_id_start_[i + 1]; ++q) mrow[same_id_key_[q]] = neg_inf;
      }
      double fsum = 0.0;
      std::int64_t count = 0;
      const float m = row_max(row, C, &fsum, &count);
      double en = 0.0;
      if (count > 0) en = exp_shift_sum(row, C, m);
      else std::fill(row, row + C, 0.0f);
      row_loss_[i] = finish_row(&pos_s_[p0], &pos_g_[p0], P, count > 0 ? m : neg_inf, en, &scale[ii]);
      row_neg_sum_[i] = fsum;
      row_neg_count_[i] = count;
    }

    // dL/dẑ_block += α · diag(scale) · E · candidates (α = 1 / (T · anchors)).
    if (Cb > 0) contra::sgemm(false, false, b, D, Cb, 1.0f, S, C, cand, D, 0.0f, W, D);
    if (Km > 0) contra::sgemm(false, false, b, D, Km, 1.0f, S + Cb, C, mem_, D, Cb > 0 ? 1.0f : 0.0f, W, D);
    for (std::int64_t ii = 0; ii < b; ++ii) axpy(alpha_ * scale[ii], W + ii * D, dzh + (r0 + ii) * D, D);
    // The batch candidates are the rows themselves: dL/dẑ += α · Eᵀ · diag(scale) · ẑ_block,
    // accumulated transposed (D × M: oneDNN runs this shape ~1.35× faster than M × D).
    if (transposed_part) {
      for (std::int64_t ii = 0; ii < b; ++ii)
        for (std::int64_t k = 0; k < D; ++k) W[ii * D + k] = scale[ii] * zb[ii * D + k];
      contra::sgemm(true, false, D, M, b, alpha_, W, D, S, C, 1.0f, dzt_.data<float>(), M);
    }
  }
  if (transposed_part) {
    const float* dt = dzt_.data<float>();
    constexpr std::int64_t rb = 64;  // rows per block of the transposed add
#pragma omp parallel for schedule(static) if (M * D > 65536)
    for (std::int64_t i0 = 0; i0 < M; i0 += rb) {
      const std::int64_t i1 = std::min(M, i0 + rb);
      for (std::int64_t k = 0; k < D; ++k)
        for (std::int64_t i = i0; i < i1; ++i) dzh[i * D + k] += dt[k * M + i];
    }
  }
  sum_rows(sums);
}

// Pairs::all with batch negatives only and no momentum keys (SimCLR): S is
// symmetric and so is the pair coefficient. Every s <= 1/T (unit rows), so a
// fixed shift μ = 1/T replaces the row max. Pass 1 takes the tiles of the
// upper triangle and adds E_ij = e^{s_ij − μ} of the negatives to both row i
// and row j (a tile's row and column sums); the anchors' terms and
// coefficients follow. Pass 2 recomputes each tile, forms H_ij = E_ij ·
// (scale_i + scale_j) and adds H·ẑ_J to rows I and Hᵀ·ẑ_I to rows J. That is
// two M×M×D products' worth of sgemm instead of three, on tiles that stay in
// L2. As many pass-1 tiles as fit in chunk × M floats keep their E for pass
// 2 (no second product nor exp for them: 1.5 products' worth when 2N <= 2 chunk).
// Tiles are dealt round-robin to the OpenMP team (sgemm runs single-threaded
// inside it), each thread with its own row sums and dL/dẑ, summed at the end
// in thread order: the result depends on the thread count, not on timing.
void InfoNce::symmetric(Sums& sums) {
  const std::int64_t M = M_, D = D_;
  const float* zh = zhat_.data<float>();
  const float mu = inv_t_;
  const std::int64_t t = std::min(chunk_, M >= 2048 ? max_tile : max_tile / 2);
  const std::int64_t nt = (M + t - 1) / t;
  std::vector<std::pair<std::int32_t, std::int32_t>> tiles;
  tiles.reserve(static_cast<std::size_t>(nt * (nt + 1) / 2));
  for (std::int64_t I = 0; I < nt; ++I)
    for (std::int64_t J = I; J < nt; ++J) tiles.emplace_back(static_cast<std::int32_t>(I), static_cast<std::int32_t>(J));
  const std::int64_t ntiles = static_cast<std::int64_t>(tiles.size());
  const int threads = std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(ntiles)));
  // Tiles [0, cached) live in tiles_ from pass 1 to pass 2; the others are
  // recomputed in one scratch tile per thread after them.
  const std::int64_t cached = std::min(ntiles, std::max<std::int64_t>(0, std::min(chunk_, M) * M / (t * t) - threads));
  tiles_.ensure({cached + threads, t, t}, contra::DType::f32);
  thread_sums_.assign(static_cast<std::size_t>(threads * M), 0.0);
  float* tile_base = tiles_.data<float>();
  auto tile_of = [&](std::int64_t k, int th) { return tile_base + (k < cached ? k : cached + th) * t * t; };

  // Same-sample pairs (the diagonal included) are not negatives: −inf.
  auto mask = [&](float* x, std::int64_t i0, std::int64_t ni, std::int64_t j0, std::int64_t nj) {
    for (std::int64_t ii = 0; ii < ni; ++ii) {
      const std::int32_t g = group_of_[i0 + ii];
      for (std::int32_t q = group_start_[g]; q < group_start_[g + 1]; ++q) {
        const std::int64_t j = group_rows_[q];
        if (j >= j0 && j < j0 + nj) x[ii * nj + (j - j0)] = neg_inf;
      }
    }
  };

  // Pass 1: Σ_n e^{s_in − μ} per row.
#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num();
    double* rs = thread_sums_.data() + th * M;
#pragma omp for schedule(static, 1)
    for (std::int64_t k = 0; k < ntiles; ++k) {
      const std::int64_t i0 = tiles[k].first * t, j0 = tiles[k].second * t;
      const std::int64_t ni = std::min(t, M - i0), nj = std::min(t, M - j0);
      float* x = tile_of(k, th);
      contra::sgemm(false, true, ni, nj, D, inv_t_, zh + i0 * D, D, zh + j0 * D, D, 0.0f, x, nj);
      mask(x, i0, ni, j0, nj);
      tile_sums(x, ni, nj, mu, rs + i0, i0 == j0 ? nullptr : rs + j0);
    }
  }
  for (int th = 1; th < threads; ++th)
    for (std::int64_t i = 0; i < M; ++i) thread_sums_[i] += thread_sums_[th * M + i];

  // The anchors' terms, with m = μ; the metrics' negative sum in closed form:
  // Σ_{n ∉ group(i)} ẑ_i·ẑ_n = ẑ_i · (Σ_all ẑ − Σ_group(i) ẑ).
  scale_all_.assign(static_cast<std::size_t>(M), 0.0f);
  const std::int64_t ngroups = static_cast<std::int64_t>(group_start_.size()) - 1;
  std::vector<double> total(static_cast<std::size_t>(D), 0.0), rest(static_cast<std::size_t>(D));
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < D; ++k) total[k] += zh[i * D + k];
  for (std::int64_t g = 0; g < ngroups; ++g) {
    rest = total;  // Σ_all ẑ − Σ_group ẑ
    for (std::int32_t q = group_start_[g]; q < group_start_[g + 1]; ++q)
      for (std::int64_t k = 0; k < D; ++k) rest[k] -= zh[group_rows_[q] * D + k];
    for (std::int32_t q = group_start_[g]; q < group_start_[g + 1]; ++q) {
      const std::int64_t i = group_rows_[q];
      const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
      if (P == 0) continue;
      sums.loss += finish_row(&pos_s_[p0], &pos_g_[p0], P, mu, thread_sums_[i], &scale_all_[i]);
      for (std::int64_t k = p0; k < p0 + P; ++k) sums.pos_sum += pos_s_[k];
      sums.pos_count += P;
      double d = 0.0;
      for (std::int64_t k = 0; k < D; ++k) d += zh[i * D + k] * rest[k];
      sums.neg_sum += d * inv_t_;
      sums.neg_count += M - (group_start_[g + 1] - group_start_[g]);
    }
  }

  // Pass 2: dL/dẑ from the coefficient tiles.
  float* dzh = dzhat_.data<float>();
  if (threads > 1) {
    thread_dzhat_.ensure({threads - 1, M, D}, contra::DType::f32);
    thread_dzhat_.zero();
  }
  const float* scale = scale_all_.data();
#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num();
    float* dz = th == 0 ? dzh : thread_dzhat_.data<float>() + (th - 1) * M * D;
#pragma omp for schedule(static, 1)
    for (std::int64_t k = 0; k < ntiles; ++k) {
      const std::int64_t i0 = tiles[k].first * t, j0 = tiles[k].second * t;
      const std::int64_t ni = std::min(t, M - i0), nj = std::min(t, M - j0);
      float* x = tile_of(k, th);
      if (k < cached) {
        tile_scale(x, ni, nj, scale + i0, scale + j0);
      } else {
        contra::sgemm(false, true, ni, nj, D, inv_t_, zh + i0 * D, D, zh + j0 * D, D, 0.0f, x, nj);
        mask(x, i0, ni, j0, nj);
        tile_coefficients(x, ni, nj, mu, scale + i0, scale + j0);
      }
      contra::sgemm(false, false, ni, D, nj, alpha_, x, nj, zh + j0 * D, D, 1.0f, dz + i0 * D, D);
      if (i0 != j0) contra::sgemm(true, false, nj, D, ni, alpha_, x, nj, zh + i0 * D, D, 1.0f, dz + j0 * D, D);
    }
  }
  extra_dzhat_ = threads - 1;  // added to dL/dẑ by compute(), in its last pass over the rows
}

// Explicit negatives: exactly the listed batch rows (Pairs::negative),
// memory keys (Pairs::memory_negative) and synthetic rows
// (Pairs::synthetic_negative, constants like memory keys) of each anchor, as
// often as listed.
void InfoNce::sparse(const contra::Embeddings& emb, const contra::Pairs& pairs, Sums& sums) {
  const std::int64_t M = M_, D = D_;
  const float* zh = zhat_.data<float>();
  const float* cand = keys_ ? khat_.data<float>() : zh;
  float* dzh = dzhat_.data<float>();
  // compute() has checked every index (contra::check_pair_indices).
  neg_start_.assign(static_cast<std::size_t>(M + 1), 0);
  for (const auto& [a, n] : pairs.negative) ++neg_start_[a + 1];
  for (const auto& [a, k] : pairs.memory_negative) ++neg_start_[a + 1];
  for (const auto& [a, s] : pairs.synthetic_negative) ++neg_start_[a + 1];
  for (std::int64_t i = 0; i < M; ++i) neg_start_[i + 1] += neg_start_[i];
  scratch_.assign(neg_start_.begin(), neg_start_.end() - 1);
  neg_col_.resize(static_cast<std::size_t>(neg_start_[M]));
  neg_g_.resize(neg_col_.size());
  for (const auto& [a, n] : pairs.negative) neg_col_[scratch_[a]++] = n;
  for (const auto& [a, k] : pairs.memory_negative) neg_col_[scratch_[a]++] = M + k;
  for (const auto& [a, s] : pairs.synthetic_negative) neg_col_[scratch_[a]++] = -1 - static_cast<std::int64_t>(s);
  // Memory keys are columns M.. of the candidates, synthetic rows columns -1, -2, ...
  const float* synthetic = pairs.synthetic_negative.empty() ? nullptr : pairs.synthetic.data<float>();
  auto column = [&](std::int64_t c) {
    return c < 0 ? synthetic + (-1 - c) * D : c < M ? cand + c * D : mem_ + (c - M) * D;
  };

  start_rows();
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t i = 0; i < M; ++i) {
    const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
    const std::int64_t n0 = neg_start_[i], n = neg_start_[i + 1] - n0;
    float* e = neg_g_.data() + n0;
    if (P == 0) {  // listed negatives of a row without positive do not enter the loss
      std::fill(e, e + n, 0.0f);
      continue;
    }
    const float* zi = zh + i * D;
    for (std::int64_t k = 0; k < n; ++k) e[k] = dot(zi, column(neg_col_[n0 + k]), D) * inv_t_;
    double fsum = 0.0;
    std::int64_t count = 0;
    const float m = row_max(e, n, &fsum, &count);
    const double en = n > 0 ? exp_shift_sum(e, n, m) : 0.0;
    float scale;
    row_loss_[i] = finish_row(&pos_s_[p0], &pos_g_[p0], P, n > 0 ? m : neg_inf, en, &scale);
    row_neg_sum_[i] = fsum;
    row_neg_count_[i] = count;
    float* gi = dzh + i * D;
    for (std::int64_t k = 0; k < n; ++k) {
      e[k] *= scale;
      axpy(alpha_ * e[k], column(neg_col_[n0 + k]), gi, D);
    }
  }
  // Batch negatives without momentum keys are rows that get a gradient too.
  if (!keys_)
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t k = neg_start_[i]; k < neg_start_[i + 1]; ++k)
        if (neg_col_[k] >= 0 && neg_col_[k] < M && neg_g_[k] != 0.0f)
          axpy(alpha_ * neg_g_[k], zh + i * D, dzh + neg_col_[k] * D, D);
  sum_rows(sums);
}

// Per-row results are summed in row order, whatever the thread count and
// schedule, so that a step's loss and metrics are reproducible.
void InfoNce::start_rows() {
  row_loss_.assign(static_cast<std::size_t>(M_), 0.0);
  row_neg_sum_.assign(static_cast<std::size_t>(M_), 0.0);
  row_neg_count_.assign(static_cast<std::size_t>(M_), 0);
}

void InfoNce::sum_rows(Sums& sums) const {
  for (std::int64_t i = 0; i < M_; ++i) {
    const std::int64_t p0 = pos_start_[i], P = pos_start_[i + 1] - p0;
    if (P == 0) continue;
    sums.loss += row_loss_[i];
    for (std::int64_t k = p0; k < p0 + P; ++k) sums.pos_sum += pos_s_[k];
    sums.pos_count += P;
    sums.neg_sum += row_neg_sum_[i];
    sums.neg_count += row_neg_count_[i];
  }
}

// dL/dẑ_i += α g_ip · positive_p, and, when positives are rows (not momentum
// keys), dL/dẑ_p += α g_ip · ẑ_i.
void InfoNce::add_positive_gradients() {
  const std::int64_t M = M_, D = D_;
  const float* zh = zhat_.data<float>();
  const float* prow = keys_ ? khat_.data<float>() : zh;
  float* dzh = dzhat_.data<float>();
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = pos_start_[i]; k < pos_start_[i + 1]; ++k) {
      const float g = alpha_ * pos_g_[k];
      const std::int64_t p = pos_col_[k];
      axpy(g, prow + p * D, dzh + i * D, D);
      if (!keys_) axpy(g, zh + i * D, dzh + p * D, D);
    }
}

}  // namespace contra::plugins
