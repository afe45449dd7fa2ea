#pragma once
// The samples of a source that a run uses ([data]): a subset (the first n,
// or a seeded random n), one shard of several (rank, count), an optional
// in-memory cache of decoded images, and the error policy (stop, or skip a
// sample that fails to load and count it, up to max_skip_fraction of the
// samples in use).

#include "config/settings.hpp"

#include <contra/roles/source.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

class SourceView {
 public:
  /// `label` names the source in errors. Throws ConfigError when the shard or
  /// subset leaves no sample.
  SourceView(std::shared_ptr<Source> source, const DataSettings& data, std::string label, std::uint64_t seed);

  std::int64_t size() const { return static_cast<std::int64_t>(index_.size()); }
  /// Source index of position i (0 <= i < size()): the sample id.
  std::int64_t id(std::int64_t i) const { return index_[static_cast<std::size_t>(i)]; }
  const SourceInfo& info() const { return info_; }
  /// Labels by position (empty when the source has none), for samplers.
  const std::vector<std::int64_t>& labels() const { return labels_; }
  /// Labels by sample id (empty when none), for memories.
  const std::vector<std::int64_t>& source_labels() const { return source_labels_; }
  bool skips_errors() const { return skip_; }
  bool parallel() const { return source_->concurrency() == Concurrency::parallel; }

  /// Decode sample `id` into `image` (through the cache when enabled).
  std::int64_t load(std::int64_t id, Tensor& image) const;
  /// Every field of sample `id` (Source::load_record()): its first image
  /// into `image`, its texts into `texts`. Not cached: a paired source's
  /// records are read whole each time.
  std::int64_t load_record(std::int64_t id, Tensor& image, std::vector<std::string>& texts) const;

  /// Loads that failed and were skipped so far (on_error = "skip"); a
  /// sample failing in each epoch counts once per epoch.
  std::int64_t skipped() const { return skipped_.load(); }
  /// Distinct samples among them.
  std::int64_t skipped_distinct() const { return skipped_distinct_.load(); }
  /// [data] max_skip_fraction.
  double max_skip_fraction() const { return max_skip_fraction_; }
  /// Counts a failed load of sample `id`. Returns false once more than
  /// max_skip_fraction of the samples in use have failed: the run stops.
  bool count_skip(std::int64_t id) const;

 private:
  std::shared_ptr<Source> source_;
  SourceInfo info_;
  std::vector<std::int64_t> index_, labels_, source_labels_;
  bool skip_ = false;
  double max_skip_fraction_ = 0.0;
  std::unique_ptr<std::atomic<bool>[]> failed_;  // by sample id, with skip_
  // Cache: slot state 0 empty, 1 being written, 2 ready.
  std::int64_t cache_budget_ = 0;
  mutable std::atomic<std::int64_t> cache_used_{0};
  mutable std::vector<Tensor> cache_;
  mutable std::vector<std::int64_t> cache_label_;
  mutable std::unique_ptr<std::atomic<int>[]> cache_state_;
  mutable std::atomic<std::int64_t> skipped_{0};
  mutable std::atomic<std::int64_t> skipped_distinct_{0};
};

}  // namespace contra::runtime
