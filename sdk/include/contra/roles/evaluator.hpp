#pragma once
/// \file
/// Evaluator: measures frozen representations, e.g. kNN or a linear probe on
/// the encoder's output (before any projection head).

#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra {

/// Frozen features of a labelled split.
struct FeatureSet {
  Tensor features;                   ///< [N, D] f32, the encoder's output
  std::vector<std::int64_t> labels;  ///< N labels, 0 <= label < num_classes
  std::int64_t num_classes = 0;
};

class Evaluator : public Plugin {
 public:
  /// Figures measured with `train` as the labelled reference (kNN memory,
  /// probe training data) and `test` as the queries, e.g. {"knn_top1", 0.86}.
  /// Names are short and unique within the evaluator; the runtime prefixes
  /// them with the evaluator's name. Deterministic for a given `seed`.
  /// Called from one thread; may use the calling thread's OpenMP team.
  virtual std::vector<std::pair<std::string, double>> evaluate(const FeatureSet& train, const FeatureSet& test,
                                                               std::uint64_t seed) = 0;
};

}  // namespace contra
