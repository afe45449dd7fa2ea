#pragma once
// The built-in sections' values, typed: decoded once from a PipelineSpec
// whose schemas validated them (sections.cpp declares each key), so that
// nothing after config looks a setting up by its name.

#include "config/pipeline_spec.hpp"

#include <contra/data_defaults.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace contra::runtime {

struct RuntimeSettings {
  int prefetch = 4;
  int data_threads = 1;     ///< 0 in the file is resolved here: one per core
  int compute_threads = 1;  ///< likewise
  std::filesystem::path trace;  ///< Chrome trace to write; empty = none
  double stage_timeout_s = 1800;  ///< the stage watchdog's limit; 0 = none
};

struct TrainSettings {
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;  ///< 0 = no limit
  std::int64_t log_every = 10;
  Device device = Device::cpu;
  std::string precision_name;  ///< "auto" resolved (train_precision_name())
  Precision precision = Precision::f32;
};

struct ScheduleSettings {
  bool cosine = false;
  double warmup_epochs = 0.0;
  double final_scale = 0.0;
};

struct DataSettings {
  std::int64_t subset = 0;  ///< 0 = every sample
  bool random_subset = false;
  std::int64_t shard_count = 1, shard_rank = 0;
  bool skip_errors = false;  ///< on_error = "skip"
  double max_skip_fraction = data_defaults::max_skip_fraction;  ///< of the samples in use, that may be skipped
  std::int64_t max_image_pixels = data_defaults::max_image_pixels;  ///< passed to sources (source_data_keys())
  std::int64_t cache_bytes = 0;
  SourceLocation shard_rank_where;  ///< for the message when shard_rank >= shard_count
};

struct EvalSettings {
  bool enabled = false;  ///< the pipeline has an [eval]
  std::int64_t every_epochs = 0;
  bool at_end = true;
  bool save_embeddings = false;
  std::int64_t batch_size = 512;
};

struct RecordSettings {
  std::filesystem::path dir;
  std::int64_t checkpoint_every = 0;
  std::int64_t keep = 2;
  double max_abs_weight = 1e6;  ///< divergence guard of checkpoints; 0 = none
};

struct DistributedSettings {
  std::string backend = "auto";  ///< as written: auto, none, mpi, nccl (resolved by the run, which knows the launcher)
  bool gather = true;
  bool sync_batch_norm = false;
  double timeout_s = 600;        ///< 0 = never
  std::size_t bucket_bytes = std::size_t(25) << 20;
  bool overlap = true;
};

struct PipelineSettings {
  std::string name;
  std::uint64_t seed = 0;
  RuntimeSettings runtime;
  TrainSettings train;
  ScheduleSettings schedule;
  DataSettings data;
  EvalSettings eval;
  RecordSettings record;
  DistributedSettings distributed;
};

/// The settings of a spec read_pipeline() accepted.
PipelineSettings decode_settings(const PipelineSpec& spec);

/// What 0 threads in [runtime] means: one per core this process may run on
/// (its CPU affinity), shared out among the ranks a launcher started on this
/// machine unless it bound each rank to cores of its own.
int machine_cores();

}  // namespace contra::runtime
