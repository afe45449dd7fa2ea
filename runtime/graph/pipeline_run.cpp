#include "pipeline_run.hpp"

#include "assembly/make_plugin.hpp"
#include "graph/augment_stage.hpp"
#include "graph/device_copy.hpp"
#include "assembly/pipeline_device.hpp"
#include "device/cuda_streams.hpp"
#include "device/device_ops.hpp"
#include "graph/run_record.hpp"
#include "train/checkpoint.hpp"
#include "graph/evaluation.hpp"
#include "graph/source_view.hpp"
#include "train/lr_schedule.hpp"
#include "train/trainer.hpp"

#include <contra/plugin.hpp>
#include <contra/roles/memory.hpp>

#include <oneapi/tbb/parallel_for.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

namespace contra::runtime {

std::int64_t planned_steps(std::int64_t batches_per_epoch, std::int64_t epochs, std::int64_t max_steps) {
  std::int64_t total = batches_per_epoch * epochs;
  return max_steps > 0 ? std::min(total, max_steps) : total;
}

namespace {

int cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

// Runs a per-item loop on TBB workers, or on this thread when a plugin says
// it is serial.
template <class F> void for_each_item(std::int64_t n, bool parallel, F&& f) {
  if (parallel)
    tbb::parallel_for(std::int64_t(0), n, [&](std::int64_t i) { f(i); });
  else
    for (std::int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace

RunSummary run_pipeline(const PipelineSpec& spec, const PluginRegistry& reg, const RunOptions& options) {
  require_device(spec);  // before any data is touched
  // [train] device = "cuda": the train step's own stream, current on this
  // thread while the trainer is built, restored, checkpointed and evaluated
  // here, and on the train stage's thread during each step; a copy stage
  // between the sequencer and train (device_copy.hpp).
  const Device device = pipeline_device(spec);
  const bool cuda = device == Device::cuda;
  std::unique_ptr<DeviceStream> train_stream;
  if (cuda) train_stream = std::make_unique<DeviceStream>();
  // Declared after train_stream, so this thread's stream is put back before
  // the train stream goes (and after the plugins, which free device memory
  // on it).
  const CurrentStream current_stream(train_stream.get());
  const auto seed = static_cast<std::uint64_t>(spec.pipeline.get<std::int64_t>("seed"));
  const SourceView data(make_plugin<Source>(reg, spec.source), spec.data, spec.source.label(), seed);
  const SourceInfo& info = data.info();
  auto sampler = make_plugin<Sampler>(reg, spec.sampler);
  const AugmentStage augment(spec, reg, info.shape, seed);

  TrainerParts parts;
  parts.encoder = make_plugin<Encoder>(reg, spec.encoder);
  parts.miner = make_plugin<Miner>(reg, spec.miner);
  parts.loss = make_plugin<Loss>(reg, spec.loss);
  parts.optimizer = make_plugin<Optimizer>(reg, spec.optimizer);
  parts.encoder_label = spec.encoder.label();
  parts.miner_label = spec.miner.label();
  parts.loss_label = spec.loss.label();
  parts.optimizer_label = spec.optimizer.label();
  parts.device = device;
  parts.miner_device = spec.miner.device;
  parts.memory_device = spec.memory.name.empty() ? Device::cpu : spec.memory.device;
  if (!spec.head.name.empty()) {
    parts.head = make_plugin<Encoder>(reg, spec.head);
    parts.head_label = spec.head.label();
  }
  if (!spec.memory.name.empty()) {
    parts.memory = make_plugin<Memory>(reg, spec.memory);
    parts.memory_label = spec.memory.label();
    if (parts.memory->encoder_momentum() > 0) {
      parts.momentum_encoder = make_plugin<Encoder>(reg, spec.encoder);
      if (parts.head) parts.momentum_head = make_plugin<Encoder>(reg, spec.head);
    }
  }

  const std::vector<std::int64_t>& labels = data.labels();
  try {
    sampler->configure(SamplerContext{data.size(), labels.empty() ? nullptr : &labels, seed,
                                      spec.runtime.get<std::int64_t>("prefetch") + 1});
  } catch (const std::exception& e) {
    throw ConfigError(spec.sampler.label() + ": " + e.what());
  }

  const int compute_threads = spec.runtime.get<int>("compute_threads") > 0 ? spec.runtime.get<int>("compute_threads")
                                                                           : cores();
  const int data_threads = spec.runtime.get<int>("data_threads") > 0 ? spec.runtime.get<int>("data_threads") : cores();
  omp_set_num_threads(compute_threads);
  const Precision precision = train_precision(spec);
  const std::vector<std::int64_t>& source_labels = data.source_labels();
  Trainer trainer(parts, EncoderContext{augment.encoder_input(), seed, precision},
                  MemoryContext{0, info.size, source_labels.empty() ? nullptr : &source_labels, seed});

  const std::int64_t bpe = sampler->batches_per_epoch();
  const std::int64_t total = planned_steps(bpe, spec.train.get<std::int64_t>("epochs"),
                                           spec.train.get<std::int64_t>("max_steps"));
  const LrSchedule schedule = LrSchedule::from(spec.schedule, bpe, total);
  const Shape image_shape{info.shape.height, info.shape.width, info.shape.channels};

  RunSummary summary;
  summary.data_threads = data_threads;
  summary.compute_threads = compute_threads;
  std::int64_t planned = 0;
  if (!options.resume_from.empty()) {
    planned = load_checkpoint(options.resume_from, parts) + 1;
    summary.first_step = planned;
    if (planned >= total) {
      // A finished run: nothing to train, and its summary and metrics stay.
      summary.already_finished = true;
      summary.checkpoint = options.resume_from;
      return summary;
    }
  }
  // Plugins' build() may have used the default stream (cudaMemset and
  // kernels there do not order with the non-blocking train stream).
  device_ops::synchronize_device(device);
  // Evaluation is checked before anything is recorded: a pipeline that
  // cannot evaluate leaves no run folder behind.
  std::unique_ptr<Evaluation> evaluation;
  if (spec.has_eval) {
    evaluation = std::make_unique<Evaluation>(spec, reg);
    evaluation->check();
  }
  std::unique_ptr<RunRecord> record;
  if (!options.run_dir.empty())
    record = std::make_unique<RunRecord>(options.run_dir, spec, options.overrides, !options.resume_from.empty());
  const std::int64_t eval_every = spec.eval.get<std::int64_t>("every_epochs");
  const bool eval_at_end = spec.eval.get<bool>("at_end");
  const std::int64_t checkpoint_every = spec.record.get<std::int64_t>("checkpoint_every");
  const std::int64_t keep = spec.record.get<std::int64_t>("keep");
  std::int64_t last_checkpoint_step = -1;
  auto write_checkpoint = [&](std::int64_t step) {
    if (!record || step == last_checkpoint_step) return;
    const std::string path = record->checkpoint_path(step);
    save_checkpoint(path, parts, step,
                    {{"pipeline", spec.pipeline.get<std::string>("name")},
                     {"epoch", std::to_string(step / bpe)}});
    record->checkpoint_written(path, keep);
    last_checkpoint_step = step;
    summary.checkpoint = path;
  };

  ExecutorStages stages;
  stages.plan = [&](BatchWork& w) {
    if (planned >= total || (options.stop && options.stop->load())) return false;
    const std::int64_t epoch = planned / bpe, b = planned % bpe;
    w.batch_in_epoch = b;
    w.batch.epoch = epoch;
    w.batch.step = planned;
    try {
      sampler->plan(epoch, b, w.indices);
    } catch (const std::exception& e) {
      throw PluginError("plan stage: " + spec.sampler.label() + " failed at epoch " + std::to_string(epoch) +
                        ", batch " + std::to_string(b) + ": " + e.what());
    } catch (...) {
      throw PluginError("plan stage: " + spec.sampler.label() + " failed at epoch " + std::to_string(epoch) +
                        ", batch " + std::to_string(b) + ": it threw something that is not a std::exception");
    }
    if (w.indices.empty())
      throw PluginError("plan stage: " + spec.sampler.label() + " planned an empty batch at epoch " +
                        std::to_string(epoch) + ", batch " + std::to_string(b));
    for (auto& i : w.indices) {
      if (i < 0 || i >= data.size())
        throw PluginError("plan stage: " + spec.sampler.label() + " planned sample " + std::to_string(i) +
                          ", outside the " + std::to_string(data.size()) + " samples in use");
      i = data.id(i);  // positions in the [data] view -> sample ids
    }
    ++planned;
    return true;
  };

  stages.load = [&](BatchWork& w) {
    const auto n = static_cast<std::int64_t>(w.indices.size());
    if (w.raw.size() < static_cast<std::size_t>(n)) w.raw.resize(static_cast<std::size_t>(n));
    w.batch.labels.assign(labels.empty() ? 0 : static_cast<std::size_t>(n), -1);
    std::vector<char> failed(static_cast<std::size_t>(n), 0);
    for_each_item(n, data.parallel(), [&](std::int64_t i) {
      std::int64_t label;
      try {
        label = data.load(w.indices[i], w.raw[i]);
      } catch (const DataError& e) {
        if (!data.skips_errors())
          throw DataError("load stage: " + spec.source.label() + " failed on sample " + std::to_string(w.indices[i]) +
                          " (step " + std::to_string(w.batch.step) + "): " + e.what());
        failed[i] = 1;
        data.count_skip();
        return;
      } catch (const std::exception& e) {
        throw PluginError("load stage: " + spec.source.label() + " failed on sample " +
                          std::to_string(w.indices[i]) + " (step " + std::to_string(w.batch.step) + "): " + e.what());
      } catch (...) {
        throw PluginError("load stage: " + spec.source.label() + " failed on sample " +
                          std::to_string(w.indices[i]) + " (step " + std::to_string(w.batch.step) +
                          "): it threw something that is not a std::exception");
      }
      if (w.raw[i].dtype() != DType::u8 || w.raw[i].shape() != image_shape)
        throw PluginError("load stage: " + spec.source.label() + " returned a " + dtype_name(w.raw[i].dtype()) +
                          " image of shape " + w.raw[i].shape().str() + " for sample " +
                          std::to_string(w.indices[i]) + ", expected u8 " + image_shape.str());
      if (!labels.empty()) w.batch.labels[i] = label;
    });
    // on_error = "skip": drop the samples that failed; the batch shrinks.
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (failed[i]) continue;
      if (kept != i) {
        std::swap(w.raw[kept], w.raw[i]);
        w.indices[kept] = w.indices[i];
        if (!labels.empty()) w.batch.labels[kept] = w.batch.labels[i];
      }
      ++kept;
    }
    if (kept == 0)
      throw DataError("load stage: every sample of step " + std::to_string(w.batch.step) + " failed to load from " +
                      spec.source.label());
    w.indices.resize(static_cast<std::size_t>(kept));
    if (!labels.empty()) w.batch.labels.resize(static_cast<std::size_t>(kept));
    w.batch.ids = w.indices;
  };

  stages.augment = [&](BatchWork& w) { augment.run(w); };

  std::unique_ptr<DeviceCopyStage> to_device;
  if (cuda) {
    to_device = std::make_unique<DeviceCopyStage>();
    stages.to_device = [&](BatchWork& w) { (*to_device)(w); };
  }
  // time_device_steps: a pair of timed events per step, read once the run
  // is over (reading them earlier would wait for the GPU).
  std::vector<std::pair<std::unique_ptr<DeviceEvent>, std::unique_ptr<DeviceEvent>>> step_events;
  const bool time_steps = cuda && options.time_device_steps;

  stages.train = [&](BatchWork& w) {
    // OpenMP's thread count is per calling thread; the train stage may run on
    // any TBB worker, so set it each time.
    omp_set_num_threads(compute_threads);
    // Likewise the current stream, put back when the stage ends (this TBB
    // worker may run other work later); the step's work waits for its copy.
    const CurrentStream current(train_stream.get());
    if (cuda) to_device->wait(w, train_stream->handle());
    try {
      const Batch& batch = cuda ? w.device_batch : w.batch;
      if (time_steps) {
        step_events.emplace_back(std::make_unique<DeviceEvent>(true), std::make_unique<DeviceEvent>(true));
        step_events.back().first->record(train_stream->handle());
      }
      StepOutcome o = trainer.step(batch, w.batch.step, schedule.scale(w.batch.step));
      if (time_steps) step_events.back().second->record(train_stream->handle());
      if (cuda) {
        // The slot's next copy waits for this step on the GPU; its pinned
        // images may be refilled once the host has seen this copy finish.
        to_device->consumed(w, train_stream->handle());
        to_device->release(w);
      }
      try {
        sampler->observe(w.batch.step, trainer.last_embeddings());
      } catch (const std::exception& e) {
        throw PluginError(spec.sampler.label() + ": observe() failed: " + e.what());
      } catch (...) {
        throw PluginError(spec.sampler.label() + ": observe() failed: it threw something that is not a std::exception");
      }
      w.loss = o.loss;
      w.lr = o.lr;
      w.metrics = std::move(o.metrics);
      // Between steps, on this serial stage: evaluation reads the encoder and
      // a checkpoint copies the state while nothing else changes them.
      const std::int64_t step = w.batch.step;
      const bool epoch_end = (step + 1) % bpe == 0;
      w.eval_figures.clear();
      w.eval_error.clear();
      w.eval_s = 0;
      if (evaluation && ((step + 1 == total && eval_at_end) ||
                         (eval_every > 0 && epoch_end && ((step + 1) / bpe) % eval_every == 0))) {
        // The state evaluated is checkpointed first: a failing evaluation
        // costs no training. Later evaluations would fail alike: none run.
        write_checkpoint(step);
        const bool save = record && spec.eval.get<bool>("save_embeddings");
        if (options.on_eval_start) options.on_eval_start(step);
        const auto eval_t0 = std::chrono::steady_clock::now();
        try {
          w.eval_figures = evaluation->run(*parts.encoder, seed, save ? record->embeddings_path(step) : "");
        } catch (const std::exception& e) {
          w.eval_error = e.what();
          evaluation.reset();
        }
        w.eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_t0).count();
      }
      if (checkpoint_every > 0 && (step + 1) % checkpoint_every == 0) write_checkpoint(step);
    } catch (const Error& e) {
      throw PluginError("train stage (step " + std::to_string(w.batch.step) + "): " + e.what());
    }
  };

  double start_s = -1;
  auto t0 = std::chrono::steady_clock::now();
  stages.sink = [&](BatchWork& w) {
    summary.losses.push_back(w.loss);
    summary.steps++;
    std::int64_t images = w.batch.images.dim(0);
    for (const Tensor& t : w.batch.more_images) images += t.dim(0);
    summary.images += images;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (start_s < 0) start_s = elapsed;
    summary.eval_s += w.eval_s;
    StepReport r;
    r.epoch = w.batch.epoch;
    r.step = w.batch.step;
    r.first_step = summary.first_step;
    r.total_steps = total;
    r.loss = w.loss;
    r.lr = w.lr;
    r.elapsed_s = elapsed;
    r.eval_s = summary.eval_s;
    // Training throughput: the time spent evaluating is not training's.
    r.images_per_s = elapsed - summary.eval_s > 0 ? summary.images / (elapsed - summary.eval_s) : 0.0;
    r.metrics = &w.metrics;
    if (options.on_step) options.on_step(r);
    if (record) record->step(r);
    if (!w.eval_error.empty()) {
      summary.eval_error = w.eval_error;
      if (record) record->eval_error(w.batch.step, w.batch.epoch, w.eval_error);
      if (options.on_eval_error) options.on_eval_error(w.batch.step, w.eval_error);
    }
    if (!w.eval_figures.empty()) {
      summary.eval = w.eval_figures;
      if (record) record->eval(w.batch.step, w.batch.epoch, w.eval_figures);
      if (options.on_eval) options.on_eval(w.batch.step, w.eval_figures);
    }
  };

  ExecutorOptions eo;
  eo.prefetch = spec.runtime.get<int>("prefetch");
  eo.data_threads = data_threads;
  eo.record_events = true;
  try {
    summary.telemetry = run_graph(stages, eo);
  } catch (const std::exception& e) {
    // The run folder says how the run ended; the checkpoints written so far stay.
    if (record) record->summary(summary, e.what());
    throw;
  }
  if (time_steps) {
    train_stream->synchronize();
    for (auto& [a, b] : step_events) summary.device_step_s.push_back(1e-3 * DeviceEvent::elapsed_ms(*a, *b));
    summary.device_done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // Evaluation ran inside the train stage: its time is neither the train
  // stage's work nor training throughput.
  for (auto& st : summary.telemetry.stages)
    if (st.name == "train") st.busy_s = std::max(0.0, st.busy_s - summary.eval_s);
  const double train_wall = summary.telemetry.wall_s - summary.eval_s;
  summary.images_per_s = train_wall > 0 ? summary.images / train_wall : 0.0;
  summary.skipped_samples = data.skipped();
  // The final checkpoint: after the last step trained (also when stopped early).
  if (summary.steps > 0) write_checkpoint(summary.first_step + summary.steps - 1);
  if (record) record->summary(summary);
  std::string trace = spec.runtime.get<std::string>("trace");
  if (!trace.empty()) write_chrome_trace(summary.telemetry, spec.runtime.path("trace"));
  return summary;
}

CheckpointEncoder load_checkpoint_encoder(const PipelineSpec& spec, const PluginRegistry& reg,
                                          const std::string& checkpoint) {
  // A cuda pipeline runs the encoder's cuda build, on this thread's current
  // stream.
  require_device(spec);
  const auto seed = static_cast<std::uint64_t>(spec.pipeline.get<std::int64_t>("seed"));
  auto source = make_plugin<Source>(reg, spec.source);
  const AugmentStage augment(spec, reg, source->info().shape, seed);
  CheckpointEncoder out;
  out.encoder = make_plugin<Encoder>(reg, spec.encoder);
  try {
    out.encoder->build(EncoderContext{augment.encoder_input(), seed, train_precision(spec)});
  } catch (const std::exception& e) {
    throw PluginError(spec.encoder.label() + ": build() failed: " + e.what());
  }
  out.step = load_encoder(checkpoint, *out.encoder);
  omp_set_num_threads(spec.runtime.get<int>("compute_threads") > 0 ? spec.runtime.get<int>("compute_threads") : cores());
  return out;
}

CheckpointEvaluation evaluate_checkpoint(const PipelineSpec& spec, const PluginRegistry& reg,
                                         const std::string& checkpoint, const std::string& embeddings_path) {
  Evaluation evaluation(spec, reg);
  evaluation.check();
  CheckpointEncoder loaded = load_checkpoint_encoder(spec, reg, checkpoint);
  CheckpointEvaluation out;
  out.step = loaded.step;
  out.figures = evaluation.run(*loaded.encoder, static_cast<std::uint64_t>(spec.pipeline.get<std::int64_t>("seed")),
                               embeddings_path);
  return out;
}

std::string format_stage_table(const RunSummary& s) {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%-8s %8s %10s %12s %10s\n", "stage", "calls", "busy (s)", "per call (ms)",
                "idle (s)");
  out += line;
  for (const auto& st : s.telemetry.stages) {
    double per = st.calls ? 1e3 * st.busy_s / st.calls : 0.0;
    if (st.name == "train")
      std::snprintf(line, sizeof line, "%-8s %8lld %10.3f %12.2f %10.3f\n", st.name.c_str(),
                    static_cast<long long>(st.calls), st.busy_s, per, st.wait_s);
    else
      std::snprintf(line, sizeof line, "%-8s %8lld %10.3f %12.2f %10s\n", st.name.c_str(),
                    static_cast<long long>(st.calls), st.busy_s, per, "");
    out += line;
  }
  std::snprintf(line, sizeof line,
                "wall %.3f s, %lld steps, %.0f images/s, at most %d batches in flight "
                "(%d data threads, %d compute threads)\n",
                s.telemetry.wall_s, static_cast<long long>(s.steps), s.images_per_s, s.telemetry.max_in_flight,
                s.data_threads, s.compute_threads);
  out += line;
  if (s.eval_s > 0) {
    std::snprintf(line, sizeof line, "evaluation %.3f s (in the wall time; not in the train stage's busy time or images/s)\n",
                  s.eval_s);
    out += line;
  }
  if (s.skipped_samples > 0) {
    std::snprintf(line, sizeof line, "%lld samples failed to load and were skipped ([data] on_error = \"skip\")\n",
                  static_cast<long long>(s.skipped_samples));
    out += line;
  }
  return out;
}

}  // namespace contra::runtime
