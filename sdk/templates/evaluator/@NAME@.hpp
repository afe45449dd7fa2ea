#pragma once
// @NAME@: a contra evaluator plugin (nearest class mean accuracy on cosine similarity).

#include <contra/roles/evaluator.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Evaluator {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test, std::uint64_t seed) override;
};
