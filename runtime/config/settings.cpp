#include "config/settings.hpp"

#include "config/launch.hpp"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace contra::runtime {

int machine_cores() {
  const int all = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  int mine = all;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) mine = std::max(1, CPU_COUNT(&set));
  // Ranks a launcher started on this machine without binding them share its cores.
  const int ranks_here = detect_launch().local_size;
  if (ranks_here > 1 && mine == all) mine = std::max(1, all / ranks_here);
  return mine;
}

PipelineSettings decode_settings(const PipelineSpec& spec) {
  PipelineSettings s;
  s.name = spec.pipeline.get<std::string>("name");
  s.seed = static_cast<std::uint64_t>(spec.pipeline.get<std::int64_t>("seed"));

  const Params& rt = spec.runtime;
  auto threads = [](std::int64_t n) { return n > 0 ? static_cast<int>(n) : machine_cores(); };
  s.runtime.prefetch = static_cast<int>(rt.get<std::int64_t>("prefetch"));
  s.runtime.data_threads = threads(rt.get<std::int64_t>("data_threads"));
  s.runtime.compute_threads = threads(rt.get<std::int64_t>("compute_threads"));
  if (!rt.get<std::string>("trace").empty()) s.runtime.trace = rt.path("trace");
  s.runtime.stage_timeout_s = rt.get<double>("stage_timeout_s");

  s.train.epochs = spec.train.get<std::int64_t>("epochs");
  s.train.max_steps = spec.train.get<std::int64_t>("max_steps");
  s.train.log_every = spec.train.get<std::int64_t>("log_every");
  s.train.device = pipeline_device(spec);
  s.train.precision_name = train_precision_name(spec);
  s.train.precision = train_precision(spec);

  s.schedule.cosine = spec.schedule.get<std::string>("kind") == "cosine";
  s.schedule.warmup_epochs = spec.schedule.get<double>("warmup_epochs");
  s.schedule.final_scale = spec.schedule.get<double>("final_scale");

  const Params& d = spec.data;
  s.data.subset = d.get<std::int64_t>("subset");
  s.data.random_subset = d.get<std::string>("subset_mode") == "random";
  s.data.shard_count = d.get<std::int64_t>("shard_count");
  s.data.shard_rank = d.get<std::int64_t>("shard_rank");
  s.data.shard_rank_where = d.where("shard_rank");
  s.data.skip_errors = d.get<std::string>("on_error") == "skip";
  s.data.max_skip_fraction = d.get<double>("max_skip_fraction");
  s.data.max_image_pixels = d.get<std::int64_t>("max_image_pixels");
  s.data.cache_bytes = d.get<std::int64_t>("cache_mb") << 20;

  s.eval.enabled = spec.has_eval;
  s.eval.every_epochs = spec.eval.get<std::int64_t>("every_epochs");
  s.eval.at_end = spec.eval.get<bool>("at_end");
  s.eval.save_embeddings = spec.eval.get<bool>("save_embeddings");
  s.eval.batch_size = spec.eval.get<std::int64_t>("batch_size");

  s.record.dir = spec.record.get<std::string>("dir");
  s.record.checkpoint_every = spec.record.get<std::int64_t>("checkpoint_every");
  s.record.keep = spec.record.get<std::int64_t>("keep");
  s.record.max_abs_weight = spec.record.get<double>("max_abs_weight");

  const Params& dist = spec.distributed;
  s.distributed.backend = dist.get<std::string>("backend");
  s.distributed.gather = dist.get<bool>("gather");
  s.distributed.sync_batch_norm = dist.get<bool>("sync_batch_norm");
  s.distributed.timeout_s = dist.get<double>("timeout_s");
  s.distributed.bucket_bytes = static_cast<std::size_t>(dist.get<std::int64_t>("bucket_mb")) << 20;
  s.distributed.overlap = dist.get<bool>("overlap");
  return s;
}

}  // namespace contra::runtime
