#include "class_balanced.hpp"

#include <test_support.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

using contra::SamplerContext;
using contra::plugins::ClassBalancedSampler;

namespace {

// Labels 0..classes-1, `per_class[c]` samples of class c, interleaved so that
// ids of a class are not contiguous.
std::vector<std::int64_t> make_labels(const std::vector<std::int64_t>& per_class) {
  std::vector<std::int64_t> labels;
  std::vector<std::int64_t> left = per_class;
  bool any = true;
  while (any) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c)
      if (left[c] > 0) {
        labels.push_back(static_cast<std::int64_t>(c));
        --left[c];
        any = true;
      }
  }
  return labels;
}

std::unique_ptr<ClassBalancedSampler> make(std::int64_t P, std::int64_t K, const std::vector<std::int64_t>& labels,
                                           std::uint64_t seed = 0) {
  auto s = std::make_unique<ClassBalancedSampler>(
      ClassBalancedSampler::schema().bind({{"classes_per_batch", P}, {"samples_per_class", K}}));
  s->configure(SamplerContext{static_cast<std::int64_t>(labels.size()), &labels, seed});
  return s;
}

std::vector<std::vector<std::int64_t>> epoch_batches(ClassBalancedSampler& s, std::int64_t epoch) {
  std::vector<std::vector<std::int64_t>> out(static_cast<std::size_t>(s.batches_per_epoch()));
  for (std::int64_t b = 0; b < s.batches_per_epoch(); ++b) s.plan(epoch, b, out[static_cast<std::size_t>(b)]);
  return out;
}

}  // namespace

TEST_CASE("class_balanced: schema is well formed with defaults P = 16, K = 4", "[plugins][class_balanced]") {
  CHECK_NOTHROW(ClassBalancedSampler::schema().check_well_formed());
  ClassBalancedSampler s(ClassBalancedSampler::schema().bind({}));
  auto labels = make_labels(std::vector<std::int64_t>(20, 50));  // 1000 samples
  s.configure(SamplerContext{1000, &labels, 0});
  CHECK(s.classes() == 20);
  CHECK(s.batches_per_epoch() == 1000 / 64);
  std::vector<std::int64_t> batch;
  s.plan(0, 0, batch);
  CHECK(batch.size() == 64);
}

TEST_CASE("class_balanced: every batch has exactly P distinct classes x K distinct samples, class-major",
          "[plugins][class_balanced]") {
  // Imbalanced: class sizes from 5 to 60, plus non-contiguous label values.
  std::vector<std::int64_t> sizes{5, 60, 7, 30, 12, 44, 9, 20, 5, 33};
  auto labels = make_labels(sizes);
  for (auto& l : labels) l = l * 3 - 4;  // labels -4, -1, 2, ...: any int64 value is a class
  const std::int64_t P = 4, K = 5;
  auto s = make(P, K, labels, 11);
  CHECK(s->classes() == 10);
  CHECK(s->batches_per_epoch() == static_cast<std::int64_t>(labels.size()) / (P * K));
  for (std::int64_t epoch : {0, 1, 4}) {
    for (const auto& batch : epoch_batches(*s, epoch)) {
      REQUIRE(batch.size() == static_cast<std::size_t>(P * K));
      std::set<std::int64_t> classes, ids(batch.begin(), batch.end());
      CHECK(ids.size() == batch.size());  // no sample twice in a batch
      for (std::int64_t p = 0; p < P; ++p) {
        const std::int64_t c = labels[static_cast<std::size_t>(batch[static_cast<std::size_t>(p * K)])];
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t id = batch[static_cast<std::size_t>(p * K + k)];
          REQUIRE(id >= 0);
          REQUIRE(id < static_cast<std::int64_t>(labels.size()));
          CHECK(labels[static_cast<std::size_t>(id)] == c);
        }
        classes.insert(c);
      }
      CHECK(classes.size() == static_cast<std::size_t>(P));
    }
  }
}

TEST_CASE("class_balanced: classes come in shuffled rounds, each class's samples in shuffled cycles",
          "[plugins][class_balanced]") {
  // Within an epoch, the sequence of drawn classes is a concatenation of
  // permutations of all classes, and the samples a class hands out a
  // concatenation of permutations of its samples (a small class cycles).
  std::vector<std::int64_t> sizes{6, 40, 9, 25, 4, 31, 17};
  auto labels = make_labels(sizes);
  const std::int64_t P = 3, K = 4, C = 7;
  auto s = make(P, K, labels, 5);
  for (std::int64_t epoch : {0, 3}) {
    std::vector<std::int64_t> class_seq;
    std::map<std::int64_t, std::vector<std::int64_t>> drawn;
    for (const auto& batch : epoch_batches(*s, epoch))
      for (std::int64_t p = 0; p < P; ++p) {
        const std::int64_t c = labels[static_cast<std::size_t>(batch[static_cast<std::size_t>(p * K)])];
        class_seq.push_back(c);
        drawn[c].insert(drawn[c].end(), batch.begin() + p * K, batch.begin() + (p + 1) * K);
      }
    for (std::size_t w = 0; w + C <= class_seq.size(); w += C) {
      std::set<std::int64_t> round(class_seq.begin() + static_cast<std::ptrdiff_t>(w),
                                   class_seq.begin() + static_cast<std::ptrdiff_t>(w + C));
      CHECK(round.size() == static_cast<std::size_t>(C));
    }
    std::int64_t cycled = 0;
    for (const auto& [c, seq] : drawn) {
      const auto n = static_cast<std::size_t>(sizes[static_cast<std::size_t>(c)]);
      if (seq.size() > n) ++cycled;
      for (std::size_t w = 0; w + n <= seq.size(); w += n) {
        std::set<std::int64_t> cycle(seq.begin() + static_cast<std::ptrdiff_t>(w),
                                     seq.begin() + static_cast<std::ptrdiff_t>(w + n));
        CHECK(cycle.size() == n);
      }
    }
    CHECK(cycled > 0);  // the 4- and 6-sample classes are drawn more than once per epoch
  }
}

