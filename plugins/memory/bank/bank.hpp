#pragma once
/// \file
/// `bank` memory: one embedding per sample of the data set (Wu et al. 2018).

#include <contra/roles/memory.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// The work on the slots, done on the keys' device: on the CPU (bank.cpp,
/// the default) or by kernels in the cuda build (bank_cuda.hpp). An object
/// rather than plain functions so that a device implementation can keep its
/// scratch and staging buffers between calls; one instance per bank.
class BankKernels {
 public:
  virtual ~BankKernels() = default;
  /// keys <- `host_slots` (the initial slots, [n, D] f32 on the host):
  /// allocates keys on the device and copies them there.
  virtual void place(const contra::Tensor& host_slots, contra::Tensor& keys) = 0;
  /// For each listed row rows[j] = i in [0, n) of view 0, slot ids[j] <-
  /// normalise(m * slot + (1 - m) * zhat_i), zhat_i the mean over the `views`
  /// views v of the normalised rows v * n + i of `src` (norms clamped at
  /// 1e-12, accumulated in double). The listed ids are distinct, so the rows
  /// may be applied in any order.
  virtual void move_slots(const contra::Tensor& src, const std::vector<std::int64_t>& rows, std::int64_t n,
                          std::int64_t views, const std::vector<std::int64_t>& ids, contra::Tensor& keys,
                          double momentum) = 0;
  /// out[j] <- keys[slots[j]]; out is ensured [slots.size(), D] f32 on the
  /// keys' device.
  virtual void gather(const contra::Tensor& keys, const std::vector<std::int64_t>& slots, contra::Tensor& out) = 0;
};

/// A slot per sample id: keys [dataset_size, D], unit rows. Slots start at
/// random unit vectors (slot i from Rng(seed, 0, i, 0, init_op), so a slot
/// does not depend on the data set size). update() moves the slot of each
/// sample of the batch: v <- normalise(m v + (1 - m) z^), z^ the mean of the
/// sample's normalised views. With `negatives` = k > 0 the view is a random
/// subset of k distinct slots, drawn from Rng(seed, u, 0, 0, negatives_op)
/// after u updates (ascending slot order) and gathered at each view().
/// The keys live on the device the bank was built for (the initial slots are
/// drawn on the host, then placed there); the update count stays on the host.
/// Called from the train stage only (serial).
class MemoryBank : public contra::Memory {
 public:
  /// Rng op of the initial slots ("BINI").
  static constexpr std::uint32_t init_op = 0x42494e49u;
  /// Rng op of the negatives subsets ("BNEG").
  static constexpr std::uint32_t negatives_op = 0x424e4547u;

  static contra::Schema schema();
  /// Throws ConfigError for momentum = 1. The keys live on `device`, worked
  /// on by `kernels` (nullptr: the CPU loops; required for another device).
  explicit MemoryBank(const contra::Params& p, contra::Device device = contra::Device::cpu,
                      std::unique_ptr<BankKernels> kernels = nullptr);
  ~MemoryBank() override;

  /// Allocates and initialises the slots. Throws ConfigError for an empty
  /// data set, dim < 1, negatives > dataset_size, or, before allocating,
  /// slots that need more memory than this machine has
  /// (contra/memory_budget.hpp); UsageError when the labels do not match the
  /// data set size.
  void configure(const contra::MemoryContext& ctx) override;
  /// 0: the bank keeps no momentum encoder; update() gets the encoder's own
  /// embeddings.
  double encoder_momentum() const override { return 0.0; }
  /// All slots (ids 0..n-1) or the current subset of `negatives` slots;
  /// labels from the source, null when it has none.
  const contra::MemoryView& view() const override;
  /// Moves the slot of each sample of the batch (its id from batch.ids of
  /// view 0's row) towards the mean of its normalised views, then draws the
  /// next subset. Samples repeated in a batch are applied in row order: the
  /// rows go in rounds, round r holding each row whose id occurred r times
  /// before it in the batch (one BankKernels::move_slots call per round).
  /// Throws UsageError for a wrong shape, dtype or device (the keys'),
  /// missing ids or an id outside [0, dataset_size).
  void update(const contra::Embeddings& batch) override;
  /// "bank.keys" [n, D] f32 on the keys' device and "bank.updates" [1] i64
  /// on the host (updates so far, which picks the subset); restorable in
  /// place or by assignment.
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;

 private:
  void check_state() const;
  void draw_subset(std::int64_t u) const;

  double momentum_;
  std::int64_t negatives_;
  contra::Device device_;
  std::unique_ptr<BankKernels> kernels_;
  std::int64_t size_ = 0;  // dataset_size; 0 until configure()
  std::int64_t dim_ = 0;
  std::uint64_t seed_ = 0;
  bool labelled_ = false;
  contra::Tensor keys_, updates_;     // the state
  std::vector<std::int64_t> all_ids_;  // 0..n-1
  std::vector<std::int64_t> labels_;   // per slot; empty without labels
  // Scratch of update(): occurrences of each id so far in the batch (all 0
  // between calls), and the rows and ids of each round.
  std::vector<std::int32_t> seen_;
  std::vector<std::vector<std::int64_t>> round_rows_, round_ids_;
  // The subset view (negatives > 0), redrawn when updates_ moves on.
  mutable std::int64_t subset_for_ = -1;
  mutable std::vector<std::int64_t> subset_, subset_labels_;
  mutable std::vector<std::uint8_t> marked_;
  mutable contra::Tensor subset_keys_;
  mutable contra::MemoryView view_;
};

}  // namespace contra::plugins
