#pragma once
/// \file
/// info_nce: the NT-Xent loss of SimCLR (Chen et al. 2020), generalised to V
/// views per sample, with negatives from a memory (memory bank, MoCo queue) and
/// MoCo's momentum keys as positives. See README.md for the exact formulas.

#include "../pairs_forms.hpp"

#include <contra/roles/loss.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins {

/// Rows are L2-normalised inside the loss; s_ij = ẑ_i·c_j / T for a candidate
/// c_j (another row ẑ_j, a momentum key k̂_j, or a memory key). For each anchor
/// row i and each positive p:
///   l_ip = −log( exp(s_ip) / (exp(s_ip) + Σ_{n ∈ N(i)} exp(s_in)) ),
/// loss_i is the mean of l_ip over the positives, and the loss the mean of
/// loss_i over the anchors (rows with at least one positive).
///
/// Pairs::all: positives are the other views of the row's sample (their momentum
/// keys when Embeddings::keys is defined); negatives are the batch candidates of
/// other samples (when batch negatives are on) and every non-empty memory key
/// whose id differs from the row's. Explicit lists (Pairs::negative,
/// Pairs::memory_negative): negatives are exactly the listed ones, positives
/// Pairs::positive or, when that is empty, the sample grouping.
///
/// Similarities are computed `chunk` anchor rows at a time (sgemm), with the
/// row operations fused in one vectorised pass, so memory stays
/// O(chunk × (M + K)) floats; plain NT-Xent (no memory, no keys) runs on
/// symmetric tiles of S = ẐẐᵀ instead (1.5 to 2 products' worth of sgemm
/// instead of 3).
class InfoNce final : public contra::Loss {
 public:
  static contra::Schema schema();
  explicit InfoNce(const contra::Params& p);

  /// z.z: [M, D] f32 on the CPU, z.sample: M entries; z.keys (optional) [M, D];
  /// z.memory (optional) keys [K, D]. Writes the value, dL/dz (out.grad,
  /// [M, D]) and the metrics "pos_sim" and "neg_sim" (mean cosine similarity
  /// of the (anchor, positive) and (anchor, negative) pairs that enter the
  /// loss). Runs row blocks or tiles on the calling thread's OpenMP team.
  /// Its large buffers (similarities, M × D) are allocated when a size grows
  /// and reused; per call it allocates only O(M) index lists.
  contra::PairsForms pairs_forms() const override {
    return contra::plugins::pairs_forms::all_or_listed_negatives_and_synthetic();
  }
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs,
               contra::LossResult& out) override;

 private:
  enum class BatchNegatives { automatic, yes, no };

  struct Sums {
    double loss = 0, pos_sum = 0, neg_sum = 0;
    std::int64_t pos_count = 0, neg_count = 0;
  };

  void dense(const contra::Embeddings& emb, bool batch_negatives, Sums& sums);
  void symmetric(Sums& sums);
  void sparse(const contra::Embeddings& emb, const contra::Pairs& pairs, Sums& sums);
  void add_positive_gradients();
  void start_rows();
  void sum_rows(Sums& sums) const;

  double temperature_;
  std::int64_t chunk_;
  BatchNegatives batch_negatives_;

  // Per call, sized M (or the pair count) and reused across calls.
  std::int64_t M_ = 0, D_ = 0, K_ = 0;
  bool keys_ = false;             // positives (and batch candidates) are momentum keys
  float inv_t_ = 1.0f, alpha_ = 0.0f;  // 1/T; 1/(T·anchors)
  const float* mem_ = nullptr;    // memory keys [K, D]

  contra::Tensor zhat_;   // [M, D] normalised rows
  contra::Tensor khat_;   // [M, D] normalised momentum keys (when defined)
  contra::Tensor norm_;   // [M] row norms
  contra::Tensor sim_;    // [chunk, C] similarities of a block, then exp(s − max) in place
  contra::Tensor dzhat_;  // [M, D] dL/dẑ
  contra::Tensor dzt_;    // [D, M] the batch candidates' part of dL/dẑ, transposed (general path)
  contra::Tensor work_;   // [chunk, D] scratch of the gradient products
  std::vector<float> row_scale_;  // [chunk] ∂loss_i/∂s_in = row_scale_i · exp(s_in − max_i)
  // Symmetric path: per thread a tile of S, its row/column sums, and dL/dẑ.
  contra::Tensor tiles_;          // [threads, tile, tile]
  contra::Tensor thread_dzhat_;   // [threads - 1, M, D] the other threads' dL/dẑ
  int extra_dzhat_ = 0;           // how many of them this call filled
  std::vector<double> thread_sums_;  // [threads, M]
  std::vector<float> scale_all_;     // [M]

  // Rows grouped by sample: group_rows_[group_start_[g] .. group_start_[g+1]).
  std::vector<std::int32_t> group_of_, group_start_, group_rows_;
  // Positives per row (CSR): pos_col_ the positive row, pos_s_ its similarity,
  // then pos_g_ its coefficient ∂loss_i/∂s_ip.
  std::vector<std::int64_t> pos_start_;
  std::vector<std::int32_t> pos_col_;
  std::vector<float> pos_s_, pos_g_;
  // Per row of the general and explicit paths: loss_i, and the sum and count of
  // its negatives' similarities (metrics).
  std::vector<double> row_loss_, row_neg_sum_;
  std::vector<std::int64_t> row_neg_count_;
  // Memory keys masked for every row (empty slots), and per row (same id; CSR).
  std::vector<std::int32_t> empty_slots_;
  std::vector<std::int64_t> same_id_start_;
  std::vector<std::int32_t> same_id_key_;
  // Explicit negatives per row (CSR): column (batch row, or K_ + key index for
  // a memory key), then exp-weight/coefficient in place.
  std::vector<std::int64_t> neg_start_;
  std::vector<std::int64_t> neg_col_;
  std::vector<float> neg_g_;
  std::vector<std::int64_t> scratch_;
};

}  // namespace contra::plugins
