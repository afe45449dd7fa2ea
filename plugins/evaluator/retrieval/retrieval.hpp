#pragma once
/// \file
/// retrieval: image→text and text→image Recall@K between a pipeline's towers,
/// as CLIP (Radford et al. 2021) and open_clip report retrieval. A
/// cross-modal evaluator. See README.md for the exact definition.

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// Rows are L2-normalised; s_ij is the cosine similarity of query (image) i
/// and gallery row (text) j, and they match when their labels are equal.
/// Image→text: query i is retrieved at K when a matching gallery row is among
/// its K most similar gallery rows; text→image swaps the roles (each gallery
/// row queries the query rows). Equal similarities go against the match: a
/// non-matching row as similar as the best match ranks before it. Figures,
/// in this order: "i2t_r<k>" for each k, "i2t_mean_rank", "t2i_r<k>" for
/// each k, "t2i_mean_rank".
///
/// The gallery is the test split's own texts: gallery_texts() keeps the
/// Evaluator default (none). Similarities are computed a block of rows at a
/// time (one sgemm each, at most 16 MiB), never all Nq × Ng at once for a
/// large split; rows run on the calling thread's OpenMP team and the result
/// does not depend on the number of threads.
class Retrieval final : public contra::Evaluator {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when a k repeats (the figure names would collide).
  explicit Retrieval(const contra::Params& p);

  bool cross_modal() const override { return true; }

  /// Refused (UsageError): retrieval needs a pipeline with a text tower.
  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test,
                                                       std::uint64_t seed) override;

  /// queries [Nq, D] and gallery [Ng, D] f32 on the CPU, one label per row;
  /// UsageError otherwise. The seed is not used: the result is exact.
  std::vector<std::pair<std::string, double>> evaluate_cross_modal(const contra::CrossModalFeatures& features,
                                                                   std::uint64_t seed) override;

  /// The figure names, in the order evaluate_cross_modal() returns them.
  const std::vector<std::string>& figure_names() const noexcept { return names_; }

 private:
  std::vector<std::int64_t> k_;
  std::vector<std::string> names_;
};

}  // namespace contra::plugins
