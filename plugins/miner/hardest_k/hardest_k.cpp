#include "hardest_k.hpp"

#include <contra/blas.hpp>
#include <contra/l2_normalize.hpp>
#include <contra/pairs_check.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace contra::plugins {

namespace {

// Key s is a better (harder) negative than t: more similar, or as similar and
// a lower key index.
bool harder(const std::pair<float, std::int32_t>& s, const std::pair<float, std::int32_t>& t) {
  return s.first > t.first || (s.first == t.first && s.second < t.second);
}

}  // namespace

contra::Schema HardestK::schema() {
  return contra::Schema("hardest_k", "per anchor, the k most similar memory keys of other samples as negatives")
      .add<std::int64_t>("k", 16, "memory negatives per anchor row (fewer when the memory holds fewer)")
      .range(1, 1 << 20)
      .add<std::int64_t>("chunk", 1024, "anchor rows per similarity block (memory: chunk x K floats)")
      .range(1, 1 << 20);
}

HardestK::HardestK(const contra::Params& p) : k_(p.get<std::int64_t>("k")), chunk_(p.get<std::int64_t>("chunk")) {}

const contra::MemoryView& hardest_k_inputs(const contra::Embeddings& e, contra::Device device) {
  const bool cpu = device == contra::Device::cpu;
  contra::EmbeddingsUse use;
  use.ids = true;
  contra::check_embeddings("hardest_k", e, device, use);
  const std::int64_t d = e.z.dim(1);
  if (!e.memory || e.memory->size() == 0)
    throw contra::UsageError("hardest_k: needs a [memory] (queue or bank) to mine from");
  const contra::MemoryView& mem = *e.memory;
  const contra::Tensor& keys = mem.keys;
  const std::int64_t kk = mem.size();
  // The cuda build reads keys on either device (a host memory's are copied).
  if (keys.rank() != 2 || keys.dtype() != contra::DType::f32 || (cpu && keys.device() != contra::Device::cpu) ||
      keys.dim(1) != d)
    throw contra::UsageError("hardest_k: expected memory keys as an f32 [K, " + std::to_string(d) + "] " +
                             (cpu ? "CPU " : "") + "tensor, got " + contra::dtype_name(keys.dtype()) + " " +
                             keys.shape().str() + " on " + contra::device_name(keys.device()));
  if (kk > std::numeric_limits<std::int32_t>::max())
    throw contra::UsageError("hardest_k: " + std::to_string(kk) +
                             " memory keys do not fit the int32 key indices of Pairs");
  if (!mem.ids || static_cast<std::int64_t>(mem.ids->size()) != kk)
    throw contra::UsageError("hardest_k: the memory must give the sample id of each of its " + std::to_string(kk) +
                             " keys (MemoryView::ids)");
  return mem;
}

void add_view_positives(const std::vector<std::int64_t>& sample, contra::Pairs& out) {
  const auto m = static_cast<std::int64_t>(sample.size());
  for (std::int64_t a = 0; a < m; ++a)
    for (std::int64_t j = 0; j < m; ++j)
      if (j != a && sample[j] == sample[a])
        out.positive.emplace_back(static_cast<std::int32_t>(a), static_cast<std::int32_t>(j));
}

void HardestK::mine(const contra::Embeddings& e, contra::Pairs& out) {
  const contra::MemoryView& mem = hardest_k_inputs(e, contra::Device::cpu);
  const contra::Tensor& z = e.z;
  const contra::Tensor& keys = mem.keys;
  const std::int64_t m = z.dim(0), d = z.dim(1), kk = mem.size();
  const std::vector<std::int64_t>& sample = *e.sample;
  const std::int64_t* key_id = mem.ids->data();
  add_view_positives(sample, out);
  if (m == 0) return;

  // x = the rows, L2-normalised (the keys already are).
  const float* zp = z.data<float>();
  x_.resize(static_cast<std::size_t>(m * d));
  for (std::int64_t i = 0; i < m; ++i) {
    const float* zi = zp + i * d;
    float* xi = x_.data() + i * d;
    double ss = 0.0;
    for (std::int64_t c = 0; c < d; ++c) ss += static_cast<double>(zi[c]) * zi[c];
    const float inv = 1.0f / std::max(static_cast<float>(std::sqrt(ss)), contra::l2_norm_eps);
    for (std::int64_t c = 0; c < d; ++c) xi[c] = zi[c] * inv;
  }

  const std::int64_t rows = std::min(chunk_, m);
  sim_.resize(static_cast<std::size_t>(rows * kk));
  const auto k = static_cast<std::size_t>(k_);
  heap_.reserve(std::min<std::size_t>(k, static_cast<std::size_t>(kk)));
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  for (std::int64_t a0 = 0; a0 < m; a0 += rows) {
    const std::int64_t a1 = std::min(m, a0 + rows);
    contra::sgemm(false, true, a1 - a0, kk, d, 1.0f, x_.data() + a0 * d, d, keys.data<float>(), d, 0.0f,
                  sim_.data(), kk);
    for (std::int64_t a = a0; a < a1; ++a) {
      const float* s = sim_.data() + (a - a0) * kk;
      // Without ids no key is known to be the anchor's own sample; −2 matches no key.
      const std::int64_t own = e.ids ? (*e.ids)[a] : -2;
      // A heap whose front is the easiest of the best k kept so far.
      heap_.clear();
      for (std::int64_t j = 0; j < kk; ++j) {
        const std::int64_t id = key_id[j];
        if (id == -1 || id == own) continue;
        const std::pair<float, std::int32_t> c{std::isnan(s[j]) ? neg_inf : s[j], static_cast<std::int32_t>(j)};
        if (heap_.size() < k) {
          heap_.push_back(c);
          std::push_heap(heap_.begin(), heap_.end(), harder);
        } else if (harder(c, heap_.front())) {
          std::pop_heap(heap_.begin(), heap_.end(), harder);
          heap_.back() = c;
          std::push_heap(heap_.begin(), heap_.end(), harder);
        }
      }
      std::sort_heap(heap_.begin(), heap_.end(), harder);  // hardest first
      for (const auto& [sim, j] : heap_) out.memory_negative.emplace_back(static_cast<std::int32_t>(a), j);
    }
  }
}

}  // namespace contra::plugins
