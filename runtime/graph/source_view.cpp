#include "assembly/text_tower.hpp"
#include "source_view.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cstring>
#include <numeric>

namespace contra::runtime {

SourceView::SourceView(std::shared_ptr<Source> source, const DataSettings& data, std::string label,
                       std::uint64_t seed)
    : source_(std::move(source)) {
  info_ = source_->info();
  if (info_.size <= 0) throw DataError(label + ": the source has no samples");
  if (info_.num_classes > 0) source_labels_ = source_->labels();

  std::vector<std::int64_t> all(static_cast<std::size_t>(info_.size));
  std::iota(all.begin(), all.end(), 0);
  const std::int64_t subset = data.subset;
  if (subset > 0 && subset < info_.size) {
    if (data.random_subset) {
      // A seeded partial Fisher-Yates; then back to source order.
      Rng rng(seed, 0, 0, 0, 0x73756273u);
      for (std::int64_t i = 0; i < subset; ++i) std::swap(all[i], all[rng.integer(i, info_.size - 1)]);
      all.resize(static_cast<std::size_t>(subset));
      std::sort(all.begin(), all.end());
    } else {
      all.resize(static_cast<std::size_t>(subset));
    }
  }
  const std::int64_t count = data.shard_count, rank = data.shard_rank;
  if (rank >= count)
    throw ConfigError(data.shard_rank_where.str() + (data.shard_rank_where.str().empty() ? "" : ": ") +
                      "data.shard_rank = " + std::to_string(rank) + " must be below data.shard_count = " +
                      std::to_string(count));
  for (std::size_t i = 0; i < all.size(); ++i)
    if (static_cast<std::int64_t>(i) % count == rank) index_.push_back(all[i]);
  if (index_.empty())
    throw ConfigError(label + ": [data] leaves no sample (" + std::to_string(all.size()) + " after the subset, shard " +
                      std::to_string(rank) + " of " + std::to_string(count) + ")");
  if (!source_labels_.empty())
    for (auto id : index_) labels_.push_back(source_labels_[static_cast<std::size_t>(id)]);

  skip_ = data.skip_errors;
  max_skip_fraction_ = data.max_skip_fraction;
  if (skip_) failed_ = std::make_unique<std::atomic<bool>[]>(static_cast<std::size_t>(info_.size));
  cache_budget_ = data.cache_bytes;
  if (cache_budget_ > 0) {
    cache_.resize(static_cast<std::size_t>(info_.size));
    cache_label_.assign(static_cast<std::size_t>(info_.size), -1);
    cache_state_ = std::make_unique<std::atomic<int>[]>(static_cast<std::size_t>(info_.size));
  }
}

bool SourceView::count_skip(std::int64_t id) const {
  ++skipped_;
  std::int64_t distinct = skipped_distinct_.load();
  if (failed_ && !failed_[static_cast<std::size_t>(id)].exchange(true)) distinct = ++skipped_distinct_;
  return static_cast<double>(distinct) <= max_skip_fraction_ * static_cast<double>(size());
}

std::int64_t SourceView::load_record(std::int64_t id, Tensor& image, std::vector<std::string>& texts) const {
  Record record;
  record.images.resize(1);
  std::swap(record.images[0], image);  // the batch's pooled tensor, filled in place
  std::int64_t label = 0;
  try {
    label = source_->load_record(id, record);
  } catch (...) {
    if (!record.images.empty()) std::swap(record.images[0], image);
    throw;
  }
  if (record.images.empty())
    throw PluginError("load_record() returned no image for sample " + std::to_string(id) + "; the source's records "
                      "hold " + fields_text(info_));
  std::swap(record.images[0], image);
  std::size_t text_fields = 0;
  for (const FieldInfo& f : info_.fields) text_fields += f.kind == FieldKind::text;
  if (record.texts.size() != text_fields)
    throw PluginError("load_record() returned " + std::to_string(record.texts.size()) + " texts for sample " +
                      std::to_string(id) + ", expected " + std::to_string(text_fields) + " (its fields: " +
                      fields_text(info_) + ")");
  texts = std::move(record.texts);
  return label;
}

std::int64_t SourceView::load(std::int64_t id, Tensor& image) const {
  if (cache_budget_ <= 0) return source_->load(id, image);
  auto& state = cache_state_[static_cast<std::size_t>(id)];
  if (state.load(std::memory_order_acquire) == 2) {
    const Tensor& c = cache_[static_cast<std::size_t>(id)];
    image.ensure(c.shape(), c.dtype());
    std::memcpy(image.raw(), c.raw(), c.nbytes());
    return cache_label_[static_cast<std::size_t>(id)];
  }
  const std::int64_t label = source_->load(id, image);
  const auto bytes = static_cast<std::int64_t>(image.nbytes());
  int empty = 0;
  if (cache_used_.fetch_add(bytes) + bytes <= cache_budget_ && state.compare_exchange_strong(empty, 1)) {
    cache_[static_cast<std::size_t>(id)] = image.clone();
    cache_label_[static_cast<std::size_t>(id)] = label;
    state.store(2, std::memory_order_release);
  } else {
    cache_used_.fetch_sub(bytes);
  }
  return label;
}

}  // namespace contra::runtime
