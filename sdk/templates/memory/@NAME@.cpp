// @NAME@: a contra memory plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [memory] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "a first-in first-out queue of normalised embeddings")
      .add<std::int64_t>("size", 4096, "keys kept").range(1, 1 << 24);
}

@CLASS@::@CLASS@(const contra::Params& p) : size_(p.get<std::int64_t>("size")) {}

void @CLASS@::configure(const contra::MemoryContext& ctx) {
  keys_ = contra::Tensor::zeros({size_, ctx.dim}, contra::DType::f32);
  ids_.assign(static_cast<std::size_t>(size_), -1);  // -1: an empty slot
  view_ = contra::MemoryView{keys_, &ids_, nullptr};
}

// Skeleton: each row of the batch (the momentum keys when the runtime keeps a
// momentum encoder, else z) is L2-normalised and replaces the oldest key.
void @CLASS@::update(const contra::Embeddings& batch) {
  const contra::Tensor& z = batch.keys.defined() ? batch.keys : batch.z;
  const std::int64_t dim = keys_.dim(1);
  for (std::int64_t r = 0; r < z.dim(0); ++r) {
    const float* src = z.data<float>() + r * dim;
    float* dst = keys_.data<float>() + next_ * dim;
    double norm = 0;
    for (std::int64_t d = 0; d < dim; ++d) norm += static_cast<double>(src[d]) * src[d];
    const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (std::int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(src[d] * inv);
    ids_[static_cast<std::size_t>(next_)] = batch.ids ? (*batch.ids)[static_cast<std::size_t>(r)] : r;
    next_ = (next_ + 1) % size_;
  }
}

void @CLASS@::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) { out.push_back({"keys", &keys_}); }

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_MEMORY(@CLASS@))
