#pragma once
/// \file
/// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). A stream
/// is keyed by (seed, epoch, sample id, view, op), so the numbers an operation
/// draws for a sample do not depend on which thread runs it or when: runs are
/// reproducible at any thread count and a resume is exact.

#include <array>
#include <cstdint>

namespace contra {

class Rng {
 public:
  /// One independent stream per (seed, epoch, sample, view, op).
  Rng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample, std::uint32_t view,
      std::uint32_t op) noexcept;

  std::uint32_t next_u32() noexcept;
  std::uint64_t next_u64() noexcept;
  /// Uniform in [0, 1), 53 random bits.
  double uniform() noexcept;
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [lo, hi], both inclusive, without modulo bias.
  std::int64_t integer(std::int64_t lo, std::int64_t hi) noexcept;
  /// True with probability p.
  bool bernoulli(double p) noexcept { return uniform() < p; }
  /// Standard normal (Box-Muller).
  double normal() noexcept;

  /// The raw Philox-4x32-10 block function, exposed for tests against the
  /// published known-answer vectors.
  static std::array<std::uint32_t, 4> philox(std::array<std::uint32_t, 4> counter,
                                             std::array<std::uint32_t, 2> key) noexcept;

 private:
  std::array<std::uint32_t, 4> counter_;
  std::array<std::uint32_t, 2> key_;
  std::array<std::uint32_t, 4> block_{};
  int used_ = 4;  // words of block_ already consumed
};

/// Mixes a 64-bit value (splitmix64 finaliser); used to derive seeds.
std::uint64_t mix64(std::uint64_t x) noexcept;

}  // namespace contra
