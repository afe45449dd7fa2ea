#include "graph/run_stages.hpp"

#include "train/checkpoint.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>

#include <oneapi/tbb/parallel_for.h>
#include <omp.h>

#include <cstdio>

namespace contra::runtime {

namespace {
// 0.0312 for 1/32.
std::string fraction(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", f);
  return buf;
}

// Runs a per-item loop on TBB workers, or on this thread when a plugin says
// it is serial.
template <class F> void for_each_item(std::int64_t n, bool parallel, F&& f) {
  if (parallel)
    tbb::parallel_for(std::int64_t(0), n, [&](std::int64_t i) { f(i); });
  else
    for (std::int64_t i = 0; i < n; ++i) f(i);
}
}  // namespace

PlanStage::PlanStage(Sampler& sampler, std::string sampler_label, const SourceView& data,
                     std::int64_t batches_per_epoch, std::int64_t first, std::int64_t total,
                     const std::atomic<bool>* stop, RankSlice slice)
    : sampler_(sampler), label_(std::move(sampler_label)), data_(data), batches_per_epoch_(batches_per_epoch),
      next_(first), total_(total), stop_(stop), slice_(slice) {}

bool PlanStage::operator()(BatchWork& w) {
  if (next_ >= total_ || (stop_ && stop_->load())) return false;
  const std::int64_t epoch = next_ / batches_per_epoch_, b = next_ % batches_per_epoch_;
  w.batch_in_epoch = b;
  w.batch.epoch = epoch;
  w.batch.step = next_;
  const std::string where = " at epoch " + std::to_string(epoch) + ", batch " + std::to_string(b);
  guarded("plan stage: " + label_ + " failed" + where, [&] { sampler_.plan(epoch, b, w.indices); });
  if (w.indices.empty()) throw PluginError("plan stage: " + label_ + " planned an empty batch" + where);
  for (auto& i : w.indices) {
    if (i < 0 || i >= data_.size())
      throw PluginError("plan stage: " + label_ + " planned sample " + std::to_string(i) + ", outside the " +
                        std::to_string(data_.size()) + " samples in use");
    i = data_.id(i);  // positions in the [data] view -> sample ids
  }
  w.skipped = false;
  if (slice_.ranks > 1) {
    const auto n = static_cast<std::int64_t>(w.indices.size()), R = static_cast<std::int64_t>(slice_.ranks);
    if (n < R)
      throw PluginError("plan stage: " + label_ + " planned " + std::to_string(n) + " samples" + where +
                        ", fewer than the " + std::to_string(R) + " data-parallel ranks that share each batch");
    const std::int64_t begin = n * slice_.rank / R, end = n * (slice_.rank + 1) / R;
    w.indices.erase(w.indices.begin() + end, w.indices.end());
    w.indices.erase(w.indices.begin(), w.indices.begin() + begin);
  }
  ++next_;
  return true;
}

LoadStage::LoadStage(const SourceView& data, std::string source_label, bool texts)
    : data_(data), label_(std::move(source_label)), texts_(texts) {
  const ImageShape& s = data.info().shape;
  image_shape_ = Shape{s.height, s.width, s.channels};
}

void LoadStage::operator()(BatchWork& w) const {
  const auto n = static_cast<std::int64_t>(w.indices.size());
  const bool labelled = !data_.labels().empty();
  if (w.raw.size() < static_cast<std::size_t>(n)) w.raw.resize(static_cast<std::size_t>(n));
  if (texts_) w.texts.resize(static_cast<std::size_t>(n));
  w.batch.labels.assign(labelled ? static_cast<std::size_t>(n) : 0, -1);
  std::vector<char> failed(static_cast<std::size_t>(n), 0);
  for_each_item(n, data_.parallel(), [&](std::int64_t i) {
    const std::string sample = " failed on sample " + std::to_string(w.indices[i]) + " (step " +
                               std::to_string(w.batch.step) + "): ";
    std::int64_t label;
    try {
      label = texts_ ? data_.load_record(w.indices[i], w.raw[i], w.texts[i]) : data_.load(w.indices[i], w.raw[i]);
    } catch (const DataError& e) {
      if (!data_.skips_errors()) throw DataError("load stage: " + label_ + sample + e.what());
      failed[i] = 1;
      if (!data_.count_skip(w.indices[i])) {
        const std::int64_t bad = data_.skipped_distinct(), in_use = data_.size();
        throw DataError("load stage: " + label_ + ": " + std::to_string(bad) + " of the " + std::to_string(in_use) +
                        " samples in use failed to load (" +
                        fraction(static_cast<double>(bad) / static_cast<double>(in_use)) +
                        " of them), more than data.max_skip_fraction = " + fraction(data_.max_skip_fraction()) +
                        " allows (data.on_error = \"skip\"); the last: sample " + std::to_string(w.indices[i]) +
                        " (step " + std::to_string(w.batch.step) + "): " + e.what());
      }
      return;
    } catch (...) {
      throw PluginError("load stage: " + label_ + sample + current_exception_message());
    }
    if (w.raw[i].dtype() != DType::u8 || w.raw[i].shape() != image_shape_)
      throw PluginError("load stage: " + label_ + " returned a " + dtype_name(w.raw[i].dtype()) + " image of shape " +
                        w.raw[i].shape().str() + " for sample " + std::to_string(w.indices[i]) + ", expected u8 " +
                        image_shape_.str());
    if (labelled) w.batch.labels[i] = label;
  });
  // on_error = "skip": drop the samples that failed; the batch shrinks.
  std::int64_t kept = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (failed[i]) continue;
    if (kept != i) {
      std::swap(w.raw[kept], w.raw[i]);
      if (texts_) std::swap(w.texts[kept], w.texts[i]);
      w.indices[kept] = w.indices[i];
      if (labelled) w.batch.labels[kept] = w.batch.labels[i];
    }
    ++kept;
  }
  if (kept == 0)
    throw DataError("load stage: every sample of step " + std::to_string(w.batch.step) + " failed to load from " +
                    label_);
  w.indices.resize(static_cast<std::size_t>(kept));
  if (labelled) w.batch.labels.resize(static_cast<std::size_t>(kept));
  w.batch.ids = w.indices;
}

