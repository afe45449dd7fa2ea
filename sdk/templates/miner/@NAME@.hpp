#pragma once
// @NAME@: a contra miner plugin (positive pairs of each sample and, per anchor, its first negatives).

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Miner {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  /// Fill `out` (already cleared) from the batch's embeddings. Called from one thread.
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  std::int64_t max_negatives_;
};
