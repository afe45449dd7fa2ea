#include "random.hpp"

#include <test_support.hpp>

#include <algorithm>
#include <memory>

using contra::SamplerContext;
using contra::plugins::RandomSampler;

namespace {

// Plugins are neither copyable nor movable.
std::unique_ptr<RandomSampler> make(std::int64_t batch, bool drop_last, std::int64_t size, std::uint64_t seed = 0) {
  auto s = std::make_unique<RandomSampler>(
      RandomSampler::schema().bind({{"batch_size", batch}, {"drop_last", drop_last}}));
  s->configure(SamplerContext{size, nullptr, seed});
  return s;
}

std::vector<std::int64_t> epoch_order(const std::unique_ptr<RandomSampler>& s, std::int64_t epoch) {
  std::vector<std::int64_t> all, batch;
  for (std::int64_t b = 0; b < s->batches_per_epoch(); ++b) {
    s->plan(epoch, b, batch);
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

}  // namespace

TEST_CASE("random: schema is well formed with defaults 256 and drop_last", "[plugins][random]") {
  CHECK_NOTHROW(RandomSampler::schema().check_well_formed());
  RandomSampler s(RandomSampler::schema().bind({}));
  s.configure(SamplerContext{1000, nullptr, 0});
  CHECK(s.batches_per_epoch() == 3);
}

TEST_CASE("random: every index appears exactly once per epoch", "[plugins][random]") {
  for (bool drop_last : {false, true}) {
    auto s = make(32, drop_last, 100, 7);
    for (std::int64_t epoch : {0, 1, 5}) {
      auto order = epoch_order(s, epoch);
      CHECK(order.size() == (drop_last ? 96u : 100u));
      std::vector<int> seen(100, 0);
      for (auto i : order) {
        REQUIRE(i >= 0);
        REQUIRE(i < 100);
        ++seen[static_cast<std::size_t>(i)];
      }
      for (int c : seen) REQUIRE(c <= 1);
      if (!drop_last)
        for (int c : seen) REQUIRE(c == 1);
    }
  }
}

TEST_CASE("random: batches have batch_size indices, the last one short without drop_last", "[plugins][random]") {
  auto s = make(32, false, 100);
  std::vector<std::int64_t> batch;
  for (std::int64_t b = 0; b < 3; ++b) {
    s->plan(0, b, batch);
    CHECK(batch.size() == 32);
  }
  s->plan(0, 3, batch);
  CHECK(batch.size() == 4);
}

TEST_CASE("random: batch counts round down with drop_last and up without", "[plugins][random]") {
  CHECK(make(32, true, 100)->batches_per_epoch() == 3);
  CHECK(make(32, false, 100)->batches_per_epoch() == 4);
  CHECK(make(25, true, 100)->batches_per_epoch() == 4);
  CHECK(make(25, false, 100)->batches_per_epoch() == 4);
  CHECK(make(1, true, 7)->batches_per_epoch() == 7);
  CHECK(make(256, false, 10)->batches_per_epoch() == 1);
}

TEST_CASE("random: different epochs give different orders", "[plugins][random]") {
  auto s = make(10, true, 1000, 3);
  auto e0 = epoch_order(s, 0), e1 = epoch_order(s, 1), e2 = epoch_order(s, 2);
  CHECK(e0 != e1);
  CHECK(e1 != e2);
  std::vector<std::int64_t> identity(1000);
  for (std::int64_t i = 0; i < 1000; ++i) identity[static_cast<std::size_t>(i)] = i;
  CHECK(e0 != identity);
}

TEST_CASE("random: same seed gives the same order, another seed another", "[plugins][random]") {
  auto a = make(16, true, 500, 42), b = make(16, true, 500, 42), c = make(16, true, 500, 43);
  CHECK(epoch_order(a, 3) == epoch_order(b, 3));
  CHECK(epoch_order(a, 3) != epoch_order(c, 3));
}

TEST_CASE("random: plan is a pure function of epoch and batch, whatever the call order", "[plugins][random]") {
  auto a = make(16, true, 500, 9), b = make(16, true, 500, 9);
  std::vector<std::int64_t> x, y;
  a->plan(2, 5, x);
  b->plan(0, 1, y);  // b visits other epochs first (a resume starts mid-epoch)
  b->plan(7, 0, y);
  b->plan(2, 5, y);
  CHECK(x == y);
}

TEST_CASE("random: each position is uniform over indices", "[plugins][random]") {
  // Over many epochs, index 0 should land in each of 10 slots about equally.
  auto s = make(10, true, 10, 1);
  std::vector<int> where(10, 0);
  std::vector<std::int64_t> batch;
  const int epochs = 20000;
  for (int e = 0; e < epochs; ++e) {
    s->plan(e, 0, batch);
    auto it = std::find(batch.begin(), batch.end(), 0);
    REQUIRE(it != batch.end());
    ++where[static_cast<std::size_t>(it - batch.begin())];
  }
  for (int w : where) CHECK(std::abs(w - epochs / 10) < 4 * 42);  // sigma = sqrt(20000 * 0.1 * 0.9) ~ 42
}

TEST_CASE("random: rejects a data set smaller than one batch with drop_last", "[plugins][random]") {
  RandomSampler s(RandomSampler::schema().bind({{"batch_size", std::int64_t(256)}}));
  CHECK_THROWS_AS(s.configure(SamplerContext{100, nullptr, 0}), contra::ConfigError);
  CHECK_THROWS_WITH(s.configure(SamplerContext{100, nullptr, 0}),
                    "random: the data set has 100 samples, fewer than one batch of 256; with drop_last = true no "
                    "batch would be formed (lower batch_size or set drop_last = false)");
  CHECK_THROWS_WITH(s.configure(SamplerContext{0, nullptr, 0}),
                    "random: the data set is empty; there is nothing to sample");
  CHECK_NOTHROW(make(256, false, 100));
}

TEST_CASE("random: misuse is reported", "[plugins][random]") {
  RandomSampler s(RandomSampler::schema().bind({}));
  std::vector<std::int64_t> batch;
  CHECK_THROWS_WITH(s.plan(0, 0, batch), "random: plan() called before configure()");
  CHECK_THROWS_WITH(s.batches_per_epoch(), "random: batches_per_epoch() called before configure()");
  auto t = make(10, true, 100);
  CHECK_THROWS_WITH(t->plan(0, 10, batch), "random: plan(0, 10) outside epochs >= 0 and batches [0, 10)");
  CHECK_THROWS_AS(t->plan(-1, 0, batch), contra::UsageError);
}
