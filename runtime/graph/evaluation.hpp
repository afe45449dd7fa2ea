#pragma once
// [eval]: embed a labelled train split and a test split with the encoder in
// eval mode (its output before any projection head), then hand the frozen
// features to each evaluator (kNN, linear probe, ...). The encoder is only
// read: nothing here calls backward() or touches a parameter.

#include "config/pipeline_spec.hpp"
#include "config/settings.hpp"
#include "assembly/augment_chain.hpp"
#include "assembly/text_tower.hpp"
#include <contra/roles/encoder.hpp>
#include <contra/roles/evaluator.hpp>
#include <contra/roles/source.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

/// The encoder's features (its output before any projection head, in eval
/// mode) of every sample of a source, in the source's order, through [eval]'s
/// chain (the training views' AugmentChain, skip rules included; each
/// sample's randomness is fixed: Rng(0, 0, index, 0, op)).
/// Used by Evaluation, and by `contra embed` for any source.
class FeatureExtractor {
 public:
  FeatureExtractor(const PipelineSpec& spec, const PluginRegistry& registry);
  /// With `need_labels`, a source without labels (or a label outside its
  /// classes) is a DataError naming `label`; without, the labels are what
  /// the source gives (-1 where it has none).
  /// With `head`, the features are the head's output (the towers' joint
  /// space).
  FeatureSet embed(Encoder& encoder, Source& source, const std::string& label, bool need_labels = true,
                   Encoder* head = nullptr) const;
  /// [eval]'s chain for a source's images: ConfigError naming the plugin
  /// when it cannot take them.
  AugmentChain chain_for(const SourceInfo& info) const;

 private:
  const PipelineSpec& spec_;
  const PluginRegistry& registry_;
  PipelineSettings settings_;
};

/// What cross-modal evaluators compare: the first tower and a text tower
/// (their encoders and heads in eval mode), kept, not owned.
struct EvaluationTowers {
  Encoder* image_encoder = nullptr;
  Encoder* image_head = nullptr;  ///< null when the first tower has none
  const TextTower* text = nullptr;
  Encoder* text_encoder = nullptr;
  Encoder* text_head = nullptr;
};

class Evaluation {
 public:
  /// Creates the sources, the chain and the evaluators of spec's [eval].
  Evaluation(const PipelineSpec& spec, const PluginRegistry& registry);

  /// What can be checked before training: both splits have labels and
  /// [eval]'s chain takes their images. Throws ConfigError naming the source
  /// or the plugin otherwise (validate and run call it, so a
  /// run does not train for hours to fail at its first evaluation).
  /// Cross-modal evaluators (Evaluator::cross_modal()) need a text tower
  /// and a test split whose records hold its field.
  void check() const;

  /// The towers cross-modal evaluators compare (the first text tower);
  /// without, those evaluators fail.
  void set_towers(const EvaluationTowers& towers) { towers_ = towers; }
  /// Whether any evaluator is cross-modal.
  bool has_cross_modal() const;

  /// Figures named "<evaluator>.<figure>", e.g. "knn.top1_k200_t0.1". With a
  /// non-empty `embeddings_path`, the test split's features are also written
  /// there as .npy (float32 [N, D]) and its labels beside (…-labels.npy).
  std::vector<std::pair<std::string, double>> run(Encoder& encoder, std::uint64_t seed,
                                                  const std::string& embeddings_path = "");

  /// Features of one split (exposed for tests).
  FeatureSet embed(Encoder& encoder, Source& source, const std::string& label) const {
    return features_.embed(encoder, source, label);
  }

 private:
  const PipelineSpec& spec_;
  std::shared_ptr<Source> train_, test_;
  std::string train_label_, test_label_;
  FeatureExtractor features_;
  std::vector<std::pair<std::string, std::shared_ptr<Evaluator>>> evaluators_;
  std::vector<bool> cross_modal_;  // per evaluator
  EvaluationTowers towers_;

  // The gallery of cross-modal evaluator i: its texts (or the test split's)
  // through the text tower.
  CrossModalFeatures cross_modal_features(std::size_t i, const FeatureSet& queries) const;
  // Rows of token ids through the text tower, batch by batch.
  Tensor embed_texts(const std::vector<std::string>& texts) const;
};

/// Write the features as `path` (.npy, float32 [N, D]) and the labels beside
/// it (`…-labels.npy`, int64 [N]).
void write_features(const std::string& path, const FeatureSet& set);

/// Write a float32 [N, D] or int64 [N] tensor as a .npy file.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace contra::runtime
