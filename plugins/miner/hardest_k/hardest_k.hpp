#pragma once
/// \file
/// hardest_k: the k memory keys most similar to each anchor row, as negatives.

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace contra::plugins {

/// The checks of HardestK::mine() for embeddings on `device` (a cuda build
/// takes the memory keys on either device); returns the memory's view.
/// Shared by the CPU and cuda builds.
const contra::MemoryView& hardest_k_inputs(const contra::Embeddings& e, contra::Device device);

/// Appends (a, j) to out.positive for every pair of distinct rows of one
/// sample, in (a, j) order.
void add_view_positives(const std::vector<std::int64_t>& sample, contra::Pairs& out);

/// For each batch row a (L2-normalised), the `k` memory keys with the largest
/// cosine similarity among those of another sample (key id ≠ a's id, and not
/// an empty slot, id −1) go to Pairs::memory_negative, most similar first;
/// the other views of a's sample go to Pairs::positive. Anchors are processed
/// `chunk` rows at a time: one sgemm of chunk × K similarities, then a bounded
/// heap per row.
class HardestK final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit HardestK(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries; z.ids: M entries or
  /// null; z.memory: a memory with K > 0 keys [K, D] and K ids. Throws
  /// UsageError without a memory. Allocates only when M, K or D grows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.positive = true;
    l.memory_negative = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  std::int64_t k_;
  std::int64_t chunk_;
  std::vector<float> x_;    // [M, D] L2-normalised rows
  std::vector<float> sim_;  // [min(chunk, M), K] similarities of a chunk of anchor rows
  std::vector<std::pair<float, std::int32_t>> heap_;  // one row's best k (worst on top)
};

}  // namespace contra::plugins
