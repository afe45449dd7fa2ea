#pragma once
/// \file
/// Checks of what a loss or a miner is given, with one set of messages: the
/// embeddings of a batch, the form of a miner's Pairs (which lists a loss
/// takes) and the indices in them. Each throws UsageError with a message that
/// starts "<who>: ".

#include <contra/roles/miner.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string_view>

namespace contra {

/// What a plugin reads of an Embeddings besides z, for check_embeddings().
struct EmbeddingsUse {
  bool sample = true;  ///< Embeddings::sample must give the sample of every row
  bool label = false;  ///< Embeddings::label, when given, must have one entry per row
  bool ids = false;    ///< Embeddings::ids, when given, must have one entry per row
};

/// Checks that emb.z is an f32 [M, D] tensor (D ≥ 1) on `device` whose M rows
/// fit the int32 row indices of Pairs, and the fields `use` names. Returns M.
/// Messages:
///   "<who>: expected embeddings as an f32 [M, D] CPU tensor, got f32 [4] on cpu" ("cuda tensor" on cuda)
///   "<who>: 3000000000 rows do not fit the int32 row indices of Pairs"
///   "<who>: Embeddings::sample must give the sample of each of the 4 rows"
///   "<who>: Embeddings::label has 2 entries for 4 rows" (and Embeddings::ids)
std::int64_t check_embeddings(std::string_view who, const Embeddings& emb, Device device = Device::cpu,
                              const EmbeddingsUse& use = {});

/// The forms of Pairs a loss takes, for check_pairs_form(): Pairs::all or
/// not, and how it uses each explicit list.
struct PairsForms {
  enum Use : unsigned char {
    refused,   ///< a non-empty list is an error
    optional,  ///< read when given, but nothing to compute on by itself (e.g. positives beside listed negatives)
    primary,   ///< computed on: without Pairs::all, at least one primary list must hold something
  };
  bool all = true;  ///< takes Pairs::all (the all_pairs miner)
  Use positive = refused;
  Use negative = refused;
  Use memory_negative = refused;
  Use triplets = refused;
  Use synthetic_negative = refused;  ///< since SDK ABI 5
  /// An empty Pairs (a miner that found nothing in a batch) is no error:
  /// check_pairs_form() returns PairsSelection::none.
  bool may_be_empty = false;
  /// false: a loss that does not say what it takes (Loss::pairs_forms()'s
  /// default); nothing is checked before a run.
  bool declared = true;
};

/// What a Pairs selects, by check_pairs_form().
enum class PairsSelection { none, all, listed };

/// Checks that `pairs` has one of the forms `forms` allows. Messages, in the
/// order they are checked (for a loss taking Pairs::all or listed negatives
/// with optional positives):
///   "<who>: Pairs::triplets is not supported; it takes Pairs::all (the all_pairs miner), or
///    Pairs::negative and/or Pairs::memory_negative with optional Pairs::positive"
///   "<who>: Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the other"
///   "<who>: nothing selected to compute on; it takes Pairs::all (the all_pairs miner), or ..."
PairsSelection check_pairs_form(std::string_view who, const Pairs& pairs, const PairsForms& forms);

/// Checks every index of the explicit lists against emb's rows and memory
/// (emb.z already checked, e.g. by check_embeddings()). A memory key whose id
/// is negative (MemoryView::ids: -1) is an empty slot. Messages:
///   "<who>: positive pair (0, 9) is outside the 4 rows" (and negative pairs)
///   "<who>: Pairs::memory_negative lists memory keys, but the memory is absent" (or "empty")
///   "<who>: memory negative (row 0, key 2) is outside the 4 rows or the 2 keys"
///   "<who>: memory negative (row 1, key 1) is an empty slot of the memory"
///   "<who>: triplet (0, 2, 7) is outside the 4 rows"
///   "<who>: Pairs::synthetic_negative lists synthetic rows, but Pairs::synthetic is empty"
///   "<who>: Pairs::synthetic must be f32 [S, 8] (the embeddings' width) on cpu, got f32 [3, 4] on cpu"
///   "<who>: synthetic negative (row 0, synthetic 5) is outside the 4 rows or the 3 synthetic rows"
///   "<who>: Pairs::synthetic_origin has 2 entries for 3 synthetic rows"
void check_pair_indices(std::string_view who, const Pairs& pairs, const Embeddings& emb);

/// Empty when a loss taking `forms` can compute on what a miner filling
/// `lists` gives (or either does not say); else why not, as
/// check_pairs_form() would say it at the first step, e.g. "Pairs::positive
/// is not supported; it takes Pairs::all (the all_pairs miner), or
/// Pairs::triplets (a triplet miner)".
std::string pairs_mismatch(const PairsForms& forms, const MinedLists& lists);

/// "Pairs::positive and Pairs::memory_negative": the lists a miner fills.
std::string mined_lists_text(const MinedLists& lists);

}  // namespace contra
