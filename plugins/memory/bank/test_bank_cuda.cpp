// bank's cuda build against its CPU build (the oracle): the same batches
// applied to both over several updates (all slots and a negatives subset, a
// sample repeated in a batch, one and two views, with and without momentum
// keys); the slots within 1e-6 absolute (unit rows computed in double, the
// norms summed in another order), the subset's ids and labels equal, and the
// state restored in place or moved between the builds.
#include "bank.hpp"
#include "bank_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

using contra::plugins::MemoryBank;
using contra::plugins::MemoryBankCuda;
using namespace cuda_twin;

namespace {

contra::Params params(double momentum, std::int64_t negatives) {
  return MemoryBank::schema().bind({{"momentum", momentum}, {"negatives", negatives}});
}

std::vector<std::pair<std::string, contra::Tensor*>> state_of(contra::Memory& m) {
  std::vector<std::pair<std::string, contra::Tensor*>> st;
  m.state(st);
  return st;
}

std::vector<std::string> state_names(contra::Memory& m) {
  std::vector<std::string> names;
  for (const auto& [name, t] : state_of(m)) names.push_back(name);
  return names;
}

double max_abs_difference(const contra::Tensor& a, const contra::Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  double d = 0.0;
  for (std::int64_t k = 0; k < a.numel(); ++k)
    d = std::max(d, std::fabs(static_cast<double>(a.data<float>()[k]) - b.data<float>()[k]));
  return d;
}

// V views of the samples `sample_ids` (row v * N + i has id sample_ids[i]),
// rows random; with momentum keys, a second random matrix in Embeddings::keys.
struct Batch {
  contra::Tensor z, keys;
  std::vector<std::int64_t> sample, ids;
  Batch(std::int64_t V, std::int64_t D, const std::vector<std::int64_t>& sample_ids, bool momentum_keys,
        std::uint64_t seed) {
    const auto N = static_cast<std::int64_t>(sample_ids.size());
    z = random_matrix(V * N, D, seed);
    if (momentum_keys) keys = random_matrix(V * N, D, seed + 1000, 3.0);
    for (std::int64_t v = 0; v < V; ++v)
      for (std::int64_t i = 0; i < N; ++i) {
        sample.push_back(i);
        ids.push_back(sample_ids[static_cast<std::size_t>(i)]);
      }
  }
};

contra::Embeddings embeddings(const Batch& b, std::int64_t V, bool on_device) {
  contra::Embeddings e;
  e.z = on_device ? to_device(b.z) : b.z;
  if (b.keys.defined()) e.keys = on_device ? to_device(b.keys) : b.keys;
  e.sample = &b.sample;
  e.views = V;
  e.ids = &b.ids;
  return e;
}

// The views of both builds agree: keys within 1e-6, ids and labels equal.
void check_views(const MemoryBank& cpu, const MemoryBank& gpu) {
  const contra::MemoryView& want = cpu.view();
  const contra::MemoryView& got = gpu.view();
  REQUIRE(got.keys.device() == contra::Device::cuda);
  const double d = max_abs_difference(want.keys, to_host(got.keys));
  INFO("view keys: largest difference " << d);
  CHECK(d <= 1e-6);
  REQUIRE(got.ids);
  CHECK(*got.ids == *want.ids);
  REQUIRE(static_cast<bool>(got.labels) == static_cast<bool>(want.labels));
  if (want.labels) CHECK(*got.labels == *want.labels);
}

void check_slots(MemoryBank& cpu, MemoryBank& gpu) {
  const contra::Tensor& want = *state_of(cpu)[0].second;
  const contra::Tensor& got = *state_of(gpu)[0].second;
  REQUIRE(got.device() == contra::Device::cuda);
  const double d = max_abs_difference(want, to_host(got));
  INFO("bank.keys: largest difference " << d);
  CHECK(d <= 1e-6);
  CHECK(state_of(gpu)[1].second->data<std::int64_t>()[0] == state_of(cpu)[1].second->data<std::int64_t>()[0]);
}

}  // namespace

TEST_CASE("bank cuda: schema is the CPU build's, checks before any GPU work give the CPU build's messages",
          "[plugins][bank][cuda]") {
  CHECK(MemoryBankCuda::schema().describe() == MemoryBank::schema().describe());
  CHECK_THROWS_WITH(MemoryBankCuda(params(1.0, 0)), "bank.momentum: expected a value in [0, 1), found 1");
  MemoryBankCuda b(params(0.5, 20));
  CHECK(b.encoder_momentum() == 0.0);
  CHECK_THROWS_WITH(b.view(), "bank: view() called before configure()");
  contra::Embeddings none;
  CHECK_THROWS_WITH(b.update(none), "bank: update() called before configure()");
  CHECK_THROWS_WITH(b.configure(contra::MemoryContext{4, 10, nullptr, 0}),
                    "bank: negatives = 20 but the data set has only 10 samples, one slot each (lower negatives, "
                    "or set 0 for all slots)");
  CHECK_THROWS_WITH(b.configure(contra::MemoryContext{4, 0, nullptr, 0}),
                    "bank: the data set is empty; there is nothing to remember");
  CHECK_THROWS_WITH(b.configure(contra::MemoryContext{0, 100, nullptr, 0}),
                    "bank: the embedding width must be at least 1, got 0");
  std::vector<std::int64_t> labels(3, 0);
  CHECK_THROWS_WITH(b.configure(contra::MemoryContext{4, 100, &labels, 0}),
                    "bank: the source has 100 samples but 3 labels");
}