CheckpointWriter::CheckpointWriter(RunRecord* record, const TrainerParts& parts, std::string pipeline_name,
                                   std::string pipeline_toml, std::int64_t batches_per_epoch, std::int64_t keep,
                                   StateBounds bounds, int ranks)
    : record_(record), parts_(parts), name_(std::move(pipeline_name)), pipeline_toml_(std::move(pipeline_toml)),
      batches_per_epoch_(batches_per_epoch), keep_(keep), bounds_(std::move(bounds)), ranks_(ranks) {}

std::string CheckpointWriter::write(std::int64_t step) {
  if (!record_ || step == last_step_) return "";
  const std::string path = record_->checkpoint_path(step);
  try {
    save_checkpoint(path, parts_, step,
                    {{"pipeline", name_},
                     {"epoch", std::to_string(step / batches_per_epoch_)},
                     {checkpoint_pipeline_key, pipeline_toml_},
                     {checkpoint_ranks_key, std::to_string(ranks_)}},
                    bounds_);
  } catch (const DivergedState& e) {
    // What a resume would continue from, said where the run stops.
    std::string kept = "no earlier checkpoint was written";
    try {
      kept = "checkpoints/latest still names " + RunRecord::latest_checkpoint(record_->dir());
    } catch (const ConfigError&) {
    }
    throw DivergedState(std::string(e.what()) + "; " + kept);
  }
  last_step_ = step;
  last_path_ = path;
  return path;
}

void CheckpointWriter::promote(const std::string& path) {
  if (record_ && !path.empty()) record_->checkpoint_written(path, keep_);
}

TrainStage::TrainStage(Parts parts, const PipelineSettings& settings, std::int64_t batches_per_epoch,
                       std::int64_t total)
    : p_(std::move(parts)), settings_(settings), batches_per_epoch_(batches_per_epoch), total_(total) {}

void TrainStage::operator()(BatchWork& w) {
  if (p_.comm) {
    // Every rank trains the same steps: a stop asked of any rank (its own
    // Ctrl-C or SIGTERM) is agreed on before a step, and the rest drain.
    if (p_.stopped->load()) {
      w.skipped = true;
      return;
    }
    std::int64_t stop = p_.stop && p_.stop->load() ? 1 : 0;
    p_.comm->all_reduce(&stop, 1, CommType::i64, ReduceOp::max);
    if (stop) {
      p_.stopped->store(true);
      w.skipped = true;
      return;
    }
  }
  // OpenMP's thread count is per calling thread; the train stage may run on
  // any TBB worker, so set it each time.
  omp_set_num_threads(settings_.runtime.compute_threads);
  // Likewise the current stream, put back when the stage ends (this TBB
  // worker may run other work later); the step's work waits for its copy.
  const CurrentStream current(p_.stream);
  w.checkpoint.clear();  // this BatchWork may have carried an earlier step
  if (p_.to_device) p_.to_device->wait(w, p_.stream->handle());
  try {
    const Batch& batch = p_.to_device ? w.device_batch : w.batch;
    if (p_.time_device_steps) {
      step_events_.emplace_back(std::make_unique<DeviceEvent>(true), std::make_unique<DeviceEvent>(true));
      step_events_.back().first->record(p_.stream->handle());
    }
    StepOutcome o;
    {
      // Synchronised batch norm: its statistics summed over the ranks, on this thread, for this step.
      const ScopedBatchStatsReducer sync_bn(p_.batch_stats);
      o = p_.trainer->step(batch, w.batch.step, p_.schedule->scale(w.batch.step));
    }
    if (p_.collectives) o.loss = p_.collectives->step_loss(o.loss);
    w.images = p_.trainer->last_embeddings().rows();
    if (p_.time_device_steps) step_events_.back().second->record(p_.stream->handle());
    if (p_.to_device) {
      // The slot's next copy waits for this step on the GPU; its pinned
      // images may be refilled once the host has seen this copy finish.
      p_.to_device->consumed(w, p_.stream->handle());
      p_.to_device->release(w);
    }
    guarded(p_.sampler_label + ": observe() failed",
            [&] { p_.sampler->observe(w.batch.step, p_.trainer->last_embeddings()); });
    w.loss = o.loss;
    w.lr = o.lr;
    w.metrics = std::move(o.metrics);
    // Between steps, on this serial stage: evaluation reads the encoder and
    // a checkpoint copies the state while nothing else changes them.
    evaluate_if_due(w);
    const std::int64_t every = settings_.record.checkpoint_every;
    if (every > 0 && (w.batch.step + 1) % every == 0) {
      std::string path = p_.checkpoints->write(w.batch.step);
      if (!path.empty()) w.checkpoint = std::move(path);
    }
  } catch (const DivergedState&) {
    throw;  // about the run, not a plugin; it names its step
  } catch (const Error& e) {
    throw PluginError("train stage (step " + std::to_string(w.batch.step) + "): " + e.what());
  }
}

