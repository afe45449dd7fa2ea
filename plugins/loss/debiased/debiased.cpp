#include "debiased.hpp"

#include "../debiased_hcl.hpp"

#include <string>

namespace contra::plugins {

struct DebiasedState {
  debiased_hcl::Estimator estimator;
};

contra::Schema Debiased::schema() {
  return contra::Schema("debiased",
                        "debiased contrastive loss (Chuang et al. 2020): InfoNCE corrected for "
                        "same-class negatives")
      .add<double>("temperature", 0.5, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0)
      .add<double>("tau_plus", 0.1,
                   "class prior tau+: probability that a negative is of the anchor's class")
      .range(0.0, 0.999)
      .add<std::int64_t>("chunk", 1024,
                         "anchor rows per block; at most chunk x (rows + memory keys) similarities are held")
      .at_least(1);
}

Debiased::Debiased(const contra::Params& p)
    : state_(std::make_unique<DebiasedState>(DebiasedState{debiased_hcl::Estimator(
          "debiased", p.get<double>("temperature"), p.get<double>("tau_plus"), 0.0,
          p.get<std::int64_t>("chunk"), /*report_concentration=*/false)})) {}

Debiased::~Debiased() = default;

void Debiased::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  state_->estimator.compute(emb, pairs, out);
}

}  // namespace contra::plugins
