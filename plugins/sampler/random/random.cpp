#include "random.hpp"

#include <contra/rng.hpp>

#include <algorithm>
#include <numeric>
#include <string>

namespace contra::plugins {

contra::Schema RandomSampler::schema() {
  return contra::Schema("random", "shuffled epochs: each epoch is a fresh permutation of the data set")
      .add<std::int64_t>("batch_size", 256, "samples per batch").at_least(1)
      .add<bool>("drop_last", true, "drop the last, incomplete batch of each epoch");
}

RandomSampler::RandomSampler(const contra::Params& p)
    : batch_size_(p.get<std::int64_t>("batch_size")), drop_last_(p.get<bool>("drop_last")) {}

void RandomSampler::configure(const contra::SamplerContext& ctx) {
  if (ctx.dataset_size < 1)
    throw ConfigError("random: the data set is empty; there is nothing to sample");
  if (drop_last_ && ctx.dataset_size < batch_size_)
    throw ConfigError("random: the data set has " + std::to_string(ctx.dataset_size) +
                      (ctx.dataset_size == 1 ? " sample" : " samples") + ", fewer than one batch of " +
                      std::to_string(batch_size_) +
                      "; with drop_last = true no batch would be formed (lower batch_size or set drop_last = false)");
  size_ = ctx.dataset_size;
  seed_ = ctx.seed;
  cached_epoch_ = -1;
  perm_.assign(static_cast<std::size_t>(size_), 0);
}

std::int64_t RandomSampler::batches_per_epoch() const {
  if (size_ < 0) throw UsageError("random: batches_per_epoch() called before configure()");
  return drop_last_ ? size_ / batch_size_ : (size_ + batch_size_ - 1) / batch_size_;
}

void RandomSampler::plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) {
  if (size_ < 0) throw UsageError("random: plan() called before configure()");
  const std::int64_t batches = batches_per_epoch();
  if (epoch < 0 || batch < 0 || batch >= batches)
    throw UsageError("random: plan(" + std::to_string(epoch) + ", " + std::to_string(batch) +
                     ") outside epochs >= 0 and batches [0, " + std::to_string(batches) + ")");
  if (epoch != cached_epoch_) {
    // Fisher-Yates: position i takes a uniform pick among positions 0..i.
    std::iota(perm_.begin(), perm_.end(), std::int64_t{0});
    contra::Rng rng(seed_, static_cast<std::uint64_t>(epoch), 0, 0, shuffle_op);
    for (std::int64_t i = size_ - 1; i > 0; --i) {
      std::int64_t j = rng.integer(0, i);
      std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(j)]);
    }
    cached_epoch_ = epoch;
  }
  const std::int64_t begin = batch * batch_size_;
  const std::int64_t end = std::min(size_, begin + batch_size_);
  indices.assign(perm_.begin() + begin, perm_.begin() + end);
}

}  // namespace contra::plugins
