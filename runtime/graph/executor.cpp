#include "executor.hpp"

#include "train/json_io.hpp"

#include <contra/errors.hpp>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

namespace contra::runtime {
namespace flow = tbb::flow;

const StageStats& ExecutorReport::stage(const std::string& name) const {
  for (const auto& s : stages)
    if (s.name == name) return s;
  throw UsageError("no stage named '" + name + "'");
}

int max_batches_alive(int prefetch) { return prefetch + 1; }

namespace {

using Clock = std::chrono::steady_clock;
// Indices into report_.stages; to_device comes last so that CPU reports keep
// their five stages in their order.
constexpr const char* stage_names[] = {"plan", "load", "augment", "train", "sink", "to_device"};
constexpr int to_device_index = 5;

class Run {
 public:
  Run(const ExecutorStages& stages, const ExecutorOptions& options)
      : stages_(stages), options_(options), start_(Clock::now()) {
    for (int i = 0; i < max_batches_alive(options.prefetch) + 1; ++i) {
      pool_.push_back(std::make_unique<BatchWork>());
      free_.push_back(pool_.back().get());
    }
    for (int i = 0; i < 5; ++i) report_.stages.push_back({stage_names[i]});
    if (stages.to_device) report_.stages.push_back({stage_names[to_device_index]});
  }

