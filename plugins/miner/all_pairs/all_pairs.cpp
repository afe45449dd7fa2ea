#include "all_pairs.hpp"

namespace contra::plugins {

contra::Schema AllPairs::schema() {
  return contra::Schema("all_pairs",
                        "every pair: views of one sample are positives, all other rows negatives");
}

AllPairs::AllPairs(const contra::Params&) {}

void AllPairs::mine(const contra::Embeddings&, contra::Pairs& out) { out.all = true; }

}  // namespace contra::plugins
