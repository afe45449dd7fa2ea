#include "neighbor_batches.hpp"

#include <test_support.hpp>

#include <atomic>
#include <cmath>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using contra::DType;
using contra::Embeddings;
using contra::SamplerContext;
using contra::Tensor;
using contra::plugins::NeighborBatchesSampler;

namespace {

constexpr std::int64_t dim = 16;

// `clusters` tight clusters of `per_cluster` unit-norm points in 16-D; sample
// id i belongs to cluster i % clusters (a cluster's ids are not contiguous).
struct Clusters {
  std::int64_t n;
  std::vector<float> x;  // [n, dim], unit rows
  std::vector<std::int64_t> cluster;
  Clusters(std::int64_t clusters, std::int64_t per_cluster, double spread, std::uint32_t seed = 5) {
    n = clusters * per_cluster;
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal;
    std::vector<double> centers(static_cast<std::size_t>(clusters * dim));
    for (auto& c : centers) c = normal(gen);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t c = i % clusters;
      cluster.push_back(c);
      double ss = 0.0;
      std::vector<double> p(dim);
      for (std::int64_t k = 0; k < dim; ++k) {
        p[static_cast<std::size_t>(k)] = centers[static_cast<std::size_t>(c * dim + k)] + spread * normal(gen);
        ss += p[static_cast<std::size_t>(k)] * p[static_cast<std::size_t>(k)];
      }
      for (double v : p) x.push_back(static_cast<float>(v / std::sqrt(ss)));
    }
  }
  const float* at(std::int64_t id) const { return x.data() + id * dim; }
  double dist(std::int64_t a, std::int64_t b) const {
    double s = 0.0;
    for (std::int64_t k = 0; k < dim; ++k) s += (at(a)[k] - at(b)[k]) * (at(a)[k] - at(b)[k]);
    return std::sqrt(s);
  }
  // Mean distance over all pairs of a batch.
  double mean_within(const std::vector<std::int64_t>& batch) const {
    double s = 0.0;
    std::int64_t pairs = 0;
    for (std::size_t i = 0; i < batch.size(); ++i)
      for (std::size_t j = i + 1; j < batch.size(); ++j, ++pairs) s += dist(batch[i], batch[j]);
    return s / static_cast<double>(pairs);
  }
};

// What the train stage would send back for a batch: two views, the second
// a scaled copy of the first (normalisation makes them the same direction).
struct Feedback {
  Tensor z;
  std::vector<std::int64_t> sample, ids;
  Embeddings emb;
  Feedback(const Clusters& c, const std::vector<std::int64_t>& batch) {
    const auto N = static_cast<std::int64_t>(batch.size());
    z = Tensor::empty({2 * N, dim}, DType::f32);
    float* out = z.data<float>();
    for (std::int64_t v = 0; v < 2; ++v)
      for (std::int64_t i = 0; i < N; ++i) {
        const float* p = c.at(batch[static_cast<std::size_t>(i)]);
        for (std::int64_t k = 0; k < dim; ++k) out[(v * N + i) * dim + k] = p[k] * (1.0f + 2.0f * static_cast<float>(v));
        sample.push_back(i);
        ids.push_back(batch[static_cast<std::size_t>(i)]);
      }
    emb.z = z;
    emb.sample = &sample;
    emb.views = 2;
    emb.ids = &ids;
  }
};

struct Setup {
  std::int64_t batch_size, refresh, cluster_size, lag;
};

std::unique_ptr<NeighborBatchesSampler> make(const Setup& s, std::int64_t n, std::uint64_t seed = 1) {
  auto p = std::make_unique<NeighborBatchesSampler>(NeighborBatchesSampler::schema().bind(
      {{"batch_size", s.batch_size}, {"refresh", s.refresh}, {"cluster_size", s.cluster_size}}));
  SamplerContext ctx{n, nullptr, seed};
  ctx.lag = s.lag;
  p->configure(ctx);
  return p;
}

enum class Order { lazy, eager };

// A training run: plan(s) is called when observe() has seen at least the
// steps <= s - lag (lazy: exactly those; eager: every step already planned).
// Returns every step's batch and the snapshot each used.
std::vector<std::vector<std::int64_t>> run(NeighborBatchesSampler& sampler, const Clusters& c, std::int64_t lag,
                                           std::int64_t epochs, Order order, std::vector<std::int64_t>* tags = nullptr) {
  const std::int64_t B = sampler.batches_per_epoch();
  std::vector<std::vector<std::int64_t>> plans(static_cast<std::size_t>(epochs * B));
  std::int64_t observed = 0;
  for (std::int64_t s = 0; s < epochs * B; ++s) {
    if (order == Order::lazy)
      for (; observed <= s - lag; ++observed)
        sampler.observe(observed, Feedback(c, plans[static_cast<std::size_t>(observed)]).emb);
    sampler.plan(s / B, s % B, plans[static_cast<std::size_t>(s)]);
    if (tags) tags->push_back(sampler.last_snapshot());
    if (order == Order::eager) sampler.observe(s, Feedback(c, plans[static_cast<std::size_t>(s)]).emb);
  }
  return plans;
}

