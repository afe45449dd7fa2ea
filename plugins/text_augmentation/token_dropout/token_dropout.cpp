#include "token_dropout.hpp"

namespace contra::plugins {

contra::Schema TokenDropout::schema() {
  return contra::Schema("token_dropout", "drop each token with probability p, keeping at least one")
      .add<double>("p", 0.1, "probability of dropping each token").range(0.0, 1.0);
}

TokenDropout::TokenDropout(const contra::Params& p) : p_(p.get<double>("p")) {}

void TokenDropout::apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out,
                         const contra::Vocabulary&, contra::Rng& rng) const {
  out.clear();
  for (std::int32_t id : in)
    if (!rng.bernoulli(p_)) out.push_back(id);
  if (out.empty() && !in.empty())
    out.push_back(in[static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(in.size()) - 1))]);
}

}  // namespace contra::plugins
