#include "hcl.hpp"

#include "../debiased_hcl.hpp"

#include <string>

namespace contra::plugins {

struct HclState {
  debiased_hcl::Estimator estimator;
};

contra::Schema Hcl::schema() {
  return contra::Schema("hcl",
                        "hard-negative contrastive loss (Robinson et al. 2021): debiased InfoNCE with "
                        "negatives reweighted by exp(beta * s)")
      .add<double>("temperature", 0.5, "softmax temperature T dividing the cosine similarities")
      .range(1e-3, 10.0)
      .add<double>("tau_plus", 0.1,
                   "class prior tau+: probability that a negative is of the anchor's class")
      .range(0.0, 0.999)
      .add<double>("beta", 1.0,
                   "hardness beta: negative j weighted by exp(beta * s_ij), s = cos / T; 0 = debiased")
      .at_least(0.0)
      .add<std::int64_t>("chunk", 1024,
                         "anchor rows per block; at most chunk x (rows + memory keys) similarities are held")
      .at_least(1);
}

Hcl::Hcl(const contra::Params& p)
    : state_(std::make_unique<HclState>(HclState{debiased_hcl::Estimator(
          "hcl", p.get<double>("temperature"), p.get<double>("tau_plus"), p.get<double>("beta"),
          p.get<std::int64_t>("chunk"), /*report_concentration=*/true)})) {}

Hcl::~Hcl() = default;

void Hcl::compute(const contra::Embeddings& emb, const contra::Pairs& pairs, contra::LossResult& out) {
  state_->estimator.compute(emb, pairs, out);
}

}  // namespace contra::plugins
