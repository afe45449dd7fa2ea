// The built-in sections of a pipeline file, declared once.
#include "pipeline_spec.hpp"

#include <contra/data_defaults.hpp>

namespace contra::runtime {

Schema pipeline_section_schema() {
  return Schema::section("pipeline", "what the pipeline is")
      .add<std::string>("name", "", "a short name for logs and run records")
      .add<std::string>("description", "", "free text")
      .add<std::int64_t>("seed", 0, "seed of every random choice: initialisation, sampling, augmentation")
      .at_least(0);
}

Schema runtime_section_schema() {
  return Schema::section("runtime", "how the pipeline runs on this machine")
      .add<std::int64_t>("prefetch", 4, "batches in flight between the sampler and the train step")
      .range(1, 64)
      .add<std::int64_t>("data_threads", 0, "threads loading and augmenting; 0 = one per core")
      .range(0, 1024)
      .add<std::int64_t>("compute_threads", 0, "OpenMP threads of the train step; 0 = one per core")
      .range(0, 1024)
      .add<std::string>("trace", "", "write a Chrome trace (chrome://tracing) of the stages to this file")
      // Far above any real step on one batch (evaluation and checkpoints
      // included), and a hang is still said within the hour.
      .add<double>("stage_timeout_s", 1800.0,
                   "a stage working on one batch longer than this (a hung plugin) stops the run, naming it; 0 = never")
      .at_least(0.0);
}

Schema train_section_schema() {
  return Schema::section("train", "how long to train and how often to report")
      .add<std::int64_t>("epochs", 1, "passes over the data").at_least(1)
      .add<std::int64_t>("max_steps", 0, "stop after this many steps; 0 = no limit").at_least(0)
      .add<std::int64_t>("log_every", 10, "report progress every this many steps").at_least(1)
      .add<std::string>("precision", "f32",
                        "arithmetic of convolutions and matrix products: f32; tf32 (GPU tensor cores, f32 "
                        "storage); bf16 (f32 master weights; on the CPU needs AVX-512); auto (bf16 on a GPU or a "
                        "CPU with bf16 instructions, else f32)")
      .choices({"f32", "tf32", "bf16", "auto"})
      .add<std::string>("device", "cpu",
                        "where the encoder, loss and optimizer run; cuda uses their *_cuda builds on the GPU")
      .choices({"cpu", "cuda"});
}

Schema schedule_section_schema() {
  return Schema::section("schedule", "learning-rate schedule: a multiplier of the optimizer's lr per step")
      .add<std::string>("kind", "constant", "constant, or cosine decay to final_scale after the warm-up")
      .choices({"constant", "cosine"})
      .add<double>("warmup_epochs", 0.0, "linear warm-up from lr/warmup_steps to lr over this many epochs")
      .range(0, 1e6)
      .add<double>("final_scale", 0.0, "multiplier reached at the last step (cosine)")
      .range(0, 1);
}

Schema augment_section_schema() {
  return Schema::section("augment",
                         "views per sample: a shared [[augment.chain]] for `views` views, or one "
                         "[[augment.view]] table per group of views with its own chain")
      .add<std::int64_t>("views", 2, "views made with the shared [[augment.chain]]").range(1, 64);
}

Schema tower_section_schema() {
  return Schema::section("tower",
                         "a tower after the first: another field of the source's records (a caption), its "
                         "tokenizer, text augmentations ([[tower.NAME.chain]]), encoder and head")
      .add<std::string>("field", "", "the record field the tower embeds; \"\" = the tower's name")
      .add<std::int64_t>("length", 32, "tokens per row, bos and eos included; longer texts are cut")
      .range(3, 4096);
}

Schema augment_view_schema() {
  return Schema::section("augment.view", "one chain of augmentations and how many views it makes")
      .add<std::int64_t>("count", 1, "views made with this table's [[augment.view.chain]]").range(1, 64);
}

Schema data_section_schema() {
  return Schema::section("data", "which samples of the source a run uses, and what to do with bad ones")
      .add<std::int64_t>("subset", 0, "use only this many samples; 0 = all").at_least(0)
      .add<std::string>("subset_mode", "first", "which samples the subset keeps: the first n, or a seeded random n")
      .choices({"first", "random"})
      .add<std::int64_t>("shard_count", 1, "split the samples into this many shards (for distributed runs)")
      .range(1, 1 << 20)
      .add<std::int64_t>("shard_rank", 0, "the shard this run reads, 0-based").at_least(0)
      .add<std::string>("on_error", "fail", "a sample that fails to load stops the run, or is skipped and counted")
      .choices({"fail", "skip"})
      .add<double>("max_skip_fraction", data_defaults::max_skip_fraction,
                   "with on_error = skip: the fraction of the samples in use that may fail to load; one more "
                   "stops the run")
      .range(0, 1)
      .add<std::int64_t>("max_image_pixels", data_defaults::max_image_pixels,
                         "an image whose stored width x height is larger is refused before it is decoded (a "
                         "source that decodes images takes this limit)")
      .range(1, data_defaults::max_image_pixels_bound)
      .add<std::int64_t>("cache_mb", 0, "keep decoded images in memory up to this many MiB; 0 = off")
      .range(0, 1 << 20);
}

Schema record_section_schema() {
  return Schema::section("record", "where a run writes its record: pipeline, metrics, checkpoints")
      .add<std::string>("dir", "runs", "folder of run folders (relative to the working directory)")
      .add<std::int64_t>("checkpoint_every", 0, "write a checkpoint every this many steps; 0 = at the end only")
      .at_least(0)
      .add<std::int64_t>("keep", 2, "checkpoints kept; older ones are deleted").range(1, 1000000)
      // A healthy network's weights stay within hundreds; one that reaches a
      // million has diverged, and its checkpoint must not become `latest`.
      .add<double>("max_abs_weight", 1e6,
                   "a checkpoint whose encoder or head holds a value beyond this magnitude stops the run "
                   "(diverged) instead of becoming latest; 0 = no bound")
      .at_least(0.0);
}

Schema eval_section_schema() {
  return Schema::section("eval",
                         "evaluation of the encoder's output (before any head): [eval.test] and optional "
                         "[eval.train] sources, [[eval.chain]] transforms, [[eval.evaluator]] plugins")
      .add<std::int64_t>("every_epochs", 0, "evaluate after every this many epochs; 0 = not during training")
      .at_least(0)
      .add<bool>("at_end", true, "evaluate after the last step")
      .add<std::int64_t>("batch_size", 512, "images per forward pass when embedding a split").range(1, 65536)
      .add<bool>("save_embeddings", false, "write the test split's embeddings as .npy in the run folder");
}

Schema distributed_section_schema() {
  return Schema::section("distributed",
                         "data-parallel training over ranks started by mpirun or srun (docs/distributed.md)")
      .add<std::string>("backend", "auto",
                        "collectives: mpi (CPU), nccl (GPU, bootstrapped over MPI), none (one process); auto = "
                        "none unless a launcher started more than one rank, then nccl for a cuda pipeline, else mpi")
      .choices({"auto", "none", "mpi", "nccl"})
      .add<bool>("gather", true,
                 "all-gather the embeddings (ids, labels, momentum keys) so that the miner and the loss of every "
                 "rank see the global batch's negatives; false = each rank contrasts its own slice")
      .add<bool>("sync_batch_norm", false,
                 "batch-norm statistics over the global batch (SimCLR's global BN); false = over each rank's slice")
      .add<double>("timeout_s", 600.0,
                   "a collective waiting longer than this for the other ranks stops the run (a rank hung or "
                   "lost); 0 = never")
      .at_least(0.0)
      .add<std::int64_t>("bucket_mb", 25, "parameter gradients are all-reduced in buckets of this many MiB")
      .range(1, 4096)
      .add<bool>("overlap", true,
                 "start each bucket's all-reduce as soon as the backward pass has finished its gradients; false "
                 "= all of them after the backward pass");
}

Schema plugins_section_schema() {
  return Schema::section("plugins", "where to find plugin libraries besides the built-in ones")
      .add<std::vector<std::string>>("paths", std::vector<std::string>{},
                                     "folders (or .so files) searched after CONTRA_PLUGIN_PATH");
}

}  // namespace contra::runtime
