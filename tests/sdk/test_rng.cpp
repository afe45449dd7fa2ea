#include <contra/rng.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <set>

using contra::Rng;

TEST_CASE("rng: philox4x32-10 matches the Random123 known-answer vectors", "[sdk][rng]") {
  using A4 = std::array<std::uint32_t, 4>;
  using A2 = std::array<std::uint32_t, 2>;
  CHECK(Rng::philox(A4{0, 0, 0, 0}, A2{0, 0}) == A4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(Rng::philox(A4{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, A2{0xffffffffu, 0xffffffffu}) ==
        A4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(Rng::philox(A4{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, A2{0xa4093822u, 0x299f31d0u}) ==
        A4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("rng: a stream depends only on its key, not on what ran before", "[sdk][rng]") {
  Rng a(7, 1, 42, 0, 3);
  std::vector<std::uint32_t> first;
  for (int i = 0; i < 10; ++i) first.push_back(a.next_u32());
  Rng other(7, 1, 43, 0, 3);
  for (int i = 0; i < 5; ++i) other.next_u32();
  Rng b(7, 1, 42, 0, 3);
  for (int i = 0; i < 10; ++i) CHECK(b.next_u32() == first[i]);
}

TEST_CASE("rng: seed, epoch, sample, view and op each change the stream", "[sdk][rng]") {
  std::set<std::uint64_t> starts;
  starts.insert(Rng(1, 0, 0, 0, 0).next_u64());
  starts.insert(Rng(2, 0, 0, 0, 0).next_u64());
  starts.insert(Rng(1, 1, 0, 0, 0).next_u64());
  starts.insert(Rng(1, 0, 1, 0, 0).next_u64());
  starts.insert(Rng(1, 0, 0, 1, 0).next_u64());
  starts.insert(Rng(1, 0, 0, 0, 1).next_u64());
  starts.insert(Rng(1, 0, std::uint64_t(1) << 32, 0, 0).next_u64());
  CHECK(starts.size() == 7);
}

TEST_CASE("rng: uniform, integer and normal have the expected ranges and moments", "[sdk][rng]") {
  Rng r(3, 0, 0, 0, 0);
  const int n = 200000;
  double sum = 0, sum_sq = 0, nsum = 0, nsq = 0;
  int counts[6] = {};
  for (int i = 0; i < n; ++i) {
    double u = r.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    sum_sq += u * u;
    auto k = r.integer(-2, 3);
    REQUIRE(k >= -2);
    REQUIRE(k <= 3);
    counts[k + 2]++;
    double z = r.normal();
    nsum += z;
    nsq += z * z;
  }
  CHECK(sum / n == Approx(0.5).margin(0.005));
  CHECK(sum_sq / n - (sum / n) * (sum / n) == Approx(1.0 / 12).margin(0.002));
  for (int c : counts) CHECK(c == Approx(n / 6.0).epsilon(0.03));
  CHECK(nsum / n == Approx(0.0).margin(0.01));
  CHECK(nsq / n == Approx(1.0).margin(0.02));
  CHECK(r.integer(5, 5) == 5);
}
