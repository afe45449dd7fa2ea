#include "queue.hpp"

#include <scoped_env.hpp>
#include <test_support.hpp>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <memory>
#include <vector>

using contra::DType;
using contra::Embeddings;
using contra::MemoryContext;
using contra::Tensor;
using contra::plugins::QueueMemory;

namespace {

std::unique_ptr<QueueMemory> make(std::int64_t size, std::int64_t dim, const std::vector<std::int64_t>* labels = nullptr) {
  auto q = std::make_unique<QueueMemory>(QueueMemory::schema().bind({{"size", size}}));
  q->configure(MemoryContext{dim, 1000, labels, 0});
  return q;
}

// A batch of V views of N samples; `rows` holds V*N rows of D values.
struct Batch {
  Tensor z;
  std::vector<std::int64_t> sample, ids, labels;
  Embeddings emb;
  Batch(std::int64_t V, std::int64_t N, std::int64_t D, const std::vector<float>& rows,
        const std::vector<std::int64_t>& sample_ids, const std::vector<std::int64_t>& sample_labels = {}) {
    z = Tensor::empty({V * N, D}, DType::f32);
    std::copy(rows.begin(), rows.end(), z.data<float>());
    for (std::int64_t v = 0; v < V; ++v)
      for (std::int64_t i = 0; i < N; ++i) {
        sample.push_back(i);
        ids.push_back(sample_ids[static_cast<std::size_t>(i)]);
        if (!sample_labels.empty()) labels.push_back(sample_labels[static_cast<std::size_t>(i)]);
      }
    emb.z = z;
    emb.sample = &sample;
    emb.label = sample_labels.empty() ? nullptr : &labels;
    emb.views = V;
    emb.ids = &ids;
  }
};

// Two views of N samples in D = 2; sample i's last-view row is (id, 1), its
// first-view row (-1, -1), so the key of id i is (id, 1) / sqrt(id^2 + 1).
Batch pair_batch(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& labels = {}) {
  const auto N = static_cast<std::int64_t>(ids.size());
  std::vector<float> rows;
  for (std::int64_t i = 0; i < N; ++i) rows.insert(rows.end(), {-1.0f, -1.0f});
  for (std::int64_t i = 0; i < N; ++i) rows.insert(rows.end(), {static_cast<float>(ids[static_cast<std::size_t>(i)]), 1.0f});
  return Batch(2, N, 2, rows, ids, labels);
}

void check_key(const QueueMemory& q, std::int64_t slot, std::int64_t id) {
  const float* k = q.view().keys.data<float>() + slot * 2;
  const double n = std::sqrt(double(id) * double(id) + 1.0);
  CHECK(k[0] == Approx(double(id) / n));
  CHECK(k[1] == Approx(1.0 / n));
}

std::vector<std::int64_t> ids_of(const QueueMemory& q) { return *q.view().ids; }

}  // namespace

TEST_CASE("queue: schema is well formed with defaults size 4096 and momentum 0.999", "[plugins][queue]") {
  CHECK_NOTHROW(QueueMemory::schema().check_well_formed());
  QueueMemory q(QueueMemory::schema().bind({}));
  CHECK(q.size() == 4096);
  CHECK(q.encoder_momentum() == 0.999);
  CHECK(QueueMemory(QueueMemory::schema().bind({{"momentum", 0.0}})).encoder_momentum() == 0.0);
}

TEST_CASE("queue: momentum of 1 and a size of 0 are refused", "[plugins][queue]") {
  CHECK_THROWS_AS(QueueMemory(QueueMemory::schema().bind({{"momentum", 1.0}})), contra::ConfigError);
  CHECK_THROWS_WITH(QueueMemory(QueueMemory::schema().bind({{"momentum", 1.0}})),
                    "queue.momentum: expected a value in [0, 1), found 1");
  CHECK_THROWS_AS(QueueMemory::schema().bind({{"size", std::int64_t(0)}}), contra::ConfigError);
}

TEST_CASE("queue: starts as K zero keys with ids and labels -1 (empty slots)", "[plugins][queue]") {
  std::vector<std::int64_t> labels(1000, 3);
  auto q = make(6, 4, &labels);
  const auto& v = q->view();
  REQUIRE(v.size() == 6);
  v.keys.expect({6, 4}, DType::f32, "keys");
  for (std::int64_t i = 0; i < 24; ++i) CHECK(v.keys.data<float>()[i] == 0.0f);
  CHECK(*v.ids == std::vector<std::int64_t>(6, -1));
  REQUIRE(v.labels);
  CHECK(*v.labels == std::vector<std::int64_t>(6, -1));
  CHECK(make(6, 4)->view().labels == nullptr);  // a source without labels
}

