#pragma once
/// \file
/// knn: weighted k-nearest-neighbour classification of frozen features (Wu et
/// al. 2018, the kNN monitor of InstDisc, MoCo and SimCLR reproductions). See
/// README.md for the exact definition.

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// Features are L2-normalised; s_ij is the cosine similarity of test row i
/// and train row j. For each (k, T) pair the k train rows of highest s_ij
/// (equal similarities: the lower train index first) vote for their label
/// with weight exp(s_ij / T); the prediction is the class of largest total
/// (equal totals: the lower class). Figures: "top1_k<k>_t<T>" for each pair,
/// and "top5_k<k>_t<T>" for the first pair.
///
/// The test rows are processed `chunk` at a time: one sgemm gives their
/// similarities to every train row ([chunk, N_train] floats, the only large
/// buffer), then each row's top max(k) is selected once with a bounded heap
/// and serves every pair. Rows run on the calling thread's OpenMP team; the
/// result does not depend on the number of threads.
class Knn final : public contra::Evaluator {
 public:
  static contra::Schema schema();
  /// Throws ConfigError when `k` and `temperature` differ in length, or two
  /// pairs would give the same figure name.
  explicit Knn(const contra::Params& p);

  /// train/test: features [N, D] f32 on the CPU (same D), N labels each in
  /// [0, num_classes). Throws UsageError otherwise, or when either split is
  /// empty. A k above N_train uses every train row (the figure keeps the
  /// configured k in its name).
  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test,
                                                       std::uint64_t seed) override;

  /// The figure names, in the order evaluate() returns them.
  const std::vector<std::string>& figure_names() const noexcept { return names_; }

 private:
  std::vector<std::int64_t> k_;
  std::vector<double> temperature_;
  std::int64_t chunk_;
  std::vector<std::string> names_;  // top1 per pair, then top5 of the first pair
};

}  // namespace contra::plugins
