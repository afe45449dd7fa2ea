#pragma once
/// \file
/// The step a miner or a loss works on: its place in the run and random
/// streams of its own, so that a stochastic miner (MoCHi's mixtures, a
/// sampled negative set) is reproducible, independent of threads and exact
/// on resume without keeping seeds of its own. Since SDK ABI 5.

#include <contra/rng.hpp>

#include <cstdint>

namespace contra {

struct StepContext {
  std::int64_t step = 0;   ///< 0-based global step (the same on every data-parallel rank)
  std::int64_t epoch = 0;  ///< 0-based epoch of the step
  std::uint64_t seed = 0;  ///< the pipeline's seed ([pipeline] seed)

  /// A counter-based stream keyed by (seed, epoch, step, `stream`): the same
  /// numbers whenever this step is trained again (a resumed run, another
  /// rank). `stream` is the plugin's own choice, e.g. one per anchor row;
  /// plugins should mix a constant of their own into it so that two of them
  /// never draw the same numbers.
  Rng random(std::uint64_t stream) const noexcept {
    return Rng(seed, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(step) ^ (stream << 24),
               static_cast<std::uint32_t>(stream >> 40), 0x53544550u);  // "STEP"
  }
};

}  // namespace contra
