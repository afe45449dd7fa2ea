#pragma once
// PipelineSpec: a pipeline file read, overridden and validated. This module
// is the only user of toml++; everything past it sees SDK types only.

#include <contra/roles/encoder.hpp>
#include <contra/roles/plugin.hpp>
#include <contra/schema.hpp>
#include <contra/tensor.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace contra::runtime {


/// One plugin instance named in the pipeline.
struct PluginSpec {
  PluginKind kind = PluginKind::source;
  std::string section;        ///< dotted key of its table: "loss", "augment.chain[1]"
  std::string name;           ///< the plugin = "..." value
  SourceLocation where;       ///< the table
  SourceLocation name_where;  ///< the plugin = "..." line
  std::vector<RawParam> raw;  ///< every other key of the table
  Params params;              ///< typed values, after bind_plugins()
  std::filesystem::path library;  ///< the library providing it, after bind_plugins()
  /// The build bind_plugins() chose: the pipeline's device, or cpu for a kind
  /// that runs beside the GPU (PluginRegistry::resolve()).
  Device device = Device::cpu;
  /// "loss 'info_nce' ([loss] at pipeline.toml:31:1, library
  /// /usr/lib/contra/plugins/libcontra_loss_info_nce.so)": how errors name
  /// this plugin (the library once bind_plugins() has found it).
  std::string label() const;
};

/// A group of views made by one augmentation chain.
struct ViewSpec {
  std::int64_t count = 1;          ///< views made with this chain
  std::vector<PluginSpec> chain;   ///< applied in order
};

/// A tower after the pipeline's first: [tower.NAME] embeds another field of
/// the source's records (a caption) with an encoder (and head) of its own.
/// The first tower is the pipeline's [augment], [encoder] and [head] on the
/// source's first image field, so everything that embeds images (the
/// evaluations, `contra embed`, `encoder.` in checkpoints) serves it as in
/// a pipeline of one tower.
struct TowerSpec {
  std::string name;               ///< NAME of [tower.NAME]
  SourceLocation where;           ///< the table
  Params params;                  ///< field, length
  PluginSpec tokenizer;           ///< [tower.NAME.tokenizer]
  std::vector<PluginSpec> chain;  ///< [[tower.NAME.chain]]: text augmentations, in order
  PluginSpec encoder;             ///< [tower.NAME.encoder]
  PluginSpec head;                ///< [tower.NAME.head]; name empty when absent
};

struct PipelineSpec {
  std::string file;           ///< as the user named it
  Params pipeline;            ///< [pipeline]
  Params runtime;             ///< [runtime]
  Params train;               ///< [train]
  Params schedule;            ///< [schedule]
  Params augment;             ///< [augment] (views)
  Params data;                ///< [data]: subset, shards, error policy, cache
  Params record;              ///< [record]: run directory, checkpoints
  Params distributed;         ///< [distributed]: data-parallel ranks
  Params eval;                ///< [eval]: when and how to evaluate
  bool has_eval = false;      ///< the pipeline has an [eval] section
  PluginSpec eval_train;      ///< [eval.train] source; name empty = the training [source]
  PluginSpec eval_test;       ///< [eval.test] source
  std::vector<PluginSpec> eval_chain;  ///< [[eval.chain]]: deterministic transforms of eval images
  std::vector<PluginSpec> evaluators;  ///< [[eval.evaluator]]
  std::vector<std::filesystem::path> plugin_paths;  ///< [plugins] paths, resolved
  PluginSpec source, sampler, encoder, miner, loss, optimizer;
  PluginSpec head;            ///< optional projection head; name empty when absent
  PluginSpec memory;          ///< optional memory (queue, bank); name empty when absent
  /// Views per sample: one entry for a shared [[augment.chain]] (count =
  /// [augment] views), or one per [[augment.view]] table.
  std::vector<ViewSpec> views;
  /// The towers after the first, in file order; empty for one tower.
  std::vector<TowerSpec> towers;
  /// Views the first tower makes (the augmentation chains' counts).
  std::int64_t total_views() const;
  /// Every plugin the pipeline names or defaults to (name not empty), in
  /// table order: source, sampler, encoder, miner, loss, optimizer, head,
  /// memory, [eval]'s sources, the augmentation chains, [eval]'s chain and
  /// evaluators, then each tower's tokenizer, chain, encoder and head.
  std::vector<const PluginSpec*> plugins() const;
  /// The effective pipeline (after --set overrides) as TOML.
  std::string resolved_toml;
};

