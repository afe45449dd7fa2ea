#include "assembly/pipeline.hpp"

#include "assembly/make_plugin.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>
#include <contra/pairs_check.hpp>
#include <contra/roles/memory.hpp>

namespace contra::runtime {

Shape Pipeline::encoder_input() const {
  const ImageShape& s = views.front().chain.output_format().shape;
  return Shape{s.channels, s.height, s.width};
}

Pipeline assemble(const PipelineSpec& spec, const PluginRegistry& reg) {
  Pipeline p;
  p.spec = &spec;
  p.settings = decode_settings(spec);
  p.source = make_plugin<Source>(reg, spec.source);
  p.sampler = make_plugin<Sampler>(reg, spec.sampler);

  const ImageFormat decoded{p.source->info().shape, DType::u8};
  std::int64_t view = 0;
  for (const ViewSpec& vs : spec.views) {
    p.views.push_back({AugmentChain(vs.chain, reg, decoded), vs.count});
    // Every view goes through one encoder: channels must agree throughout.
    const ImageShape& first = p.views.front().chain.output_format().shape;
    const ImageShape& here = p.views.back().chain.output_format().shape;
    if (here.channels != first.channels)
      throw ConfigError("augment: view " + std::to_string(view) + " ends with " + std::to_string(here.channels) +
                        " channels, view 0 with " + std::to_string(first.channels) +
                        "; every view must have the same channels");
    view += vs.count;
  }

  TrainerParts& parts = p.parts;
  parts.encoder = make_plugin<Encoder>(reg, spec.encoder);
  parts.miner = make_plugin<Miner>(reg, spec.miner);
  parts.loss = make_plugin<Loss>(reg, spec.loss);
  parts.optimizer = make_plugin<Optimizer>(reg, spec.optimizer);
  parts.encoder_label = spec.encoder.label();
  parts.miner_label = spec.miner.label();
  parts.loss_label = spec.loss.label();
  parts.optimizer_label = spec.optimizer.label();
  parts.device = p.settings.train.device;
  parts.miner_device = spec.miner.device;
  parts.memory_device = spec.memory.name.empty() ? Device::cpu : spec.memory.device;
  // A loss that cannot use what its miner fills would fail at the first
  // step: said now, by validate and run alike.
  const PairsForms forms = guarded(parts.loss_label + ": pairs_forms() failed", [&] { return parts.loss->pairs_forms(); });
  const MinedLists lists =
      guarded(parts.miner_label + ": mined_lists() failed", [&] { return parts.miner->mined_lists(); });
  if (const std::string why = pairs_mismatch(forms, lists); !why.empty())
    throw ConfigError(parts.loss_label + ": " + why + "; " + parts.miner_label + " fills " +
                      mined_lists_text(lists));
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
    if (!spec.towers.empty())
      throw ConfigError(parts.memory_label + ": a memory in a pipeline of several towers is not supported yet; "
                        "remove [memory] or the [tower.NAME] tables");
  }
  const SourceInfo info = p.source->info();
  for (const TowerSpec& ts : spec.towers) {
    const TextTower& text = p.text_towers.emplace_back(ts, reg, info);
    TowerParts t;
    t.name = ts.name;
    t.encoder = make_plugin<Encoder>(reg, ts.encoder);
    t.encoder_label = ts.encoder.label();
    if (!ts.head.name.empty()) {
      t.head = make_plugin<Encoder>(reg, ts.head);
      t.head_label = ts.head.label();
    }
    t.context.input = Shape{text.length()};
    t.context.vocabulary = text.vocabulary();
    parts.towers.push_back(std::move(t));
  }
  return p;
}

}  // namespace contra::runtime
