#pragma once
// @NAME@: a contra sampler plugin (shuffled batches, a new order each epoch).

#include <contra/roles/sampler.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Sampler {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  void configure(const contra::SamplerContext& ctx) override;
  std::int64_t batches_per_epoch() const override;
  /// A pure function of (seed, epoch, batch); called from one thread.
  void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) override;

 private:
  std::int64_t batch_size_;
  std::int64_t size_ = 0;
  std::uint64_t seed_ = 0;
  std::int64_t order_epoch_ = -1;
  std::vector<std::int64_t> order_;  // the shuffled indices of order_epoch_
};
