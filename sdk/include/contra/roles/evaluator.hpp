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

/// What a cross-modal evaluator measures (Evaluator::cross_modal()): a
/// split's images embedded by the first tower (queries) against texts
/// embedded by a text tower (gallery), both in the towers' joint space (after
/// their heads), rows not normalised. A query and a gallery row match when
/// their labels are equal. Since SDK ABI 4.
struct CrossModalFeatures {
  Tensor queries;                           ///< [Nq, D] f32
  std::vector<std::int64_t> query_labels;   ///< Nq
  Tensor gallery;                           ///< [Ng, D] f32
  std::vector<std::int64_t> gallery_labels; ///< Ng
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

  /// Whether the evaluator measures a pipeline's towers against each other
  /// (retrieval, zero-shot classification) through evaluate_cross_modal()
  /// instead of evaluate(). Since SDK ABI 4.
  virtual bool cross_modal() const { return false; }
  /// Cross-modal evaluators: the texts the runtime embeds as the gallery,
  /// each with its label, made from the test split's class names (empty when
  /// its source names none), e.g. prompts "a photo of a {}" per class. None:
  /// the gallery is the test split's own texts, each labelled with its
  /// sample's label (its index in the split when the source has no labels).
  virtual std::vector<std::pair<std::string, std::int64_t>> gallery_texts(
      const std::vector<std::string>& class_names) const {
    (void)class_names;
    return {};
  }
  /// Cross-modal evaluators: figures as evaluate() returns them.
  virtual std::vector<std::pair<std::string, double>> evaluate_cross_modal(const CrossModalFeatures& features,
                                                                           std::uint64_t seed) {
    (void)features;
    (void)seed;
    return {};
  }
};

}  // namespace contra
