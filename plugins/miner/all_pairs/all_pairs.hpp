#pragma once
/// \file
/// all_pairs: the miner that selects every pair the sample grouping implies.

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

namespace contra::plugins {

/// Marks the batch as "all pairs": views of one sample are positives, every
/// other row is a negative. Costs nothing; the loss enumerates the pairs.
class AllPairs final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit AllPairs(const contra::Params& p);
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.all = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;
};

}  // namespace contra::plugins
