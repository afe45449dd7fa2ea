#include "bank.hpp"

#include <scoped_env.hpp>
#include <test_support.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

using contra::DType;
using contra::Embeddings;
using contra::MemoryContext;
using contra::Tensor;
using contra::plugins::MemoryBank;

namespace {

std::unique_ptr<MemoryBank> make(double momentum, std::int64_t negatives, std::int64_t size, std::int64_t dim,
                                 std::uint64_t seed = 0, const std::vector<std::int64_t>* labels = nullptr) {
  auto b = std::make_unique<MemoryBank>(
      MemoryBank::schema().bind({{"momentum", momentum}, {"negatives", negatives}}));
  b->configure(MemoryContext{dim, size, labels, seed});
  return b;
}

// V views of N samples; row v*N + i.
struct Batch {
  Tensor z;
  std::vector<std::int64_t> sample, ids;
  Embeddings emb;
  Batch(std::int64_t V, std::int64_t N, std::int64_t D, const std::vector<float>& rows,
        const std::vector<std::int64_t>& sample_ids) {
    z = Tensor::empty({V * N, D}, DType::f32);
    std::copy(rows.begin(), rows.end(), z.data<float>());
    for (std::int64_t v = 0; v < V; ++v)
      for (std::int64_t i = 0; i < N; ++i) {
        sample.push_back(i);
        ids.push_back(sample_ids[static_cast<std::size_t>(i)]);
      }
    emb.z = z;
    emb.sample = &sample;
    emb.views = V;
    emb.ids = &ids;
  }
};

Tensor& keys_of(MemoryBank& b) {
  std::vector<std::pair<std::string, Tensor*>> st;
  b.state(st);
  return *st[0].second;
}

std::vector<float> row(const Tensor& t, std::int64_t r) {
  const std::int64_t D = t.dim(1);
  return std::vector<float>(t.data<float>() + r * D, t.data<float>() + (r + 1) * D);
}

void set_row(Tensor& t, std::int64_t r, std::vector<float> v) {
  std::memcpy(t.data<float>() + r * t.dim(1), v.data(), v.size() * sizeof(float));
}

double norm(const std::vector<float>& v) {
  double ss = 0.0;
  for (float x : v) ss += double(x) * x;
  return std::sqrt(ss);
}

}  // namespace

TEST_CASE("bank: schema is well formed with defaults momentum 0.5 and all slots", "[plugins][bank]") {
  CHECK_NOTHROW(MemoryBank::schema().check_well_formed());
  MemoryBank b(MemoryBank::schema().bind({}));
  CHECK(b.encoder_momentum() == 0.0);
  b.configure(MemoryContext{8, 100, nullptr, 0});
  CHECK(b.view().size() == 100);
  CHECK_THROWS_WITH(MemoryBank(MemoryBank::schema().bind({{"momentum", 1.0}})),
                    "bank.momentum: expected a value in [0, 1), found 1");
  CHECK_THROWS_AS(MemoryBank::schema().bind({{"negatives", std::int64_t(-1)}}), contra::ConfigError);
}

