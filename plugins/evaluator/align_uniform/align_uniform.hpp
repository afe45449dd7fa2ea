#pragma once
/// \file
/// align_uniform: the alignment and uniformity of Wang & Isola 2020 measured
/// on the test split's L2-normalised features; alignment over same-label pairs
/// (a labelled proxy for positive pairs). See README.md for the formulas.

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// f̂ = f / ‖f‖ for each test row.
///   uniformity = log( mean_{i≠j} exp(−t ‖f̂_i − f̂_j‖²) )  over the rows, or a
///                seeded subset of `max_rows` rows (without replacement);
///   alignment  = mean ‖f̂_i − f̂_j‖^α over the unordered pairs i≠j with equal
///                labels, or `max_pairs` of them drawn uniformly (with
///                replacement, seeded) when there are more; NaN without any.
/// The train split is not used. Uniformity blocks of rows are one sgemm each;
/// rows run on the calling thread's OpenMP team, sums are serial (the result
/// does not depend on the thread count).
class AlignUniform final : public contra::Evaluator {
 public:
  static contra::Schema schema();
  explicit AlignUniform(const contra::Params& p);

  /// test: features [N, D] f32 on the CPU with N >= 2, N labels in
  /// [0, num_classes); UsageError otherwise. Figures "alignment",
  /// "uniformity". The same seed picks the same rows and pairs.
  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test,
                                                       std::uint64_t seed) override;

 private:
  double t_;
  double alpha_;
  std::int64_t max_rows_;
  std::int64_t max_pairs_;
};

}  // namespace contra::plugins
