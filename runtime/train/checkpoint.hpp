#pragma once
// Checkpoints: every tensor a run needs to continue exactly (encoder and
// head parameters and batch-norm statistics, the momentum encoder, optimizer
// state, memory state) in one safetensors file, with the step it was taken
// after as metadata. The data position needs no saving: sampling and
// augmentation are pure functions of (seed, epoch, batch, sample, view).

#include "train/trainer.hpp"

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

/// The named tensors of a run's state: "encoder.<parameter|buffer>",
/// "head.…", "momentum_encoder.…", "momentum_head.…", "optimizer.…",
/// "memory.…". Pointers into the live objects.
std::vector<std::pair<std::string, Tensor*>> training_state(const TrainerParts& parts);

/// What a state must hold to become a checkpoint: a guard against promoting
/// a diverged run to `latest`. Non-finite values are always refused.
struct StateBounds {
  /// Largest magnitude of an encoder's or head's parameter or buffer; 0 = no bound.
  double max_abs_weight = 0;
  std::string setting;  ///< where the bound is set, for messages: "[record] max_abs_weight"
};

/// Thrown by save_checkpoint, before anything is written, for a state outside
/// its StateBounds.
class DivergedState : public Error {
 public:
  using Error::Error;
};

/// The metadata key holding the resolved pipeline a checkpoint's run trained.
inline constexpr const char* checkpoint_pipeline_key = "pipeline_toml";
/// The metadata key holding how many data-parallel ranks trained it (absent: one).
inline constexpr const char* checkpoint_ranks_key = "ranks";

/// Write `parts`' state after global step `step` to `path` atomically, unless
/// it is outside `bounds` (DivergedState).
void save_checkpoint(const std::string& path, const TrainerParts& parts, std::int64_t step,
                     const std::map<std::string, std::string>& metadata, const StateBounds& bounds = {});

/// Restore `parts`' state in place from `path`; returns the step it was taken
/// after. Throws DataError naming the file and the tensor when one is missing
/// or of another shape (a checkpoint of another pipeline). `check_run`,
/// when given, receives the checkpoint's metadata (the resolved pipeline its
/// run trained under checkpoint_pipeline_key, its ranks under
/// checkpoint_ranks_key) before any state is touched, and may throw.
std::int64_t load_checkpoint(
    const std::string& path, const TrainerParts& parts,
    const std::function<void(const std::map<std::string, std::string>& metadata)>& check_run = {});

/// A digest of everything a checkpoint of `parts` holds (parameters,
/// buffers, optimizer and memory state), bit for bit: data-parallel ranks
/// compare theirs at the end of a run, since they must hold the same state.
std::uint64_t state_digest(const TrainerParts& parts);

/// Restore only the encoder's parameters and buffers (for `contra eval`).
std::int64_t load_encoder(const std::string& path, Encoder& encoder);
/// Restore every encoder's and head's parameters and buffers (the towers',
/// the momentum ones'; named_encoders()), not the loss, optimizer or memory
/// (for `contra eval` of cross-modal evaluators).
std::int64_t load_model(const std::string& path, const TrainerParts& parts);

}  // namespace contra::runtime
