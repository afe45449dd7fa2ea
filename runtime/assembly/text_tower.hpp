#pragma once
// The input side of a text tower ([tower.NAME] on a text field): the
// record's text through the tokenizer and the text augmentations, framed
// as bos, tokens, eos and padding into one row of i32 token ids.

#include "config/pipeline_spec.hpp"

#include <contra/roles/source.hpp>
#include <contra/roles/text_augmentation.hpp>
#include <contra/roles/tokenizer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

class PluginRegistry;

class TextTower {
 public:
  /// Creates the tower's tokenizer and text augmentations and finds its
  /// field among `info`'s; ConfigError naming the tower's table when the
  /// source has no text field of that name, or PluginError naming the
  /// tokenizer when its vocabulary is unusable.
  TextTower(const TowerSpec& spec, const PluginRegistry& registry, const SourceInfo& info);

  const std::string& name() const { return name_; }
  /// Index into Record::texts.
  std::size_t text_field() const { return text_field_; }
  /// L: tokens per row.
  std::int64_t length() const { return length_; }
  const Vocabulary& vocabulary() const { return vocabulary_; }
  /// Whether rows may be made on many threads at once.
  bool parallel() const { return parallel_; }

  /// Which sample a row is, for the randomness and for errors.
  struct Draw {
    std::uint64_t seed = 0, epoch = 0, sample = 0;
    std::uint32_t view = 0;  ///< the tower's view in the batch
  };
  /// Scratch token lists, reused across rows of one thread.
  struct Scratch {
    std::vector<std::int32_t> a, b;
  };
  /// Writes `text`'s row of length() token ids into `row`: bos, the tokens
  /// (each augmentation drawing from Rng(seed, epoch, sample, view, its
  /// position in the chain)) cut to length() - 2, eos, then pad. A plugin's
  /// failure, or an id outside the vocabulary, is a PluginError naming it
  /// and the sample. Without `augment` (evaluation), the chain is skipped.
  void make_row(const std::string& text, const Draw& draw, Scratch& scratch, std::int32_t* row,
                bool augment = true) const;

 private:
  struct Op {
    std::shared_ptr<TextAugmentation> plugin;
    std::string label;
  };
  std::string name_;
  std::size_t text_field_ = 0;
  std::int64_t length_ = 0;
  std::shared_ptr<Tokenizer> tokenizer_;
  std::string tokenizer_label_;
  Vocabulary vocabulary_;
  std::vector<Op> chain_;
  bool parallel_ = true;
};

/// "image, text (text)": a source's fields, for messages.
std::string fields_text(const SourceInfo& info);

}  // namespace contra::runtime