// The same, with observe() on another thread that runs as soon as it can.
std::vector<std::vector<std::int64_t>> run_threaded(NeighborBatchesSampler& sampler, const Clusters& c,
                                                    std::int64_t lag, std::int64_t epochs) {
  const std::int64_t B = sampler.batches_per_epoch(), total = epochs * B;
  std::vector<std::vector<std::int64_t>> plans(static_cast<std::size_t>(total));
  std::atomic<std::int64_t> planned{0}, observed{0};
  std::thread trainer([&] {
    std::mt19937 jitter(7);
    for (std::int64_t t = 0; t < total; ++t) {
      while (planned.load(std::memory_order_acquire) <= t) std::this_thread::yield();
      if (jitter() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(jitter() % 200));
      sampler.observe(t, Feedback(c, plans[static_cast<std::size_t>(t)]).emb);
      observed.store(t + 1, std::memory_order_release);
    }
  });
  for (std::int64_t s = 0; s < total; ++s) {
    while (observed.load(std::memory_order_acquire) < s - lag + 1) std::this_thread::yield();
    sampler.plan(s / B, s % B, plans[static_cast<std::size_t>(s)]);
    planned.store(s + 1, std::memory_order_release);
  }
  trainer.join();
  return plans;
}

void check_epochs_cover_at_most_once(const std::vector<std::vector<std::int64_t>>& plans, std::int64_t B,
                                     std::int64_t n, std::int64_t batch_size) {
  for (std::size_t e = 0; e * static_cast<std::size_t>(B) < plans.size(); ++e) {
    std::set<std::int64_t> seen;
    for (std::int64_t b = 0; b < B; ++b) {
      const auto& batch = plans[e * static_cast<std::size_t>(B) + static_cast<std::size_t>(b)];
      REQUIRE(batch.size() == static_cast<std::size_t>(batch_size));
      for (std::int64_t id : batch) {
        REQUIRE(id >= 0);
        REQUIRE(id < n);
        REQUIRE(seen.insert(id).second);  // no sample twice in an epoch
      }
    }
  }
}

}  // namespace

TEST_CASE("neighbor_batches: schema is well formed with defaults 256, 200, 16", "[plugins][neighbor_batches]") {
  CHECK_NOTHROW(NeighborBatchesSampler::schema().check_well_formed());
  NeighborBatchesSampler s(NeighborBatchesSampler::schema().bind({}));
  s.configure(SamplerContext{1000, nullptr, 0});
  CHECK(s.batches_per_epoch() == 3);
  const auto p = NeighborBatchesSampler::schema().bind({});
  CHECK(p.get<std::int64_t>("batch_size") == 256);
  CHECK(p.get<std::int64_t>("refresh") == 200);
  CHECK(p.get<std::int64_t>("cluster_size") == 16);
  CHECK(p.get<std::int64_t>("warmup_steps") == -1);
  CHECK_THROWS_AS(NeighborBatchesSampler::schema().bind({{"refresh", std::int64_t(0)}}), contra::ConfigError);
}

TEST_CASE("neighbor_batches: plans before any observation, as a shuffle covering each sample once",
          "[plugins][neighbor_batches]") {
  auto s = make({32, 10, 8, 2}, 100);
  CHECK(s->batches_per_epoch() == 3);
  std::vector<std::int64_t> batch;
  std::set<std::int64_t> seen;
  for (std::int64_t b = 0; b < 3; ++b) {
    s->plan(0, b, batch);
    CHECK(batch.size() == 32);
    CHECK(s->last_snapshot() == -1);
    seen.insert(batch.begin(), batch.end());
  }
  CHECK(seen.size() == 96);
  std::vector<std::int64_t> e1;
  s->plan(1, 0, e1);
  s->plan(0, 0, batch);
  CHECK(e1 != batch);
  auto t = make({32, 10, 8, 2}, 100);
  std::vector<std::int64_t> again;
  t->plan(0, 0, again);
  CHECK(again == batch);
}