TEST_CASE("queue: enqueues in FIFO order, wraps around and overwrites the oldest", "[plugins][queue]") {
  auto q = make(5, 2);
  q->update(pair_batch({10, 11}).emb);
  CHECK(ids_of(*q) == std::vector<std::int64_t>{10, 11, -1, -1, -1});
  q->update(pair_batch({12, 13}).emb);
  q->update(pair_batch({14, 15}).emb);  // 15 overwrites 10 in slot 0
  CHECK(ids_of(*q) == std::vector<std::int64_t>{15, 11, 12, 13, 14});
  std::vector<std::pair<std::string, Tensor*>> st;
  q->state(st);
  REQUIRE(st.size() == 4);
  CHECK(st[3].first == "queue.pointer");
  CHECK(st[3].second->data<std::int64_t>()[0] == 1);  // the next slot to write, the oldest entry
  for (std::int64_t slot = 0; slot < 5; ++slot) check_key(*q, slot, ids_of(*q)[static_cast<std::size_t>(slot)]);
  q->update(pair_batch({16, 17, 18}).emb);
  CHECK(ids_of(*q) == std::vector<std::int64_t>{15, 16, 17, 18, 14});
  CHECK(st[3].second->data<std::int64_t>()[0] == 4);
  // Read from the pointer on: oldest to newest.
  std::vector<std::int64_t> fifo;
  for (std::int64_t k = 0; k < 5; ++k) fifo.push_back(ids_of(*q)[static_cast<std::size_t>((4 + k) % 5)]);
  CHECK(fifo == std::vector<std::int64_t>{14, 15, 16, 17, 18});
}

TEST_CASE("queue: a batch larger than the queue keeps its last K keys", "[plugins][queue]") {
  auto q = make(3, 2);
  q->update(pair_batch({1}).emb);  // pointer 1
  q->update(pair_batch({20, 21, 22, 23, 24}).emb);
  // 22, 23, 24 written from slot 1 on: slots 1, 2, 0; pointer back at 1.
  CHECK(ids_of(*q) == std::vector<std::int64_t>{24, 22, 23});
  check_key(*q, 0, 24);
  check_key(*q, 1, 22);
  check_key(*q, 2, 23);
  std::vector<std::pair<std::string, Tensor*>> st;
  q->state(st);
  CHECK(st[3].second->data<std::int64_t>()[0] == 1);
}

TEST_CASE("queue: takes the rows of the last view, with their ids and labels", "[plugins][queue]") {
  std::vector<std::int64_t> labels(1000, 0);
  auto q = make(8, 3, &labels);
  // V = 3 views of N = 2 samples: rows v*2 + i; only rows 4 and 5 (view 2) count.
  std::vector<float> rows{9, 9, 9, 8, 8, 8,      // view 0
                          7, 7, 7, 6, 6, 6,      // view 1
                          3, 0, 4, 0, -2, 0};    // view 2
  Batch b(3, 2, 3, rows, {40, 41}, {5, 6});
  q->update(b.emb);
  const auto& v = q->view();
  CHECK(*v.ids == std::vector<std::int64_t>{40, 41, -1, -1, -1, -1, -1, -1});
  CHECK(*v.labels == std::vector<std::int64_t>{5, 6, -1, -1, -1, -1, -1, -1});
  const float* k = v.keys.data<float>();
  CHECK(k[0] == Approx(0.6));
  CHECK(k[1] == 0.0f);
  CHECK(k[2] == Approx(0.8));
  CHECK(k[3] == 0.0f);
  CHECK(k[4] == Approx(-1.0));
  CHECK(k[5] == 0.0f);
  for (std::int64_t i = 6; i < 24; ++i) CHECK(k[i] == 0.0f);
}

TEST_CASE("queue: keys are L2-normalised, a zero row stays zero", "[plugins][queue]") {
  auto q = make(4, 5);
  std::vector<float> rows{1, 2, 3, 4, 5, 0, 0, 0, 0, 0, -0.001f, 0.002f, 0, 0, 0, 100, 0, 0, 0, 1};
  Batch b(1, 4, 5, rows, {0, 1, 2, 3});
  q->update(b.emb);
  const float* k = q->view().keys.data<float>();
  for (std::int64_t r : {0, 2, 3}) {
    double ss = 0.0;
    for (std::int64_t c = 0; c < 5; ++c) ss += double(k[r * 5 + c]) * k[r * 5 + c];
    CHECK(ss == Approx(1.0).epsilon(1e-6));
  }
  CHECK(k[0] == Approx(1.0 / std::sqrt(55.0)));
  CHECK(k[11] == Approx(2.0 / std::sqrt(5.0)));
  for (std::int64_t c = 5; c < 10; ++c) CHECK(k[c] == 0.0f);
}

TEST_CASE("queue: uses the momentum keys when the batch has them", "[plugins][queue]") {
  auto q = make(2, 2);
  Batch b(1, 1, 2, {1, 0}, {7});
  Tensor keys = Tensor::empty({1, 2}, DType::f32);
  keys.data<float>()[0] = 0.0f;
  keys.data<float>()[1] = -5.0f;
  b.emb.keys = keys;
  q->update(b.emb);
  CHECK(q->view().keys.data<float>()[0] == 0.0f);
  CHECK(q->view().keys.data<float>()[1] == -1.0f);
  CHECK((*q->view().ids)[0] == 7);
  CHECK(q->view().labels == nullptr);
}