void TrainStage::evaluate_if_due(BatchWork& w) {
  const std::int64_t step = w.batch.step;
  const EvalSettings& ev = settings_.eval;
  w.eval_figures.clear();
  w.eval_error.clear();
  w.eval_s = 0;
  const bool epoch_end = (step + 1) % batches_per_epoch_ == 0;
  const bool due = (step + 1 == total_ && ev.at_end) ||
                   (ev.every_epochs > 0 && epoch_end && ((step + 1) / batches_per_epoch_) % ev.every_epochs == 0);
  if (p_.comm && ev.enabled && due && p_.comm->rank() != 0) {
    // Rank 0 evaluates alone: the others wait for it here, for as long as
    // it takes (their collectives' timeout is for stuck ranks, not for an
    // evaluation; a failure notice still ends the wait).
    p_.comm->set_timeout(0);
    p_.comm->barrier();
    p_.comm->set_timeout(settings_.distributed.timeout_s);
    return;
  }
  if (!p_.evaluation || !due) {
    if (p_.comm && ev.enabled && due) p_.comm->barrier();  // rank 0 after an evaluation that failed before
    return;
  }
  // The state evaluated is checkpointed first: a failing evaluation costs no
  // training. Later evaluations would fail alike: none run.
  w.checkpoint = p_.checkpoints->write(step);
  const bool save = p_.record && ev.save_embeddings;
  if (p_.on_eval_start) p_.on_eval_start(step);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    w.eval_figures = p_.evaluation->run(*p_.trainer_parts->encoder, settings_.seed,
                                        save ? p_.record->embeddings_path(step) : "");
  } catch (const std::exception& e) {
    w.eval_error = e.what();
    p_.evaluation = nullptr;
  }
  w.eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (p_.comm) p_.comm->barrier();  // the other ranks wait for the evaluation here
}

std::vector<double> TrainStage::device_step_seconds() const {
  std::vector<double> out;
  if (step_events_.empty()) return out;
  p_.stream->synchronize();
  for (const auto& [a, b] : step_events_) out.push_back(1e-3 * DeviceEvent::elapsed_ms(*a, *b));
  return out;
}

ReportSink::ReportSink(RunSummary& summary, RunRecord* record, CheckpointWriter& checkpoints,
                       const RunOptions& options, std::int64_t total)
    : summary_(summary), record_(record), checkpoints_(checkpoints), options_(options), total_(total) {}

void ReportSink::operator()(BatchWork& w) {
  if (w.skipped) return;
  RunSummary& s = summary_;
  s.losses.push_back(w.loss);
  s.steps++;
  s.images += w.images;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  s.eval_s += w.eval_s;
  StepReport r;
  r.epoch = w.batch.epoch;
  r.step = w.batch.step;
  r.first_step = s.first_step;
  r.total_steps = total_;
  r.loss = w.loss;
  r.lr = w.lr;
  r.elapsed_s = elapsed;
  r.eval_s = s.eval_s;
  // Training throughput: the time spent evaluating is not training's.
  r.images_per_s = elapsed - s.eval_s > 0 ? s.images / (elapsed - s.eval_s) : 0.0;
  r.metrics = &w.metrics;
  if (options_.on_step) options_.on_step(r);
  if (record_) record_->step(r);
  if (!w.eval_error.empty()) {
    s.eval_error = w.eval_error;
    if (record_) record_->eval_error(w.batch.step, w.batch.epoch, w.eval_error);
    if (options_.on_eval_error) options_.on_eval_error(w.batch.step, w.eval_error);
  }
  if (!w.eval_figures.empty()) {
    s.eval = w.eval_figures;
    if (record_) record_->eval(w.batch.step, w.batch.epoch, w.eval_figures);
    if (options_.on_eval) options_.on_eval(w.batch.step, w.eval_figures);
  }
  checkpoints_.promote(w.checkpoint);
}

}  // namespace contra::runtime
