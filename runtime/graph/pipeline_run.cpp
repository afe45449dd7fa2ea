#include "pipeline_run.hpp"

#include "plugins/registry.hpp"
#include "train/lr_schedule.hpp"
#include "train/trainer.hpp"

#include <contra/plugin.hpp>
#include <contra/roles/memory.hpp>

#include <oneapi/tbb/parallel_for.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>

namespace contra::runtime {

std::int64_t planned_steps(std::int64_t batches_per_epoch, std::int64_t epochs, std::int64_t max_steps) {
  std::int64_t total = batches_per_epoch * epochs;
  return max_steps > 0 ? std::min(total, max_steps) : total;
}

namespace {

int cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

template <class Role> std::shared_ptr<Role> make(const PluginRegistry& reg, const PluginSpec& ps) {
  const PluginRecord* rec = reg.find(ps.kind, ps.name);
  if (!rec) throw PluginError(ps.label() + ": plugin not found");  // bind_plugins reported it already
  try {
    return reg.create<Role>(*rec, ps.params);
  } catch (const std::exception& e) {
    throw PluginError(ps.label() + ": " + e.what());
  }
}

// Runs a per-item loop on TBB workers, or on this thread when a plugin says
// it is serial.
template <class F> void for_each_item(std::int64_t n, bool parallel, F&& f) {
  if (parallel)
    tbb::parallel_for(std::int64_t(0), n, [&](std::int64_t i) { f(i); });
  else
    for (std::int64_t i = 0; i < n; ++i) f(i);
}

// u8 HWC -> f32 CHW scaled to [0, 1], or a copy of f32 CHW, into `dst`.
void collate(const Tensor& img, float* dst, const ImageFormat& fmt) {
  const std::int64_t h = fmt.shape.height, w = fmt.shape.width, c = fmt.shape.channels;
  if (fmt.dtype == DType::f32) {
    std::copy_n(img.data<float>(), h * w * c, dst);
    return;
  }
  const std::uint8_t* src = img.data<std::uint8_t>();
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t i = 0; i < h * w; ++i) dst[ch * h * w + i] = src[i * c + ch] * (1.0f / 255.0f);
}

}  // namespace

