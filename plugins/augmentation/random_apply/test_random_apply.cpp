#include "random_apply.hpp"

#include <test_support.hpp>

#include <cmath>
#include <cstring>

using contra::DType;
using contra::Rng;
using contra::Tensor;
using contra::plugins::RandomApply;

namespace {

RandomApply make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return RandomApply(RandomApply::schema().bind(v));
}

}  // namespace

TEST_CASE("random_apply: schema is well formed and rejects out-of-range values", "[plugins][random_apply]") {
  CHECK_NOTHROW(RandomApply::schema().check_well_formed());
  CHECK_THROWS_WITH(make({{"count", std::int64_t(0)}}),
                    "error: random_apply.count: expected a value in [1, 64], found 0\n");
  CHECK_THROWS_AS(make({{"p", 1.5}}), contra::ConfigError);
}

TEST_CASE("random_apply: count and p are as configured", "[plugins][random_apply]") {
  CHECK(make({}).count() == 1);
  CHECK(make({}).p() == 0.5);
  CHECK(make({{"count", std::int64_t(3)}, {"p", 0.8}}).count() == 3);
  CHECK(make({{"count", std::int64_t(3)}, {"p", 0.8}}).p() == 0.8);
}

TEST_CASE("random_apply: decide is true with frequency p", "[plugins][random_apply]") {
  for (double p : {0.1, 0.5, 0.8}) {
    auto ra = make({{"p", p}});
    const int n = 20000;
    int yes = 0;
    for (int k = 0; k < n; ++k) {
      Rng rng(4, 2, static_cast<std::uint64_t>(k), 1, 3);
      yes += ra.decide(rng);
    }
    const double sigma = std::sqrt(p * (1 - p) / n);
    INFO("p = " << p << ", observed " << double(yes) / n);
    CHECK(std::abs(double(yes) / n - p) < 4 * sigma);
  }
  for (int k = 0; k < 100; ++k) {
    Rng r0(1, 0, static_cast<std::uint64_t>(k), 0, 0), r1 = r0;
    CHECK_FALSE(make({{"p", 0.0}}).decide(r0));
    CHECK(make({{"p", 1.0}}).decide(r1));
  }
}

TEST_CASE("random_apply: decide is exactly one bernoulli(p) draw from the op's stream", "[plugins][random_apply]") {
  auto ra = make({{"p", 0.3}});
  for (int k = 0; k < 200; ++k) {
    Rng a(9, 1, static_cast<std::uint64_t>(k), 1, 5), b = a;
    REQUIRE(ra.decide(a) == (b.uniform() < 0.3));
    REQUIRE(a.next_u64() == b.next_u64());  // both streams advanced by the same draw
  }
}

TEST_CASE("random_apply: same rng key gives the same decision", "[plugins][random_apply]") {
  auto ra = make({{"p", 0.5}});
  int differ = 0;
  for (int k = 0; k < 100; ++k) {
    Rng r1(7, 1, static_cast<std::uint64_t>(k), 0, 2), r2(7, 1, static_cast<std::uint64_t>(k), 0, 2),
        r3(7, 1, static_cast<std::uint64_t>(k), 0, 3);
    const bool d = ra.decide(r1);
    REQUIRE(d == ra.decide(r2));
    differ += d != ra.decide(r3);  // another op position: an independent stream
  }
  CHECK(differ > 25);
  CHECK(differ < 75);
}

TEST_CASE("random_apply: apply copies u8 and f32 images, draws nothing and reuses the buffer",
          "[plugins][random_apply]") {
  auto ra = make({{"p", 0.0}});
  Tensor in = Tensor::empty({3, 2, 3}, DType::u8), out;
  for (int k = 0; k < 18; ++k) in.data<std::uint8_t>()[k] = static_cast<std::uint8_t>(k * 13);
  Rng rng(0, 0, 0, 0, 0), untouched = rng;
  ra.apply(in, out, rng);
  REQUIRE(out.shape() == in.shape());
  CHECK(std::memcmp(out.raw(), in.raw(), in.nbytes()) == 0);
  CHECK(rng.next_u64() == untouched.next_u64());
  const void* first = out.raw();
  for (int k = 0; k < 10; ++k) ra.apply(in, out, rng);
  CHECK(out.raw() == first);

  Tensor f = Tensor::empty({1, 2, 2}, DType::f32), fo;
  for (int k = 0; k < 4; ++k) f.data<float>()[k] = float(k) - 1.5f;
  ra.apply(f, fo, rng);
  REQUIRE(fo.dtype() == DType::f32);
  CHECK(std::memcmp(fo.raw(), f.raw(), f.nbytes()) == 0);
}

TEST_CASE("random_apply: output format equals input format", "[plugins][random_apply]") {
  contra::ImageFormat u8{{28, 28, 3}, DType::u8}, f32{{28, 28, 3}, DType::f32};
  CHECK(make({}).output_format(u8) == u8);
  CHECK(make({}).output_format(f32) == f32);
}

TEST_CASE("random_apply: skip_following skips count entries exactly when decide says no", "[plugins][random_apply]") {
  auto ra = make({{"count", std::int64_t(2)}, {"p", 0.3}});
  CHECK(ra.max_skip() == 2);
  for (std::uint64_t s = 0; s < 200; ++s) {
    contra::Rng a(1, 0, s, 0, 0), b(1, 0, s, 0, 0);
    CHECK(ra.skip_following(a) == (ra.decide(b) ? 0 : 2));
  }
}
