// @NAME@: a contra sampler plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [sampler] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "shuffled batches, a new order each epoch")
      .add<std::int64_t>("batch_size", 256, "samples per batch").range(1, 1 << 20);
}

@CLASS@::@CLASS@(const contra::Params& p) : batch_size_(p.get<std::int64_t>("batch_size")) {}

void @CLASS@::configure(const contra::SamplerContext& ctx) {
  if (ctx.dataset_size < batch_size_)
    throw contra::ConfigError("@NAME@: batch_size " + std::to_string(batch_size_) + " is larger than the data set (" +
                              std::to_string(ctx.dataset_size) + " samples)");
  size_ = ctx.dataset_size;
  seed_ = ctx.seed;
}

std::int64_t @CLASS@::batches_per_epoch() const { return size_ / batch_size_; }

// Skeleton: a Fisher-Yates shuffle of all indices per epoch, drawn from
// Rng(seed, epoch, ...), cut into batches (the last partial one dropped).
// Replace with your choice of samples; keep plan() a function of (seed,
// epoch, batch) so that a resumed run sees the same batches.
void @CLASS@::plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) {
  if (order_epoch_ != epoch) {
    order_.resize(static_cast<std::size_t>(size_));
    for (std::int64_t i = 0; i < size_; ++i) order_[static_cast<std::size_t>(i)] = i;
    contra::Rng rng(seed_, static_cast<std::uint64_t>(epoch), 0, 0, 0x5a);
    for (std::int64_t i = size_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.integer(0, i)]);
    order_epoch_ = epoch;
  }
  indices.assign(order_.begin() + batch * batch_size_, order_.begin() + (batch + 1) * batch_size_);
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_SAMPLER(@CLASS@))