  double now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  BatchWork* take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) throw UsageError("executor: batch pool exhausted (limiter not respected)");
    BatchWork* w = free_.back();
    free_.pop_back();
    return w;
  }
  void give_back(BatchWork* w) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(w);
  }

  // Runs one stage on one batch: timing, events, and failure capture.
  void stage(int index, BatchWork& w, const std::function<void(BatchWork&)>& fn) {
    // After a failure no new work starts; batches in flight drain. A batch
    // that already trained still reaches the sink, so its step is recorded.
    if (w.failed || (stop_ && index != 4)) {
      w.failed = true;
      return;
    }
    double t0 = now();
    try {
      fn(w);
    } catch (...) {
      fail(std::current_exception());
      w.failed = true;
    }
    double t1 = now();
    std::lock_guard<std::mutex> lock(mutex_);
    auto& s = report_.stages[index];
    s.calls++;
    s.busy_s += t1 - t0;
    if (index == 3) {
      if (last_train_end_ >= 0) s.wait_s += t0 - last_train_end_;
      last_train_end_ = t1;
    }
    if (options_.record_events)
      report_.events.push_back({stage_names[index], w.sequence, t0, t1, tbb::this_task_arena::current_thread_index()});
  }

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = e;
    stop_ = true;
  }

  ExecutorReport go() {
    int threads = options_.data_threads > 0 ? options_.data_threads
                                            : static_cast<int>(std::thread::hardware_concurrency());
    if (threads < 1) threads = 1;
    // One more slot for the serial train stage, so that data threads keep
    // working while it runs. TBB caps workers at cores - 1 unless told.
    tbb::global_control allow(tbb::global_control::max_allowed_parallelism,
                              static_cast<std::size_t>(threads + 1));
    tbb::task_arena arena(threads + 1);
    arena.execute([&] { build_and_wait(); });
    report_.wall_s = now();
    if (error_) std::rethrow_exception(error_);
    return std::move(report_);
  }

 private:
  void build_and_wait() {
    flow::graph g;
    std::int64_t next_sequence = 0;
    flow::input_node<BatchWork*> source(g, [&](tbb::flow_control& fc) -> BatchWork* {
      if (stop_) {
        fc.stop();
        return nullptr;
      }
      BatchWork* w = take();
      w->sequence = next_sequence;
      w->failed = false;
      bool more = false;
      double t0 = now();
      try {
        more = stages_.plan(*w);
      } catch (...) {
        fail(std::current_exception());
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        report_.stages[0].calls++;
        report_.stages[0].busy_s += now() - t0;
      }
      if (!more || stop_) {
        give_back(w);
        fc.stop();
        return nullptr;
      }
      ++next_sequence;
      // This body runs on one thread at a time; only the sink decrements.
      int alive = ++in_flight_;
      if (alive > report_.max_in_flight) report_.max_in_flight = alive;
      return w;
    });
    flow::limiter_node<BatchWork*> limiter(g, static_cast<std::size_t>(options_.prefetch));
    flow::function_node<BatchWork*, BatchWork*> load(g, flow::unlimited, [&](BatchWork* w) {
      stage(1, *w, stages_.load);
      return w;
    });
    flow::function_node<BatchWork*, BatchWork*> augment(g, flow::unlimited, [&](BatchWork* w) {
      stage(2, *w, stages_.augment);
      return w;
    });
    flow::sequencer_node<BatchWork*> order(g, [](BatchWork* const& w) -> std::size_t {
      return static_cast<std::size_t>(w->sequence);
    });
    flow::function_node<BatchWork*, BatchWork*> train(g, flow::serial, [&](BatchWork* w) {
      stage(3, *w, stages_.train);
      return w;
    });
    // Serial, fed in step order by `order`: copies are issued in step order.
    flow::function_node<BatchWork*, BatchWork*> to_device(g, flow::serial, [&](BatchWork* w) {
      stage(to_device_index, *w, stages_.to_device);
      return w;
    });
    // The copy node's outputs may reach train out of order (as train's reach
    // the sink, below): train gets them through a sequencer of its own.
    flow::sequencer_node<BatchWork*> copied(g, [](BatchWork* const& w) -> std::size_t {
      return static_cast<std::size_t>(w->sequence);
    });
    // oneTBB may hand a serial node's outputs to the next serial node out of
    // order (the successor task of one step can be spawned while the next
    // step's is bypassed), so the sink has its own sequencer.
    flow::sequencer_node<BatchWork*> reorder(g, [](BatchWork* const& w) -> std::size_t {
      return static_cast<std::size_t>(w->sequence);
    });
    flow::function_node<BatchWork*, flow::continue_msg> sink(g, flow::serial, [&](BatchWork* w) {
      stage(4, *w, stages_.sink);
      if (!w->failed) {
        std::lock_guard<std::mutex> lock(mutex_);
        report_.batches++;
      }
      --in_flight_;
      give_back(w);
      return flow::continue_msg();
    });
    flow::make_edge(source, limiter);
    flow::make_edge(limiter, load);
    flow::make_edge(load, augment);
    flow::make_edge(augment, order);
    if (stages_.to_device) {
      flow::make_edge(order, to_device);
      flow::make_edge(to_device, copied);
      flow::make_edge(copied, train);
    } else {
      flow::make_edge(order, train);
    }
    flow::make_edge(train, reorder);
    flow::make_edge(reorder, sink);
    flow::make_edge(sink, limiter.decrementer());
    source.activate();
    g.wait_for_all();
  }

  const ExecutorStages& stages_;
  ExecutorOptions options_;
  Clock::time_point start_;
  std::vector<std::unique_ptr<BatchWork>> pool_;
  std::vector<BatchWork*> free_;
  std::mutex mutex_, error_mutex_;
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
  std::atomic<int> in_flight_{0};
  double last_train_end_ = -1;
  ExecutorReport report_;
};

}  // namespace

ExecutorReport run_graph(const ExecutorStages& stages, const ExecutorOptions& options) {
  if (options.prefetch < 1) throw UsageError("executor: prefetch must be at least 1");
  Run run(stages, options);
  return run.go();
}

void write_chrome_trace(const ExecutorReport& report, const std::string& path) {
  json::Json events = json::Json::array();
  for (const auto& e : report.events)
    events.push_back({{"name", std::string(e.stage) + " #" + std::to_string(e.sequence)},
                      {"cat", e.stage},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", e.thread + 1},
                      {"ts", static_cast<long long>(e.start_s * 1e6)},
                      {"dur", static_cast<long long>((e.end_s - e.start_s) * 1e6)}});
  std::ofstream f(path);
  if (!f) throw Error("cannot write the trace file " + path);
  f << json::document({{"traceEvents", std::move(events)}}, {"traceEvents"});
  if (!f) throw Error("cannot write the trace file " + path);
}

}  // namespace contra::runtime