/// The towers after the first, for a run's and validate's summary line:
/// ", tower 'text' (field 'caption': tokenizer 'bytes', encoder
/// 'text_transformer')" per tower; "" for one tower.
std::string towers_text(const PipelineSpec& spec);

/// Schemas of the built-in sections (they also document them).
Schema pipeline_section_schema();
Schema runtime_section_schema();
Schema train_section_schema();
Schema schedule_section_schema();
Schema augment_section_schema();
Schema plugins_section_schema();
Schema augment_view_schema();
Schema data_section_schema();
Schema record_section_schema();
Schema eval_section_schema();
Schema distributed_section_schema();
Schema tower_section_schema();

/// Read `file`, apply `overrides` ("section.key=value", the value in TOML
/// syntax or else taken as a string), and validate everything that does not
/// need plugins. Problems are appended to `out`. Returns nothing when the
/// file cannot be read or is not valid TOML (one diagnostic says why).
std::optional<PipelineSpec> read_pipeline(const std::string& file,
                                          const std::vector<std::string>& overrides, Diagnostics& out);
/// The same from text; `name` stands for the file in messages and relative paths.
std::optional<PipelineSpec> read_pipeline_text(const std::string& text, const std::string& name,
                                               const std::vector<std::string>& overrides,
                                               Diagnostics& out);

/// [train] device: Device::cuda for "cuda", else Device::cpu.
Device pipeline_device(const PipelineSpec& spec);

/// [train] precision as written: "f32", "tf32", "bf16" or "auto" ("f32" when
/// [train] did not bind). On the CPU, read_pipeline() refuses "tf32", and
/// "bf16" where oneDNN cannot run it (contra::cpu_capabilities()).
std::string train_precision_setting(const PipelineSpec& spec);
/// The precision a run uses: the setting, with "auto" resolved to "bf16" where
/// the device runs it fast (a GPU; a CPU with bf16 instructions,
/// CpuCapabilities::bf16_native), else "f32".
std::string train_precision_name(const PipelineSpec& spec);
/// The encoders' arithmetic for [train] precision: bf16 for "bf16", else f32
/// (tf32 keeps f32 storage; the GPU's math mode does the rest, see
/// require_device()).
Precision train_precision(const PipelineSpec& spec);

/// Where [train] device was set, for messages about it: its line in the
/// pipeline file, or the file alone (set with --set, or defaulted).
SourceLocation pipeline_device_location(const PipelineSpec& spec);

/// The [data] keys a source plugin may take as parameters of its own, so that
/// it sees the run's error policy and pixel limit through its Params (no SDK
/// call): where the source's schema declares one with the same type and its
/// table leaves it unset, bind_plugins() gives it [data]'s value. The
/// training [source] takes on_error, max_skip_fraction and max_image_pixels;
/// [eval]'s sources, which skip nothing, max_image_pixels alone.
const std::vector<std::string>& source_data_keys(bool training_source);

/// The resolved pipeline (spec.resolved_toml) with every value left at its
/// default written out: each bound plugin's parameters, the built-in sections
/// ([eval] only where the pipeline has one), the default plugins named. What
/// a run folder's pipeline.toml holds. Needs the plugins bound.
std::string resolved_with_defaults(const PipelineSpec& spec);

/// The settings whose values differ between `was` and `now`, two resolved
/// pipelines (toml++'s output), as "key = value in the checkpoint's run,
/// value now". [runtime], [record] and how the ranks talk ([distributed] backend,
/// timeout_s, bucket_mb, overlap) say how a run runs and is recorded, not
/// what it learns: they are left out. A setting only `now` has is a newer
/// contra's default, not a change.
std::vector<std::string> changed_settings(const std::string& was, const std::string& now);

}  // namespace contra::runtime