TEST_CASE("bank cuda: the same updates give the CPU build's slots, subsets, ids and labels",
          "[plugins][bank][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 40, D = 37;
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % 6;
  struct Case {
    std::int64_t negatives, views;
    bool momentum_keys;
    double momentum;
  };
  for (const Case& c : {Case{0, 1, false, 0.5}, Case{0, 2, false, 0.5}, Case{0, 2, true, 0.9},
                        Case{12, 2, false, 0.5}, Case{12, 1, true, 0.0}, Case{40, 2, true, 0.3}}) {
    INFO("negatives " << c.negatives << ", " << c.views << " views, "
                      << (c.momentum_keys ? "momentum keys" : "no momentum keys") << ", momentum " << c.momentum);
    MemoryBank cpu(params(c.momentum, c.negatives));
    MemoryBankCuda gpu(params(c.momentum, c.negatives));
    cpu.configure(contra::MemoryContext{D, n, &labels, 5});
    gpu.configure(contra::MemoryContext{D, n, &labels, 5});
    CHECK(state_names(gpu) == state_names(cpu));
    check_slots(cpu, gpu);  // the same initial slots
    check_views(cpu, gpu);
    // Distinct samples; one repeated twice and one three times (three rounds);
    // more samples than fit in one block of warps; a single sample.
    std::vector<std::vector<std::int64_t>> batches = {{3, 17, 25, 8, 39, 0}, {5, 9, 5, 21, 9, 5, 30}, {}, {33}};
    for (std::int64_t i = 0; i < 20; ++i) batches[2].push_back((7 * i + 1) % n);
    std::uint64_t seed = 1;
    for (const auto& ids : batches) {
      INFO("batch of " << ids.size() << " samples, first id " << ids[0]);
      const Batch b(c.views, D, ids, c.momentum_keys, seed++);
      cpu.update(embeddings(b, c.views, false));
      gpu.update(embeddings(b, c.views, true));
      check_slots(cpu, gpu);
      check_views(cpu, gpu);
    }
  }
}

TEST_CASE("bank cuda: state restored in place or moved between the builds gives the same views",
          "[plugins][bank][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t n = 30, D = 8, V = 2;
  auto updated = [&](MemoryBank& bank, bool on_device) {
    bank.configure(contra::MemoryContext{D, n, nullptr, 9});
    for (std::uint64_t step = 0; step < 3; ++step) {
      const Batch b(V, D, {static_cast<std::int64_t>(step), 11, 29 - static_cast<std::int64_t>(step), 11}, false,
                    40 + step);
      bank.update(embeddings(b, V, on_device));
    }
  };
  MemoryBankCuda a(params(0.5, 6));
  updated(a, true);
  const auto sa = state_of(a);

  // In place, into a fresh bank's storage, as the runtime's checkpoint code does.
  MemoryBankCuda r(params(0.5, 6));
  r.configure(contra::MemoryContext{D, n, nullptr, 9});
  const auto sr = state_of(r);
  REQUIRE(state_names(r) == state_names(a));
  const void* storage = sr[0].second->raw();
  contra::cuda::copy_on_device(*sr[0].second, *sa[0].second, contra::cuda::current_stream());
  std::memcpy(sr[1].second->raw(), sa[1].second->raw(), sizeof(std::int64_t));
  CHECK(sr[0].second->raw() == storage);
  CHECK(*r.view().ids == *a.view().ids);
  CHECK(max_abs_difference(to_host(a.view().keys), to_host(r.view().keys)) == 0.0);

  // Moved to the CPU build and back: the same slots and subset.
  MemoryBank cpu(params(0.5, 6));
  cpu.configure(contra::MemoryContext{D, n, nullptr, 9});
  const auto sc = state_of(cpu);
  *sc[0].second = to_host(*sa[0].second);
  std::memcpy(sc[1].second->raw(), sa[1].second->raw(), sizeof(std::int64_t));
  check_views(cpu, a);
  const Batch next(V, D, {4, 4, 17}, true, 77);
  cpu.update(embeddings(next, V, false));
  a.update(embeddings(next, V, true));
  r.update(embeddings(next, V, true));
  check_slots(cpu, a);
  check_views(cpu, a);
  check_views(cpu, r);

  // Host keys assigned to the cuda build, and host rows, are refused.
  MemoryBankCuda h(params(0.5, 0));
  h.configure(contra::MemoryContext{D, n, nullptr, 9});
  const Batch rows(V, D, {1, 2}, false, 3);
  CHECK_THROWS_WITH(h.update(embeddings(rows, V, false)),
                    "bank: expected Embeddings::z as an f32 [rows, 8] cuda tensor, got f32 [4, 8] on cpu");
  *state_of(h)[0].second = to_host(*state_of(h)[0].second);
  CHECK_THROWS_WITH(h.view(), "bank: state tensor bank.keys: expected it on cuda, got it on cpu");
  CHECK_THROWS_WITH(h.update(embeddings(rows, V, true)),
                    "bank: state tensor bank.keys: expected it on cuda, got it on cpu");
}