TEST_CASE("neighbor_batches: after a refresh, batches are clearly nearer than random ones",
          "[plugins][neighbor_batches]") {
  // 8 tight clusters of 64 points in 16-D; 8 batches of 64 per epoch.
  Clusters c(8, 64, 0.05);
  for (std::int64_t cluster_size : {16, 64}) {
    const Setup setup{64, 8, cluster_size, 2};
    auto s = make(setup, c.n, 3);
    std::vector<std::int64_t> tags;
    auto plans = run(*s, c, setup.lag, 4, Order::lazy, &tags);
    check_epochs_cover_at_most_once(plans, 8, c.n, 64);
    // Epoch 0 is random (no snapshot yet); the snapshot of step 8 holds every
    // sample and is usable from step 10 on.
    for (std::size_t i = 0; i < 10; ++i) CHECK(tags[i] == -1);
    CHECK(tags[10] == 8);
    CHECK(tags[31] == 24);
    double random = 0.0, near = 0.0;
    for (std::size_t b = 0; b < 8; ++b) random += c.mean_within(plans[b]) / 8;
    for (std::size_t b = 24; b < 32; ++b) near += c.mean_within(plans[b]) / 8;
    // Groups of cluster_size come from one cluster each, and are far nearer
    // than the same slices of a random batch.
    const auto cs = static_cast<std::size_t>(cluster_size);
    std::int64_t pure = 0, groups = 0;
    double group_random = 0.0, group_near = 0.0;
    for (std::size_t b = 0; b < 8; ++b)
      for (std::size_t g = 0; g < 64; g += cs)
        group_random += c.mean_within({plans[b].begin() + static_cast<std::ptrdiff_t>(g),
                                       plans[b].begin() + static_cast<std::ptrdiff_t>(g + cs)});
    for (std::size_t b = 24; b < 32; ++b)
      for (std::size_t g = 0; g < 64; g += cs, ++groups) {
        std::vector<std::int64_t> group(plans[b].begin() + static_cast<std::ptrdiff_t>(g),
                                        plans[b].begin() + static_cast<std::ptrdiff_t>(g + cs));
        group_near += c.mean_within(group);
        std::set<std::int64_t> cl;
        for (std::int64_t id : group) cl.insert(c.cluster[static_cast<std::size_t>(id)]);
        pure += cl.size() == 1;
      }
    INFO("cluster_size " << cluster_size << ": batches random " << random << ", near " << near << "; groups random "
                         << group_random / groups << ", near " << group_near / groups << ", pure " << pure << " of "
                         << groups);
    CHECK(pure >= groups * 3 / 4);
    CHECK(group_near < 0.25 * group_random);
    // With cluster_size 16 a batch is 4 groups from random places: a quarter
    // of its pairs are within a group. With 64, a whole batch is one cluster.
    CHECK(near < (cluster_size == 16 ? 0.9 : 0.3) * random);
  }
}

TEST_CASE("neighbor_batches: the same observations give the same plans however plan and observe interleave",
          "[plugins][neighbor_batches]") {
  Clusters c(8, 40, 0.1);
  const Setup setup{40, 5, 10, 3};  // refresh < batches per epoch: snapshots change mid-epoch
  auto a = make(setup, c.n, 9), b = make(setup, c.n, 9), t = make(setup, c.n, 9);
  std::vector<std::int64_t> tags;
  auto lazy = run(*a, c, setup.lag, 5, Order::lazy, &tags);
  auto eager = run(*b, c, setup.lag, 5, Order::eager);
  auto threaded = run_threaded(*t, c, setup.lag, 5);
  CHECK(lazy == eager);
  CHECK(lazy == threaded);
  check_epochs_cover_at_most_once(lazy, 8, c.n, 40);
  // Not vacuous: snapshots were used, several per epoch.
  std::set<std::int64_t> used(tags.begin(), tags.end());
  CHECK(used.size() > 5);
  CHECK(tags.back() == 35);  // step 39 uses the newest snapshot with tag <= 36, taken at step 35
  // And another seed plans otherwise.
  auto d = make(setup, c.n, 10);
  CHECK(run(*d, c, setup.lag, 5, Order::lazy) != lazy);
}

TEST_CASE("neighbor_batches: warmup_steps delays the use of snapshots", "[plugins][neighbor_batches]") {
  Clusters c(4, 32, 0.05);
  auto s = std::make_unique<NeighborBatchesSampler>(NeighborBatchesSampler::schema().bind(
      {{"batch_size", std::int64_t(32)}, {"refresh", std::int64_t(2)}, {"cluster_size", std::int64_t(8)},
       {"warmup_steps", std::int64_t(9)}}));
  SamplerContext ctx{c.n, nullptr, 0};
  ctx.lag = 1;
  s->configure(ctx);
  std::vector<std::int64_t> tags;
  run(*s, c, 1, 4, Order::lazy, &tags);
  for (std::size_t i = 0; i < 9; ++i) CHECK(tags[i] == -1);
  CHECK(tags[9] == 8);
}

