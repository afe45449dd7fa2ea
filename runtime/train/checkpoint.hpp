#pragma once
// Checkpoints: every tensor a run needs to continue exactly (encoder and
// head parameters and batch-norm statistics, the momentum encoder, optimizer
// state, memory state) in one safetensors file, with the step it was taken
// after as metadata. The data position needs no saving: sampling and
// augmentation are pure functions of (seed, epoch, batch, sample, view).

#include "train/trainer.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

/// The named tensors of a run's state: "encoder.<parameter|buffer>",
/// "head.…", "momentum_encoder.…", "momentum_head.…", "optimizer.…",
/// "memory.…". Pointers into the live objects.
std::vector<std::pair<std::string, Tensor*>> training_state(const TrainerParts& parts);

/// Write `parts`' state after global step `step` to `path` atomically.
void save_checkpoint(const std::string& path, const TrainerParts& parts, std::int64_t step,
                     const std::map<std::string, std::string>& metadata);

/// Restore `parts`' state in place from `path`; returns the step it was taken
/// after. Throws DataError naming the file and the tensor when one is missing
/// or of another shape (a checkpoint of another pipeline).
std::int64_t load_checkpoint(const std::string& path, const TrainerParts& parts);

/// Restore only the encoder's parameters and buffers (for `contra eval`).
std::int64_t load_encoder(const std::string& path, Encoder& encoder);

}  // namespace contra::runtime
