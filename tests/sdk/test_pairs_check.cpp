#include <contra/errors.hpp>
#include <contra/pairs_check.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using contra::MinedLists;
using contra::mined_lists_text;
using contra::pairs_mismatch;
using contra::PairsForms;
using contra::PairsSelection;

namespace {

// info_nce's forms: Pairs::all, or listed negatives with optional positives.
PairsForms listed_negatives() {
  PairsForms f;
  f.positive = PairsForms::optional;
  f.negative = PairsForms::primary;
  f.memory_negative = PairsForms::primary;
  return f;
}

contra::Pairs all_pairs() {
  contra::Pairs p;
  p.all = true;
  return p;
}

}  // namespace

TEST_CASE("pairs_check: embeddings, each message", "[sdk][pairs_check]") {
  std::vector<float> data(12);
  contra::Tensor z = contra::Tensor::wrap(data.data(), {4, 3}, contra::DType::f32);
  std::vector<std::int64_t> sample{0, 1, 0, 1}, two{0, 1};
  contra::Embeddings e{z, &sample};
  CHECK(contra::check_embeddings("x", e) == 4);

  contra::Embeddings flat{contra::Tensor::wrap(data.data(), {12}, contra::DType::f32), &sample};
  CHECK_THROWS_AS(contra::check_embeddings("x", flat), contra::UsageError);
  CHECK_THROWS_WITH(contra::check_embeddings("x", flat),
                    "x: expected embeddings as an f32 [M, D] CPU tensor, got f32 [12] on cpu");
  CHECK_THROWS_WITH(contra::check_embeddings("x", e, contra::Device::cuda),
                    "x: expected embeddings as an f32 [M, D] cuda tensor, got f32 [4, 3] on cpu");
  contra::Embeddings no_columns{contra::Tensor::wrap(data.data(), {4, 0}, contra::DType::f32), &sample};
  CHECK_THROWS_WITH(contra::check_embeddings("x", no_columns),
                    "x: expected embeddings as an f32 [M, D] CPU tensor, got f32 [4, 0] on cpu");
  contra::Embeddings huge{contra::Tensor::wrap(data.data(), {3000000000, 1}, contra::DType::f32), &sample};
  CHECK_THROWS_WITH(contra::check_embeddings("x", huge), "x: 3000000000 rows do not fit the int32 row indices of Pairs");

  contra::Embeddings no_sample{z};
  CHECK_THROWS_WITH(contra::check_embeddings("x", no_sample),
                    "x: Embeddings::sample must give the sample of each of the 4 rows");
  contra::Embeddings short_sample{z, &two};
  CHECK_THROWS_WITH(contra::check_embeddings("x", short_sample),
                    "x: Embeddings::sample must give the sample of each of the 4 rows");
  contra::EmbeddingsUse nothing;
  nothing.sample = false;
  CHECK(contra::check_embeddings("x", no_sample, contra::Device::cpu, nothing) == 4);

  contra::EmbeddingsUse labels_and_ids;
  labels_and_ids.label = labels_and_ids.ids = true;
  contra::Embeddings bad_label{z, &sample, &two};
  CHECK_NOTHROW(contra::check_embeddings("x", bad_label));  // labels not read
  CHECK_THROWS_WITH(contra::check_embeddings("x", bad_label, contra::Device::cpu, labels_and_ids),
                    "x: Embeddings::label has 2 entries for 4 rows");
  contra::Embeddings bad_ids{z, &sample};
  bad_ids.ids = &two;
  CHECK_THROWS_WITH(contra::check_embeddings("x", bad_ids, contra::Device::cpu, labels_and_ids),
                    "x: Embeddings::ids has 2 entries for 4 rows");
  contra::Embeddings without_labels{z, &sample};
  CHECK(contra::check_embeddings("x", without_labels, contra::Device::cpu, labels_and_ids) == 4);
}

TEST_CASE("pairs_check: the forms a loss takes, each message", "[sdk][pairs_check]") {
  const PairsForms negatives = listed_negatives();
  CHECK(contra::check_pairs_form("x", all_pairs(), negatives) == PairsSelection::all);
  contra::Pairs listed;
  listed.negative = {{0, 1}};
  CHECK(contra::check_pairs_form("x", listed, negatives) == PairsSelection::listed);
  listed.positive = {{0, 2}};
  CHECK(contra::check_pairs_form("x", listed, negatives) == PairsSelection::listed);

  contra::Pairs triplets;
  triplets.triplets = {{0, 2, 1}};
  CHECK_THROWS_AS(contra::check_pairs_form("x", triplets, negatives), contra::UsageError);
  CHECK_THROWS_WITH(contra::check_pairs_form("x", triplets, negatives),
                    "x: Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive");
  contra::Pairs both = all_pairs();
  both.memory_negative = {{0, 0}};
  CHECK_THROWS_WITH(contra::check_pairs_form("x", both, negatives),
                    "x: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the other");
  contra::Pairs positives_only;
  positives_only.positive = {{0, 2}};
  CHECK_THROWS_WITH(contra::check_pairs_form("x", positives_only, negatives),
                    "x: nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive");
  CHECK_THROWS_WITH(contra::check_pairs_form("x", contra::Pairs{}, negatives),
                    "x: nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive");

  // Pairs::all only; a refused list is named even beside Pairs::all.
  CHECK_THROWS_WITH(contra::check_pairs_form("x", both, PairsForms{}),
                    "x: Pairs::memory_negative is not supported; it takes Pairs::all (the all_pairs miner) only");

  // Triplets, or nothing at all (a miner that found none).
  PairsForms mined;
  mined.triplets = PairsForms::primary;
  mined.may_be_empty = true;
  CHECK(contra::check_pairs_form("x", contra::Pairs{}, mined) == PairsSelection::none);
  CHECK(contra::check_pairs_form("x", triplets, mined) == PairsSelection::listed);
  CHECK_THROWS_WITH(contra::check_pairs_form("x", positives_only, mined),
                    "x: Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner), or "
                    "Pairs::triplets (a triplet miner)");

  // Listed pairs without Pairs::all.
  PairsForms pairs_only;
  pairs_only.all = false;
  pairs_only.positive = pairs_only.negative = PairsForms::primary;
  CHECK(contra::check_pairs_form("x", positives_only, pairs_only) == PairsSelection::listed);
  CHECK_THROWS_WITH(contra::check_pairs_form("x", all_pairs(), pairs_only),
                    "x: Pairs::all is not supported; it takes Pairs::positive and/or Pairs::negative");
}