TEST_CASE("queue: state is the tensors keys, ids, labels and pointer, and restores", "[plugins][queue]") {
  std::vector<std::int64_t> labels(1000, 0);
  auto q = make(4, 2, &labels);
  q->update(pair_batch({3, 4}, {30, 40}).emb);
  std::vector<std::pair<std::string, Tensor*>> st;
  q->state(st);
  REQUIRE(st.size() == 4);
  CHECK(st[0].first == "queue.keys");
  CHECK(st[1].first == "queue.ids");
  CHECK(st[2].first == "queue.labels");
  CHECK(st[3].first == "queue.pointer");
  st[0].second->expect({4, 2}, DType::f32, "keys");
  st[1].second->expect({4}, DType::i64, "ids");
  st[2].second->expect({4}, DType::i64, "labels");
  st[3].second->expect({1}, DType::i64, "pointer");
  CHECK(std::vector<std::int64_t>(st[1].second->data<std::int64_t>(), st[1].second->data<std::int64_t>() + 4) ==
        std::vector<std::int64_t>{3, 4, -1, -1});
  CHECK(std::vector<std::int64_t>(st[2].second->data<std::int64_t>(), st[2].second->data<std::int64_t>() + 4) ==
        std::vector<std::int64_t>{30, 40, -1, -1});
  CHECK(st[3].second->data<std::int64_t>()[0] == 2);

  // Another queue restored from copies, in place (as a checkpoint loader
  // writing into the tensors) ...
  auto r = make(4, 2, &labels);
  std::vector<std::pair<std::string, Tensor*>> rs;
  r->state(rs);
  for (std::size_t i = 0; i < 4; ++i) std::memcpy(rs[i].second->raw(), st[i].second->raw(), st[i].second->nbytes());
  CHECK(*r->view().ids == std::vector<std::int64_t>{3, 4, -1, -1});
  CHECK(*r->view().labels == std::vector<std::int64_t>{30, 40, -1, -1});
  check_key(*r, 1, 4);
  r->update(pair_batch({5}).emb);
  CHECK(*r->view().ids == std::vector<std::int64_t>{3, 4, 5, -1});

  // ... or by assigning new tensors.
  auto a = make(4, 2, &labels);
  std::vector<std::pair<std::string, Tensor*>> as;
  a->state(as);
  for (std::size_t i = 0; i < 4; ++i) *as[i].second = st[i].second->clone();
  CHECK(*a->view().ids == std::vector<std::int64_t>{3, 4, -1, -1});
  CHECK(*a->view().labels == std::vector<std::int64_t>{30, 40, -1, -1});
  check_key(*a, 0, 3);
  a->update(pair_batch({6, 7, 8}).emb);
  CHECK(*a->view().ids == std::vector<std::int64_t>{8, 4, 6, 7});
  check_key(*a, 0, 8);

  // A restored tensor of the wrong shape is reported.
  *as[1].second = Tensor::zeros({5}, DType::i64);
  CHECK_THROWS_AS(a->view(), contra::UsageError);
}

TEST_CASE("queue: misuse is reported", "[plugins][queue]") {
  QueueMemory q(QueueMemory::schema().bind({{"size", std::int64_t(4)}}));
  CHECK_THROWS_WITH(q.view(), "queue: view() called before configure()");
  CHECK_THROWS_WITH(q.update(pair_batch({1}).emb), "queue: update() called before configure()");
  CHECK_THROWS_WITH(q.configure(MemoryContext{0, 10, nullptr, 0}),
                    "queue: the embedding width must be at least 1, got 0");
  q.configure(MemoryContext{3, 10, nullptr, 0});
  CHECK_THROWS_WITH(q.update(pair_batch({1}).emb),
                    "queue: expected Embeddings::z as an f32 [rows, 3] CPU tensor, got f32 [2, 2] on cpu");
  Batch b(1, 2, 3, {1, 0, 0, 0, 1, 0}, {0, 1});
  b.emb.ids = nullptr;
  CHECK_THROWS_WITH(q.update(b.emb), "queue: update() needs Embeddings::ids, the sample id of each of the 2 rows");
  Batch c(1, 2, 3, {1, 0, 0, 0, 1, 0}, {0, 1});
  c.emb.views = 3;
  CHECK_THROWS_WITH(q.update(c.emb), "queue: 2 rows do not split into 3 views");
}

TEST_CASE("queue: a size this machine cannot hold is refused before allocating, naming the key and the figure",
          "[plugins][queue][memory]") {
  const contra::test::ScopedEnv budget("CONTRA_MEMORY_AVAILABLE", "16GiB");
  contra::Diagnostics d;
  QueueMemory q(QueueMemory::schema().bind({{"size", contra::Schema::to_value(std::int64_t{10000000000}), {}}},
                                           "memory", {}, d));
  REQUIRE(d.empty());
  CHECK_THROWS_WITH(q.configure(MemoryContext{128, 1000, nullptr, 0}),
                    "memory.size = 10000000000 needs 4.8 TiB of keys, ids and labels (10000000000 × (128 f32 + 2 "
                    "i64)); this machine has 16.0 GiB available (CONTRA_MEMORY_AVAILABLE)");
  CHECK_NOTHROW(make(65536, 128));
}
