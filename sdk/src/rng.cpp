#include <contra/rng.hpp>

#include <cmath>

namespace contra {

std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::array<std::uint32_t, 4> Rng::philox(std::array<std::uint32_t, 4> c,
                                         std::array<std::uint32_t, 2> k) noexcept {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint64_t p0 = static_cast<std::uint64_t>(m0) * c[0];
    std::uint64_t p1 = static_cast<std::uint64_t>(m1) * c[2];
    std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += w0;
    k[1] += w1;
  }
  return c;
}

Rng::Rng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample, std::uint32_t view,
         std::uint32_t op) noexcept {
  // The key carries (seed, epoch); the counter carries (sample, view, op) and
  // the draw index in its lowest word.
  std::uint64_t key = mix64(seed ^ mix64(epoch + 0x632be59bd9b4e019ull));
  key_ = {static_cast<std::uint32_t>(key), static_cast<std::uint32_t>(key >> 32)};
  counter_ = {0u, (view << 16) ^ op, static_cast<std::uint32_t>(sample),
              static_cast<std::uint32_t>(sample >> 32)};
}

std::uint32_t Rng::next_u32() noexcept {
  if (used_ == 4) {
    block_ = philox(counter_, key_);
    ++counter_[0];
    used_ = 0;
  }
  return block_[used_++];
}

std::uint64_t Rng::next_u64() noexcept {
  std::uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

double Rng::uniform() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

std::int64_t Rng::integer(std::int64_t lo, std::int64_t hi) noexcept {
  if (hi <= lo) return lo;
  std::uint64_t range = static_cast<std::uint64_t>(hi - lo) + 1;
  if (range == 0) return static_cast<std::int64_t>(next_u64());  // full 64-bit range
  std::uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  std::uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return lo + static_cast<std::int64_t>(x % range);
}

double Rng::normal() noexcept {
  double u1 = uniform();
  double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace contra
