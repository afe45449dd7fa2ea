#pragma once
/// \file
/// multi_similarity: the pair mining of the Multi-Similarity loss (Wang et al.
/// 2019, "Multi-Similarity Loss with General Pair Weighting").

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <vector>

namespace contra::plugins {

/// The selection of MultiSimilarity for anchor rows [a0, a1), given their
/// cosine similarities `sim` ([a1 − a0, m], row-major) and each row's group:
/// appends the kept pairs to out.positive and out.negative in (anchor, row)
/// order. Shared by the CPU and cuda builds.
void multi_similarity_pairs(const float* sim, std::int64_t a0, std::int64_t a1, std::int64_t m,
                            const std::vector<std::int64_t>& group, double epsilon, contra::Pairs& out);

/// With S the cosine similarities, for each anchor row a keeps the negative
/// pairs (a, n) with S_an + ε > min_p S_ap and the positive pairs (a, p) with
/// S_ap − ε < max_n S_an. Positives share a's group (its sample, or its class
/// label with `use_labels`). Pairs come sorted by (anchor, row).
class MultiSimilarity final : public contra::Miner {
 public:
  static contra::Schema schema();
  explicit MultiSimilarity(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU; z.sample: M entries; z.label: M entries when
  /// `use_labels`. Fills out.positive and out.negative. Allocates only when M
  /// or D grows.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.positive = true;
    l.negative = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  double epsilon_;
  bool use_labels_;
  std::vector<float> x_;      // [M, D] L2-normalised rows
  std::vector<float> sq_;     // [M] their squared norms (unused)
  std::vector<double> mean_;  // unused: the rows are normalised, not centred
  std::vector<float> sim_;    // [block, M] similarities of a block of anchor rows
};

}  // namespace contra::plugins
