// queue's cuda build against its CPU build (the oracle): the same batches
// enqueued in both, wrap-around and a batch larger than the queue included;
// the keys within 1e-6 (the norms are summed in another order), ids, labels,
// pointer and state names equal.
#include "queue.hpp"
#include "queue_cuda.hpp"

#include "cuda_twin.hpp"
#include "gpu_test.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using contra::plugins::QueueMemory;
using contra::plugins::QueueMemoryCuda;
using namespace cuda_twin;

namespace {

contra::Params params(std::int64_t size) { return QueueMemory::schema().bind({{"size", size}}); }

std::vector<std::string> state_names(contra::Memory& m) {
  std::vector<std::pair<std::string, contra::Tensor*>> st;
  m.state(st);
  std::vector<std::string> names;
  for (const auto& [name, t] : st) names.push_back(name);
  return names;
}

}  // namespace

TEST_CASE("queue cuda: schema is the CPU build's, use before configure() is refused", "[plugins][queue][cuda]") {
  CHECK(QueueMemoryCuda::schema().describe() == QueueMemory::schema().describe());
  QueueMemoryCuda q(params(8));
  CHECK_THROWS_WITH(q.view(), "queue: view() called before configure()");
}

TEST_CASE("queue cuda: the same batches give the CPU build's keys, ids, labels and pointer",
          "[plugins][queue][gpu]") {
  CONTRA_REQUIRE_GPU();
  const std::int64_t K = 7, D = 5;
  const std::vector<std::int64_t> dataset_labels(100, 0);
  QueueMemory cpu(params(K));
  QueueMemoryCuda gpu(params(K));
  cpu.configure(contra::MemoryContext{D, 100, &dataset_labels, 0});
  gpu.configure(contra::MemoryContext{D, 100, &dataset_labels, 0});
  CHECK(state_names(gpu) == state_names(cpu));
  REQUIRE(gpu.view().keys.device() == contra::Device::cuda);

  // Batches of 2 views of N samples: 3, 3 (wraps), 9 (more than K: its last 7).
  std::int64_t next_id = 0;
  for (std::int64_t n : {3, 3, 9}) {
    INFO("batch of " << n << " samples");
    contra::Tensor z = random_matrix(2 * n, D, 100 + static_cast<std::uint64_t>(n + next_id));
    z.data<float>()[(2 * n - 1) * D] = 0.0f;  // not a zero row, but a row with a zero entry
    std::vector<std::int64_t> sample, ids, labels;
    for (std::int64_t v = 0; v < 2; ++v)
      for (std::int64_t i = 0; i < n; ++i) {
        sample.push_back(i);
        ids.push_back(next_id + i);
        labels.push_back((next_id + i) % 4);
      }
    next_id += n;
    contra::Embeddings host{z, &sample, &labels, 2, &ids};
    contra::Embeddings dev = host;
    dev.z = to_device(z);
    cpu.update(host);
    gpu.update(dev);
    const contra::MemoryView& want = cpu.view();
    const contra::MemoryView& got = gpu.view();
    CHECK(relative_difference(want.keys, to_host(got.keys)) < 1e-6);
    CHECK(*got.ids == *want.ids);
    REQUIRE(got.labels);
    CHECK(*got.labels == *want.labels);
  }
  std::vector<std::pair<std::string, contra::Tensor*>> cs, gs;
  cpu.state(cs);
  gpu.state(gs);
  CHECK(gs[3].second->data<std::int64_t>()[0] == cs[3].second->data<std::int64_t>()[0]);  // queue.pointer

  // Host rows are refused, naming the device the keys live on.
  contra::Tensor z = random_matrix(4, D, 1);
  std::vector<std::int64_t> sample = {0, 1, 0, 1}, ids = {0, 1, 0, 1};
  contra::Embeddings host{z, &sample, nullptr, 2, &ids};
  CHECK_THROWS_WITH(gpu.update(host),
                    "queue: expected Embeddings::z as an f32 [rows, 5] cuda tensor, got f32 [4, 5] on cpu");
}