RunSummary run_pipeline(const PipelineSpec& spec, const PluginRegistry& reg, const RunOptions& options) {
  const auto seed = static_cast<std::uint64_t>(spec.pipeline.get<std::int64_t>("seed"));
  auto source = make<Source>(reg, spec.source);
  auto sampler = make<Sampler>(reg, spec.sampler);
  std::vector<std::shared_ptr<Augmentation>> chain;
  for (const auto& a : spec.augment_chain) chain.push_back(make<Augmentation>(reg, a));

  TrainerParts parts;
  parts.encoder = make<Encoder>(reg, spec.encoder);
  parts.miner = make<Miner>(reg, spec.miner);
  parts.loss = make<Loss>(reg, spec.loss);
  parts.optimizer = make<Optimizer>(reg, spec.optimizer);
  parts.encoder_label = spec.encoder.label();
  parts.miner_label = spec.miner.label();
  parts.loss_label = spec.loss.label();
  parts.optimizer_label = spec.optimizer.label();
  if (!spec.head.name.empty()) {
    parts.head = make<Encoder>(reg, spec.head);
    parts.head_label = spec.head.label();
  }
  if (!spec.memory.name.empty()) {
    parts.memory = make<Memory>(reg, spec.memory);
    parts.memory_label = spec.memory.label();
    if (parts.memory->encoder_momentum() > 0) {
      parts.momentum_encoder = make<Encoder>(reg, spec.encoder);
      if (parts.head) parts.momentum_head = make<Encoder>(reg, spec.head);
    }
  }

  const SourceInfo info = source->info();
  if (info.size <= 0) throw DataError(spec.source.label() + ": the source has no samples");
  std::vector<std::int64_t> labels;
  if (info.num_classes > 0) labels = source->labels();
  try {
    sampler->configure(SamplerContext{info.size, labels.empty() ? nullptr : &labels, seed,
                                      spec.runtime.get<std::int64_t>("prefetch") + 1});
  } catch (const std::exception& e) {
    throw ConfigError(spec.sampler.label() + ": " + e.what());
  }

  // Formats along the augmentation chain, checked once here.
  std::vector<ImageFormat> formats{ImageFormat{info.shape, DType::u8}};
  bool parallel_augment = true;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    try {
      formats.push_back(chain[i]->output_format(formats.back()));
    } catch (const std::exception& e) {
      throw ConfigError(spec.augment_chain[i].label() + ": " + e.what());
    }
    parallel_augment = parallel_augment && chain[i]->concurrency() == Concurrency::parallel;
  }
  const ImageFormat final_format = formats.back();
  const ImageShape out_shape = final_format.shape;
  const std::int64_t views = spec.augment.get<std::int64_t>("views");
  const std::int64_t image_elems = out_shape.channels * out_shape.height * out_shape.width;

  const int compute_threads = spec.runtime.get<int>("compute_threads") > 0 ? spec.runtime.get<int>("compute_threads")
                                                                           : cores();
  const int data_threads = spec.runtime.get<int>("data_threads") > 0 ? spec.runtime.get<int>("data_threads") : cores();
  omp_set_num_threads(compute_threads);
  const Precision precision =
      spec.train.get<std::string>("precision") == "bf16" ? Precision::bf16 : Precision::f32;
  Trainer trainer(parts, EncoderContext{Shape{out_shape.channels, out_shape.height, out_shape.width}, seed, precision},
                  MemoryContext{0, info.size, labels.empty() ? nullptr : &labels, seed});

  const std::int64_t bpe = sampler->batches_per_epoch();
  const std::int64_t total = planned_steps(bpe, spec.train.get<std::int64_t>("epochs"),
                                           spec.train.get<std::int64_t>("max_steps"));
  const bool parallel_load = source->concurrency() == Concurrency::parallel;
  const LrSchedule schedule = LrSchedule::from(spec.schedule, bpe, total);

  RunSummary summary;
  summary.data_threads = data_threads;
  summary.compute_threads = compute_threads;
  std::int64_t planned = 0;

  ExecutorStages stages;
  stages.plan = [&](BatchWork& w) {
    if (planned >= total) return false;
    const std::int64_t epoch = planned / bpe, b = planned % bpe;
    w.batch_in_epoch = b;
    w.batch.epoch = epoch;
    w.batch.step = planned;
    try {
      sampler->plan(epoch, b, w.indices);
    } catch (const std::exception& e) {
      throw PluginError("plan stage: " + spec.sampler.label() + " failed at epoch " + std::to_string(epoch) +
                        ", batch " + std::to_string(b) + ": " + e.what());
    }
    if (w.indices.empty())
      throw PluginError("plan stage: " + spec.sampler.label() + " planned an empty batch at epoch " +
                        std::to_string(epoch) + ", batch " + std::to_string(b));
    for (auto id : w.indices)
      if (id < 0 || id >= info.size)
        throw PluginError("plan stage: " + spec.sampler.label() + " planned sample " + std::to_string(id) +
                          ", outside the source's " + std::to_string(info.size) + " samples");
    ++planned;
    return true;
  };

  stages.load = [&](BatchWork& w) {
    const auto n = static_cast<std::int64_t>(w.indices.size());
    if (w.raw.size() < static_cast<std::size_t>(n)) w.raw.resize(static_cast<std::size_t>(n));
    w.batch.ids = w.indices;
    w.batch.labels.assign(labels.empty() ? 0 : static_cast<std::size_t>(n), -1);
    for_each_item(n, parallel_load, [&](std::int64_t i) {
      std::int64_t label;
      try {
        label = source->load(w.indices[i], w.raw[i]);
      } catch (const std::exception& e) {
        throw DataError("load stage: " + spec.source.label() + " failed on sample " + std::to_string(w.indices[i]) +
                        " (step " + std::to_string(w.batch.step) + "): " + e.what());
      }
      if (w.raw[i].dtype() != DType::u8 || w.raw[i].shape() != Shape{info.shape.height, info.shape.width,
                                                                         info.shape.channels})
        throw PluginError("load stage: " + spec.source.label() + " returned a " + dtype_name(w.raw[i].dtype()) +
                          " image of shape " + w.raw[i].shape().str() + " for sample " +
                          std::to_string(w.indices[i]) + ", expected u8 " +
                          Shape{info.shape.height, info.shape.width, info.shape.channels}.str());
      if (!labels.empty()) w.batch.labels[i] = label;
    });
  };

  stages.augment = [&](BatchWork& w) {
    const auto n = static_cast<std::int64_t>(w.indices.size());
    w.batch.views = views;
    w.batch.images.ensure({views * n, out_shape.channels, out_shape.height, out_shape.width}, DType::f32);
    if (w.scratch.size() < static_cast<std::size_t>(2 * views * n)) w.scratch.resize(static_cast<std::size_t>(2 * views * n));
    float* dst = w.batch.images.data<float>();
    for_each_item(views * n, parallel_augment, [&](std::int64_t task) {
      const std::int64_t v = task / n, i = task % n;
      const Tensor* cur = &w.raw[i];
      for (std::size_t op = 0; op < chain.size(); ++op) {
        Tensor& out = w.scratch[2 * task + (op % 2)];
        Rng rng(seed, static_cast<std::uint64_t>(w.batch.epoch), static_cast<std::uint64_t>(w.indices[i]),
                static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(op));
        try {
          chain[op]->apply(*cur, out, rng);
        } catch (const std::exception& e) {
          throw PluginError("augment stage: " + spec.augment_chain[op].label() + " failed on sample " +
                            std::to_string(w.indices[i]) + ", view " + std::to_string(v) + " (step " +
                            std::to_string(w.batch.step) + "): " + e.what());
        }
        cur = &out;
      }
      const ImageFormat& f = final_format;
      Shape want = f.dtype == DType::f32 ? Shape{f.shape.channels, f.shape.height, f.shape.width}
                                         : Shape{f.shape.height, f.shape.width, f.shape.channels};
      if (cur->dtype() != f.dtype || cur->shape() != want)
        throw PluginError("augment stage: " + spec.augment_chain.back().label() + " produced a " +
                          dtype_name(cur->dtype()) + " image of shape " + cur->shape().str() + ", expected " +
                          dtype_name(f.dtype) + " " + want.str() + " as its output_format() said");
      collate(*cur, dst + (v * n + i) * image_elems, f);
    });
  };

  stages.train = [&](BatchWork& w) {
    // OpenMP's thread count is per calling thread; the train stage may run on
    // any TBB worker, so set it each time.
    omp_set_num_threads(compute_threads);
    try {
      StepOutcome o = trainer.step(w.batch, w.batch.step, schedule.scale(w.batch.step));
      try {
        sampler->observe(w.batch.step, trainer.last_embeddings());
      } catch (const std::exception& e) {
        throw PluginError(spec.sampler.label() + ": observe() failed: " + e.what());
      }
      w.loss = o.loss;
      w.lr = o.lr;
      w.metrics = std::move(o.metrics);
    } catch (const Error& e) {
      throw PluginError("train stage (step " + std::to_string(w.batch.step) + "): " + e.what());
    }
  };

  double start_s = -1;
  auto t0 = std::chrono::steady_clock::now();
  stages.sink = [&](BatchWork& w) {
    summary.losses.push_back(w.loss);
    summary.steps++;
    summary.images += w.batch.images.dim(0);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (start_s < 0) start_s = elapsed;
    if (options.on_step) {
      StepReport r;
      r.epoch = w.batch.epoch;
      r.step = w.batch.step;
      r.total_steps = total;
      r.loss = w.loss;
      r.lr = w.lr;
      r.elapsed_s = elapsed;
      r.images_per_s = elapsed > 0 ? summary.images / elapsed : 0.0;
      r.metrics = &w.metrics;
      options.on_step(r);
    }
  };

  ExecutorOptions eo;
  eo.prefetch = spec.runtime.get<int>("prefetch");
  eo.data_threads = data_threads;
  eo.record_events = true;
  summary.telemetry = run_graph(stages, eo);
  summary.images_per_s = summary.telemetry.wall_s > 0 ? summary.images / summary.telemetry.wall_s : 0.0;
  std::string trace = spec.runtime.get<std::string>("trace");
  if (!trace.empty()) write_chrome_trace(summary.telemetry, spec.runtime.path("trace"));
  return summary;
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
  return out;
}

}  // namespace contra::runtime
