#pragma once
// The forms of Pairs each loss takes (contra::check_pairs_form), shared by its
// CPU build and its cuda twin so that both refuse the same with the same words.

#include <contra/pairs_check.hpp>

namespace contra::plugins::pairs_forms {

/// supcon: every pair of the grouping, nothing listed.
inline contra::PairsForms all_only() { return contra::PairsForms{}; }

/// info_nce, debiased, hcl: Pairs::all, or listed negatives (batch rows,
/// memory keys) with, optionally, listed positives.
inline contra::PairsForms all_or_listed_negatives() {
  contra::PairsForms f;
  f.positive = contra::PairsForms::optional;
  f.negative = contra::PairsForms::primary;
  f.memory_negative = contra::PairsForms::primary;
  return f;
}

/// info_nce's CPU build: as all_or_listed_negatives(), and synthetic
/// negatives (Pairs::synthetic_negative: MoCHi's mixtures) among the listed.
inline contra::PairsForms all_or_listed_negatives_and_synthetic() {
  contra::PairsForms f = all_or_listed_negatives();
  f.synthetic_negative = contra::PairsForms::primary;
  return f;
}

/// contrastive_margin: Pairs::all, or listed positive and negative pairs.
inline contra::PairsForms all_or_listed_pairs() {
  contra::PairsForms f;
  f.positive = contra::PairsForms::primary;
  f.negative = contra::PairsForms::primary;
  return f;
}

/// triplet: Pairs::all, or mined triplets; a miner may find none in a batch.
inline contra::PairsForms all_or_triplets() {
  contra::PairsForms f;
  f.triplets = contra::PairsForms::primary;
  f.may_be_empty = true;
  return f;
}

}  // namespace contra::plugins::pairs_forms