TEST_CASE("class_balanced: a class of exactly K samples is served whole every time", "[plugins][class_balanced]") {
  auto labels = make_labels({4, 4, 4, 4, 4, 4});
  auto s = make(2, 4, labels, 1);
  CHECK(s->batches_per_epoch() == 3);
  for (const auto& batch : epoch_batches(*s, 2)) {
    std::set<std::int64_t> ids(batch.begin(), batch.end());
    CHECK(ids.size() == 8);
  }
}

TEST_CASE("class_balanced: same seed gives the same batches, another seed or epoch others",
          "[plugins][class_balanced]") {
  auto labels = make_labels(std::vector<std::int64_t>(12, 30));
  auto a = make(4, 3, labels, 42), b = make(4, 3, labels, 42), c = make(4, 3, labels, 43);
  CHECK(epoch_batches(*a, 2) == epoch_batches(*b, 2));
  CHECK(epoch_batches(*a, 2) != epoch_batches(*c, 2));
  CHECK(epoch_batches(*a, 2) != epoch_batches(*a, 3));
}

TEST_CASE("class_balanced: plan is a pure function of epoch and batch, whatever the call order",
          "[plugins][class_balanced]") {
  auto labels = make_labels(std::vector<std::int64_t>(12, 30));
  auto a = make(4, 3, labels, 9), b = make(4, 3, labels, 9);
  std::vector<std::int64_t> x, y;
  a->plan(2, 5, x);
  b->plan(0, 1, y);  // b visits other epochs first (a resume starts mid-epoch)
  b->plan(7, 0, y);
  b->plan(2, 6, y);
  b->plan(2, 5, y);
  CHECK(x == y);
}

TEST_CASE("class_balanced: refuses a source without labels", "[plugins][class_balanced]") {
  ClassBalancedSampler s(ClassBalancedSampler::schema().bind({}));
  CHECK_THROWS_AS(s.configure(SamplerContext{100, nullptr, 0}), contra::ConfigError);
  CHECK_THROWS_WITH(s.configure(SamplerContext{100, nullptr, 0}),
                    "class_balanced: needs a labelled source, but the source gives no labels (use a sampler "
                    "that ignores labels, e.g. random)");
}

TEST_CASE("class_balanced: refuses more classes per batch than the data set has", "[plugins][class_balanced]") {
  auto labels = make_labels(std::vector<std::int64_t>(10, 100));
  ClassBalancedSampler s(ClassBalancedSampler::schema().bind({}));
  CHECK_THROWS_AS(s.configure(SamplerContext{1000, &labels, 0}), contra::ConfigError);
  CHECK_THROWS_WITH(s.configure(SamplerContext{1000, &labels, 0}),
                    "class_balanced: classes_per_batch = 16 but the data set has only 10 classes (lower "
                    "classes_per_batch to at most 10)");
  std::vector<std::int64_t> one(50, 7);
  CHECK_THROWS_WITH(make(2, 1, one),
                    "class_balanced: classes_per_batch = 2 but the data set has only 1 class (lower "
                    "classes_per_batch to at most 1)");
}

TEST_CASE("class_balanced: refuses a class with fewer than K samples rather than repeat samples",
          "[plugins][class_balanced]") {
  auto labels = make_labels({10, 3, 10, 2, 10});
  CHECK_THROWS_AS(make(2, 4, labels), contra::ConfigError);
  CHECK_THROWS_WITH(make(2, 4, labels),
                    "class_balanced: samples_per_class = 4 but class 3 has only 2 samples (2 of 5 classes have "
                    "fewer than 4); a batch would have to repeat a sample, which the loss would take as its own "
                    "negative (lower samples_per_class to at most 2 or leave those classes out of the source)");
  CHECK_NOTHROW(make(2, 2, labels));
}

TEST_CASE("class_balanced: misuse is reported", "[plugins][class_balanced]") {
  ClassBalancedSampler s(ClassBalancedSampler::schema().bind({}));
  std::vector<std::int64_t> batch;
  CHECK_THROWS_WITH(s.plan(0, 0, batch), "class_balanced: plan() called before configure()");
  CHECK_THROWS_WITH(s.batches_per_epoch(), "class_balanced: batches_per_epoch() called before configure()");
  std::vector<std::int64_t> empty;
  CHECK_THROWS_WITH(s.configure(SamplerContext{0, &empty, 0}),
                    "class_balanced: the data set is empty; there is nothing to sample");
  std::vector<std::int64_t> short_labels(10, 0);
  CHECK_THROWS_WITH(s.configure(SamplerContext{20, &short_labels, 0}),
                    "class_balanced: the source has 20 samples but 10 labels");
  auto labels = make_labels(std::vector<std::int64_t>(4, 10));
  auto t = make(2, 5, labels);
  CHECK(t->batches_per_epoch() == 4);
  CHECK_THROWS_WITH(t->plan(0, 4, batch), "class_balanced: plan(0, 4) outside epochs >= 0 and batches [0, 4)");
  CHECK_THROWS_AS(t->plan(-1, 0, batch), contra::UsageError);
}
