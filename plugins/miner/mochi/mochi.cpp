#include "mochi.hpp"

#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace contra::plugins {

namespace {

constexpr std::uint64_t mochi_stream = 0x4d4f434869ull << 24;  // "MOCHi": mixed into every anchor's stream

// x ← x / ‖x‖ (left as it is when ‖x‖ = 0).
void normalise(float* x, std::int64_t d) {
  double s = 0.0;
  for (std::int64_t k = 0; k < d; ++k) s += static_cast<double>(x[k]) * x[k];
  if (s <= 0.0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (std::int64_t k = 0; k < d; ++k) x[k] *= inv;
}

}  // namespace

contra::Schema Mochi::schema() {
  return contra::Schema("mochi",
                        "hard negative mixing (MoCHi, Kalantidis et al. 2020): each anchor's hardest negatives and "
                        "synthetic negatives mixed from them, for info_nce")
      .add<std::int64_t>("hardest", 256, "N: the anchor's most similar negatives the mixtures are drawn from")
      .range(1, 1 << 24)
      .add<std::int64_t>("mixes", 128, "s: synthetic negatives per anchor mixed from two of its N hardest")
      .range(0, 1 << 20)
      .add<std::int64_t>("query_mixes", 32, "s': synthetic negatives per anchor mixed from the anchor and one of its N hardest")
      .range(0, 1 << 20)
      .add<double>("query_weight_max", 0.5, "the anchor's weight in a query mix is drawn from U(0, this)")
      .range(0.0, 1.0);
}

Mochi::Mochi(const contra::Params& p)
    : hardest_(p.get<std::int64_t>("hardest")),
      mixes_(p.get<std::int64_t>("mixes")),
      query_mixes_(p.get<std::int64_t>("query_mixes")),
      query_weight_max_(p.get<double>("query_weight_max")) {}

contra::MinedLists Mochi::mined_lists() const {
  contra::MinedLists l;
  l.declared = true;
  l.negative = true;         // without a memory
  l.memory_negative = true;  // with one
  l.synthetic_negative = mixes_ + query_mixes_ > 0;
  return l;
}

void Mochi::mine(const contra::Embeddings& emb, contra::Pairs& out) {
  if (!emb.context)
    throw contra::UsageError("mochi: needs the step's context (Embeddings::context) to draw its mixtures from; "
                             "the runtime gives one at every step");
  const std::int64_t M = contra::check_embeddings("mochi", emb), D = emb.z.dim(1);
  const std::int64_t* sample = emb.sample->data();
  zhat_.resize(static_cast<std::size_t>(M * D));
  contra::l2_normalize_rows(emb.z.data<float>(), M, D, zhat_.data(), nullptr);

  // The negatives: the memory's keys of other samples, or, without a memory
  // or before it holds a key (a queue's first step), the batch's rows of
  // other samples.
  bool memory = emb.memory && emb.memory->size() > 0;
  if (memory && emb.memory->ids)
    memory = std::any_of(emb.memory->ids->begin(), emb.memory->ids->end(), [](std::int64_t id) { return id >= 0; });
  const std::int64_t K = memory ? emb.memory->size() : 0;
  if (memory) {
    if (emb.memory->keys.dim(1) != D)
      throw contra::UsageError("mochi: memory keys of width " + std::to_string(emb.memory->keys.dim(1)) +
                               ", embeddings of width " + std::to_string(D));
    keys_hat_.resize(static_cast<std::size_t>(K * D));
    contra::l2_normalize_rows(emb.memory->keys.data<float>(), K, D, keys_hat_.data(), nullptr);
  }
  const std::vector<std::int64_t>* key_ids = memory ? emb.memory->ids : nullptr;
  const std::vector<std::int64_t>* row_ids = emb.ids;
  auto negative = [&](std::int64_t i, std::int64_t c) {
    if (!memory) return sample[c] != sample[i];
    const std::int64_t id = key_ids ? (*key_ids)[static_cast<std::size_t>(c)] : 0;
    if (id < 0) return false;  // an empty slot
    return !(key_ids && row_ids && id == (*row_ids)[static_cast<std::size_t>(i)]);
  };
  const float* cand = memory ? keys_hat_.data() : zhat_.data();
  const std::int64_t C = memory ? K : M;

  const std::int64_t per = mixes_ + query_mixes_;
  if (per > 0) out.synthetic = contra::Tensor::zeros({M * per, D}, contra::DType::f32);
  float* syn = per > 0 ? out.synthetic.data<float>() : nullptr;
  out.synthetic_origin.assign(static_cast<std::size_t>(M * per), contra::SyntheticOrigin{});
  std::vector<char> used(static_cast<std::size_t>(M), 0);
  using Kind = contra::SyntheticOrigin::Kind;
  const Kind cand_kind = memory ? Kind::memory_key : Kind::row;

  // Each anchor fills its own rows: the result does not depend on the threads.
#pragma omp parallel
  {
    std::vector<std::pair<float, std::int32_t>> scored;
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t i = 0; i < M; ++i) {
      bool has_positive = false;
      for (std::int64_t j = 0; j < M && !has_positive; ++j) has_positive = j != i && sample[j] == sample[i];
      scored.clear();
      const float* zi = zhat_.data() + i * D;
      for (std::int64_t c = 0; c < C; ++c) {
        if (!negative(i, c)) continue;
        float s = 0.0f;
        for (std::int64_t k = 0; k < D; ++k) s += zi[k] * cand[c * D + k];
        scored.emplace_back(s, static_cast<std::int32_t>(c));
      }
      if (!has_positive || scored.empty()) continue;
      used[static_cast<std::size_t>(i)] = 1;
      // The N most similar first; ties to the lower index.
      const std::size_t n = std::min<std::size_t>(scored.size(), static_cast<std::size_t>(hardest_));
      std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n), scored.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      contra::Rng rng = emb.context->random(mochi_stream ^ static_cast<std::uint64_t>(i));
      auto pick = [&] { return scored[static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(n) - 1))].second; };
      for (std::int64_t k = 0; k < per; ++k) {
        const std::int64_t row = i * per + k;
        float* h = syn + row * D;
        contra::SyntheticOrigin& o = out.synthetic_origin[static_cast<std::size_t>(row)];
        if (k < mixes_) {
          const std::int32_t a = pick(), b = pick();
          const float alpha = static_cast<float>(rng.uniform());
          for (std::int64_t d = 0; d < D; ++d) h[d] = alpha * cand[a * D + d] + (1.0f - alpha) * cand[b * D + d];
          o = {cand_kind, a, cand_kind, b, alpha};
        } else {
          const std::int32_t c = pick();
          const float beta = static_cast<float>(rng.uniform(0.0, query_weight_max_));
          for (std::int64_t d = 0; d < D; ++d) h[d] = beta * zi[d] + (1.0f - beta) * cand[c * D + d];
          o = {Kind::row, static_cast<std::int32_t>(i), cand_kind, c, beta};
        }
        normalise(h, D);
      }
    }
  }
  // The lists, in anchor order: its plain negatives, then its synthetic rows.
  for (std::int64_t i = 0; i < M; ++i) {
    if (!used[static_cast<std::size_t>(i)]) continue;
    auto& plain = memory ? out.memory_negative : out.negative;
    for (std::int64_t c = 0; c < C; ++c)
      if (negative(i, c)) plain.emplace_back(static_cast<std::int32_t>(i), static_cast<std::int32_t>(c));
    for (std::int64_t k = 0; k < per; ++k)
      out.synthetic_negative.emplace_back(static_cast<std::int32_t>(i), static_cast<std::int32_t>(i * per + k));
  }
  if (per == 0) out.synthetic_origin.clear();
}

}  // namespace contra::plugins
