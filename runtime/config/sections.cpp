// The built-in sections of a pipeline file, declared once.
#include "pipeline_spec.hpp"

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
      .add<std::string>("trace", "", "write a Chrome trace (chrome://tracing) of the stages to this file");
}

Schema train_section_schema() {
  return Schema::section("train", "how long to train and how often to report")
      .add<std::int64_t>("epochs", 1, "passes over the data").at_least(1)
      .add<std::int64_t>("max_steps", 0, "stop after this many steps; 0 = no limit").at_least(0)
      .add<std::int64_t>("log_every", 10, "report progress every this many steps").at_least(1)
      .add<std::string>("precision", "f32",
                        "arithmetic of convolutions and matrix products; bf16 keeps f32 master weights")
      .choices({"f32", "bf16"});
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
  return Schema::section("augment", "views per sample; the chain is [[augment.chain]] tables")
      .add<std::int64_t>("views", 2, "augmented views made of each sample").range(1, 16);
}

Schema plugins_section_schema() {
  return Schema::section("plugins", "where to find plugin libraries besides the built-in ones")
      .add<std::vector<std::string>>("paths", std::vector<std::string>{},
                                     "folders (or .so files) searched after CONTRA_PLUGIN_PATH");
}

}  // namespace contra::runtime
