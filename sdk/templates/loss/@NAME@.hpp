#pragma once
// @NAME@: a contra loss plugin (weighted mean squared distance of positive pairs).

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Loss {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  /// Loss over the mined pairs and dL/dz into out.grad. Called from one thread.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double weight_;
  std::vector<std::pair<std::int32_t, std::int32_t>> positives_;  // reused across steps
};
