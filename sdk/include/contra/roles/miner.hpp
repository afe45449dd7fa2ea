#pragma once
/// \file
/// Embeddings of a batch, and the miner that picks which pairs count.

#include <contra/roles/plugin.hpp>
#include <contra/step_context.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace contra {

/// Embeddings kept across steps by a memory plugin (a MoCo queue, a memory
/// bank): read-only for miners and losses, never differentiated.
struct MemoryView {
  Tensor keys;                                        ///< [K, D] f32, L2-normalised rows
  const std::vector<std::int64_t>* ids = nullptr;     ///< per key: sample id in the source; -1 = empty slot
  const std::vector<std::int64_t>* labels = nullptr;  ///< per key: class label; null when unknown
  std::int64_t size() const noexcept { return keys.defined() ? keys.dim(0) : 0; }
};

/// The embeddings of one batch: V views of N samples, row r = v * N + i.
/// Rows with the same `sample` are views of one sample (positives).
struct Embeddings {
  Tensor z;                                          ///< [V*N, D] f32, what the loss differentiates
  const std::vector<std::int64_t>* sample = nullptr; ///< per row: sample index in the batch, 0..N-1
  const std::vector<std::int64_t>* label = nullptr;  ///< per row: class label; null when unknown
  std::int64_t views = 0;                            ///< V
  const std::vector<std::int64_t>* ids = nullptr;    ///< per row: sample id in the source; null when unknown
  /// [V*N, D] embeddings of the same rows by the momentum encoder (MoCo's
  /// keys, no gradient), when the pipeline's memory keeps one; else undefined.
  Tensor keys;
  /// The memory's keys, when the pipeline has a [memory]; else null.
  const MemoryView* memory = nullptr;
  /// Per view (V entries): the tower (modality) that embedded it, 0..T-1, in
  /// the order of the pipeline's towers, e.g. {0, 1} for CLIP's image and
  /// text; null for a pipeline of one tower. Since SDK ABI 4.
  const std::vector<std::int32_t>* view_tower = nullptr;
  /// The step being trained (its step, epoch, seed and random streams); null
  /// outside a run (a test may set one). Since SDK ABI 5.
  const StepContext* context = nullptr;
  std::int64_t rows() const noexcept { return z.dim(0); }
};

struct Triplet {
  std::int32_t anchor, positive, negative;
};

/// What a synthetic negative was made of (Pairs::synthetic_origin), for the
/// diagnostics: `weight` · first + (1 − `weight`) · second, each a batch row
/// or a memory key, then L2-normalised. Since SDK ABI 5.
struct SyntheticOrigin {
  enum class Kind : std::uint8_t { row, memory_key };
  Kind first_kind = Kind::row;
  std::int32_t first = 0;
  Kind second_kind = Kind::row;
  std::int32_t second = 0;
  float weight = 1.0f;
};

/// What a miner selected. `all` means every pair the sample grouping implies
/// (views of one sample are positives, every other row a negative) and, with
/// a memory, every memory key of another sample as a negative too.
struct Pairs {
  bool all = false;
  std::vector<std::pair<std::int32_t, std::int32_t>> positive;  ///< (anchor, positive) rows
  std::vector<std::pair<std::int32_t, std::int32_t>> negative;  ///< (anchor, negative) rows
  std::vector<Triplet> triplets;
  /// (anchor row, memory key index): negatives chosen from the memory.
  std::vector<std::pair<std::int32_t, std::int32_t>> memory_negative;
  /// Negatives that are rows neither of the batch nor of the memory (MoCHi's
  /// mixtures, generated points): [S, D] f32 L2-normalised rows on the
  /// device of the embeddings, constants (no gradient flows into them).
  /// Since SDK ABI 5.
  Tensor synthetic;
  /// (anchor row, synthetic row): the synthetic negatives of each anchor.
  std::vector<std::pair<std::int32_t, std::int32_t>> synthetic_negative;
  /// Per synthetic row (empty, or S entries): what it was made of.
  std::vector<SyntheticOrigin> synthetic_origin;
  void clear() {
    all = false;
    positive.clear();
    negative.clear();
    triplets.clear();
    memory_negative.clear();
    synthetic = Tensor();
    synthetic_negative.clear();
    synthetic_origin.clear();
  }
};

/// The lists of Pairs a miner's mine() fills (Miner::mined_lists()), which
/// `contra validate` checks against the forms its loss takes
/// (Loss::pairs_forms()) before a run.
struct MinedLists {
  bool declared = false;  ///< false: the miner does not say, nothing is checked
  bool all = false;
  bool positive = false;
  bool negative = false;
  bool memory_negative = false;
  bool triplets = false;
  bool synthetic_negative = false;  ///< since SDK ABI 5
};

class Miner : public Plugin {
 public:
  /// Fill `out` (already cleared) from the batch's embeddings. Called from one
  /// thread.
  virtual void mine(const Embeddings& z, Pairs& out) = 0;
  /// What mine() fills; declared, a loss that cannot use it is refused
  /// before a run instead of at its first step.
  virtual MinedLists mined_lists() const { return {}; }
};

}  // namespace contra