TEST_CASE("bank: slots start at seeded random unit vectors with ids 0..n-1 and the source's labels",
          "[plugins][bank]") {
  std::vector<std::int64_t> labels{4, 1, 1, 0, 9, 2, 2, 7, 3, 5};
  auto b = make(0.5, 0, 10, 16, 3, &labels);
  const auto& v = b->view();
  v.keys.expect({10, 16}, DType::f32, "keys");
  REQUIRE(v.ids);
  CHECK(*v.ids == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  REQUIRE(v.labels);
  CHECK(*v.labels == labels);
  std::set<std::vector<float>> distinct;
  for (std::int64_t r = 0; r < 10; ++r) {
    CHECK(norm(row(v.keys, r)) == Approx(1.0).epsilon(1e-6));
    distinct.insert(row(v.keys, r));
  }
  CHECK(distinct.size() == 10);
  // Same seed, same slots; a slot does not depend on the data set size.
  auto c = make(0.5, 0, 20, 16, 3);
  for (std::int64_t r = 0; r < 10; ++r) CHECK(row(c->view().keys, r) == row(v.keys, r));
  CHECK(c->view().labels == nullptr);
  auto d = make(0.5, 0, 10, 16, 4);
  CHECK(row(d->view().keys, 0) != row(v.keys, 0));
  // Roughly isotropic: the mean of many slots is near zero.
  auto e = make(0.5, 0, 4000, 4, 1);
  for (std::int64_t c2 = 0; c2 < 4; ++c2) {
    double s = 0.0;
    for (std::int64_t r = 0; r < 4000; ++r) s += e->view().keys.data<float>()[r * 4 + c2];
    CHECK(std::abs(s / 4000) < 0.05);
  }
}

TEST_CASE("bank: update is v <- normalise(m v + (1 - m) mean of normalised views), worked by hand",
          "[plugins][bank]") {
  auto b = make(0.5, 0, 6, 2);
  Tensor& keys = keys_of(*b);
  set_row(keys, 3, {1.0f, 0.0f});
  set_row(keys, 5, {0.0f, -1.0f});
  const auto before0 = row(keys, 0);
  // Two views of samples 3 and 5: rows 0, 1 (view 0) and 2, 3 (view 1).
  // Sample 3: (3, 4) -> (0.6, 0.8), (0, 2) -> (0, 1); mean (0.3, 0.9).
  // 0.5 (1, 0) + 0.5 (0.3, 0.9) = (0.65, 0.45), norm sqrt(0.625).
  // Sample 5: (-1, 0) and (0, -7) -> mean (-0.5, -0.5); 0.5 (0, -1) + 0.5 mean
  // = (-0.25, -0.75), norm sqrt(0.625).
  Batch batch(2, 2, 2, {3, 4, -1, 0, 0, 2, 0, -7}, {3, 5});
  b->update(batch.emb);
  const double n = std::sqrt(0.625);
  CHECK(row(keys, 3)[0] == Approx(0.65 / n));
  CHECK(row(keys, 3)[1] == Approx(0.45 / n));
  CHECK(row(keys, 5)[0] == Approx(-0.25 / n));
  CHECK(row(keys, 5)[1] == Approx(-0.75 / n));
  CHECK(row(keys, 0) == before0);  // untouched slots stay
  CHECK(row(b->view().keys, 3) == row(keys, 3));
}

TEST_CASE("bank: momentum 0 replaces the slot, a larger momentum moves it less", "[plugins][bank]") {
  for (double m : {0.0, 0.9}) {
    auto b = make(m, 0, 2, 3);
    Tensor& keys = keys_of(*b);
    set_row(keys, 1, {0.0f, 0.0f, 1.0f});
    Batch batch(1, 1, 3, {2, 0, 0}, {1});
    b->update(batch.emb);
    const double x = 1.0 - m, z = m, nn = std::sqrt(x * x + z * z);
    CHECK(row(keys, 1)[0] == Approx(x / nn));
    CHECK(row(keys, 1)[1] == 0.0f);
    CHECK(row(keys, 1)[2] == Approx(z / nn).margin(1e-7));
    CHECK(norm(row(keys, 1)) == Approx(1.0));
  }
}

TEST_CASE("bank: slots stay unit vectors over many updates", "[plugins][bank]") {
  auto b = make(0.5, 0, 5, 4, 7);
  for (int step = 0; step < 20; ++step) {
    std::vector<float> rows;  // 2 views x 2 samples x 4
    for (int i = 0; i < 16; ++i) rows.push_back(static_cast<float>((step * 7 + i * 3) % 11) - 5.0f);
    Batch batch(2, 2, 4, rows, {step % 5, (step + 2) % 5});
    b->update(batch.emb);
  }
  for (std::int64_t r = 0; r < 5; ++r) CHECK(norm(row(b->view().keys, r)) == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("bank: uses the batch's keys when defined", "[plugins][bank]") {
  auto b = make(0.0, 0, 2, 2);
  Batch batch(1, 1, 2, {1, 0}, {0});
  Tensor k = Tensor::empty({1, 2}, DType::f32);
  k.data<float>()[0] = 0.0f;
  k.data<float>()[1] = 3.0f;
  batch.emb.keys = k;
  b->update(batch.emb);
  CHECK(row(b->view().keys, 0) == std::vector<float>{0.0f, 1.0f});
}

TEST_CASE("bank: negatives exposes a seeded subset of distinct slots, redrawn at each update", "[plugins][bank]") {
  std::vector<std::int64_t> labels(50);
  for (std::size_t i = 0; i < 50; ++i) labels[i] = static_cast<std::int64_t>(i % 7);
  auto a = make(0.5, 8, 50, 3, 11, &labels), b = make(0.5, 8, 50, 3, 11, &labels),
       c = make(0.5, 8, 50, 3, 12, &labels);
  auto check_subset = [&](MemoryBank& bank) {
    const auto& v = bank.view();
    REQUIRE(v.size() == 8);
    REQUIRE(v.ids->size() == 8);
    std::set<std::int64_t> ids(v.ids->begin(), v.ids->end());
    CHECK(ids.size() == 8);
    CHECK(std::is_sorted(v.ids->begin(), v.ids->end()));
    Tensor& all = keys_of(bank);
    for (std::size_t j = 0; j < 8; ++j) {
      const std::int64_t id = (*v.ids)[j];
      REQUIRE(id >= 0);
      REQUIRE(id < 50);
      CHECK(row(v.keys, static_cast<std::int64_t>(j)) == row(all, id));
      CHECK((*v.labels)[j] == labels[static_cast<std::size_t>(id)]);
    }
    return *v.ids;
  };
  std::vector<std::vector<std::int64_t>> seq_a, seq_b, seq_c;
  for (int step = 0; step < 6; ++step) {
    seq_a.push_back(check_subset(*a));
    seq_b.push_back(check_subset(*b));
    seq_c.push_back(check_subset(*c));
    CHECK(check_subset(*a) == seq_a.back());  // stable between updates
    Batch batch(1, 2, 3, {1, 2, 3, -1, 0, 1}, {step, 40 - step});
    a->update(batch.emb);
    b->update(batch.emb);
    c->update(batch.emb);
  }
  CHECK(seq_a == seq_b);
  CHECK(seq_a != seq_c);
  std::set<std::vector<std::int64_t>> distinct(seq_a.begin(), seq_a.end());
  CHECK(distinct.size() == seq_a.size());
  // Slots updated since are seen with their new value.
  CHECK(row(a->view().keys, 0) == row(keys_of(*a), (*a->view().ids)[0]));

  // Restoring the state restores the subset.
  auto r = make(0.5, 8, 50, 3, 11, &labels);
  std::vector<std::pair<std::string, Tensor*>> sa, sr;
  a->state(sa);
  r->state(sr);
  REQUIRE(sa.size() == 2);
  CHECK(sa[0].first == "bank.keys");
  CHECK(sa[1].first == "bank.updates");
  CHECK(sa[1].second->data<std::int64_t>()[0] == 6);
  *sr[0].second = sa[0].second->clone();
  std::memcpy(sr[1].second->raw(), sa[1].second->raw(), 8);
  CHECK(*r->view().ids == *a->view().ids);
  CHECK(row(r->view().keys, 3) == row(a->view().keys, 3));
}

TEST_CASE("bank: negatives equal to the data set size exposes every slot", "[plugins][bank]") {
  auto b = make(0.5, 10, 10, 2);
  CHECK(*b->view().ids == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(b->view().labels == nullptr);
}

TEST_CASE("bank: misuse and impossible settings are reported", "[plugins][bank]") {
  MemoryBank b(MemoryBank::schema().bind({{"negatives", std::int64_t(20)}}));
  CHECK_THROWS_WITH(b.view(), "bank: view() called before configure()");
  CHECK_THROWS_AS(b.configure(MemoryContext{4, 10, nullptr, 0}), contra::ConfigError);
  CHECK_THROWS_WITH(b.configure(MemoryContext{4, 10, nullptr, 0}),
                    "bank: negatives = 20 but the data set has only 10 samples, one slot each (lower negatives, "
                    "or set 0 for all slots)");
  CHECK_THROWS_WITH(b.configure(MemoryContext{4, 0, nullptr, 0}),
                    "bank: the data set is empty; there is nothing to remember");
  CHECK_THROWS_WITH(b.configure(MemoryContext{0, 100, nullptr, 0}),
                    "bank: the embedding width must be at least 1, got 0");
  std::vector<std::int64_t> labels(3, 0);
  CHECK_THROWS_WITH(b.configure(MemoryContext{4, 100, &labels, 0}), "bank: the source has 100 samples but 3 labels");
  auto c = make(0.5, 0, 4, 2);
  Batch wrong(1, 1, 3, {1, 2, 3}, {0});
  CHECK_THROWS_WITH(c->update(wrong.emb), "bank: expected Embeddings::z as an f32 [rows, 2] CPU tensor, got f32 "
                                          "[1, 3] on cpu");
  Batch outside(1, 2, 2, {1, 0, 0, 1}, {1, 4});
  CHECK_THROWS_WITH(c->update(outside.emb), "bank: sample id 4 of row 1 is outside the bank's slots [0, 4)");
  Batch no_ids(1, 1, 2, {1, 0}, {0});
  no_ids.emb.ids = nullptr;
  CHECK_THROWS_WITH(c->update(no_ids.emb), "bank: update() needs Embeddings::ids, the sample id of each of the 1 rows");
}

TEST_CASE("bank: a data set whose slots this machine cannot hold is refused before allocating",
          "[plugins][bank][memory]") {
  const contra::test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  MemoryBank b(MemoryBank::schema().bind({}));
  CHECK_THROWS_WITH(b.configure(MemoryContext{128, 10000000000, nullptr, 0}),
                    "bank: one slot for each of the data set's 10000000000 samples needs 4.8 TiB of slots "
                    "(10000000000 × (128 f32 + id, label and counter 20 B)); this machine has 16.0 GiB available "
                    "(CONTRA_MEMORY_AVAILABLE)");
  CHECK_NOTHROW(make(0.5, 0, 60000, 128));
}
