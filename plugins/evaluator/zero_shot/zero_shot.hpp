#pragma once
/// \file
/// zero_shot: CLIP's zero-shot classification (Radford et al. 2021): each
/// image is given the class whose prompts' text embedding it is most similar
/// to. A cross-modal evaluator. See README.md for the exact definition.

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// The gallery is one prompt per (class, template), the class name put in
/// the template's "{}", labelled with the class index. A class's embedding
/// is the mean of its prompts' L2-normalised embeddings, normalised again
/// (CLIP's prompt ensembling); an image's predicted classes are those of
/// highest cosine similarity to it. An equal similarity goes against the
/// true class: a class as similar as the true one ranks before it. Figures,
/// in this order: "top<k>" for each k of top_k (fractions of the images whose
/// label is a class), then "classes".
class ZeroShot final : public contra::Evaluator {
 public:
  static contra::Schema schema();
  /// Throws ConfigError naming the template when one does not hold "{}"
  /// exactly once, or when a top_k value repeats.
  explicit ZeroShot(const contra::Params& p);

  bool cross_modal() const override { return true; }

  /// For each class c (in order) and each template t (in order): t with its
  /// "{}" replaced by class_names[c], labelled c. ConfigError when there are
  /// no class names.
  std::vector<std::pair<std::string, std::int64_t>> gallery_texts(
      const std::vector<std::string>& class_names) const override;

  /// Refused (UsageError): zero_shot needs a pipeline with a text tower.
  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test,
                                                       std::uint64_t seed) override;

  /// queries [Nq, D] (images) and gallery [Ng, D] (prompts) f32 on the CPU,
  /// one label per row; UsageError otherwise. The classes are the distinct
  /// gallery labels; images whose label is none of them are not counted. The
  /// seed is not used: the result is exact.
  std::vector<std::pair<std::string, double>> evaluate_cross_modal(const contra::CrossModalFeatures& features,
                                                                   std::uint64_t seed) override;

  /// The figure names, in the order evaluate_cross_modal() returns them.
  const std::vector<std::string>& figure_names() const noexcept { return names_; }

 private:
  std::vector<std::string> templates_;
  std::vector<std::int64_t> top_k_;
  std::vector<std::string> names_;
};

}  // namespace contra::plugins
