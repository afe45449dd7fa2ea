#pragma once
/// \file
/// `queue` memory: MoCo's FIFO queue of momentum-encoder keys (He et al. 2020).

#include <contra/roles/memory.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra::plugins {

/// Writes rows first_row .. first_row + count − 1 of `src`, L2-normalised,
/// into the slots first_slot, first_slot + 1, ... (mod K) of `keys` [K, D]:
/// on the CPU here, by a kernel in the cuda build (queue_cuda.hpp).
using QueueKeyWriter = void (*)(const contra::Tensor& src, std::int64_t first_row, std::int64_t count,
                                contra::Tensor& keys, std::int64_t first_slot);

/// A ring buffer of `size` (K) L2-normalised keys with their sample ids and
/// labels. update() enqueues the keys of the batch's last view, overwriting
/// the oldest entries; slots never written have id -1 (empty) and zero keys.
/// The state lives in tensors (keys [K, D] f32, ids [K] i64, labels [K] i64,
/// pointer [1] i64: the next slot to write), which state() hands out for
/// checkpoints; they may be restored in place or by assigning new tensors of
/// the same shape and dtype. Called from the train stage only (serial).
class QueueMemory : public contra::Memory {
 public:
  static contra::Schema schema();
  /// Throws ConfigError for momentum = 1. The keys live on `device` (ids,
  /// labels and the pointer on the host), written by `write_keys` (nullptr:
  /// the CPU loop; required for another device).
  explicit QueueMemory(const contra::Params& p, contra::Device device = contra::Device::cpu,
                       QueueKeyWriter write_keys = nullptr);

  /// Allocates the empty queue. Throws ConfigError for dim < 1, or, before
  /// allocating, for a `size` whose keys, ids and labels need more memory
  /// than this machine has (contra/memory_budget.hpp).
  void configure(const contra::MemoryContext& ctx) override;
  /// `momentum`: the runtime keeps an EMA copy of the encoder for the keys.
  double encoder_momentum() const override { return momentum_; }
  /// All K slots, empty ones included (ids -1); labels null when the source
  /// has none. Throws UsageError before configure().
  const contra::MemoryView& view() const override;
  /// Enqueues rows (V-1)*N .. V*N-1 of batch.keys (batch.z when keys are
  /// undefined), normalised, with batch.ids and batch.label (-1 without
  /// labels) of those rows; with N > K only the last K. Throws UsageError for
  /// a wrong shape, dtype or device (the keys' device), or without batch.ids.
  void update(const contra::Embeddings& batch) override;
  /// "queue.keys", "queue.ids", "queue.labels", "queue.pointer".
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;

  std::int64_t size() const noexcept { return size_; }

 private:
  void adopt_state() const;  // re-reads state tensors that were replaced by assignment

  std::int64_t size_;
  double momentum_;
  contra::Device device_;
  QueueKeyWriter write_keys_;
  std::string size_key_;  // "memory.size": how messages name it
  std::int64_t dim_ = 0;  // 0 until configure()
  bool labelled_ = false;
  // The state. ids_/labels_ are the storage the view points at; ids_t_ and
  // labels_t_ wrap them. mutable: view() re-adopts replaced tensors.
  mutable contra::Tensor keys_, ids_t_, labels_t_, pointer_;
  mutable std::vector<std::int64_t> ids_, labels_;
  mutable contra::MemoryView view_;
};

}  // namespace contra::plugins
