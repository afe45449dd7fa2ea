#pragma once
/// \file
/// Memory: embeddings kept across steps (a MoCo queue, a memory bank), the
/// source of negatives beyond the batch.

#include <contra/roles/miner.hpp>
#include <contra/roles/plugin.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contra {

struct MemoryContext {
  std::int64_t dim = 0;                               ///< embedding width D
  std::int64_t dataset_size = 0;                      ///< samples in the source
  const std::vector<std::int64_t>* labels = nullptr;  ///< the source's labels; null when none
  std::uint64_t seed = 0;
};

class Memory : public Plugin {
 public:
  /// Called once, before anything else.
  virtual void configure(const MemoryContext& ctx) = 0;

  /// Momentum m of the encoder copy the runtime keeps for this memory
  /// (θ_k ← m·θ_k + (1 − m)·θ_q after each step, as MoCo); 0 = no momentum
  /// encoder, and update() receives the encoder's own embeddings.
  virtual double encoder_momentum() const { return 0.0; }

  /// Keys the current step's miner and loss see. Valid until update().
  virtual const MemoryView& view() const = 0;

  /// After the step's loss: take in the batch's keys. `batch.keys` holds the
  /// momentum encoder's embeddings when encoder_momentum() > 0, else it is
  /// undefined and `batch.z` is used (detached). Rows are not normalised.
  virtual void update(const Embeddings& batch) = 0;

  /// Named tensors of its state, for checkpoints.
  virtual void state(std::vector<std::pair<std::string, Tensor*>>& out) { (void)out; }
};

}  // namespace contra