TEST_CASE("neighbor_batches: samples not observed yet are placed at random, each at most once",
          "[plugins][neighbor_batches]") {
  // Only one cluster is ever observed: its samples form groups, the rest is random.
  Clusters c(4, 64, 0.05);
  const Setup setup{32, 1, 8, 1};
  auto s = make(setup, c.n, 4);
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < c.n; i += 4) ids.push_back(i);  // cluster 0
  s->observe(0, Feedback(c, ids).emb);
  s->observe(1, Feedback(c, ids).emb);  // snapshot tagged 1
  std::vector<std::vector<std::int64_t>> plans(8);
  for (std::int64_t b = 0; b < 8; ++b) s->plan(1, b, plans[static_cast<std::size_t>(b)]);  // steps 8..15
  CHECK(s->last_snapshot() == 1);
  check_epochs_cover_at_most_once(plans, 8, c.n, 32);
  std::int64_t pure = 0;
  for (const auto& batch : plans)
    for (std::size_t g = 0; g < 32; g += 8) {
      std::int64_t zeros = 0;
      for (std::size_t k = 0; k < 8; ++k) zeros += c.cluster[static_cast<std::size_t>(batch[g + k])] == 0;
      pure += zeros == 8;
      CHECK((zeros == 8 || zeros <= 5));  // cluster-0 groups, or random groups of the other 192
    }
  CHECK(pure == 8);  // the 64 observed samples make exactly 8 groups
}

TEST_CASE("neighbor_batches: replaying an epoch from its start gives the same batches", "[plugins][neighbor_batches]") {
  Clusters c(4, 32, 0.05);
  auto s = make({16, 100, 4, 1}, c.n);
  std::vector<std::int64_t> x, y, z;
  s->plan(2, 3, x);  // batches 0..2 planned on the way
  s->plan(2, 5, y);
  s->plan(2, 3, z);  // replay
  CHECK(x == z);
  CHECK(x != y);
}

TEST_CASE("neighbor_batches: bad settings and misuse are reported", "[plugins][neighbor_batches]") {
  CHECK_THROWS_AS(NeighborBatchesSampler(NeighborBatchesSampler::schema().bind(
                      {{"batch_size", std::int64_t(8)}, {"cluster_size", std::int64_t(16)}})),
                  contra::ConfigError);
  CHECK_THROWS_WITH(NeighborBatchesSampler(NeighborBatchesSampler::schema().bind(
                        {{"batch_size", std::int64_t(8)}, {"cluster_size", std::int64_t(16)}})),
                    "neighbor_batches.cluster_size = 16 exceeds neighbor_batches.batch_size = 8; a group must fit "
                    "in a batch");
  NeighborBatchesSampler s(NeighborBatchesSampler::schema().bind({}));
  std::vector<std::int64_t> batch;
  CHECK_THROWS_WITH(s.plan(0, 0, batch), "neighbor_batches: plan() called before configure()");
  CHECK_THROWS_WITH(s.batches_per_epoch(), "neighbor_batches: batches_per_epoch() called before configure()");
  CHECK_THROWS_WITH(s.configure(SamplerContext{100, nullptr, 0}),
                    "neighbor_batches: the data set has 100 samples, fewer than one batch of 256 (lower batch_size)");
  CHECK_THROWS_WITH(s.configure(SamplerContext{0, nullptr, 0}),
                    "neighbor_batches: the data set is empty; there is nothing to sample");
  Clusters c(2, 8, 0.1);
  auto t = make({4, 2, 2, 1}, c.n);
  CHECK_THROWS_WITH(t->plan(0, 4, batch), "neighbor_batches: plan(0, 4) outside epochs >= 0 and batches [0, 4)");
  Feedback f(c, {1, 2, 3});
  f.ids[2] = f.ids[5] = 17;
  CHECK_THROWS_WITH(t->observe(0, f.emb), "neighbor_batches: sample id 17 of row 2 is outside the data set [0, 16)");
  Feedback g(c, {1, 2});
  g.emb.ids = nullptr;
  CHECK_THROWS_WITH(t->observe(0, g.emb),
                    "neighbor_batches: observe() needs Embeddings::ids, the sample id of each of the 4 rows");
  Feedback h(c, {1, 2});
  t->observe(0, h.emb);
  Embeddings narrow = h.emb;
  Tensor z8 = Tensor::zeros({4, 8}, DType::f32);
  narrow.z = z8;
  CHECK_THROWS_WITH(t->observe(1, narrow), "neighbor_batches: embeddings of width 8 after width 16");
}
