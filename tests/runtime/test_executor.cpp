#include "graph/executor.hpp"

#include <contra/errors.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

using namespace contra;
using namespace contra::runtime;

namespace {
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

ExecutorStages counting_stages(int batches, int* planned) {
  ExecutorStages s;
  s.plan = [=](BatchWork&) { return (*planned)++ < batches; };
  s.load = [](BatchWork&) {};
  s.augment = [](BatchWork&) {};
  s.train = [](BatchWork&) {};
  s.sink = [](BatchWork&) {};
  return s;
}

const TraceEvent* event(const ExecutorReport& r, const std::string& stage, std::int64_t seq) {
  for (const auto& e : r.events)
    if (stage == e.stage && e.sequence == seq) return &e;
  return nullptr;
}
}  // namespace

TEST_CASE("executor: augmenting batch k+1 overlaps training step k", "[runtime][executor]") {
  int planned = 0;
  const int batches = 6;
  ExecutorStages s = counting_stages(batches, &planned);
  s.augment = [](BatchWork&) { sleep_ms(60); };
  s.train = [](BatchWork&) { sleep_ms(100); };
  ExecutorReport r = run_graph(s, ExecutorOptions{2, 2, true});
  REQUIRE(r.batches == batches);
  for (int k = 1; k + 1 < batches; ++k) {
    const TraceEvent* train = event(r, "train", k);
    const TraceEvent* aug = event(r, "augment", k + 1);
    REQUIRE(train);
    REQUIRE(aug);
    INFO("step " << k << ": train [" << train->start_s << ", " << train->end_s << "], augment of the next ["
                 << aug->start_s << ", " << aug->end_s << "]");
    CHECK(aug->start_s < train->end_s);
    CHECK(aug->end_s > train->start_s);
  }
  // The data stages hide behind training: the train stage hardly waits.
  CHECK(r.stage("train").wait_s < 0.5 * (batches - 1) * 0.060);
  // Steps ran in order.
  for (int k = 1; k < batches; ++k) CHECK(event(r, "train", k)->start_s >= event(r, "train", k - 1)->end_s);
}

TEST_CASE("executor: never more than prefetch + 1 batches are alive", "[runtime][executor]") {
  for (int prefetch : {1, 3}) {
    int planned = 0;
    std::atomic<int> alive{0}, most{0};
    ExecutorStages s = counting_stages(30, &planned);
    s.plan = [&](BatchWork&) {
      if (planned++ >= 30) return false;
      int a = ++alive;
      int m = most.load();
      while (a > m && !most.compare_exchange_weak(m, a)) {
      }
      return true;
    };
    s.load = [](BatchWork&) { sleep_ms(1); };
    s.train = [](BatchWork&) { sleep_ms(5); };
    s.sink = [&](BatchWork&) { --alive; };
    ExecutorReport r = run_graph(s, ExecutorOptions{prefetch, 2, true});
    INFO("prefetch " << prefetch);
    CHECK(r.batches == 30);
    CHECK(most.load() <= max_batches_alive(prefetch));
    CHECK(r.max_in_flight <= max_batches_alive(prefetch));
    CHECK(r.max_in_flight >= prefetch);  // and the pipeline does fill up
  }
}

TEST_CASE("executor: an exception in augmentation stops the graph and is rethrown", "[runtime][executor]") {
  int planned = 0;
  std::atomic<int> trained{0}, sunk{0};
  ExecutorStages s = counting_stages(1000, &planned);
  s.augment = [](BatchWork& w) {
    if (w.sequence == 3) throw DataError("augment failed on batch 3");
  };
  s.train = [&](BatchWork& w) {
    sleep_ms(5);
    ++trained;
  };
  s.sink = [&](BatchWork&) { ++sunk; };
  CHECK_THROWS_MATCHES(run_graph(s, ExecutorOptions{4, 2, true}), DataError,
                       Catch::Message("augment failed on batch 3"));
  CHECK(trained.load() <= 3);  // nothing after the failed batch trains
  CHECK(sunk.load() == trained.load());
  CHECK(planned < 20);         // planning stopped soon after
}

TEST_CASE("executor: an exception in the train step stops the graph", "[runtime][executor]") {
  int planned = 0;
  ExecutorStages s = counting_stages(100, &planned);
  s.train = [](BatchWork& w) {
    if (w.sequence == 2) throw PluginError("loss exploded");
  };
  CHECK_THROWS_MATCHES(run_graph(s, ExecutorOptions{2, 1, true}), PluginError, Catch::Message("loss exploded"));
  CHECK(planned < 10);
}

TEST_CASE("executor: train and sink see batches in plan order", "[runtime][executor]") {
  int planned = 0;
  std::vector<std::int64_t> trained, sunk;
  ExecutorStages s = counting_stages(300, &planned);
  s.load = [](BatchWork& w) {
    if (w.sequence % 7 == 0) sleep_ms(1);  // make batches overtake each other
  };
  s.train = [&](BatchWork& w) { trained.push_back(w.sequence); };
  s.sink = [&](BatchWork& w) { sunk.push_back(w.sequence); };
  ExecutorReport r = run_graph(s, ExecutorOptions{8, 2, false});
  REQUIRE(r.batches == 300);
  std::vector<std::int64_t> expected(300);
  for (int i = 0; i < 300; ++i) expected[i] = i;
  CHECK(trained == expected);
  CHECK(sunk == expected);
}
