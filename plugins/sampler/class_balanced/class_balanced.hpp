#pragma once
/// \file
/// `class_balanced` sampler: P classes x K samples per batch.

#include <contra/roles/sampler.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// Each batch holds `classes_per_batch` (P) distinct classes and
/// `samples_per_class` (K) distinct samples of each, class-major: indices
/// [p*K, (p+1)*K) are the samples of the batch's p-th class.
///
/// Epoch e draws classes from a stream of shuffled permutations of all
/// classes (Rng(seed, e, 0, 0, class_op)), P at a time, and each drawn class
/// takes its next K samples from a stream of shuffled permutations of its own
/// samples (Rng(seed, e, c, 0, sample_op), c the class's rank among the sorted
/// label values). When a permutation runs out mid-batch a new one is shuffled,
/// and the members the batch already holds are moved to its back, so a batch
/// never repeats a class or a sample while every permutation still visits
/// each member once. A class with fewer than K samples is refused at
/// configure(). The epoch's batches are computed at its first plan() and
/// cached. Serial, as every sampler.
class ClassBalancedSampler final : public contra::Sampler {
 public:
  /// Rng op of the class-order stream ("CLAS").
  static constexpr std::uint32_t class_op = 0x434c4153u;
  /// Rng op of the per-class sample streams ("CSMP").
  static constexpr std::uint32_t sample_op = 0x43534d50u;

  static contra::Schema schema();
  explicit ClassBalancedSampler(const contra::Params& p);

  /// Throws ConfigError without labels, for an empty data set, for fewer
  /// classes than classes_per_batch, or for a class with fewer samples than
  /// samples_per_class; UsageError when labels and dataset_size disagree.
  void configure(const contra::SamplerContext& ctx) override;
  /// dataset_size / (P*K), rounded down (always >= 1 once configured).
  std::int64_t batches_per_epoch() const override;
  /// The P*K indices of batch `batch` of `epoch`. Throws UsageError before
  /// configure() or for a batch outside [0, batches_per_epoch()).
  void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) override;

  /// Number of distinct labels (classes) found by configure().
  std::int64_t classes() const noexcept { return static_cast<std::int64_t>(members_.size()); }

 private:
  void build_epoch(std::int64_t epoch);

  std::int64_t per_batch_;  // P
  std::int64_t per_class_;  // K
  std::int64_t size_ = -1;  // -1 until configure()
  std::uint64_t seed_ = 0;
  std::vector<std::vector<std::int64_t>> members_;  // per class (ascending label), sample ids ascending
  std::int64_t cached_epoch_ = -1;
  std::vector<std::int64_t> epoch_;  // batches_per_epoch() * P * K indices of cached_epoch_
};

}  // namespace contra::plugins
