#include "pipeline_run.hpp"

#include "assembly/pipeline.hpp"
#include "assembly/pipeline_device.hpp"
#include "device/cuda_streams.hpp"
#include "device/device_ops.hpp"
#include "graph/augment_stage.hpp"
#include "graph/device_copy.hpp"
#include "graph/evaluation.hpp"
#include "graph/memory_estimate.hpp"
#include "graph/run_record.hpp"
#include "graph/run_stages.hpp"
#include "graph/source_view.hpp"
#include "graph/watchdog.hpp"
#include "distributed/rank_collectives.hpp"
#include "train/checkpoint.hpp"
#include "train/lr_schedule.hpp"
#include "train/trainer.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

namespace contra::runtime {

std::int64_t planned_steps(std::int64_t batches_per_epoch, std::int64_t epochs, std::int64_t max_steps) {
  std::int64_t total = batches_per_epoch * epochs;
  return max_steps > 0 ? std::min(total, max_steps) : total;
}

namespace {

// The sampler, told the [data] view's size and labels.
void configure_sampler(const Pipeline& p, const SourceView& data) {
  const std::vector<std::int64_t>& labels = data.labels();
  try {
    p.sampler->configure(SamplerContext{data.size(), labels.empty() ? nullptr : &labels, p.settings.seed,
                                        p.settings.runtime.prefetch + 1});
  } catch (const std::exception& e) {
    throw ConfigError(p.spec->sampler.label() + ": " + e.what());
  }
}

// The samples of the sampler's first batch (sampling is a pure function of
// the epoch and the batch): what the checks before training go by.
std::int64_t first_batch_samples(const Pipeline& p) {
  std::vector<std::int64_t> first;
  guarded(p.spec->sampler.label() + ": plan() failed", [&] { p.sampler->plan(0, 0, first); });
  return static_cast<std::int64_t>(first.size());
}

// A batch of one sample gives its views no negatives (without a memory to
// supply them): every loss would be 0 at every step. Said before training.
void require_negatives(const Pipeline& p, std::int64_t first_batch) {
  if (p.parts.memory) return;
  if (first_batch == 1)
    throw ConfigError(p.spec->sampler.label() + ": plans batches of 1 sample, whose views have no negatives to "
                      "contrast with (the loss would be 0 at every step); plan at least 2 samples a batch, or add "
                      "a [memory]");
}

// The trainer: encoder and head built for the views' images, the memory
// configured for the source, the optimizer given every parameter.
std::unique_ptr<Trainer> make_trainer(const Pipeline& p, const SourceView& data) {
  const std::vector<std::int64_t>& labels = data.source_labels();
  return std::make_unique<Trainer>(
      p.parts, EncoderContext{p.encoder_input(), p.settings.seed, p.settings.train.precision},
      MemoryContext{0, data.info().size, labels.empty() ? nullptr : &labels, p.settings.seed});
}

LrSchedule make_schedule(const ScheduleSettings& s, std::int64_t batches_per_epoch, std::int64_t total) {
  return LrSchedule::over_epochs(s.cosine ? LrSchedule::Kind::cosine : LrSchedule::Kind::constant, s.warmup_epochs,
                                 s.final_scale, batches_per_epoch, total);
}

// Evaluation ran inside the train stage: its time is neither the train
// stage's work nor training throughput.
void leave_out_evaluation(RunSummary& summary) {
  for (auto& st : summary.telemetry.stages)
    if (st.name == "train") st.busy_s = std::max(0.0, st.busy_s - summary.eval_s);
  const double train_wall = summary.telemetry.wall_s - summary.eval_s;
  summary.images_per_s = train_wall > 0 ? summary.images / train_wall : 0.0;
}

}  // namespace

MemoryEstimate check_pipeline(const PipelineSpec& spec, const PluginRegistry& reg) {
  check_distributed(spec);
  const Pipeline p = assemble(spec, reg);
  const SourceView data(p.source, p.settings.data, spec.source.label(), p.settings.seed);
  configure_sampler(p, data);
  const std::int64_t batch = first_batch_samples(p);
  require_negatives(p, batch);
  // The batches in flight, said before the trainer allocates anything; then
  // everything, with what the trainer holds counted from its tensors.
  MemoryEstimate memory = estimate_batches(p, batch);
  require_pipeline_memory(memory, spec);
  // A cuda pipeline's plugins build on the GPU: checked when it runs.
  if (p.settings.train.device == Device::cpu) {
    const std::unique_ptr<Trainer> trainer = make_trainer(p, data);
    add_trainer_memory(memory, p, reg, batch);
    require_pipeline_memory(memory, spec);
  } else {
    memory.left_out = "the GPU's memory is not estimated (a cuda pipeline's encoder is built when it runs)";
  }
  if (spec.has_eval) Evaluation(spec, reg).check();
  return memory;
}

namespace {
// Rank 0's string on every rank.
std::string broadcast_string(Communicator& comm, std::string text) {
  std::int64_t size = static_cast<std::int64_t>(text.size());
  comm.broadcast(&size, sizeof size, 0);
  text.resize(static_cast<std::size_t>(size));
  comm.broadcast(text.data(), text.size(), 0);
  return text;
}

// The buffers of every encoder and head a step runs (batch-norm running
// statistics), which data-parallel ranks keep equal to rank 0's.
std::vector<Tensor*> step_buffers(const TrainerParts& parts) {
  std::vector<Tensor*> out;
  for (const auto& [prefix, e] : named_encoders(parts))
    for (auto& [name, t] : e->buffers()) out.push_back(t);
  return out;
}
}  // namespace

RunSummary run_pipeline(const PipelineSpec& spec, const PluginRegistry& reg, const RunOptions& options) {
  require_device(spec);  // before any data is touched
  Communicator* const comm = options.communicator;
  const bool leader = !comm || comm->rank() == 0;  // records, evaluates, checkpoints
  // [train] device = "cuda": the train step's own stream, current on this
  // thread while the trainer is built, restored, checkpointed and evaluated
  // here, and on the train stage's thread during each step; a copy stage
  // between the sequencer and train (device_copy.hpp). Declared before the
  // plugins, which free device memory on it as they go.
  std::unique_ptr<DeviceStream> train_stream;
  if (pipeline_device(spec) == Device::cuda) train_stream = std::make_unique<DeviceStream>();
  const CurrentStream current_stream(train_stream.get());

  const Pipeline p = assemble(spec, reg);
  const PipelineSettings& settings = p.settings;
  const SourceView data(p.source, settings.data, spec.source.label(), settings.seed);
  configure_sampler(p, data);
  const std::int64_t first_batch = first_batch_samples(p);
  require_negatives(p, first_batch);
  MemoryEstimate memory = estimate_batches(p, first_batch);  // as check_pipeline()
  require_pipeline_memory(memory, spec);
  omp_set_num_threads(settings.runtime.compute_threads);
  std::unique_ptr<Trainer> trainer = make_trainer(p, data);
  add_trainer_memory(memory, p, reg, first_batch);
  require_pipeline_memory(memory, spec);
  const std::int64_t bpe = p.sampler->batches_per_epoch();
  const std::int64_t total = planned_steps(bpe, settings.train.epochs, settings.train.max_steps);
  const LrSchedule schedule = make_schedule(settings.schedule, bpe, total);

  RunSummary summary;
  summary.data_threads = settings.runtime.data_threads;
  summary.compute_threads = settings.runtime.compute_threads;
  summary.ranks = comm ? comm->size() : 1;
  summary.backend = comm ? comm->backend() : "none";
  const bool resuming = options.resume_latest || !options.resume_from.empty();
  std::unique_ptr<RunRecord> record;
  // A resume locks its folder before it reads a checkpoint there: a run
  // holding the folder may be replacing them.
  if (leader && resuming && !options.run_dir.empty())
    record = std::make_unique<RunRecord>(options.run_dir, spec, options.overrides, true, summary.backend,
                                         summary.ranks);
  if (resuming) {
    std::string from;
    if (leader) from = options.resume_latest ? RunRecord::latest_checkpoint(options.run_dir) : options.resume_from;
    // Every rank continues from the checkpoint rank 0 found (the run folder
    // is on a file system they share).
    if (comm) from = broadcast_string(*comm, from);
    // A changed pipeline is a new run, not this one continued.
    summary.first_step = load_checkpoint(from, p.parts, [&](const std::map<std::string, std::string>& metadata) {
      const auto ranks = metadata.find(checkpoint_ranks_key);
      const std::string was = ranks == metadata.end() ? "1" : ranks->second;
      if (was != std::to_string(summary.ranks))
        throw ConfigError(from + " was written by a run of " + was + " data-parallel rank(s); this one has " +
                          std::to_string(summary.ranks) + ": resume with the same number of ranks");
      const auto recorded = metadata.find(checkpoint_pipeline_key);
      if (recorded == metadata.end()) return;
      const std::vector<std::string> changed = changed_settings(recorded->second, spec.resolved_toml);
      if (changed.empty()) return;
      std::string list;
      for (std::size_t i = 0; i < changed.size() && i < 5; ++i) list += "\n  " + changed[i];
      if (changed.size() > 5) list += "\n  (and " + std::to_string(changed.size() - 5) + " more)";
      throw ConfigError(spec.file + " does not match the run that wrote " + from + ":" + list +
                        "\na changed pipeline is a new run: start it with `contra run FILE`");
    }) + 1;
    if (summary.first_step >= total) {
      // A finished run: nothing to train, and its summary and metrics stay.
      summary.already_finished = true;
      summary.checkpoint = from;
      return summary;
    }
  }
  // Plugins' build() may have used the default stream (cudaMemset and
  // kernels there do not order with the non-blocking train stream).
  device_ops::synchronize_device(settings.train.device);
  // Evaluation is checked before anything is recorded: a pipeline that
  // cannot evaluate leaves no run folder behind.
  std::unique_ptr<Evaluation> evaluation;
  if (spec.has_eval && leader) {
    evaluation = std::make_unique<Evaluation>(spec, reg);
    evaluation->check();
    if (!p.text_towers.empty()) {
      const TowerParts& text = p.parts.towers.front();
      evaluation->set_towers({p.parts.encoder.get(), p.parts.head.get(), &p.text_towers.front(), text.encoder.get(),
                              text.head.get()});
    }
  }
  if (leader && !options.run_dir.empty() && !record)
    record = std::make_unique<RunRecord>(options.run_dir, spec, options.overrides, false, summary.backend,
                                         summary.ranks);
  if (record && resuming) record->keep_steps_through(summary.first_step);
  CheckpointWriter checkpoints(record.get(), p.parts, settings.name, spec.resolved_toml, bpe, settings.record.keep,
                               {settings.record.max_abs_weight, "[record] max_abs_weight"}, summary.ranks);

  // Data-parallel ranks: the step's collectives, synchronised batch norm,
  // and the stop they agree on.
  std::unique_ptr<RankCollectives> collectives;
  std::unique_ptr<CommBatchStatsReducer> batch_stats;
  std::atomic<bool> ranks_stopped{false};
  const double collective_s_before = comm ? comm->collective_seconds() : 0.0;
  if (comm) {
    collectives = std::make_unique<RankCollectives>(
        *comm,
        DataParallelOptions{settings.distributed.gather, settings.distributed.bucket_bytes, settings.distributed.overlap},
        step_buffers(p.parts));
    trainer->set_collectives(collectives.get());
    if (settings.distributed.sync_batch_norm) batch_stats = std::make_unique<CommBatchStatsReducer>(*comm);
  }

  const AugmentStage augment(p.views, settings.seed, &p.text_towers);
  std::unique_ptr<DeviceCopyStage> to_device;
  if (train_stream) to_device = std::make_unique<DeviceCopyStage>();
  TrainStage train({.trainer = trainer.get(), .trainer_parts = &p.parts, .sampler = p.sampler.get(),
                    .sampler_label = spec.sampler.label(), .schedule = &schedule, .evaluation = evaluation.get(),
                    .checkpoints = &checkpoints, .record = record.get(), .stream = train_stream.get(),
                    .to_device = to_device.get(), .time_device_steps = train_stream && options.time_device_steps,
                    .on_eval_start = options.on_eval_start, .comm = comm, .collectives = collectives.get(),
                    .batch_stats = batch_stats.get(), .stop = options.stop, .stopped = &ranks_stopped},
                   settings, bpe, total);
  PlanStage plan(*p.sampler, spec.sampler.label(), data, bpe, summary.first_step, total,
                 comm ? &ranks_stopped : options.stop, RankSlice{comm ? comm->rank() : 0, summary.ranks});
  const LoadStage load(data, spec.source.label(), !p.text_towers.empty());
  ReportSink sink(summary, record.get(), checkpoints, options, total);

  ExecutorStages stages;
  stages.plan = [&](BatchWork& w) { return plan(w); };
  // A stage that never returns cannot be stopped: the watchdog records why
  // and ends the process; the checkpoints written so far stay.
  StageWatchdog watchdog(settings.runtime.stage_timeout_s, "[runtime] stage_timeout_s", [&](const std::string& m) {
    if (record) record->stopped(m);
    std::fprintf(stderr, "%s\n", m.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  });
  stages.load = [&](BatchWork& w) {
    const StageWatchdog::Watch watch(&watchdog, "load", spec.source.label(), w.batch.step);
    load(w);
  };
  stages.augment = [&](BatchWork& w) {
    const StageWatchdog::Watch watch(&watchdog, "augment", "the augmentation chain", w.batch.step);
    augment.run(w);
  };
  if (to_device) stages.to_device = [&](BatchWork& w) { (*to_device)(w); };
  stages.train = [&](BatchWork& w) {
    const StageWatchdog::Watch watch(&watchdog, "train", "", w.batch.step);
    train(w);
  };
  stages.sink = [&](BatchWork& w) { sink(w); };
  try {
    summary.telemetry = run_graph(stages, ExecutorOptions{settings.runtime.prefetch, settings.runtime.data_threads, true});
  } catch (const std::exception& e) {
    // The run folder says how the run ended; the checkpoints written so far stay.
    summary.skipped_samples = data.skipped();
    summary.skipped_distinct = data.skipped_distinct();
    if (record) record->summary(summary, e.what());
    throw;
  }
  if (options.time_device_steps && train_stream) {
    summary.device_step_s = train.device_step_seconds();
    summary.device_done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - sink.start()).count();
  }
  leave_out_evaluation(summary);
  summary.skipped_samples = data.skipped();
  summary.skipped_distinct = data.skipped_distinct();
  if (comm) {
    RankFigures mine;
    mine.rank = comm->rank();
    mine.steps = summary.steps;
    mine.wall_s = summary.telemetry.wall_s;
    for (const auto& st : summary.telemetry.stages) {
      if (st.name == "train") mine.train_busy_s = st.busy_s, mine.train_idle_s = st.wait_s;
      if (st.name == "load") mine.load_busy_s = st.busy_s;
      if (st.name == "augment") mine.augment_busy_s = st.busy_s;
    }
    mine.collective_s = comm->collective_seconds() - collective_s_before;
    mine.state_digest = state_digest(p.parts);
    mine.buckets = collectives->buckets_reduced();
    mine.buckets_overlapped = collectives->buckets_overlapped();
    summary.rank_figures = gather_rank_figures(*comm, mine);
    for (const RankFigures& f : summary.rank_figures)
      if (f.state_digest != summary.rank_figures[0].state_digest) summary.ranks_agree = false;
  }
  // The final checkpoint: after the last step trained (also when stopped early).
  if (summary.steps > 0) {
    try {
      checkpoints.write(summary.first_step + summary.steps - 1);
      checkpoints.promote(checkpoints.last());
    } catch (const std::exception& e) {
      if (record) record->summary(summary, e.what());
      throw;
    }
  }
  summary.checkpoint = checkpoints.last();
  if (record) record->summary(summary);
  if (!settings.runtime.trace.empty()) write_chrome_trace(summary.telemetry, settings.runtime.trace.string());
  return summary;
}

CheckpointEncoder load_checkpoint_encoder(const PipelineSpec& spec, const PluginRegistry& reg,
                                          const std::string& checkpoint) {
  // A cuda pipeline runs the encoder's cuda build, on this thread's current
  // stream.
  require_device(spec);
  const Pipeline p = assemble(spec, reg);
  CheckpointEncoder out;
  out.encoder = p.parts.encoder;
  try {
    out.encoder->build(EncoderContext{p.encoder_input(), p.settings.seed, p.settings.train.precision});
  } catch (const std::exception& e) {
    throw PluginError(spec.encoder.label() + ": build() failed: " + e.what());
  }
  out.step = load_encoder(checkpoint, *out.encoder);
  out.input = p.encoder_input();
  omp_set_num_threads(p.settings.runtime.compute_threads);
  return out;
}

CheckpointEvaluation evaluate_checkpoint(const PipelineSpec& spec, const PluginRegistry& reg,
                                         const std::string& checkpoint, const std::string& embeddings_path) {
  Evaluation evaluation(spec, reg);
  evaluation.check();
  if (evaluation.has_cross_modal()) {
    // Every tower is built as a run builds it (the trainer's contexts and
    // seeds), then takes the checkpoint's weights.
    require_device(spec);
    const Pipeline p = assemble(spec, reg);
    const SourceView data(p.source, p.settings.data, spec.source.label(), p.settings.seed);
    const std::unique_ptr<Trainer> trainer = make_trainer(p, data);
    CheckpointEvaluation out;
    out.step = load_model(checkpoint, p.parts);
    omp_set_num_threads(p.settings.runtime.compute_threads);
    const TowerParts& text = p.parts.towers.front();
    evaluation.set_towers(
        {p.parts.encoder.get(), p.parts.head.get(), &p.text_towers.front(), text.encoder.get(), text.head.get()});
    out.figures = evaluation.run(*p.parts.encoder, p.settings.seed, embeddings_path);
    return out;
  }
  CheckpointEncoder loaded = load_checkpoint_encoder(spec, reg, checkpoint);
  CheckpointEvaluation out;
  out.step = loaded.step;
  out.figures = evaluation.run(*loaded.encoder, decode_settings(spec).seed, embeddings_path);
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
  if (s.ranks > 1 && !s.rank_figures.empty()) {
    // The slowest rank sets the pace; the others wait for it in collectives.
    const RankFigures* slowest = &s.rank_figures[0];
    for (const RankFigures& f : s.rank_figures)
      if (f.train_busy_s - f.collective_s > slowest->train_busy_s - slowest->collective_s) slowest = &f;
    const double steps = static_cast<double>(std::max<std::int64_t>(1, s.steps));
    std::snprintf(line, sizeof line, "%d ranks (%s), images/s over all of them; per rank, ms per step:\n", s.ranks,
                  s.backend.c_str());
    out += line;
    std::snprintf(line, sizeof line, "  %-6s %10s %14s %10s %10s\n", "rank", "train", "in collectives", "load",
                  "augment");
    out += line;
    for (const RankFigures& f : s.rank_figures) {
      std::snprintf(line, sizeof line, "  %-6lld %10.2f %14.2f %10.2f %10.2f%s\n", static_cast<long long>(f.rank),
                    1e3 * f.train_busy_s / steps, 1e3 * f.collective_s / steps, 1e3 * f.load_busy_s / steps,
                    1e3 * f.augment_busy_s / steps, &f == slowest ? "  (slowest: the others wait for it)" : "");
      out += line;
    }
  }
  if (s.eval_s > 0) {
    std::snprintf(line, sizeof line, "evaluation %.3f s (in the wall time; not in the train stage's busy time or images/s)\n",
                  s.eval_s);
    out += line;
  }
  if (s.skipped_samples > 0) {
    std::snprintf(line, sizeof line,
                  "%lld samples failed to load and were skipped (%lld distinct; [data] on_error = \"skip\")\n",
                  static_cast<long long>(s.skipped_samples), static_cast<long long>(s.skipped_distinct));
    out += line;
  }
  return out;
}

}  // namespace contra::runtime
