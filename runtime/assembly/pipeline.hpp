#pragma once
// A PipelineSpec assembled: each plugin created once (make_plugin()), the
// settings decoded once (config/settings.hpp), every augmentation chain
// checked against the source's images, the train step's parts gathered.
// `contra run` trains this object and `contra validate` builds it, so what
// validate passes, run starts.

#include "assembly/augment_chain.hpp"
#include "assembly/text_tower.hpp"
#include "config/pipeline_spec.hpp"
#include "config/settings.hpp"
#include "train/trainer.hpp"

#include <contra/roles/sampler.hpp>
#include <contra/roles/source.hpp>

#include <memory>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

/// The views one chain makes: an [[augment.view]] table (or the shared chain).
struct ViewChain {
  AugmentChain chain;
  std::int64_t count = 1;
};

struct Pipeline {
  const PipelineSpec* spec = nullptr;  ///< for plugin labels and the run record
  PipelineSettings settings;
  std::shared_ptr<Source> source;
  std::shared_ptr<Sampler> sampler;
  std::vector<ViewChain> views;
  /// The towers after the first ([tower.NAME]), in order: how each makes its
  /// input from a record. Their encoders are in parts.towers.
  std::vector<TextTower> text_towers;
  /// Created, not yet built: the Trainer builds the encoder and head for the
  /// augmented images' shape.
  TrainerParts parts;

  /// [C, H, W] of the first view's images: what the encoder is built for.
  Shape encoder_input() const;
};

/// Creates every plugin of `spec` (bound by bind_plugins()) and checks what
/// can be checked without data flowing: the chains fit the source's images
/// and each other, the views agree on channels. Throws ConfigError or
/// PluginError naming the plugin and its table.
Pipeline assemble(const PipelineSpec& spec, const PluginRegistry& registry);

}  // namespace contra::runtime