TEST_CASE("pairs_check: indices against the rows and the memory, each message", "[sdk][pairs_check]") {
  std::vector<float> data(12), key_data(6);
  contra::Tensor z = contra::Tensor::wrap(data.data(), {4, 3}, contra::DType::f32);
  std::vector<std::int64_t> sample{0, 1, 0, 1};
  contra::Embeddings e{z, &sample};

  contra::Pairs ok;
  ok.positive = {{0, 2}};
  ok.negative = {{0, 1}, {3, 0}};
  ok.triplets = {{0, 2, 3}};
  CHECK_NOTHROW(contra::check_pair_indices("x", ok, e));

  contra::Pairs bad;
  bad.positive = {{0, 9}};
  CHECK_THROWS_AS(contra::check_pair_indices("x", bad, e), contra::UsageError);
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e), "x: positive pair (0, 9) is outside the 4 rows");
  bad.positive.clear();
  bad.negative = {{0, 1}, {-1, 2}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e), "x: negative pair (-1, 2) is outside the 4 rows");
  bad.negative.clear();
  bad.triplets = {{0, 2, 7}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e), "x: triplet (0, 2, 7) is outside the 4 rows");
  bad.triplets.clear();

  bad.memory_negative = {{0, 0}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e),
                    "x: Pairs::memory_negative lists memory keys, but the memory is absent");
  contra::MemoryView empty_memory;
  e.memory = &empty_memory;
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e),
                    "x: Pairs::memory_negative lists memory keys, but the memory is empty");
  std::vector<std::int64_t> key_ids{5, -1};
  contra::MemoryView memory{contra::Tensor::wrap(key_data.data(), {2, 3}, contra::DType::f32), &key_ids};
  e.memory = &memory;
  CHECK_NOTHROW(contra::check_pair_indices("x", bad, e));
  bad.memory_negative = {{0, 2}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e),
                    "x: memory negative (row 0, key 2) is outside the 4 rows or the 2 keys");
  bad.memory_negative = {{4, 0}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e),
                    "x: memory negative (row 4, key 0) is outside the 4 rows or the 2 keys");
  bad.memory_negative = {{1, 1}};
  CHECK_THROWS_WITH(contra::check_pair_indices("x", bad, e),
                    "x: memory negative (row 1, key 1) is an empty slot of the memory");
}

TEST_CASE("pairs_mismatch: what a miner fills against what a loss takes, before any step", "[sdk][pairs]") {
  PairsForms triplet_forms;  // Pairs::all or triplets, as the triplet loss takes
  triplet_forms.triplets = PairsForms::primary;
  triplet_forms.may_be_empty = true;
  PairsForms info_nce_forms;  // Pairs::all or listed negatives with optional positives
  info_nce_forms.positive = PairsForms::optional;
  info_nce_forms.negative = PairsForms::primary;
  info_nce_forms.memory_negative = PairsForms::primary;
  const PairsForms all_only;

  MinedLists multi_similarity;
  multi_similarity.declared = true;
  multi_similarity.positive = multi_similarity.negative = true;
  MinedLists hardest_k;
  hardest_k.declared = true;
  hardest_k.positive = hardest_k.memory_negative = true;
  MinedLists semi_hard;
  semi_hard.declared = true;
  semi_hard.triplets = true;
  MinedLists all_pairs;
  all_pairs.declared = true;
  all_pairs.all = true;
  MinedLists positives_only;
  positives_only.declared = true;
  positives_only.positive = true;

  CHECK(pairs_mismatch(triplet_forms, multi_similarity) ==
        "Pairs::positive is not supported; it takes Pairs::all (the all_pairs miner), or Pairs::triplets (a triplet "
        "miner)");
  CHECK(pairs_mismatch(all_only, semi_hard) ==
        "Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner) only");
  CHECK(pairs_mismatch(info_nce_forms, positives_only) ==
        "nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or Pairs::negative and/or "
        "Pairs::memory_negative with optional Pairs::positive");
  CHECK(pairs_mismatch(info_nce_forms, hardest_k).empty());
  CHECK(pairs_mismatch(triplet_forms, semi_hard).empty());
  CHECK(pairs_mismatch(all_only, all_pairs).empty());
  // Either side silent: nothing to check.
  CHECK(pairs_mismatch(triplet_forms, MinedLists{}).empty());
  PairsForms undeclared;
  undeclared.declared = false;
  CHECK(pairs_mismatch(undeclared, multi_similarity).empty());

  CHECK(mined_lists_text(hardest_k) == "Pairs::positive and Pairs::memory_negative");
  CHECK(mined_lists_text(multi_similarity) == "Pairs::positive and Pairs::negative");
  CHECK(mined_lists_text(all_pairs) == "Pairs::all");
}
