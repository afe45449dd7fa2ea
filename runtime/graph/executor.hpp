#pragma once
// The flow graph of one run (DESIGN.md §3):
//
//   input_node (plan) -> limiter_node (prefetch) -> load -> augment
//     -> sequencer_node (step order) [-> to_device (serial)] -> train (serial) -> sink (serial)
//                                                                                   |
//                                                     limiter.decrementer() <-------+
//
// to_device exists only when the run layer gives one ([train] device =
// "cuda"): it starts the host-to-device copy of batch k+1 on its own stream
// while the train stage runs step k. Its buffers live in the BatchWork
// slots, so the prefetch bound counts device buffers too.
// Stages see BatchWork slots from a fixed pool, so nothing is allocated per
// batch once the pool is warm. The executor knows nothing of plugins: the
// run layer gives it one function per stage.

#include <contra/batch.hpp>
#include <contra/tensor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

/// Everything one batch carries through the graph.
struct BatchWork {
  std::int64_t sequence = 0;        ///< 0-based position in this run (sequencer key)
  std::int64_t batch_in_epoch = 0;
  std::vector<std::int64_t> indices;  ///< sample ids from the sampler
  std::vector<Tensor> raw;          ///< decoded u8 HWC images, one per sample (pooled)
  /// Pipelines with text towers: each sample's text fields (Record::texts).
  std::vector<std::vector<std::string>> texts;
  std::vector<Tensor> scratch;      ///< augmentation ping-pong buffers, two per (sample, view)
  Batch batch;                      ///< what the train step consumes
  double loss = 0.0;
  double lr = 0.0;
  std::vector<std::pair<std::string, double>> metrics;
  std::vector<std::pair<std::string, double>> eval_figures;  ///< set when an evaluation ran after this step
  std::string eval_error;           ///< set when the evaluation after this step failed
  double eval_s = 0.0;              ///< seconds the evaluation after this step took
  std::string checkpoint;           ///< written after this step; `latest` once the step is recorded
  bool failed = false;              ///< an earlier stage threw; later stages pass it on
  /// Data-parallel ranks: planned before the ranks agreed to stop; not
  /// trained, not reported.
  bool skipped = false;
  std::int64_t images = 0;          ///< encoder inputs of the step, over every rank
  /// Device runs: the batch with its images on the device (ids, labels and
  /// counts copied), filled by the to_device stage.
  Batch device_batch;
  /// Device runs: state the to_device stage keeps per slot (pinned staging,
  /// the copy's event); opaque here.
  std::shared_ptr<void> device_state;
};

/// Stage functions; all but `plan` may run while other batches are in other
/// stages. `load` and `augment` may run for several batches at once.
struct ExecutorStages {
  std::function<bool(BatchWork&)> plan;  ///< fill the next batch's plan; false when done
  std::function<void(BatchWork&)> load;
  std::function<void(BatchWork&)> augment;
  /// Optional: between the sequencer and train, serial, in step order. Empty
  /// = the CPU graph, unchanged.
  std::function<void(BatchWork&)> to_device;
  std::function<void(BatchWork&)> train;
  std::function<void(BatchWork&)> sink;
};

struct ExecutorOptions {
  int prefetch = 4;      ///< batches admitted past the limiter at once
  int data_threads = 0;  ///< TBB threads for load/augment; 0 = one per core
  bool record_events = true;
};

struct StageStats {
  std::string name;
  std::int64_t calls = 0;
  double busy_s = 0.0;  ///< total time inside the stage function
  double wait_s = 0.0;  ///< train only: time the train stage sat idle between steps
};

struct TraceEvent {
  const char* stage;
  std::int64_t sequence;
  double start_s, end_s;  ///< since the start of the run
  int thread;             ///< TBB arena slot
};

struct ExecutorReport {
  std::vector<StageStats> stages;  ///< plan, load, augment, train, sink (, to_device)
  std::vector<TraceEvent> events;
  int max_in_flight = 0;           ///< most batches alive between plan and sink at once
  double wall_s = 0.0;
  std::int64_t batches = 0;        ///< batches that reached the sink
  const StageStats& stage(const std::string& name) const;
};

/// At most prefetch + 1 batches are alive at once: oneTBB's input_node reads
/// one item ahead of the limiter. The pool holds prefetch + 2 slots.
int max_batches_alive(int prefetch);

/// Run the graph to the end. The first exception any stage throws stops the
/// run: no new batch is planned, batches in flight drain without work, and
/// the exception is rethrown here.
ExecutorReport run_graph(const ExecutorStages& stages, const ExecutorOptions& options);

/// Write `report.events` as a Chrome trace (chrome://tracing, Perfetto).
void write_chrome_trace(const ExecutorReport& report, const std::string& path);

}  // namespace contra::runtime
