#pragma once
/// \file
/// `random` sampler: each epoch a fresh shuffle of the whole data set.

#include <contra/roles/sampler.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// Epoch e is a Fisher-Yates permutation of 0..size-1 drawn from
/// Rng(seed, e, 0, 0, shuffle_op); batch b is its slice [b*batch, (b+1)*batch).
/// The current epoch's permutation is cached, so plan() costs O(batch) except
/// at an epoch change (O(size)). Serial, as every sampler.
class RandomSampler final : public contra::Sampler {
 public:
  /// Rng op of the shuffle stream ("SHUF").
  static constexpr std::uint32_t shuffle_op = 0x53485546u;

  static contra::Schema schema();
  explicit RandomSampler(const contra::Params& p);

  /// Throws ConfigError for an empty data set, or one smaller than a batch
  /// when drop_last is set.
  void configure(const contra::SamplerContext& ctx) override;
  /// size / batch_size, rounded down with drop_last, up without.
  std::int64_t batches_per_epoch() const override;
  /// Indices of batch `batch` of `epoch`; the last batch of an epoch may be
  /// short when drop_last is false. Throws UsageError before configure() or
  /// for a batch outside [0, batches_per_epoch()).
  void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) override;

 private:
  std::int64_t batch_size_;
  bool drop_last_;
  std::int64_t size_ = -1;  // -1 until configure()
  std::uint64_t seed_ = 0;
  std::int64_t cached_epoch_ = -1;
  std::vector<std::int64_t> perm_;
};

}  // namespace contra::plugins
